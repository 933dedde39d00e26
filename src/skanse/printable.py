"""Text from inputs made safe to show: control characters become visible escapes.

A container name, a file path or a YAML value can hold a newline, an ESC sequence or a
bidirectional override; written raw they forge log lines, repaint a terminal or break XML.
Every writer of text, XML and logs passes such values through `printable` first.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["json_escaped", "printable", "printable_json", "valid_text", "valid_texts"]

_T = TypeVar("_T")

# C0 controls, DEL, C1 controls, the bidirectional embeddings, overrides and isolates (a
# "Trojan Source" reordering), the non-characters U+FFFE/U+FFFF (XML 1.0 forbids them) and
# lone surrogates. All but the C0 controls, which JSON encoders escape themselves:
_UNPRINTABLE_PAST_C0 = "\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff\ud800-\udfff"
_UNPRINTABLE = re.compile(f"[\x00-\x1f{_UNPRINTABLE_PAST_C0}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`, `\\u202e`);
    `keep_newlines` leaves line feeds (and tabs) for multi-line messages."""
    if keep_newlines:
        return _UNPRINTABLE.sub(lambda m: m.group() if m.group() in "\n\t" else _escape(m), text)
    return _UNPRINTABLE.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


# What a JSON encoder writes raw of what `printable` escapes: outside its strings a JSON text
# is ASCII, so a match is always inside a string
_RAW_IN_JSON = re.compile(f"[{_UNPRINTABLE_PAST_C0}]")


def json_escaped(text: str) -> str:
    """A JSON text from any encoder (indented or not, `ensure_ascii=False`) with DEL, the C1
    controls, bidirectional overrides, noncharacters and lone surrogates written as `\\uXXXX`
    escapes: the same document to a reader, and nothing a terminal that shows the file
    obeys (U+009B is CSI: an escape sequence in one character). A lone surrogate (from JSON
    input) would otherwise fail to encode as UTF-8 and lose the document."""
    return text if text.isascii() else _RAW_IN_JSON.sub(_json_escape, text)


def printable_json(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """`json.dumps(value, ensure_ascii=False)` (one line, UTF-8 text as it is) through
    `json_escaped`: what a terminal tailing a JSON-lines file would obey is escaped."""
    return json_escaped(json.dumps(value, ensure_ascii=False, default=default))


def valid_text(value: str) -> str:
    """`value` as valid Unicode. A file name or content that is not UTF-8 is read with its
    stray bytes kept as lone surrogates (so that the file can still be opened), which no
    UTF-8 document can hold: in what is shown or written, each becomes U+FFFD, as Go's
    encoders write such bytes (Syft's and Trivy's documents)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        raw = value.encode("utf-8", "surrogateescape")  # the bytes that were read
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogatepass")  # a surrogate that came from elsewhere
    return raw.decode("utf-8", "replace")


def valid_texts(value: _T) -> _T:
    """`value` with `valid_text` applied to every string in it, through dataclasses, tuples,
    lists, frozensets and mappings; parts that need nothing are returned as they are."""
    return _valid(value)  # type: ignore[no-any-return]


def _valid(value: Any) -> Any:
    if isinstance(value, str):
        return value if isinstance(value, enum.Enum) else valid_text(value)
    if isinstance(value, tuple | list | frozenset):
        if all(type(v) is str and v.isascii() for v in value):
            return value  # the usual case (a package's thousands of file names), at C speed
        items = [_valid(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        make = getattr(type(value), "_make", None)  # a named tuple takes its fields so
        return make(items) if make is not None else type(value)(items)
    if isinstance(value, Mapping):
        pairs = [(_valid(k), _valid(v)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            if not field.init:
                continue
            old = getattr(value, field.name)
            new = _valid(old)
            if new is not old:
                changes[field.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value
