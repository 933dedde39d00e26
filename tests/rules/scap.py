"""Debian's sysdig (0.29.3, libsinsp of 2022) as an offline oracle for .scap captures.

`exit_events()` turns a capture into skanse events (docs/runtime-events.md), exit events only,
each carrying its process. `matching()` asks sysdig itself which events a condition matches,
so a rule's count in skanse can be compared with libsinsp's on the same capture.
"""

from __future__ import annotations

import json
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

SYSDIG = shutil.which("sysdig")

_FIELDS = (
    "evt.num evt.rawtime evt.type evt.dir evt.rawres evt.arg.flags evt.arg.name evt.arg.mode "
    "proc.pid proc.ppid proc.name proc.exe proc.args proc.cwd proc.tty user.uid user.name "
    "user.loginuid fd.num fd.type fd.name fd.cip fd.sip fd.cport fd.sport fd.l4proto "
    "container.id thread.tid " + " ".join(f"proc.apid[{n}] proc.aname[{n}]" for n in range(1, 5))
).split()
_BARE = re.compile(r"[^()\"'\s=,]+")


def _run(args: list[str]) -> str:
    assert SYSDIG is not None
    done = subprocess.run([SYSDIG, *args], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sysdig {args}: {done.stderr.strip()}")
    return done.stdout


def exit_events(capture: Path) -> list[dict[str, Any]]:
    """Exit events; `_ancestors` lists (pid, ppid, name) of up to four ancestors, which the
    caller records in the engine's process table (sysdig knows them from the capture)."""
    fmt = "*" + " ".join(f"%{f}" for f in _FIELDS)
    events = []
    for line in _run(["-r", str(capture), "-j", "-p", fmt]).splitlines():
        raw = json.loads(line)
        if raw.get("evt.dir") != "<":
            continue
        proc = {
            "pid": raw.get("proc.pid"),
            "ppid": raw.get("proc.ppid"),
            "name": raw.get("proc.name"),
            "exe": raw.get("proc.exe"),
            "args": raw.get("proc.args") or "",
            "cwd": raw.get("proc.cwd") or None,
            "tty": raw.get("proc.tty"),
            "uid": raw.get("user.uid"),
            "user": raw.get("user.name"),
            "loginuid": raw.get("user.loginuid"),
            "tid": raw.get("thread.tid"),
            "container_id": raw.get("container.id"),
        }
        event: dict[str, Any] = {
            "type": raw["evt.type"],
            "ts": raw.get("evt.rawtime"),
            "num": raw.get("evt.num"),
            "pid": raw.get("proc.pid"),
            "proc": {k: v for k, v in proc.items() if v is not None},
        }
        ancestors = []
        for n in range(1, 5):
            apid, aname = raw.get(f"proc.apid[{n}]"), raw.get(f"proc.aname[{n}]")
            if apid is None or aname is None:
                break
            ancestors.append({"pid": apid, "name": aname, "ppid": raw.get(f"proc.apid[{n + 1}]")})
        event["_ancestors"] = ancestors
        if raw.get("evt.rawres") is not None:
            event["res"] = raw["evt.rawres"]
        args = {}
        for key in ("flags", "name", "mode"):
            value = raw.get(f"evt.arg.{key}")
            if value is not None:
                args[key] = value
        if args:
            event["args"] = args
        if raw.get("fd.type"):
            fd = {
                "num": raw.get("fd.num"),
                "type": raw.get("fd.type"),
                "name": raw.get("fd.name") or None,
                "cip": raw.get("fd.cip"),
                "sip": raw.get("fd.sip"),
                "cport": raw.get("fd.cport"),
                "sport": raw.get("fd.sport"),
                "l4proto": None if raw.get("fd.l4proto") in (None, "<NA>") else raw["fd.l4proto"],
            }
            event["fd"] = {k: v for k, v in fd.items() if v is not None}
        events.append(event)
    return events


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
