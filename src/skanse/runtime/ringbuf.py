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
"""

from __future__ import annotations

import mmap
import platform
import struct
import time

from skanse.errors import SensorError, SensorUnavailableError

__all__ = ["RingBuffer"]

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


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

    def pending(self) -> int:
        """Bytes written by the kernel and not yet consumed."""
        return int(_U64.unpack_from(self._producer, 0)[0] - _U64.unpack_from(self._consumer, 0)[0])

    def wait(self, timeout: float) -> bool:
        """True when records are pending; otherwise sleep `timeout` and look again.

        The kernel program writes without waking the reader (see sensor.bpf.c: a wakeup
        costs a self-IPI per record), so the reader polls; `timeout` is the added latency.
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
        consumer = _U64.unpack_from(self._consumer, 0)[0]
        producer = _U64.unpack_from(self._producer, 0)[0]
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
        _U64.pack_into(self._consumer, 0, position)
        return chunk, spans

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()
