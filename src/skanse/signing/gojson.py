"""JSON bytes exactly as Go's `encoding/json.Marshal` writes them.

A Cosign signature covers the payload's bytes, and Cosign builds those bytes with Go's
encoder, so a payload that is to be byte-identical to Cosign's must be written the same way:
no whitespace; map keys sorted by their UTF-8 bytes; `<`, `>`, `&`, U+2028 and U+2029 escaped
as `\\u003c` ...; other non-ASCII written raw; control characters as `\\n`, `\\r`, `\\t`,
`\\b`, `\\f` (Go >= 1.22) or `\\u00XX`; floats in the shortest form that reads back, with an
exponent only below 1e-6 or from 1e21 on (`1e-07`, `1e+21`), and integral floats without
`.0`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["marshal"]

_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif char in _HTML:
            out.append(_HTML[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            out.append("\ufffd")  # Go writes invalid UTF-8 (a lone surrogate here) as U+FFFD
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"JSON has no representation for {value}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = repr(value).partition("e")
        if not exponent:  # repr chose positional notation; force Go's exponent form
            mantissa, _, exponent = f"{value:e}".partition("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
        sign = "-" if exponent.startswith("-") else "+"
        digits = exponent.lstrip("+-").lstrip("0") or "0"
        return f"{mantissa.removesuffix('.0')}e{sign}{digits.zfill(2)}"
    if value == int(value) and magnitude < 1e21:
        return ("-" if math.copysign(1.0, value) < 0 and value == 0 else "") + str(int(value))
    text = repr(value)
    if "e" in text:  # repr uses an exponent from 1e16 on; Go does not below 1e21
        return format(value, "f").rstrip("0").rstrip(".")
    return text


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, Mapping):
        out.append("{")
        keys = sorted(value, key=lambda k: str(k).encode("utf-8", "surrogatepass"))
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(_string(str(key)))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def marshal(value: Any) -> bytes:
    """`value` as Go's json.Marshal writes it, every mapping's keys sorted (Go maps, and
    structs whose fields are declared in alphabetical order, like the simple-signing ones)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("utf-8")
