"""A file object over a stream of chunks that tarfile can read in its seekable mode.

tarfile reads a non-seekable stream (`mode="r|"`) through its own 10 KB buffer: skipping a
member's content copies it through Python ten kilobytes at a time, which on a 200 MB layer is
20,000 reads and most of what the parser costs. Its seekable mode (`mode="r:"`) only seeks,
and reading a layer it seeks forward but for one step: before each header it checks that
the byte before it exists (`seek(offset - 1); read(1)`). `ForwardReader` serves that from
the chunks a decompressing thread hands over: a forward seek moves a position, the chunks
it passes are dropped unread, and the last `_KEEP` bytes of the previous chunk stay readable.
A seek further back is a bug in the caller, refused with `io.UnsupportedOperation`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

__all__ = ["ForwardReader"]

_KEEP = 512  # one tar block: what tarfile may step back to


class ForwardReader(io.RawIOBase):
    """`next_chunk()` returns the next bytes of the stream, b"" at its end (and then again)."""

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        super().__init__()
        self._next_chunk = next_chunk
        self._chunk = b""
        self._start = 0  # stream position of self._chunk[0]
        self._kept = b""  # the bytes just before self._start
        self._position = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._position
        elif whence != os.SEEK_SET:
            raise io.UnsupportedOperation("a forward stream has no known end")
        if offset < self._start - len(self._kept):
            raise io.UnsupportedOperation(
                f"cannot seek back to {offset}: the stream is at {self._position}"
            )
        self._position = offset
        return offset

    def _advance(self) -> bool:
        """Move to the next chunk; False at the end of the stream."""
        if self._ended:
            return False
        chunk = self._next_chunk()
        if not chunk:
            self._ended = True
            return False
        tail = self._chunk[-_KEEP:]
        self._kept = tail if len(tail) == _KEEP else (self._kept + tail)[-_KEEP:]
        self._start += len(self._chunk)
        self._chunk = chunk
        return True

    def read(self, size: int | None = -1) -> bytes:
        parts: list[bytes] = []
        wanted = -1 if size is None or size < 0 else size
        while wanted != 0:
            relative = self._position - self._start
            if relative < 0:  # inside the kept bytes of the previous chunk
                source, at = self._kept, len(self._kept) + relative
            elif relative < len(self._chunk):
                source, at = self._chunk, relative
            elif self._advance():
                continue
            else:
                break
            # slice once, to the bytes wanted: a chunk is megabytes, a header 512 bytes
            piece = source[at:] if wanted < 0 else source[at : at + wanted]
            parts.append(piece)
            self._position += len(piece)
            if wanted > 0:
                wanted -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)
