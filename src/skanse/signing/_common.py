"""What the signing modules share: strict JSON reading, base64, and the rejection signal."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["OtherPredicate", "Rejected", "b64decode", "strict_json"]


class Rejected(ValueError):
    """A signature, payload, bundle or attachment that cannot be accepted, with the reason.

    Raised and caught inside skanse.signing only: verification turns it into a "not
    verified" result, so no failure path can end in a pass.
    """


class OtherPredicate(Rejected):
    """A valid statement about the image, but of another predicate type than asked for."""

    def __init__(self, message: str, predicate_type: str) -> None:
        super().__init__(message)
        self.predicate_type = predicate_type


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # two readers could take different values (first vs last wins): refuse both
            raise Rejected(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise Rejected(f"{name} is not JSON")


def strict_json(data: bytes, what: str, *, cap: int) -> dict[str, Any]:
    """A JSON object from `data`: UTF-8, at most `cap` bytes, no duplicate keys, no NaN."""
    if len(data) > cap:
        raise Rejected(f"{what} is {len(data)} bytes, over the {cap}-byte cap")
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except Rejected as exc:
        raise Rejected(f"{what}: {exc}") from None
    except UnicodeDecodeError:
        raise Rejected(f"{what} is not UTF-8") from None
    except RecursionError:
        raise Rejected(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise Rejected(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise Rejected(f"{what} is not a JSON object")
    return value


def b64decode(value: object, what: str, *, cap: int = 1 << 26) -> bytes:
    """Standard base64 with padding, strictly (no stray characters)."""
    if not isinstance(value, str):
        raise Rejected(f"{what} is not a base64 string")
    if len(value) > cap:
        raise Rejected(f"{what} is over the {cap}-character cap")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(f"{what} is not valid base64") from None
