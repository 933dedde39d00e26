"""Text from inputs made safe to show: control characters become visible escapes.

A container name, a file path or a YAML value can hold a newline, an ESC sequence or a
bidirectional override; written raw they forge log lines, repaint a terminal or break XML.
Every writer of text, XML and logs passes such values through `printable` first.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls, DEL, C1 controls, and the bidirectional embeddings, overrides and isolates
# (a "Trojan Source" reordering); XML 1.0 also forbids the non-characters U+FFFE/U+FFFF.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff\ud800-\udfff]")
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
