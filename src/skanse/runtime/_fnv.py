"""FNV-1a, 64-bit: bbolt's meta page checksum and the kernel program's path hash."""

from __future__ import annotations

__all__ = ["FNV_OFFSET", "FNV_PRIME", "MASK64", "fnv1a64"]

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data: bytes) -> int:
    value = FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * FNV_PRIME) & MASK64
    return value
