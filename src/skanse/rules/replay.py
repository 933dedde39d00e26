"""Replay recorded events through an engine: JSON lines in, alerts and a summary out.

Input is one JSON object per line: syscall events in the schema of docs/runtime-events.md,
or Kubernetes audit events (`audit.k8s.io` Event objects, as the API server's log backend
writes them; an `EventList` line is expanded to its items). Reading is bounded: a line longer
than `max_line_bytes` is skipped without being held in memory, and every line that is not a
JSON object is reported with its number and skipped; the summary counts them.

An event is evaluated whatever its values, but a value the engine cannot use (a documented
key of docs/runtime-events.md holding the wrong type: `"fd": "x"`, `"pid": "5"`, a process
name that is a list) reads as missing, so no rule on it can fire: such an event, and one
for which a rule raised, is listed in `summary.unchecked` with its line, and `--strict`
fails on it, as on a line that could not be read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from skanse.controls import GDPR_SECURITY, NSA_THREAT_DETECTION, nsa
from skanse.model import (
    CheckID,
    CheckMeta,
    Finding,
    InputProblem,
    Layer,
    Location,
    ProblemKind,
    ResourceRef,
    ScanResult,
)
from skanse.rules.engine import Alert, Engine
from skanse.rules.events import _int, _text
from skanse.rules.loader import Priority, Ruleset
from skanse.rules.output import workload_fields

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "MAX_LISTED_PROBLEMS",
    "RUNTIME_CONTROLS",
    "LineProblem",
    "ReplayAlert",
    "ReplaySummary",
    "alerts_to_result",
    "iter_events",
    "replay",
    "replay_alerts",
    "replay_stream",
]

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ReplayAlert:
    alert: Alert
    line: int  # the line of the event in the input
    # syscall alerts: evt.time and the appended workload fields (skanse.rules.output)
    workload: Mapping[str, Any] = field(default_factory=dict)


# how many line problems and not-fully-checked events a summary lists (all are counted): a
# long capture of broken lines is otherwise a list as long as the capture
MAX_LISTED_PROBLEMS = 1000


@dataclass(slots=True)
class ReplaySummary:
    lines: int = 0
    events: int = 0
    alerts: int = 0
    # lines that could not be read: all counted, the first MAX_LISTED_PROBLEMS listed
    skipped: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    eval_errors: int = 0
    # events evaluated with values the rules read as missing, or on which a rule raised
    # (counted, the first MAX_LISTED_PROBLEMS listed)
    not_fully_checked: int = 0
    unchecked: list[LineProblem] = field(default_factory=list)
    # the most severe alert's priority (lower value = more severe), for --fail-on
    worst: Priority | None = None

    def problem(self, problem: LineProblem) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(problem)

    def unchecked_event(self, problem: LineProblem) -> None:
        self.not_fully_checked += 1
        if len(self.unchecked) < MAX_LISTED_PROBLEMS:
            self.unchecked.append(problem)

    def alerted(self, alerts: list[ReplayAlert]) -> list[ReplayAlert]:
        for item in alerts:
            self.alerts += 1
            if self.worst is None or item.alert.priority < self.worst:
                self.worst = item.alert.priority
        return alerts


def iter_events(
    stream: IO[bytes], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, dict[str, Any] | LineProblem]]:
    """(line number, event or problem) for each non-blank line of a JSON-lines stream."""
    number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            size = len(raw)
            while True:  # drop the rest of the line, a chunk at a time
                rest = stream.readline(_CHUNK)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield (
                number,
                LineProblem(
                    number, f"line longer than {max_line_bytes:,} bytes ({size:,} bytes); skipped"
                ),
            )
            continue
        text = raw.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            yield number, LineProblem(number, f"invalid JSON: {_short(exc)}")
            continue
        if not isinstance(value, dict):
            yield number, LineProblem(number, "not a JSON object")
            continue
        if value.get("kind") == "EventList" and isinstance(value.get("items"), list):
            for item in value["items"]:
                if isinstance(item, dict):
                    yield number, item
                else:
                    yield number, LineProblem(number, "EventList item is not a JSON object")
            continue
        yield number, value


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


def replay(
    engine: Engine,
    stream: IO[bytes],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[list[ReplayAlert], ReplaySummary]:
    """Feed every event of `stream` to `engine`; the alerts in order and a summary. For
    a document of every alert (a report); `replay_stream` holds none of them."""
    summary = ReplaySummary()
    alerts = list(replay_stream(engine, stream, summary, max_line_bytes=max_line_bytes))
    return alerts, summary


def replay_stream(
    engine: Engine,
    stream: IO[bytes],
    summary: ReplaySummary,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[ReplayAlert]:
    """Feed every event of `stream` to `engine`, yielding each alert as it is found;
    `summary` counts as it goes and is whole once the iterator is exhausted. Nothing is
    kept per alert, so a capture of any length replays in bounded memory."""
    for number, item in iter_events(stream, max_line_bytes=max_line_bytes):
        summary.lines = number
        if isinstance(item, LineProblem):
            summary.problem(item)
            continue
        summary.events += 1
        errors = engine.stats.eval_errors
        yield from summary.alerted(replay_alerts(engine, item, number))
        wrong = wrong_types(item) if engine.source == "syscall" else []
        if engine.stats.eval_errors > errors:
            wrong.append("a rule could not be evaluated on it")
        if wrong:
            summary.unchecked_event(LineProblem(number, "; ".join(wrong)))
        summary.eval_errors = engine.stats.eval_errors


def replay_alerts(engine: Engine, event: dict[str, Any], line: int) -> list[ReplayAlert]:
    """The alerts of one event, each with its workload fields (syscall events)."""
    found = engine.process(event)
    if not found or engine.source != "syscall":
        return [ReplayAlert(alert, line) for alert in found]
    table = engine.table
    workload = workload_fields(event, table.get(event.get("pid")), table)
    return [ReplayAlert(alert, line, workload) for alert in found]


# The documented keys of a syscall event (docs/runtime-events.md) and what each must hold;
# a value of another type reads as missing in every field built on it.
_INT = (int,)
_STR = (str,)
_MAP = (Mapping,)
_EVENT_KEYS: dict[str, tuple[type, ...]] = {
    "type": _STR,
    "ts": _INT,
    "num": _INT,
    "pid": _INT,
    "tid": _INT,
    "res": (int, str),
    "args": _MAP,
    "rawargs": _MAP,
    "fd": _MAP,
    "proc": _MAP,
    "container": _MAP,
}
_FD_KEYS: dict[str, tuple[type, ...]] = {
    "num": _INT,
    "type": _STR,
    "name": _STR,
    "nameraw": _STR,
    "cip": _STR,
    "sip": _STR,
    "cport": _INT,
    "sport": _INT,
    "l4proto": _STR,
    "is_server": (bool,),
}
_PROC_INTS = (
    *("pid", "ppid", "tid", "vpid", "vtid", "vpgid", "sid", "tty", "uid", "gid"),
    *("loginuid", "start_ts", "exe_ino_ctime", "exe_ino_mtime"),
)
_PROC_TEXTS = (
    *("name", "exe", "exepath", "cwd", "user", "group", "user_homedir", "user_shell"),
    *("loginname", "container_id"),
)


def wrong_types(event: Mapping[str, Any]) -> list[str]:
    """What in a syscall event the engine reads as missing because of its type."""
    out = []
    if event.get("type") is None:
        out.append("no 'type'")
    out.extend(_typed(event, _EVENT_KEYS, ""))
    fd = event.get("fd")
    if isinstance(fd, Mapping):
        out.extend(_typed(fd, _FD_KEYS, "fd."))
    proc = event.get("proc")
    if isinstance(proc, Mapping):
        out.extend(
            f"'proc.{key}' is {_kind(proc[key])}, not an integer"
            for key in _PROC_INTS
            if proc.get(key) is not None and _int(proc[key]) is None
        )
        out.extend(
            f"'proc.{key}' is {_kind(proc[key])}, not a string"
            for key in _PROC_TEXTS
            if proc.get(key) is not None and _text(proc[key]) is None
        )
        if proc.get("args") is not None and not isinstance(proc["args"], list | str):
            out.append(f"'proc.args' is {_kind(proc['args'])}, not a list")
    return out


def _typed(data: Mapping[str, Any], keys: Mapping[str, tuple[type, ...]], prefix: str) -> list[str]:
    out = []
    for key, types in keys.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, types) or (value.__class__ is bool and bool not in types):
            out.append(f"'{prefix}{key}' is {_kind(value)}, not {_kind_of(types[0])}")
    return out


_KINDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a fraction",
    str: "a string",
    list: "a list",
    Mapping: "an object",
}


def _kind(value: Any) -> str:
    return _KINDS.get(value.__class__, "an object")


def _kind_of(kind: type) -> str:
    return _KINDS.get(kind, kind.__name__)


# A runtime rule is a detection, whatever it detects: evidence of the guide's threat detection
# (and of monitoring towards GDPR 32(1)(b)); what each rule detects is not mapped further.
RUNTIME_CONTROLS = (nsa(NSA_THREAT_DETECTION), GDPR_SECURITY)


def alerts_to_result(
    alerts: list[ReplayAlert], summary: ReplaySummary, ruleset: Ruleset, input_name: str
) -> ScanResult:
    """Alerts as findings (one check per rule), for the text/json/sarif/junit renderers."""
    metas: dict[str, CheckMeta] = {}
    for rule in ruleset.rules:
        metas.setdefault(
            rule.name,
            CheckMeta(
                id=CheckID(rule.name),
                title=rule.name,
                severity=rule.priority.severity,
                layer=Layer.RUNTIME,
                description=rule.description.strip(),
                remediation="Investigate the process and container named in the alert.",
                references=(),
                aliases=tuple(t for t in rule.tags if t.startswith("T") and t[1:].isdigit()),
                controls=RUNTIME_CONTROLS,
            ),
        )
    findings = []
    for item in alerts:
        alert = item.alert
        fields = alert.output_fields
        if alert.source == "k8s_audit":
            resource = ResourceRef(
                "AuditEvent",
                str(fields.get("ka.target.name") or fields.get("ka.uri") or "-"),
                namespace=_str_or_none(fields.get("ka.target.namespace")),
            )
        else:
            cid = fields.get("container.id")
            resource = (
                ResourceRef("Container", str(cid))
                if cid and cid != "host"
                else ResourceRef("Process", str(fields.get("proc.name") or "-"))
            )
        findings.append(
            Finding(
                check_id=CheckID(alert.rule),
                severity=alert.priority.severity,
                title=alert.rule,
                message=alert.output,
                location=Location(file=input_name, line=item.line, column=1, pointer=""),
                resource=resource,
            )
        )
    problems = tuple(
        InputProblem(input_name, ProblemKind.PARSE, p.message, line=p.line)
        for p in summary.problems
    )
    if summary.skipped > len(summary.problems):
        problems += (
            InputProblem(
                input_name,
                ProblemKind.PARSE,
                f"and {summary.skipped - len(summary.problems):,} more line(s) skipped",
            ),
        )
    used = {f.check_id for f in findings}
    return ScanResult(
        findings=tuple(findings),
        checks=tuple(m for m in metas.values() if m.id in used),
        problems=problems,
        targets=(input_name,),
        files_scanned=1,
        objects_scanned=summary.events,
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
