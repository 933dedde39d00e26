"""The compiled build is what `make test-compiled` tests: not the sources by mistake."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "setup.py"
compiled_run = pytest.mark.skipif(
    os.environ.get("SKANSE_EXPECT_COMPILED") != "1",
    reason="runs under `make test-compiled` (SKANSE_EXPECT_COMPILED=1)",
)


def _compiled_modules() -> list[str]:
    listed = re.search(r"^COMPILED = \[(.*?)^\]", SETUP.read_text(), re.M | re.S)
    assert listed is not None, "setup.py has no COMPILED list"
    paths = re.findall(r'"src/(skanse/[\w/]+)\.py"', listed.group(1))
    return [p.replace("/", ".") for p in paths]


@compiled_run
def test_the_compiled_modules_are_the_ones_imported() -> None:
    modules = _compiled_modules()
    assert len(modules) >= 8
    for name in modules:
        origin = importlib.import_module(name).__file__ or ""
        assert origin.endswith(".so"), f"{name} was imported from {origin}, not compiled"


@compiled_run
def test_the_compiled_decision_answers_hostile_pods_as_the_sources_do() -> None:
    """mypyc checks annotations at run time: a value of a shape a check did not expect could
    make a compiled check fail ("could not check", a denial) where the sources judged it.
    4,000 hardened pods with subtrees replaced by hostile shapes get the same status,
    decision and message from both builds (the sources in a child process)."""
    from tests.admission._mutated import answers

    script = (
        "import json; from tests.admission._mutated import answers; "
        "print(json.dumps(answers(4000)))"
    )
    source = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = [tuple(a) for a in json.loads(source.stdout)]
    ours = answers(4000)
    assert {d for _, d, _ in ours} == {"allow", "deny"}  # both kinds of answer are compared
    assert ours == theirs
