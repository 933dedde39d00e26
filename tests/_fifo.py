"""A FIFO that a thread fills: input with no size to check first (as /dev/zero is)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def fed_fifo(path: Path, data: bytes) -> Iterator[Path]:
    """A FIFO at `path` into which a thread writes `data` while the block runs; a reader
    that stops early (at its size limit) ends the writer with a broken pipe, not a hang."""
    os.mkfifo(path)

    def feed() -> None:
        try:
            with open(path, "wb") as writer:
                writer.write(data)
        except BrokenPipeError:
            pass  # the reader stopped at the limit

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        yield path
    finally:
        feeder.join(timeout=30)
