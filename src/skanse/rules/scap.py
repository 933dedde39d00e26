"""Replay of .scap captures (Falco's and sysdig's recording format) through the engine.

    if is_scap(path):
        alerts, summary = replay_scap(engine, path)

A capture is decoded by sysdig, libsinsp's own command-line reader (Debian's `sysdig`
package), which knows every event version and block layout a capture may hold: it prints
each event's fields as JSON and skanse turns the exit events into events of its own schema
(docs/runtime-events.md), each carrying its process, and records the ancestors sysdig knows
from the capture's process list in the engine's process table. Exit events only, as Falco
>= 0.42 evaluates them. Decoding streams: the capture is never held in memory as text.
"""

from __future__ import annotations

import collections
import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skanse.errors import InputError
from skanse.rules.engine import Engine
from skanse.rules.replay import LineProblem, ReplayAlert, ReplaySummary, replay_alerts

__all__ = ["SCAP_FIELDS", "is_scap", "replay_scap", "replay_scap_stream", "scap_events"]

SCAP_FIELDS = (
    "evt.num evt.rawtime evt.type evt.dir evt.rawres evt.arg.flags evt.arg.name evt.arg.mode "
    "proc.pid proc.ppid proc.name proc.exe proc.args proc.cwd proc.tty user.uid user.name "
    "user.loginuid fd.num fd.type fd.name fd.cip fd.sip fd.cport fd.sport fd.l4proto "
    "container.id thread.tid " + " ".join(f"proc.apid[{n}] proc.aname[{n}]" for n in range(1, 5))
).split()
_GZIP = b"\x1f\x8b"
_STDERR_CHUNKS = 4  # of 4,096 characters: the end of sysdig's standard error, for a failure
_SECTION_HEADER = b"\x0a\x0d\x0d\x0a"


def is_scap(path: str | Path) -> bool:
    """Whether a file is a capture: a pcapng-style section header, or gzip (as Falco and
    sysdig write them with -z)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head == _SECTION_HEADER or head[:2] == _GZIP


def _sysdig() -> str:
    found = shutil.which("sysdig")
    if found is None:
        raise InputError(
            "reading a .scap capture needs sysdig, libsinsp's reader (Debian: apt-get install "
            "sysdig); or replay JSON-lines events instead"
        )
    return found


def _event(raw: dict[str, Any]) -> dict[str, Any]:
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
        "type": raw.get("evt.type"),
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
    args = {
        key: raw[f"evt.arg.{key}"]
        for key in ("flags", "name", "mode")
        if raw.get(f"evt.arg.{key}") is not None
    }
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
    return event


def scap_events(path: str | Path, *, timeout: float = 600.0) -> Iterator[dict[str, Any]]:
    """The exit events of a capture, in order; `_ancestors` lists (pid, name, ppid) of up to
    four ancestors as sysdig knows them from the capture."""
    command = [_sysdig(), "-r", str(path), "-j", "-p", "*" + " ".join(f"%{f}" for f in SCAP_FIELDS)]
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    # stderr is drained while stdout is read, keeping its last chunks only: read after stdout
    # ended, a sysdig that wrote more than a pipe holds (64 KiB) waited for skanse, which
    # waited for its next event, for ever
    tail: collections.deque[str] = collections.deque(maxlen=_STDERR_CHUNKS)
    chunks = iter(functools.partial(process.stderr.read, 4096), "")
    drain = threading.Thread(target=tail.extend, args=(chunks,), daemon=True)
    drain.start()
    try:
        for line in process.stdout:
            try:
                raw = json.loads(line)
            except (ValueError, RecursionError):
                continue  # sysdig's own messages on stdout
            if isinstance(raw, dict) and raw.get("evt.dir") == "<":
                yield _event(raw)
        code = process.wait(timeout)
        drain.join(timeout)
        if code != 0:
            error = "".join(tail).strip()[-500:]
            raise InputError(f"{path}: sysdig could not read the capture: {error}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        drain.join(timeout)
        process.stdout.close()
        process.stderr.close()


def replay_scap(engine: Engine, path: str | Path) -> tuple[list[ReplayAlert], ReplaySummary]:
    """Every exit event of a capture through `engine`; alerts carry the event number."""
    summary = ReplaySummary()
    return list(replay_scap_stream(engine, path, summary)), summary


def replay_scap_stream(
    engine: Engine, path: str | Path, summary: ReplaySummary
) -> Iterator[ReplayAlert]:
    """replay_scap yielding each alert as it is found (see replay.replay_stream)."""
    table = engine.table
    for event in scap_events(path):
        for ancestor in event.pop("_ancestors"):
            if ancestor["pid"] not in table.processes:
                table.upsert(ancestor)
        number = event.get("num")
        summary.events += 1
        summary.lines = number if isinstance(number, int) else summary.events
        if not isinstance(event.get("type"), str):
            summary.problem(LineProblem(summary.lines, "an event without a type"))
            continue
        errors = engine.stats.eval_errors
        yield from summary.alerted(replay_alerts(engine, event, summary.lines))
        if engine.stats.eval_errors > errors:
            summary.unchecked_event(
                LineProblem(summary.lines, "a rule could not be evaluated on it")
            )
        summary.eval_errors = engine.stats.eval_errors
