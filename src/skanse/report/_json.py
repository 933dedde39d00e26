"""JSON documents as the reports write them: two-space indentation, UTF-8 as it is, a final
newline; encoded by orjson's C encoder (the standard library's indenting encoder is pure
Python and was most of a large scan's time)."""

from __future__ import annotations

from typing import Any

import orjson

from skanse.printable import json_escaped

__all__ = ["dumps"]


def dumps(document: Any) -> str:
    """`json.dumps(document, indent=2, ensure_ascii=False) + "\\n"`, byte for byte, for the
    documents skanse writes (string keys; str, int, float, bool, None, lists and dicts),
    except that what a terminal would obey is escaped (`printable.json_escaped`): a file name
    or a manifest's text is the attacker's, and `-f json` is read on terminals."""
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    return json_escaped(text.decode())
