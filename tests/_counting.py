"""Counting the work a cost test measures: reads of a slotted dataclass field."""

from __future__ import annotations

from typing import Any

import pytest


class Reads:
    """How many times the field was read since `count_reads` patched it."""

    def __init__(self) -> None:
        self.count = 0


def count_reads(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> Reads:
    """Count every read of `cls.name` (a slot of a frozen slotted dataclass) until the test
    ends: a cost-curve test asserts on this count, never on a time."""
    slot = cls.__dict__[name]
    reads = Reads()

    def get(obj: Any) -> Any:
        reads.count += 1
        return slot.__get__(obj, cls)

    monkeypatch.setattr(cls, name, property(get, slot.__set__))
    return reads
