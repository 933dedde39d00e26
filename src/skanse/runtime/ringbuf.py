"""A BPF ring buffer read from Python through its memory mapping, in batches.

The kernel maps a BPF_MAP_TYPE_RINGBUF as: one consumer page (read-write; the consumer
position), one producer page (read-only; the producer position), then the data pages twice
in a row, so a record that wraps around the end is still contiguous. Each record has an
8-byte header (`u32 len` with a BUSY and a DISCARD bit, `u32 page offset`) and is padded to
8 bytes. This is the protocol of libbpf's ringbuf.c, implemented here so that one call
copies every committed record at once: a per-record callback through ctypes would cost
more than decoding the record.

Ordering: the kernel clears BUSY with a store-release after writing the record; the header
is read first, one load per record, and the data is copied after it, so on x86-64 (loads
are not reordered with other loads) a record seen committed is read complete. Other
architectures need acquire loads that Python cannot express; `RingBuffer` refuses them.
The space is handed back to the kernel (consumer position advanced) as soon as the
records are copied, before they are decoded.

The two positions are read and written as single 8-byte accesses (items of a native
"Q" memoryview), never with `struct`: `Struct.pack_into` zeroes its destination before it
writes the value, and a producer that read the consumer position in between saw 0, took
a ring that had wrapped for a full one and dropped the record (that was the cause of the
rare "ring buffer full" and "room left" failures seen at 50,000 records/s); a
little-endian `Struct` also reads byte by byte, which a moving producer position can tear.
"""

from __future__ import annotations

import collections
import heapq
import mmap
import platform
import struct
import time
from collections.abc import Callable, Iterator

from skanse.errors import SensorError, SensorUnavailableError

__all__ = ["MergedRings", "RingBuffer"]

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8
_U32 = struct.Struct("<I")


