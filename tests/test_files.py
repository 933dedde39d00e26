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


def test_a_fifo_or_device_is_written_into_never_replaced(tmp_path: Path) -> None:
    # `skanse sbom IMAGE -o json=/dev/null` renamed a regular file over /dev/null; a FIFO
    # stands in for the device here, so that the old code cannot break the machine's one
    import stat
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomic(fifo, "document\n")
    reader.join(timeout=10)
    assert received == [b"document\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo"]
