"""Helpers every importer shares: typed access to untrusted JSON, and the record error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["RecordError", "as_list", "as_mapping", "as_str", "opt_str", "version_text"]


class RecordError(ValueError):
    """A record that is not in the shape its format requires; the import rejects it."""


def as_mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(f"{what} is {type(value).__name__}, expected an object")
    return value


def as_list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"{what} is {type(value).__name__}, expected a list")
    return value


def as_str(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{what} is missing or not a string")
    return value.strip()


def opt_str(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{what} is {type(value).__name__}, expected a string")
    return value


def version_text(value: object, what: str) -> str:
    """A version from JSON or YAML. YAML turns `1.10` into the float 1.1: refuse to guess."""
    if isinstance(value, bool) or value is None:
        raise RecordError(f"{what} is missing")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise RecordError(f"{what} is the YAML number {value!r}; it must be quoted")
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{what} is missing or not a string")
    if len(value) > 256:
        raise RecordError(f"{what} is longer than 256 characters")
    return value.strip()