class RingBuffer:
    """The consumer side of one BPF ring buffer map (fd) of `size` bytes."""

    def __init__(self, map_fd: int, size: int) -> None:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise SensorUnavailableError(
                f"the ring buffer reader supports x86-64 only, not {platform.machine()}",
                requirement="an x86-64 machine",
            )
        if size <= 0 or size & (size - 1):
            raise SensorError(f"ring buffer size {size} is not a power of two")
        page = mmap.PAGESIZE
        self.size = size
        self._mask = size - 1
        try:
            self._consumer = mmap.mmap(
                map_fd, page, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
            self._producer = mmap.mmap(
                map_fd, page + 2 * size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=page
            )
        except OSError as exc:
            raise SensorError(f"cannot map the ring buffer: {exc.strerror or exc}") from None
        self._page = page
        self._consumer_pos = memoryview(self._consumer).cast("Q")
        self._producer_pos = memoryview(self._producer)[:8].cast("Q")

    def pending(self) -> int:
        """Bytes written by the kernel and not yet consumed."""
        return int(self._producer_pos[0] - self._consumer_pos[0])

    def wait(self, timeout: float) -> bool:
        """True when records are pending; otherwise sleep `timeout` and look again.

        The kernel program wakes a reader sleeping on the map's fd only now and then (see
        sensor.bpf.c emit: a wakeup costs a self-IPI); this plain poll needs no fd.
        """
        if self.pending():
            return True
        time.sleep(timeout)
        return self.pending() > 0

    def read(self, max_bytes: int = 16 * 1024 * 1024) -> tuple[bytes, list[tuple[int, int]]]:
        """Copy the committed records (at most about `max_bytes`) and release their space.

        Returns the copied bytes and the (offset, length) of each record in them (discarded
        records are skipped).
        """
        consumer = self._consumer_pos[0]
        producer = self._producer_pos[0]
        if producer == consumer:
            return b"", []
        data_base = self._page
        mask = self._mask
        unpack = _U32.unpack_from
        data = self._producer
        spans: list[tuple[int, int]] = []
        position = consumer
        limit = min(producer, consumer + max_bytes)
        while position < limit:
            header = unpack(data, data_base + (position & mask))[0]
            if header & _BUSY:
                break  # reserved, not yet committed: stop here, read it next time
            length = header & ~(_BUSY | _DISCARD)
            total = (length + _HDR + 7) & ~7
            if not header & _DISCARD:
                spans.append((position - consumer + _HDR, length))
            position += total
        if position == consumer:
            return b"", []
        start = data_base + (consumer & mask)
        chunk = data[start : start + (position - consumer)]  # contiguous: data is mapped twice
        self._consumer_pos[0] = position  # one 8-byte store: never a torn or zeroed value
        return chunk, spans

    def close(self) -> None:
        self._consumer_pos.release()  # a mapping cannot close while a view exports it
        self._producer_pos.release()
        self._consumer.close()
        self._producer.close()


_TS = struct.Struct("<Q")  # a record's timestamp, 8 bytes into its header (records.HEADER)
_TS_OFFSET = 8


class MergedRings:
    """Per-CPU ring buffers read as one stream, in timestamp order.

    `fill()` copies whatever every ring holds into per-ring queues (handing the space back
    to the kernel at once); `take()` yields records oldest first across rings. A record
    younger than `hold_ns` is held back until the next round: a CPU may still be writing
    an older one, and a fork must be seen before its child's exec. The queues hold at
    most `max_backlog` bytes; beyond that, rings are not read and the kernel counts what
    it cannot store as dropped.
    """

    def __init__(
        self,
        rings: list[RingBuffer],
        *,
        hold_ns: int = 5_000_000,
        max_backlog: int = 256 * 1024 * 1024,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.rings = rings
        self.hold_ns = hold_ns
        self.max_backlog = max_backlog
        self.backlog = 0
        self.max_seen_backlog = 0
        self._queues: list[collections.deque[tuple[int, bytes, int, int]]] = [
            collections.deque() for _ in rings
        ]
        self._clock = clock or (lambda: time.clock_gettime_ns(time.CLOCK_BOOTTIME))

    def fill(self) -> int:
        """Copy every ring's committed records into the queues; returns how many."""
        count = 0
        unpack = _TS.unpack_from
        for ring, queue in zip(self.rings, self._queues, strict=True):
            if self.backlog >= self.max_backlog:
                break
            chunk, spans = ring.read(min(16 * 1024 * 1024, self.max_backlog - self.backlog))
            if not spans:
                continue
            append = queue.append
            for offset, length in spans:
                ts = unpack(chunk, offset + _TS_OFFSET)[0] if length >= 16 else 0
                append((ts, chunk, offset, length))
            count += len(spans)
            self.backlog += len(chunk)
        if self.backlog > self.max_seen_backlog:
            self.max_seen_backlog = self.backlog
        return count

    def pending(self) -> int:
        """Bytes waiting: in the kernel rings plus in the queues."""
        return sum(ring.pending() for ring in self.rings) + self.backlog

    def ready(self) -> bool:
        """Is there a record old enough to take, or one in a kernel ring?"""
        if any(ring.pending() for ring in self.rings):
            return True
        horizon = self._clock() - self.hold_ns
        return any(queue and queue[0][0] <= horizon for queue in self._queues)

    def holding(self) -> bool:
        """Are records held back in the queues (too young to be taken yet)?"""
        return any(self._queues)

    def take(self, max_records: int, *, drain: bool = False) -> Iterator[tuple[bytes, int, int]]:
        """Up to `max_records` records, oldest first; refills the queues as it goes."""
        self.fill()
        horizon = (1 << 64) if drain else self._clock() - self.hold_ns
        queues = self._queues
        heap = [(queue[0][0], index) for index, queue in enumerate(queues) if queue]
        heapq.heapify(heap)
        taken = 0
        while heap and taken < max_records:
            ts, index = heap[0]
            if ts > horizon:
                break
            queue = queues[index]
            _, chunk, offset, length = queue.popleft()
            self.backlog -= length + 8
            if queue:
                heapq.heapreplace(heap, (queue[0][0], index))
            else:
                heapq.heappop(heap)
            taken += 1
            yield chunk, offset, length
            if taken % 4096 == 0:  # keep the kernel rings empty while a backlog is worked off
                if self.fill():
                    heap = [(q[0][0], i) for i, q in enumerate(queues) if q]
                    heapq.heapify(heap)
        if not any(queues):
            self.backlog = 0  # chunk padding and headers are not counted record by record

    def close(self) -> None:
        for ring in self.rings:
            ring.close()
        for queue in self._queues:
            queue.clear()
        self.backlog = 0
