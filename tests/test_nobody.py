"""The shadow interpreter of tests/_nobody.py: uid 65534 runs skanse even when the checkout
and the interpreter sit below directories it cannot enter (a 0700 parent, pyenv in /root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

import tests._nobody
from tests._nobody import NobodyPython, _setpriv, _shadow, nobody_python

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to uid 65534 needs root")


def _version(python: NobodyPython) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*_setpriv(), *python.argv, "-m", "skanse", "--version"],
        env=python.env,
        capture_output=True,
        timeout=60,
        check=False,
        cwd="/",
    )


@pytest.fixture(autouse=True)
def _needs_setpriv() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")


def test_nobody_runs_skanse_from_the_shadow() -> None:
    base = Path(tempfile.mkdtemp(prefix="skanse-nobody-"))
    try:
        run = _version(_shadow(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.startswith(b"skanse ")


def test_a_checkout_below_a_0700_directory_still_runs_as_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make test` failed in a checkout whose parent was 0700: the tests that run skanse as
    uid 65534 gave it the checkout's interpreter (.venv) and src/, which nobody cannot reach."""
    private = tmp_path / "private"
    private.mkdir()
    os.chmod(private, 0o700)
    checkout = private / "skanse"  # this checkout, as nobody sees it from below a 0700 parent
    checkout.mkdir()
    (checkout / "src").symlink_to(tests._nobody.ROOT / "src")
    (checkout / "bin").symlink_to(Path(sys.executable).parent)
    monkeypatch.setattr(tests._nobody, "ROOT", checkout)
    monkeypatch.setattr(sys, "executable", str(checkout / "bin" / Path(sys.executable).name))
    direct = NobodyPython((sys.executable,), dict(os.environ, PYTHONPATH=str(checkout / "src")))
    assert _version(direct).returncode != 0  # what the tests ran before: out of reach
    with contextmanager(nobody_python)() as python:  # removes the shadow afterwards
        run = _version(python)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.startswith(b"skanse ")
