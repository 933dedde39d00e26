"""`skanse completion bash|zsh|fish`: scripts the shells load, completing commands and flags."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def test_bash_completes_commands_and_scan_flags(cli, tmp_path: Path) -> None:
    run = cli("completion", "bash")
    assert run.code == 0
    script = tmp_path / "skanse.bash"
    script.write_text(run.stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        done = subprocess.run(
            [
                "bash",
                "--norc",
                "-c",
                f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                f'COMP_LINE="{" ".join(words)}"; COMP_POINT=${{#COMP_LINE}}; '
                "_shtab_skanse; printf '%s\\n' \"${COMPREPLY[@]}\"",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert {"scan", "fix", "completion"} <= set(complete("skanse", ""))
    assert "--allow-unchecked" in complete("skanse", "scan", "--al")
    assert "--unsafe-fixes" in complete("skanse", "fix", "--uns")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_the_commands_and_parse(cli, shell: str, tmp_path: Path) -> None:
    run = cli("completion", shell)
    assert run.code == 0
    assert "scan" in run.stdout and "unsafe-fixes" in run.stdout
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed: the script's syntax is not checked")
    script = tmp_path / f"skanse.{shell}"
    script.write_text(run.stdout)
    check = subprocess.run([shell, "-n", str(script)], capture_output=True, timeout=30, check=False)
    assert check.returncode == 0, check.stderr


def test_an_unknown_shell_is_a_usage_error(cli) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("completion", "tcsh")
    assert exit_.value.code == 2
