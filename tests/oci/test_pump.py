"""`ChunkPump`: chunks made in a thread, in order, bounded, errors kept, stoppable."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from skanse.oci._pump import ChunkPump


def test_chunks_arrive_in_order_then_the_end_again_and_again() -> None:
    pump = ChunkPump(iter([b"a", b"", b"b", b"c"]), ahead=2, name="t")
    got = [pump.next_chunk() for _ in range(3)]
    assert got == [b"a", b"b", b"c"]  # an empty chunk is not mistaken for the end
    assert pump.next_chunk() == b"" and pump.next_chunk() == b""


def test_an_error_is_raised_to_the_reader_and_never_becomes_a_clean_end() -> None:
    def failing() -> Iterator[bytes]:
        yield b"first"
        raise ValueError("corrupt gzip data")

    pump = ChunkPump(failing(), ahead=2, name="t")
    assert pump.next_chunk() == b"first"
    for _ in range(2):
        with pytest.raises(ValueError, match="corrupt"):
            pump.next_chunk()


def test_the_thread_runs_at_most_ahead_chunks_before_the_reader() -> None:
    made: list[int] = []
    blocked = threading.Event()

    def counting() -> Iterator[bytes]:
        for n in range(100):
            made.append(n)
            if len(made) > 4:
                blocked.set()
            yield b"x"

    pump = ChunkPump(counting(), ahead=3, name="t")
    pump.next_chunk()
    assert blocked.wait(30)
    # one taken, three queued, one made and waiting for room
    assert len(made) == 5
    pump.stop()


def test_stop_abandons_the_source_and_runs_its_clean_up() -> None:
    cleaned = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            cleaned.set()

    pump = ChunkPump(endless(), ahead=2, name="pump-test")
    pump.next_chunk()
    pump.stop()
    assert cleaned.is_set()
    assert not [t for t in threading.enumerate() if t.name == "pump-test"]


def test_stop_before_any_read_closes_the_source() -> None:
    cleaned = threading.Event()

    def source() -> Iterator[bytes]:
        try:
            yield b"x"
        finally:
            cleaned.set()

    chunks = source()
    next(chunks)  # started, so closing it runs its finally
    pump = ChunkPump(chunks, ahead=2, name="t")
    pump.stop()
    assert cleaned.is_set()


def test_a_read_blocked_when_the_pump_stops_ends_with_an_error_not_a_hang() -> None:
    release = threading.Event()

    def stalled() -> Iterator[bytes]:
        yield b"first"
        release.wait(30)  # a stalled server: nothing more for a while
        yield b"late"

    pump = ChunkPump(stalled(), ahead=2, name="t")
    assert pump.next_chunk() == b"first"
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(pump.next_chunk())
        except ValueError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    pump.stop(wait=False)  # another thread gives up on the stream
    reader.join(30)
    release.set()
    assert not reader.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError)
    assert "read after stop" in str(outcome[0])


def test_a_stopped_pump_ends_its_source_at_the_next_empty_chunk() -> None:
    """A download between two requests yields an empty chunk: once the reader has stopped,
    the source ends there instead of going on to its next request (a reader that closed
    a stalled download left up to three more requests running, minutes each)."""
    requests: list[int] = []
    resume = threading.Event()

    def download() -> Iterator[bytes]:
        yield b"first"
        for attempt in range(3):
            resume.wait(5)
            yield b""
            requests.append(attempt)  # another request would go to the server here

    pump = ChunkPump(download(), ahead=1, name="t")
    assert pump.next_chunk() == b"first"
    pump.stop(wait=False)
    resume.set()
    pump.stop()
    assert requests == []
