"""The sensor loop: records in, process state kept, events evaluated, alerts out, responses.

    agent = Agent(engine, sensor, state, outputs=[...], responder=...)
    agent.run(stop_event)               # until stop is set; then drains what is buffered

One thread does everything, in the order the kernel produced the records, so the process
table an event is evaluated against is the one at that moment (a fork is recorded before
the child's first event). Records are read from the ring buffer in batches; decoding and
evaluation happen after the kernel got its space back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from skanse.rules.engine import Alert, Engine
from skanse.rules.events import Process
from skanse.rules.output import APPENDED_FIELDS, OutputFormat, workload_fields
from skanse.runtime.outputs import Output
from skanse.runtime.records import Item, Kind, Record
from skanse.runtime.state import ProcessState
from skanse.runtime.syscalls import decode_syscall, info_for

__all__ = ["Agent", "AgentStats", "Sensor"]


_SYSCALL = int(Kind.SYSCALL)
_EXEC = int(Kind.EXEC)
_FORK = int(Kind.FORK)
_EXIT = int(Kind.EXIT)
_KILLED = int(Item.KILLED)


class _DecodeContext:
    """Answers a decoder's questions about the process of the record being decoded."""

    __slots__ = ("pid", "state")

    def __init__(self, state: ProcessState) -> None:
        self.state = state
        self.pid = 0

    def cwd(self) -> str | None:
        return self.state.cwd(self.pid)

    def username(self, uid: int) -> str:
        state = self.state
        return state.users.user(uid, mntns=state.mntns(self.pid), pid=self.pid) or str(uid)


class Sensor(Protocol):
    """A source of kernel records (the eBPF sensor, the audit fallback)."""

    name: str
    delivered: int

    def start(self) -> None: ...

    def wait(self, timeout: float) -> bool: ...

    def records(self, max_records: int = ...) -> Iterator[Record | None]: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def drops(self) -> tuple[int, int]: ...


class AlertSink(Protocol):
    def handle(self, alert: Alert, context: Mapping[str, Any]) -> object: ...


@dataclass(slots=True)
class AgentStats:
    records: int = 0
    malformed: int = 0
    events: int = 0  # evaluated by the engine
    by_kind: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    matches: dict[tuple[str, str], int] = field(default_factory=dict)  # (rule, priority)
    adopted: int = 0  # processes first seen in a syscall, read from /proc then
    unknown_syscalls: int = 0
    response_errors: int = 0
    drop_alerts: int = 0  # "syscall event drop" alerts sent (skanse.runtime.drops)
    errors: int = 0  # records whose handling raised (a bug: counted in metrics and summary)
    max_backlog_bytes: int = 0  # the most the kernel buffer held when the consumer looked
    started: float = field(default_factory=time.time)


