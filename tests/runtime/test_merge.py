"""Per-CPU rings merged into one stream: timestamp order, the hold-back, the backlog bound."""

from __future__ import annotations

from typing import Any, cast

from skanse.runtime.records import HEADER, Kind
from skanse.runtime.ringbuf import MergedRings, RingBuffer


class FakeRing:
    """Records the way RingBuffer.read returns them: one chunk, (offset, length) spans."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def push(self, *timestamps: int) -> None:
        chunk = b""
        for ts in timestamps:
            chunk += b"\0" * 8 + HEADER.pack(Kind.EXIT, 0, HEADER.size, ts, ts, ts, 0)
        self.chunks.append(chunk)

    def read(self, max_bytes: int = 0) -> tuple[bytes, list[tuple[int, int]]]:
        if not self.chunks:
            return b"", []
        chunk = self.chunks.pop(0)
        step = 8 + HEADER.size
        return chunk, [(offset + 8, HEADER.size) for offset in range(0, len(chunk), step)]

    def pending(self) -> int:
        return sum(len(c) for c in self.chunks)

    def close(self) -> None:
        self.chunks.clear()


def _timestamps(items: Any) -> list[int]:
    return [HEADER.unpack_from(chunk, offset)[3] for chunk, offset, _ in items]


def _merged(*rings: FakeRing, now: int, **kwargs: Any) -> MergedRings:
    return MergedRings(cast(list[RingBuffer], list(rings)), clock=lambda: now, **kwargs)


def test_records_of_all_cpus_come_out_in_timestamp_order() -> None:
    cpu0, cpu1 = FakeRing(), FakeRing()
    cpu0.push(10, 40, 50)
    cpu1.push(20, 30, 60)  # the child's exec on CPU 1 after its fork (20) on CPU 0... or not
    merged = _merged(cpu0, cpu1, now=1_000_000_000, hold_ns=0)
    assert _timestamps(merged.take(100)) == [10, 20, 30, 40, 50, 60]


def test_young_records_wait_for_the_next_round_unless_draining() -> None:
    cpu0, cpu1 = FakeRing(), FakeRing()
    cpu0.push(100, 9_000_000)
    cpu1.push(200)
    merged = _merged(cpu0, cpu1, now=10_000_000, hold_ns=5_000_000)
    assert _timestamps(merged.take(100)) == [100, 200]  # 9 ms is within the 5 ms hold
    cpu1.push(8_000_000)  # a slower CPU's older record arrives in the meantime
    assert _timestamps(merged.take(100, drain=True)) == [8_000_000, 9_000_000]


def test_take_stops_at_the_limit_and_resumes_in_order() -> None:
    cpu0, cpu1 = FakeRing(), FakeRing()
    cpu0.push(*range(0, 100, 2))
    cpu1.push(*range(1, 100, 2))
    merged = _merged(cpu0, cpu1, now=10**12, hold_ns=0)
    first = _timestamps(merged.take(30))
    rest = _timestamps(merged.take(1000))
    assert first + rest == list(range(100))


def test_the_backlog_bound_leaves_records_in_the_kernel() -> None:
    cpu0 = FakeRing()
    cpu0.push(1, 2)
    cpu0.push(3, 4)
    merged = _merged(cpu0, now=10**12, hold_ns=0, max_backlog=1)
    merged.fill()
    merged.fill()  # over the bound: the second chunk stays in the ring
    assert cpu0.pending() > 0
