"""Hashing a docker archive's layers from the first moments of the process.

`skanse sbom` and `skanse vuln` of a docker archive are bound by the SHA-256 of its layers
(one digest cannot be split across cores), which `Image.read_ahead` can start only once the
command's modules are loaded and the archive's manifest and config are read: about 40 ms
into a 170 ms run. So the command line calls `start(path)` before anything else, and a
thread of this module (which needs only the standard library and `_regions`) lists the
archive's members and hashes each large regular one, a layer in practice, in archive order.

`claim(fd, regions)` then hands the reader the digests of the regions it asks for: only when
the reader's descriptor is the same file (device, inode, size and modification time as this
module's own descriptor had) and a region is one this module hashes, with that algorithm.
Any other region the reader hashes itself, as it always did;
so a wrong guess (another target, a compressed layer, a sha512 diff_id) costs only the other
core's time, and nothing is ever trusted that was not read from the reader's own file.
"""

from __future__ import annotations

import os
import stat
import tarfile
import threading
from collections.abc import Iterable

from skanse.oci._regions import FileRegion, RegionHashes, sniff_compression

__all__ = ["claim", "start"]

_ALGORITHM = "sha256"  # what diff_ids are in every archive seen; others are not guessed
_MIN_SIZE = 1024 * 1024  # smaller members are hashed by the reader as before
_MAX_MEMBERS = 1_000  # listing stops here: the reader's own index enforces the real cap

_lock = threading.Lock()
_started: _Prefetch | None = None


class _Prefetch:
    def __init__(self, path: str) -> None:
        self.path = path
        self.identity: tuple[int, int, int, int] | None = None
        self.jobs: dict[tuple[int, int], RegionHashes] = {}  # (offset, size) -> digests
        self.listed = threading.Event()

    def run(self) -> None:
        try:
            self._list()
        except (OSError, tarfile.TarError, ValueError, EOFError):
            self.jobs.clear()
        finally:
            self.listed.set()
        for job in self.jobs.values():  # in archive order
            job.run()

    def _list(self) -> None:
        # O_NONBLOCK: a FIFO must not hold this thread (and `claim`) at the open
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        fd = os.open(self.path, flags)  # kept open until the process ends
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError("not a regular file")
            self.jobs = self._layers(fd)
            self.identity = _identity(info)
        except BaseException:
            self.jobs = {}
            os.close(fd)
            raise

    @staticmethod
    def _layers(fd: int) -> dict[tuple[int, int], RegionHashes]:
        jobs: dict[tuple[int, int], RegionHashes] = {}
        # "r:": a plain tar only; a compressed archive is read through a copy, not this file
        with os.fdopen(os.dup(fd), "rb") as handle:
            archive = tarfile.open(fileobj=handle, mode="r:")
            for count, member in enumerate(archive, 1):
                if count > _MAX_MEMBERS:
                    break
                if not member.isreg() or member.size < _MIN_SIZE or member.sparse is not None:
                    continue
                region = FileRegion(fd, member.offset_data, member.size)
                if sniff_compression(region.read_bytes(4, 0)):
                    continue  # hashed as it is decompressed, when it is read
                jobs[(member.offset_data, member.size)] = RegionHashes(region, {_ALGORITHM})
        return jobs


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def start(path: str) -> None:
    """Begin hashing the layers of the docker archive at `path`, in a daemon thread (once a
    process: later calls do nothing)."""
    global _started
    with _lock:
        if _started is not None:
            return
        _started = _Prefetch(path)
    threading.Thread(target=_started.run, name="layer-digests-prefetch", daemon=True).start()


def claim(fd: int, regions: Iterable[tuple[int, int, str]]) -> dict[tuple[int, int], RegionHashes]:
    """The digests being computed of each region (offset, size, algorithm) of the file open
    at `fd` that `start` was given too: by (offset, size), for the regions it hashes with
    that algorithm. The regions it hashes that are not asked for are given up, so that the
    layers of another image in the same archive do not delay these."""
    prefetch = _started
    if prefetch is None:
        return {}
    prefetch.listed.wait()
    try:
        if prefetch.identity != _identity(os.fstat(fd)):
            return {}
    except OSError:
        return {}
    wanted = {(offset, size) for offset, size, algorithm in regions if algorithm == _ALGORITHM}
    claimed = {key: job for key, job in prefetch.jobs.items() if key in wanted}
    for key, job in prefetch.jobs.items():
        if key not in wanted:
            job.stop()
    return claimed
