"""The shadow interpreter of tests/_nobody.py: uid 65534 runs skanse even when the checkout
and the interpreter sit below directories it cannot enter (a 0700 parent, pyenv in /root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests._nobody import _setpriv, _shadow


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to uid 65534 needs root")
def test_nobody_runs_skanse_from_the_shadow() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    base = Path(tempfile.mkdtemp(prefix="skanse-nobody-"))
    try:
        python = _shadow(base)
        run = subprocess.run(
            [*_setpriv(), *python.argv, "-m", "skanse", "--version"],
            env=python.env,
            capture_output=True,
            timeout=60,
            check=False,
            cwd="/",
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.startswith(b"skanse ")
