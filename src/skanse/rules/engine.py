"""The engine: events in, alerts out.

    engine = Engine(ruleset)                # syscall rules, rule_matching=first
    for event in events:
        for alert in engine.process(event):
            ...

Rules are indexed by event type once (the sets the compiler computed), so an event only
meets the rules that can match it, in load order. `rule_matching="first"` stops at the first
matching rule (Falco's default), `"all"` reports every matching rule. The sensor keeps
`engine.table` (a `ProcessTable`) current; an event that carries `proc`/`container` objects
updates it first. A rule whose evaluation raises (an event with a value of the wrong type)
counts as not matching, and the event is counted in `stats.eval_errors`.

With `strict_missing=True`, a match that holds only because a field was missing (a negated
comparison on a field the event lacks, Falco issue #3734) is not reported as an alert but in
`stats.missing_hits`, with the fields that were missing.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skanse.rules.compiler import Kleene
from skanse.rules.events import EMPTY_PROCESS, Process, ProcessTable
from skanse.rules.fields import time_iso, time_text
from skanse.rules.loader import Priority, Rule, Ruleset

__all__ = ["Alert", "Engine", "EngineStats", "MissingHit", "RuleMatching"]


class RuleMatching(enum.StrEnum):
    FIRST = "first"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule match, in the shape of Falco's JSON output."""

    time_ns: int | None
    rule: str
    priority: Priority
    source: str
    hostname: str
    output: str  # the formatted output, without the time and priority prefix
    output_fields: Mapping[str, Any]
    tags: tuple[str, ...]

    @property
    def time_iso(self) -> str:
        """ISO 8601 UTC; an event time that is no date is shown as its number."""
        return time_iso(self.time_ns if self.time_ns is not None else 0)

    @property
    def time_text(self) -> str:
        """`HH:MM:SS.nnnnnnnnn` UTC; an event time that is no date is shown as its number."""
        return time_text(self.time_ns if self.time_ns is not None else 0)

    def line(self) -> str:
        """Falco's text line: `HH:MM:SS.nnnnnnnnn: Priority output`."""
        return f"{self.time_text}: {self.priority.label} {self.output}"

    def to_json(self) -> dict[str, Any]:
        """Falco's JSON alert: time, rule, priority, source, hostname, output, fields, tags."""
        return {
            "time": self.time_iso,
            "rule": self.rule,
            "priority": self.priority.label,
            "source": self.source,
            "hostname": self.hostname,
            "output": self.line(),
            "output_fields": dict(self.output_fields),
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True)
class MissingHit:
    """A rule that matched only because fields were missing (reported under strict-missing)."""

    rule: str
    fields: tuple[str, ...]
    event_num: int


MAX_LISTED_MISSING_HITS = 1000


@dataclass(slots=True)
class EngineStats:
    events: int = 0
    matches: int = 0
    eval_errors: int = 0
    # strict-missing hits: all counted, the first MAX_LISTED_MISSING_HITS listed (a long
    # replay would otherwise keep one per suppressed match)
    missing_hit_count: int = 0
    missing_hits: list[MissingHit] = field(default_factory=list)
    by_rule: dict[str, int] = field(default_factory=dict)


_Entry = tuple[Rule, Any]


