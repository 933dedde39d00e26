"""The hooks of .pre-commit-hooks.yaml, run by the real pre-commit in a temporary git
repository. Offline: each hook is used as a `repo: local` hook with the same entry, file
patterns and settings, with `language: system` running this checkout's skanse instead of a
fresh virtualenv that pre-commit would install from the network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
BAD_POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
    "  - name: a\n    image: a:1\n"
)


def _pre_commit() -> str:
    found = shutil.which("pre-commit") or str(Path(sys.executable).parent / "pre-commit")
    if not os.path.exists(found):
        pytest.skip("pre-commit is not installed (pip install -e '.[test]')")
    return found


def _repo(tmp_path: Path, hook_ids: list[str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    skanse = str(Path(sys.executable).parent / "skanse")
    hooks = []
    for hook in HOOKS:
        if hook["id"] in hook_ids:
            local = dict(hook, language="system")
            local["entry"] = hook["entry"].replace("skanse", skanse, 1)
            hooks.append(local)
    config = {"repos": [{"repo": "local", "hooks": hooks}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    (repo / "app").mkdir()
    (repo / "app" / "pod.yaml").write_text(BAD_POD)
    (repo / "app" / "Dockerfile.md").write_text("# How to build\n\nFROM is explained here.\n")
    (repo / "README.md").write_text("hello\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init", "--no-verify"], check=True)
    return repo


def _run(repo: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PRE_COMMIT_HOME=str(repo.parent / "cache"), NO_COLOR="1")
    env.pop("SKANSE_CONFIG", None)
    return subprocess.run(
        [_pre_commit(), "run", "--all-files", "--color", "never"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_the_hooks_file_declares_scan_and_fix() -> None:
    assert [h["id"] for h in HOOKS] == ["skanse-scan", "skanse-fix"]
    for hook in HOOKS:
        assert hook["language"] == "python" and hook["entry"].startswith("skanse ")


def test_scan_hook_stops_a_commit_with_findings_and_passes_once_clean(tmp_path: Path) -> None:
    repo = _repo(tmp_path, ["skanse-scan"])
    failed = _run(repo)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "app/pod.yaml" in failed.stdout and "SKN-K8S-" in failed.stdout
    assert "Dockerfile.md" not in failed.stdout  # not a Dockerfile: never passed to skanse
    (repo / "app" / "pod.yaml").write_text(
        (ROOT / "examples" / "hardened" / "web.yaml").read_text()
    )
    passed = _run(repo)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_fix_hook_applies_safe_fixes_and_stops_the_commit_to_show_them(tmp_path: Path) -> None:
    repo = _repo(tmp_path, ["skanse-fix"])
    run = _run(repo)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "files were modified by this hook" in run.stdout
    fixed = (repo / "app" / "pod.yaml").read_text()
    assert "seccompProfile" in fixed  # safe
    assert "runAsNonRoot" not in fixed  # unsafe: not applied by the hook
