"""Run an iterator of byte chunks in a thread of its own, a bounded number ahead of the reader.

Reading a layer is a pipeline: a download hands over the blob's bytes, a decompressor turns
them into tar bytes, the tar parser reads those. The first two spend their time in C code
that releases the interpreter lock (sockets, zlib, hashing), so each runs in a thread while
the next stage works. `ChunkPump` is that thread and the bounded queue behind it: the reader
calls `next_chunk()`; an error the iterator raises is raised to the reader, at that call and
every later one (never a clean end after an error); `stop()` makes the thread abandon the
iterator, closing it, at the next chunk it yields (an empty chunk hands nothing over and is
such a point: a download yields one before each new request).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

__all__ = ["ChunkPump"]


class ChunkPump:
    def __init__(self, chunks: Iterator[bytes], *, ahead: int, name: str) -> None:
        self._chunks = chunks
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._name = name
        self._thread: threading.Thread | None = None  # started by the first next_chunk
        self._failure: BaseException | None = None
        self._done = False

    def _run(self) -> None:
        try:
            for chunk in self._chunks:
                # an empty chunk hands nothing over: the iterator offers a point to stop at
                if self._stop.is_set() or (chunk and not self._put(chunk)):
                    self._close_source()  # the reader stopped: abandon the iterator
                    return
            self._put(b"")
        except BaseException as exc:  # handed to the reader, raised by next_chunk
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> bool:
        """Queue one item; False once the reader stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _close_source(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    @property
    def finished(self) -> bool:
        """Whether the reader was handed the end: the iterator ran to its end and raised
        nothing (a stopped or failed pump never finishes)."""
        return self._done

    def next_chunk(self) -> bytes:
        """The next chunk, b"" at the end; raises what the iterator raised."""
        if self._failure is not None:
            raise self._failure
        if self._done:
            return b""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                # once stopped the thread hands nothing more over: waiting would be forever
                if self._stop.is_set() and self._queue.empty():
                    raise ValueError(f"{self._name}: read after stop") from None
        if isinstance(item, BaseException):
            self._failure = item
            raise item
        self._done = not item
        return item

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread; with `wait`, until it has (it may be blocked in the iterator,
        on a stalled server for one: then do not wait)."""
        self._stop.set()
        if self._thread is None:
            self._close_source()
        elif wait:
            self._thread.join()
