"""write_atomic: readers see the old file or the new one, and `exclusive` never replaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skanse.files import write_atomic


def test_a_replaced_file_keeps_its_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    os.chmod(target, 0o600)
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o7777 == 0o600
    assert os.listdir(tmp_path) == ["report.json"]


def test_exclusive_creates_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "policy.yaml"
    write_atomic(target, b"kind: NetworkPolicy\n", exclusive=True)
    assert target.read_bytes() == b"kind: NetworkPolicy\n"
    assert target.stat().st_mode & 0o7777 == 0o644
    assert os.listdir(tmp_path) == ["policy.yaml"]


def test_exclusive_never_replaces_a_file_that_exists(tmp_path: Path) -> None:
    target = tmp_path / "policy.yaml"
    target.write_text("someone else's")
    with pytest.raises(FileExistsError):
        write_atomic(target, "ours", exclusive=True)
    assert target.read_text() == "someone else's"
    assert os.listdir(tmp_path) == ["policy.yaml"]
