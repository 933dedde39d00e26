"""Regions of an open file (a layer inside a docker archive) and their digests.

Kept apart from `layers` so that `prefetch` can start hashing an archive's layers before
the modules that read layers are loaded: this module needs only the standard library.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterable, Sequence

__all__ = ["CHUNK", "FileRegion", "RegionHashes", "hash_ahead", "sniff_compression"]

CHUNK = 1024 * 1024
# an uncompressed layer in a file is hashed in pieces of this many bytes, each read with one
# GIL-free preadv into a buffer kept for the region and hashed with one GIL-free hashlib call.
# Read, not mapped: a file another process truncates while a mapped piece is hashed ends the
# process with SIGBUS (no result, no message; reproduced with `skanse sbom` of a docker archive
# truncated mid-read), where a read just comes back short and the layer is refused as
# truncated. Between pieces the hashing thread takes the GIL back from the thread cataloguing
# the layer, which holds it through each C call (a decode, a regular expression over a whole
# file), so pieces are large; 16 MiB rather than the 64 MiB maps had: a copy that large leaves
# the CPU caches before it is hashed (SHA-256 of a 214 MB file, this 2-core VM: 64 MiB maps
# 0.128-0.137 s, reads of 64 MiB 0.151-0.168 s, 16 MiB 0.123-0.127 s, 4 MiB 0.119-0.121 s;
# with a thread running regular expressions beside it 0.134-0.136, 0.155-0.157, 0.134-0.135
# and 0.143-0.154 s).
_READ_PIECE = 16 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff_compression(head: bytes) -> str:
    """ "gzip", "zstd" or "" (plain tar), from the first bytes of a blob."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return ""


class FileRegion(io.RawIOBase):
    """`size` bytes of an open file from `offset` (a layer inside a docker archive), read with
    `os.preadv`: seekable, and a second reader (the digest thread) can read the same bytes at
    the same time without moving this reader's position. The file descriptor is not owned."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._offset = offset
        self.size = size
        self._position = 0
        self.ahead: RegionHashes | None = None  # its digests, when already being computed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def read_at(self, target: bytearray | memoryview, at: int) -> int:
        """Fill `target` from position `at` (no further than the region's end); bytes read."""
        want = min(len(target), self.size - at)
        if want <= 0:
            return 0
        return os.preadv(self._fd, [memoryview(target)[:want]], self._offset + at)

    def read_bytes(self, size: int, at: int) -> bytes:
        """Up to `size` bytes from position `at` (no further than the region's end)."""
        return os.pread(self._fd, max(min(size, self.size - at), 0), self._offset + at)

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.read_at(target, self._position)
        self._position += n
        return n


class RegionHashes:
    """Digests of a `FileRegion`'s bytes, computed by `run` in whichever thread calls it:
    the layer's own thread, or the one `hash_ahead` starts for a docker archive's layers
    before they are read. `wait` until it has ended; `stop` makes it end early."""

    def __init__(self, region: FileRegion, algorithms: Iterable[str]) -> None:
        self.region = region
        self.hashes = {name: hashlib.new(name) for name in sorted(set(algorithms))}
        self.short = False  # the file is shorter than the region: it shrank under us
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._claimed = False
        self._claim_lock = threading.Lock()

    def claim(self) -> bool:
        """True for the first reader of the region to ask: its digests are this one's."""
        with self._claim_lock:
            first, self._claimed = not self._claimed, True
            return first

    def run(self) -> None:
        try:
            if not self._stop.is_set():
                self._run()
        except EOFError:
            self.short = True
        except BaseException as exc:  # reported by the reader, in its own thread
            self.error = exc
        finally:
            self._done.set()

    def _run(self) -> None:
        # never through a map of the file: see _READ_PIECE
        size = self.region.size
        buffer = memoryview(bytearray(min(_READ_PIECE, size)))
        position = 0
        while position < size and not self._stop.is_set():
            n = self.region.read_at(buffer, position)
            if n == 0:
                raise EOFError  # the file ends inside the region: it shrank under us
            piece = buffer[:n]
            for digest in self.hashes.values():
                digest.update(piece)
            position += n

    def stop(self) -> None:
        self._stop.set()

    def wait(self) -> None:
        self._done.wait()


def hash_ahead(jobs: Sequence[RegionHashes]) -> threading.Thread:
    """One thread that runs `jobs` in order (a docker archive's layers, in the order they
    will be read): hashing starts while the caller still prepares, one layer mapped at a
    time."""

    def run_all() -> None:
        for job in jobs:
            job.run()

    thread = threading.Thread(target=run_all, name="layer-digests-ahead", daemon=True)
    thread.start()
    return thread
