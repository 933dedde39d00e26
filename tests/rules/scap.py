"""Debian's sysdig (0.29.3, libsinsp of 2022) as an offline oracle for .scap captures.

`exit_events()` is the product's decoding (skanse.rules.scap): a capture as skanse events,
exit events only, each carrying its process. `matching()` asks sysdig itself which events a
condition matches, so a rule's count in skanse can be compared with libsinsp's on the same
capture.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from skanse.rules.parser import (
    BinaryCheck,
    Expr,
    FieldExpr,
    Identifier,
    ListExpr,
    LogicalExpr,
    NotExpr,
    UnaryCheck,
    ValueExpr,
)
from skanse.rules.scap import scap_events

SYSDIG = shutil.which("sysdig")

_BARE = re.compile(r"[^()\"'\s=,]+")


def _run(args: list[str]) -> str:
    assert SYSDIG is not None
    done = subprocess.run([SYSDIG, *args], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sysdig {args}: {done.stderr.strip()}")
    return done.stdout


def exit_events(capture: Path) -> list[dict[str, Any]]:
    """Exit events (skanse.rules.scap, the product's own decoding); `_ancestors` lists (pid,
    ppid, name) of up to four ancestors, which the caller records in the process table."""
    return list(scap_events(capture))


def matching(capture: Path, condition: str) -> list[int]:
    """The evt.num of every event sysdig's own filter engine matches."""
    out = _run(["-r", str(capture), "-p", "%evt.num", condition])
    return [int(line) for line in out.split()]


def _value(text: str) -> str:
    if _BARE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unparse(node: Expr) -> str:
    """A resolved condition as filter text sysdig 0.29 understands (no transformers)."""
    if isinstance(node, LogicalExpr):
        return "(" + f" {node.op} ".join(unparse(c) for c in node.children) + ")"
    if isinstance(node, NotExpr):
        return f"(not {unparse(node.child)})"
    if isinstance(node, Identifier):
        raise ValueError(f"unresolved macro {node.name}")
    assert isinstance(node.left, FieldExpr)
    left = node.left.name if node.left.arg is None else f"{node.left.name}[{node.left.arg}]"
    if isinstance(node, UnaryCheck):
        return f"{left} {node.op}"
    assert isinstance(node, BinaryCheck)
    right = node.right
    if isinstance(right, ListExpr):
        return f"{left} {node.op} (" + ", ".join(_value(v) for v in right.values) + ")"
    assert isinstance(right, ValueExpr)
    return f"{left} {node.op} {_value(right.value)}"
