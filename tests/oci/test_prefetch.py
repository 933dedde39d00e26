"""Hashing a docker archive's layers from the start of the process (`skanse.oci.prefetch`):
the reader takes those digests only for its own file and regions, and still refuses a layer
that does not match its diff_id."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from skanse.oci import archives, layers, prefetch
from skanse.oci._regions import FileRegion, RegionHashes
from skanse.oci.archives import open_docker_archive
from skanse.oci.image import read_view
from skanse.oci.writer import LayerBuilder, build_image, write_docker_archive

BIG = 2 * 1024 * 1024  # over prefetch's smallest member


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(prefetch, "_started", None)  # once a process: each test its own
    yield


def _archive(path: Path, filler: bytes) -> tuple[Path, str]:
    """A docker archive of one uncompressed layer holding `filler`; (path, its diff_id)."""
    layer = LayerBuilder().add_file("/etc/os-release", b"ID=debian\n").add_file("/f", filler)
    image = build_image([layer.build()])
    write_docker_archive(image, path, repo_tag="demo:1")
    return path, image.layers[0].diff_id


def _layer_region(path: Path) -> tuple[int, int]:
    import tarfile

    with tarfile.open(path, "r:") as tar:
        member = next(m for m in tar if m.name.endswith("layer.tar"))
    return member.offset_data, member.size


def _claim(path: Path, regions: list[tuple[int, int, str]]) -> dict[tuple[int, int], RegionHashes]:
    """`prefetch.claim` for `regions` of `path` as a reader opens it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return prefetch.claim(fd, regions)
    finally:
        os.close(fd)


def test_the_reader_takes_the_digests_of_its_own_file_and_regions(tmp_path: Path) -> None:
    path, diff_id = _archive(tmp_path / "a.tar", os.urandom(BIG))
    offset, size = _layer_region(path)
    prefetch.start(str(path))
    claimed = _claim(path, [(offset, size, "sha256"), (0, 512, "sha256")])
    assert list(claimed) == [(offset, size)]  # the header region is not one it hashes
    job = claimed[(offset, size)]
    job.wait()
    assert job.error is None and not job.short
    assert "sha256:" + job.hashes["sha256"].hexdigest() == diff_id
    # another algorithm than it guessed: the reader hashes that itself
    assert _claim(path, [(offset, size, "sha512")]) == {}


def test_another_file_or_a_changed_one_gets_nothing(tmp_path: Path) -> None:
    """Digests are handed over only for the file `start` opened (device, inode, size and
    modification time), never for a copy, a file put in its place or one written since."""
    path, _diff_id = _archive(tmp_path / "a.tar", os.urandom(BIG))
    region = [(*_layer_region(path), "sha256")]
    prefetch.start(str(path))
    copy = tmp_path / "b.tar"
    shutil.copyfile(path, copy)
    assert _claim(copy, region) == {}
    os.utime(path, ns=(0, 10**18))  # written since the prefetch opened it
    assert _claim(path, region) == {}


def test_regions_not_asked_for_are_given_up(tmp_path: Path) -> None:
    """An archive of two images: the layers of the one not read must not delay the other's."""
    path, _diff_id = _archive(tmp_path / "a.tar", os.urandom(BIG))
    offset, size = _layer_region(path)
    prefetch.start(str(path))
    assert _claim(path, []) == {}
    started = prefetch._started
    assert started is not None
    job = started.jobs[(offset, size)]
    job.wait()
    assert job._stop.is_set()


@pytest.mark.parametrize("kind", ["fifo", "missing", "not a tar", "directory"])
def test_a_target_that_is_not_an_archive_costs_nothing_and_never_blocks(
    tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)  # opening it for reading would wait for a writer
    elif kind == "not a tar":
        target.write_bytes(b"x" * 5000)
    elif kind == "directory":
        target.mkdir()
    prefetch.start(str(target))
    other, _diff_id = _archive(tmp_path / "a.tar", os.urandom(BIG))
    fd = os.open(other, os.O_RDONLY)
    answer: list[object] = []
    try:
        asking = threading.Thread(
            target=lambda: answer.append(prefetch.claim(fd, [(0, 1, "sha256")]))
        )
        asking.start()
        asking.join(timeout=20)
        assert answer == [{}]
    finally:
        os.close(fd)


def test_a_layer_altered_after_its_diff_id_is_refused_by_the_command(tmp_path: Path) -> None:
    """`skanse sbom docker-archive:FILE` as its own process (where the command line starts
    the prefetch): a layer whose bytes no longer match the config's diff_id is refused, and
    an intact one is read with the prefetched digest."""
    filler = os.urandom(BIG)
    path, _diff_id = _archive(tmp_path / "a.tar", filler)
    command = [sys.executable, "-m", "skanse", "sbom", f"docker-archive:{path}", "-o", "json"]
    intact = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert intact.returncode == 0, intact.stderr.decode()
    data = bytearray(path.read_bytes())
    at = data.index(filler[:64]) + BIG // 2
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    altered = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert altered.returncode == 2
    assert b"expected diff_id" in altered.stderr and b"layer refused" in altered.stderr


def test_the_reader_uses_the_prefetched_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: with `start` called, the archive's reader hashes no layer itself."""
    path, diff_id = _archive(tmp_path / "a.tar", os.urandom(BIG))
    prefetch.start(str(path))
    started = prefetch._started
    assert started is not None
    started.listed.wait()
    made: list[object] = []

    class Counting(RegionHashes):
        def __init__(self, region: FileRegion, algorithms: Iterable[str]) -> None:
            made.append(region)
            super().__init__(region, algorithms)

    monkeypatch.setattr(archives, "RegionHashes", Counting)
    monkeypatch.setattr(layers, "RegionHashes", Counting)
    opened = open_docker_archive(path)
    try:
        opened.read_ahead()
        view = read_view(opened, lambda info: lambda data: data)
    finally:
        opened.close()
    assert view.captured["/etc/os-release"].value == b"ID=debian\n"
    assert view.layers[0].diff_id == diff_id
    assert made == []
