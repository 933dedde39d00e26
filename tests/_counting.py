"""Counting the work a cost test measures: reads of a slotted dataclass field, and the peak of
the memory a call allocates."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

_T = TypeVar("_T")


class Reads:
    """How many times the field was read since `count_reads` patched it, and the sum of
    `weigh` over the values read (0 without one)."""

    def __init__(self) -> None:
        self.count = 0
        self.weight = 0


def count_reads(
    monkeypatch: pytest.MonkeyPatch,
    cls: type,
    name: str,
    *,
    weigh: Callable[[Any], int] | None = None,
) -> Reads:
    """Count every read of `cls.name` (a slot of a slotted dataclass) until the test ends: a
    cost-curve test asserts on this count, never on a time. `weigh` (`len`: the characters
    of a text read back, each time it is copied) adds up what each read returned."""
    slot = cls.__dict__[name]
    reads = Reads()

    def get(obj: Any) -> Any:
        reads.count += 1
        value = slot.__get__(obj, cls)
        if weigh is not None:
            reads.weight += weigh(value)
        return value

    monkeypatch.setattr(cls, name, property(get, slot.__set__))
    return reads


def peak_allocation(call: Callable[[], _T]) -> tuple[_T, int]:
    """`call()` and the peak in bytes of the memory Python allocated while it ran
    (tracemalloc): what a memory-bound test asserts on. An exception from `call` passes."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak
