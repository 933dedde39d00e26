"""Inline suppressions: `# skanse:ignore=<ID>[,<ID>] reason="..." [expires=YYYY-MM-DD]`."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

__all__ = ["IgnoreComment", "InlineIgnore", "parse_ignore_comment"]

_IGNORE = re.compile(r"(?:^|\s)#\s*skanse:ignore=([A-Za-z0-9_,\-]+)(.*)$")
_ATTR = re.compile(r"""(\w+)=(?:"([^"]*)"|'([^']*)'|(\S+))""")


@dataclass(frozen=True, slots=True)
class IgnoreComment:
    ids: tuple[str, ...]
    reason: str
    expires: dt.date | None
    column: int  # 1-based column of the '#'


@dataclass(frozen=True, slots=True)
class InlineIgnore:
    """A parsed ignore comment bound to the node (or instruction) it covers.

    `scope` is a JSON pointer prefix within document `document`: the finding's pointer must
    equal it or lie under it ("" covers the whole document).
    """

    ids: tuple[str, ...]
    reason: str
    expires: dt.date | None
    line: int
    document: int
    scope: str

    def covers(self, document: int, pointer: str) -> bool:
        if document != self.document:
            return False
        return not self.scope or pointer == self.scope or pointer.startswith(self.scope + "/")


def parse_ignore_comment(line: str) -> IgnoreComment | str | None:
    """The ignore comment on `line`, a warning text if it is malformed, or None if there is none."""
    if "skanse:ignore" not in line:
        return None
    match = _IGNORE.search(line)
    if match is None:
        return None
    column = match.start() + (1 if match.group(0)[0].isspace() else 0) + 1
    ids = tuple(i.strip().upper() for i in match.group(1).split(",") if i.strip())
    attrs = {
        m.group(1): next(g for g in m.groups()[1:] if g is not None)
        for m in _ATTR.finditer(match.group(2))
    }
    reason = attrs.get("reason", "").strip()
    if not reason:
        return (
            'skanse:ignore without reason="..." is not applied (every suppression needs a reason)'
        )
    expires = None
    if "expires" in attrs:
        try:
            expires = dt.date.fromisoformat(attrs["expires"])
        except ValueError:
            return (
                f"skanse:ignore has an invalid expires={attrs['expires']} (expected YYYY-MM-DD) "
                "and is not applied"
            )
    return IgnoreComment(ids, reason, expires, column)