class Engine:
    """Evaluates the enabled rules of one source against events."""

    def __init__(
        self,
        ruleset: Ruleset,
        *,
        source: str = "syscall",
        rule_matching: RuleMatching | str = RuleMatching.FIRST,
        table: ProcessTable | None = None,
        hostname: str | None = None,
        strict_missing: bool = False,
        rules: Iterable[Rule] | None = None,
    ) -> None:
        self.source = source
        self.matching = RuleMatching(rule_matching)
        self.table = table if table is not None else ProcessTable()
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.strict_missing = strict_missing
        self.stats = EngineStats()
        selected = tuple(rules) if rules is not None else ruleset.enabled(source)
        self.rules = tuple(r for r in selected if r.source == source)
        self._kleene: dict[str, Kleene] = {}
        catchall: list[_Entry] = []
        by_type: dict[str, list[_Entry]] = {}
        for rule in self.rules:
            entry = (rule, rule.fn)
            if rule.evttypes is None:
                catchall.append(entry)
                for bucket in by_type.values():
                    bucket.append(entry)
            else:
                for name in rule.evttypes:
                    if name not in by_type:
                        by_type[name] = list(catchall)
                    by_type[name].append(entry)
        # buckets keep load order: a type first seen late got the earlier catch-alls copied in
        self._by_type: dict[str, tuple[_Entry, ...]] = {
            name: tuple(sorted(bucket, key=lambda en: en[0].index))
            for name, bucket in by_type.items()
        }
        self._catchall: tuple[_Entry, ...] = tuple(catchall)
        self._first = self.matching is RuleMatching.FIRST
        # one compiled function per event type, built on first use (see _bucket_function)
        self._bucket_fns: dict[str | None, tuple[Any, tuple[Rule, ...]]] = {}
        # the compiled buckets of the syscall event types some rule names, for process()
        self._typed: dict[str, tuple[Any, tuple[Rule, ...]]] = {}

    def event_types(self) -> frozenset[str] | None:
        """The event types the loaded rules index on; None if a rule can match any type.

        A sensor programs its kernel-side filter from this, so events no rule can match
        never reach userspace.
        """
        if self._catchall:
            return None
        return frozenset(self._by_type)

    def prepare(self) -> None:
        """Compile the rules of every event type now instead of at its first event: a
        sensor does this before it starts, so no event waits for a compilation (the
        stable rules take about 12 ms)."""
        if self.strict_missing:
            return
        for event_type in [*self._by_type, None]:
            if event_type not in self._bucket_fns:
                self._bucket_function(event_type)

    def candidates(self, event_type: str | None) -> tuple[Rule, ...]:
        """The rules an event of this type meets, in load order."""
        bucket = self._by_type.get(event_type, self._catchall) if event_type else self._catchall
        return tuple(rule for rule, _ in bucket)

    def process(self, event: Mapping[str, Any]) -> list[Alert]:
        """Evaluate one event; the alerts of the rules it matches (at most one with `first`)."""
        self.stats.events += 1
        table = self.table
        event_type = event.get("type")
        compiled = self._typed.get(event_type) if event_type.__class__ is str else None
        if compiled is not None and "proc" not in event and "container" not in event:
            # the common case, kept short: a syscall event of a type some rule names
            # (no process has the pid None: an event without one gets EMPTY_PROCESS)
            process = table.processes.get(event.get("pid"), EMPTY_PROCESS)  # type: ignore[arg-type]
            function, rules = compiled
            try:
                found = function(event, process, table)
            except Exception:  # one rule at a time: one broken value hides no other match
                return self._one_by_one(event, event_type, process)
            if self._first:
                return [] if found < 0 else [self._alert(rules[found], event, process)]
            return [self._alert(rules[i], event, process) for i in found] if found else []
        if self.source == "syscall":
            if "proc" in event or "container" in event:
                process = self._record_state(event)
            else:
                pid = event.get("pid")
                process = (
                    table.processes.get(pid, EMPTY_PROCESS) if pid is not None else EMPTY_PROCESS
                )
            if event_type.__class__ is not str or event_type not in self._by_type:
                event_type = None
        else:
            process = EMPTY_PROCESS
            event_type = None
        if not self.strict_missing:
            compiled = self._bucket_fns.get(event_type)
            if compiled is None:
                compiled = self._bucket_function(event_type)
            function, rules = compiled
            try:
                found = function(event, process, table)
            except Exception:  # fall back to one rule at a time below
                found = None
            if found is not None:
                if self._first:
                    if found < 0:
                        return []
                    return [self._alert(rules[found], event, process)]
                return [self._alert(rules[i], event, process) for i in found]
        return self._one_by_one(event, event_type, process)

    def _one_by_one(
        self, event: Mapping[str, Any], event_type: str | None, process: Process
    ) -> list[Alert]:
        """Each rule of the bucket on its own: with strict_missing, or when the bucket's
        function raised (a value of the wrong type), so one rule's error hides no other."""
        table = self.table
        bucket = self._by_type.get(event_type, self._catchall) if event_type else self._catchall
        alerts: list[Alert] = []
        for rule, fn in bucket:
            try:
                matched = fn(event, process, table)
            except Exception:
                self.stats.eval_errors += 1
                continue
            if not matched:
                continue
            if self.strict_missing and not self._definitely(rule, event, process):
                continue
            alerts.append(self._alert(rule, event, process))
            if self._first:
                break
        return alerts

    def _bucket_function(self, event_type: str | None) -> tuple[Any, tuple[Rule, ...]]:
        from skanse.rules.compiler import ModuleBuilder

        bucket = self._by_type.get(event_type, self._catchall) if event_type else self._catchall
        rules = tuple(rule for rule, _ in bucket)
        builder = ModuleBuilder(self.source)
        builder.add_bucket(
            "bucket", [rule.ast for rule in rules], first=self._first, event_type=event_type
        )
        compiled = (builder.build(filename=f"<bucket:{event_type}>")["bucket"], rules)
        self._bucket_fns[event_type] = compiled
        if event_type is not None and self.source == "syscall" and not self.strict_missing:
            self._typed[event_type] = compiled
        return compiled

    def _record_state(self, event: Mapping[str, Any]) -> Process:
        table = self.table
        container = event.get("container")
        if isinstance(container, Mapping):
            table.upsert_container(container)
        proc = event.get("proc")
        if isinstance(proc, Mapping):
            data = dict(proc)
            data.setdefault("pid", event.get("pid"))
            if isinstance(container, Mapping) and "container_id" not in data:
                data["container_id"] = container.get("id")
            return table.upsert(data)
        pid = event.get("pid")
        return table.processes.get(pid, EMPTY_PROCESS) if pid is not None else EMPTY_PROCESS

    def _definitely(self, rule: Rule, event: Mapping[str, Any], process: Process) -> bool:
        checker = self._kleene.get(rule.name)
        if checker is None:
            checker = self._kleene[rule.name] = rule.kleene()
        if checker.evaluate(event, process, self.table) is True:
            return True
        self.stats.missing_hit_count += 1
        if len(self.stats.missing_hits) >= MAX_LISTED_MISSING_HITS:
            return False
        missing = tuple(
            name
            for name, value in rule.output.fields(event, process, self.table).items()
            if value is None
        )
        read = rule.read_fields()
        self.stats.missing_hits.append(
            MissingHit(
                rule.name,
                _missing(rule, event, process, self.table, read) or missing,
                self.stats.events,
            )
        )
        return False

    def _alert(self, rule: Rule, event: Mapping[str, Any], process: Process) -> Alert:
        stats = self.stats
        stats.matches += 1
        stats.by_rule[rule.name] = stats.by_rule.get(rule.name, 0) + 1
        ts = event.get("ts")
        if self.source == "k8s_audit":
            from skanse.rules.fields import _jevt_rawtime

            ts = _jevt_rawtime(event)
        output, output_fields = rule.output.render_with_fields(event, process, self.table)
        return Alert(
            time_ns=ts if isinstance(ts, int) else None,
            rule=rule.name,
            priority=rule.priority,
            source=rule.source,
            hostname=self.hostname,
            output=output,
            output_fields=output_fields,
            tags=rule.tags,
        )


def _missing(
    rule: Rule,
    event: Mapping[str, Any],
    process: Process,
    table: ProcessTable,
    read: tuple[str, ...],
) -> tuple[str, ...]:
    """Which of the fields the rule reads have no value in this event."""
    from skanse.rules.fields import UnknownFieldError, resolve_field
    from skanse.rules.output import _getter

    out = []
    for text in read:
        name, _, rest = text.partition("[")
        arg = rest[:-1] if rest else None
        try:
            acc = resolve_field(name, arg, rule.source)
        except UnknownFieldError:
            continue
        if _getter(acc.expr)(event, process, table) is None:
            out.append(text)
    return tuple(out)
