"""The compiled build is what `make test-compiled` tests: not the sources by mistake."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parent.parent / "setup.py"


def _compiled_modules() -> list[str]:
    listed = re.search(r"^COMPILED = \[(.*?)^\]", SETUP.read_text(), re.M | re.S)
    assert listed is not None, "setup.py has no COMPILED list"
    paths = re.findall(r'"src/(skanse/[\w/]+)\.py"', listed.group(1))
    return [p.replace("/", ".") for p in paths]


@pytest.mark.skipif(
    os.environ.get("SKANSE_EXPECT_COMPILED") != "1",
    reason="runs under `make test-compiled` (SKANSE_EXPECT_COMPILED=1)",
)
def test_the_compiled_modules_are_the_ones_imported() -> None:
    modules = _compiled_modules()
    assert len(modules) >= 8
    for name in modules:
        origin = importlib.import_module(name).__file__ or ""
        assert origin.endswith(".so"), f"{name} was imported from {origin}, not compiled"