class Agent:
    def __init__(
        self,
        engine: Engine,
        sensor: Sensor,
        state: ProcessState,
        *,
        outputs: Sequence[Output] = (),
        responder: AlertSink | None = None,
        on_alert: Callable[[Alert, Mapping[str, Any]], None] | None = None,
        proc_root: str = "/proc",
        append_output: OutputFormat | None = None,
    ) -> None:
        self.engine = engine
        self.sensor = sensor
        self.state = state
        self.outputs = list(outputs)
        self.responder = responder
        self.on_alert = on_alert
        self.proc_root = proc_root
        self.append_output = append_output
        self.stats = AgentStats()
        self._num = 0
        self._offset = state.boot_offset_ns
        self._last_sweep = time.monotonic()
        self._processes = engine.table.processes
        self._decode = _DecodeContext(state)
        self.stopped = threading.Event()
        # called between batches, in the loop's thread (a rules reload swaps the engine
        # there, so no event is ever evaluated half by one ruleset and half by another)
        self.between_batches: Callable[[], None] | None = None

    # -- the loop ------------------------------------------------------------------------
    def run(
        self, stop: threading.Event, *, poll_interval: float = 0.05, idle_wait: float = 0.25
    ) -> None:
        """Process records until `stop` is set; then detach and drain the buffer.

        After records were found, the next look is at most `poll_interval` away (records
        that came after the kernel last woke the reader wake nobody, see sensor.bpf.c
        emit); while none come, the wait doubles up to `idle_wait`, since the first new
        record wakes the reader then. Each wakeup costs about 0.1 ms of CPU in a VM.
        """
        wait = poll_interval
        try:
            while not stop.is_set():
                if self.sensor.wait(wait) and self.pump():
                    wait = poll_interval
                else:
                    wait = min(wait * 2, idle_wait)
                self._housekeeping()
        finally:
            self.sensor.stop()
            self.drain()
            self.stopped.set()

    def pump(self, max_records: int = 20_000) -> int:
        """Handle the records buffered now; returns how many."""
        pending = getattr(self.sensor, "pending_bytes", None)
        if pending is not None:
            backlog = pending()
            if backlog > self.stats.max_backlog_bytes:
                self.stats.max_backlog_bytes = backlog
        count = 0
        for record in self.sensor.records(max_records):
            count += 1
            if record is None:
                self.stats.malformed += 1
                continue
            try:
                self.handle(record)
            except Exception:  # one bad record must not stop detection; counted, shown
                self.stats.errors += 1
        self.stats.records += count
        return count

    def drain(self) -> int:
        total = 0
        while True:
            count = self.pump()
            total += count
            if count == 0:
                return total

    def _housekeeping(self) -> None:
        if self.between_batches is not None:
            self.between_batches()
        self.state.expire()
        now = time.monotonic()
        if now - self._last_sweep > 30.0:
            self._last_sweep = now
            self.state.sweep(self.proc_root)

    # -- one record ----------------------------------------------------------------------
    def handle(self, rec: Record) -> list[Alert]:
        kind = rec.kind
        state = self.state
        if kind == _SYSCALL:
            pid = rec.tgid
            process = self._processes.get(pid)
            if process is None:
                process = self._adopt(pid)
            elif process.uid != rec.uid or process.gid != rec.gid:
                state.sync_uid(pid, rec.uid, rec.gid)
            self._decode.pid = pid
            decoded = decode_syscall(rec, self._decode)
            if decoded is None:
                self.stats.unknown_syscalls += 1
                return []
            name, event = decoded
            if rec.items is not None and _KILLED in rec.items:
                event["killed_in_kernel"] = True
            event["type"] = name
            event["ts"] = rec.ts + self._offset
            event["pid"] = pid
            event["tid"] = rec.tid
            event["res"] = rec.ret
            return self._evaluate(event, name)
        if kind == _EXEC:
            process = state.exec(rec)
            info = info_for(rec.nr)
            name = info.name if info is not None else "execve"
            event = {
                "type": name,
                "ts": rec.ts + self._offset,
                "pid": rec.tgid,
                "tid": rec.tid,
                "res": 0,
                "args": state.exec_args(rec, process),
            }
            if rec.items is not None and _KILLED in rec.items:
                event["killed_in_kernel"] = True
            return self._evaluate(event, name)
        if kind == _FORK:
            state.fork(rec)
            self._count("fork")
            return []
        if kind == _EXIT:
            state.exit(rec)
            self._count("exit")
            return []
        return []

    def _count(self, name: str) -> None:
        by_kind = self.stats.by_kind
        by_kind[name] = by_kind.get(name, 0) + 1

    def _adopt(self, pid: int) -> Process | None:
        """A process the table does not know (its fork was dropped): read it from /proc."""
        self.stats.adopted += 1
        return self.state.adopt(pid, self.proc_root)

    def _evaluate(self, event: dict[str, Any], name: str) -> list[Alert]:
        self._num += 1
        event["num"] = self._num
        stats = self.stats
        stats.events += 1
        by_kind = stats.by_kind
        by_kind[name] = by_kind.get(name, 0) + 1
        alerts = self.engine.process(event)
        if alerts:
            for alert in alerts:
                self._deliver(alert, event)
        return alerts

    def _deliver(self, alert: Alert, event: Mapping[str, Any]) -> None:
        stats = self.stats
        stats.alerts += 1
        key = (alert.rule, alert.priority.label)
        stats.matches[key] = stats.matches.get(key, 0) + 1
        document = self.document(alert, event)
        for output in self.outputs:
            output.emit(document)
        context = self.context(event)
        if self.on_alert is not None:
            self.on_alert(alert, context)
        if self.responder is not None:
            try:
                self.responder.handle(alert, context)
            except Exception:  # a failed response must not stop detection; it is logged
                stats.response_errors += 1

    def document(self, alert: Alert, event: Mapping[str, Any]) -> dict[str, Any]:
        """Falco's JSON alert, with `evt.time` and the workload fields on every alert.

        As Falco's JSON output, `output_fields["evt.time"]` is the event time in integer
        nanoseconds since the epoch; the container and Kubernetes fields of
        `APPENDED_FIELDS` are added to every alert as Falco's `append_output` adds them
        (null where not known), so reports can join alerts to workloads. A configured
        `append_output` format adds its text to the output line and its fields.
        """
        document = alert.to_json()
        fields = document["output_fields"]
        table = self.engine.table
        process = table.get(event.get("pid"))
        extra = self.append_output
        if extra is not None:
            text, appended = extra.render_with_fields(event, process, table)
            document["output"] += " " + text
            fields.update(appended)
        fields.update(workload_fields(event, process, table))
        return document

    def internal_alert(self, alert: Alert) -> None:
        """An alert about the sensor itself (drops): on every output, with evt.time and
        the appended fields as every alert has them (the host's, as Falco shows it)."""
        document = alert.to_json()
        fields = document["output_fields"]
        fields.update(dict.fromkeys(APPENDED_FIELDS))
        fields["container.id"] = fields["container.name"] = "host"
        fields["evt.time"] = alert.time_ns
        self.stats.alerts += 1
        key = (alert.rule, alert.priority.label)
        self.stats.matches[key] = self.stats.matches.get(key, 0) + 1
        for output in self.outputs:
            output.emit(document)

    def context(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """What a response needs to act on the process and its container."""
        pid = event.get("pid")
        record = self.state.records.get(pid) if isinstance(pid, int) else None
        record = record or {}
        container_id = record.get("container_id")
        container = self.engine.table.containers.get(container_id) if container_id else None
        cgroup_id = record.get("cgroup_id")
        start_ts = record.get("start_ts")
        return {
            "pid": pid,
            # the process's start time, ns since boot (as /proc/<pid>/stat counts it): a
            # kill checks it, so a pid reused by another process is never killed
            "start_boot_ns": start_ts - self.state.boot_offset_ns
            if isinstance(start_ts, int)
            else None,
            "killed_in_kernel": bool(event.get("killed_in_kernel")),
            "container_id": container_id,
            "cgroup_id": cgroup_id,
            "cgroup_path": self.state.cgroups.path(cgroup_id)
            if isinstance(cgroup_id, int) and cgroup_id > 1
            else None,
            "netns": record.get("netns"),
            "k8s_ns": container.k8s_ns if container is not None else None,
            "k8s_pod": container.k8s_pod if container is not None else None,
            "event_type": event.get("type"),
        }

    def close(self, outputs: Iterable[Output] | None = None) -> None:
        self.sensor.close()
        for output in self.outputs if outputs is None else outputs:
            output.close()
