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


# zsh completes only at an interactive line editor: a zsh drives another through a
# pseudo-terminal (zpty), types the line and a tab, and records every candidate compadd is given.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1= ; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z '_record() { compadd() { builtin compadd -O __got "$@";
  print -r -l -- "<hit>"${^__got} >&2; builtin compadd "$@" } }'
zpty -w z 'compprefuncs=( _record )'
zpty -w z "exec 2>$2"
zpty -n -w z "$3"$'\t'
wait_for() { for i in {1..300}; do grep -qs "^$1" $2 && return; sleep 0.1; done }
wait_for '<hit>' $2
zpty -w z $'\x15print -r -- "<done>" >&2'
wait_for '<done>' $2
zpty -d z
"""


def _shell_completions(shell: str, script: str, line: str, tmp_path: Path) -> set[str]:
    """What `shell` offers after typing `line` and a tab, with skanse's script loaded."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (the Makefile's APT_PACKAGES lists it)")
    if shell == "fish":
        (tmp_path / "skanse.fish").write_text(script)
        command = [
            "fish",
            "--no-config",
            "-c",
            f"source {tmp_path / 'skanse.fish'}; complete -C '{line}'",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return {row.split("\t")[0] for row in done.stdout.splitlines()}
    functions = tmp_path / "zfunc"
    functions.mkdir(exist_ok=True)
    (functions / "_skanse").write_text(script)  # as the script's own usage says: _skanse in fpath
    (tmp_path / "driver.zsh").write_text(ZSH_DRIVER)
    out = tmp_path / "zsh.out"
    out.unlink(missing_ok=True)
    subprocess.run(
        ["zsh", "-f", str(tmp_path / "driver.zsh"), str(functions), str(out), line],
        capture_output=True,
        timeout=90,
        check=False,
    )
    return {row[5:] for row in out.read_text().splitlines() if row.startswith("<hit>")}


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_complete_commands_and_flags(cli, shell: str, tmp_path: Path) -> None:
    run = cli("completion", shell)
    assert run.code == 0
    assert {"scan", "fix", "completion"} <= _shell_completions(
        shell, run.stdout, "skanse ", tmp_path
    )
    assert "--allow-unchecked" in _shell_completions(
        shell, run.stdout, "skanse scan --al", tmp_path
    )
    assert "--unsafe-fixes" in _shell_completions(shell, run.stdout, "skanse fix --uns", tmp_path)


def test_an_unknown_shell_is_a_usage_error(cli) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("completion", "tcsh")
    assert exit_.value.code == 2
