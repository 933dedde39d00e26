"""Assemble a running sensor from its configuration: rules, sensor, state, outputs, responses.

    service = SensorService(config, stdout=sys.stdout, log=write_json_line)
    service.plan()          # what would be loaded (--dry-run); loads nothing into the kernel
    service.start()         # rules compiled, sensor attached, /proc seeded, metrics served
    service.run(stop)       # until stop is set (SIGTERM, SIGINT, --duration)
    summary = service.close()

The library never prints: alerts go to the configured outputs, and log records (start,
responses, stop) go to the `log` callable as dicts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from skanse.errors import InputError, SensorError, SkanseError, UsageError
from skanse.rules.engine import Alert, Engine
from skanse.rules.loader import Priority, load_rules, read_rules_files
from skanse.rules.output import compile_output
from skanse.runtime import procfs
from skanse.runtime.agent import Agent
from skanse.runtime.config import SensorConfig
from skanse.runtime.containers import (
    CgroupPaths,
    ContainerMetadata,
    RuntimeRoots,
    cgroup1_freezer_mount,
    cgroup2_mount,
    container_from_cgroup,
)
from skanse.runtime.drops import DROP_RULE, DropAction, DropMonitor, DropPolicy, DropReport
from skanse.runtime.enforce import KernelKillPlan, plan_kernel_kills
from skanse.runtime.outputs import (
    JsonLinesOutput,
    Output,
    SyslogOutput,
    TextOutput,
    WebhookOutput,
)
from skanse.runtime.responses import (
    Action,
    JournalEntry,
    Responder,
    ResponseJournal,
    ResponseTargets,
)
from skanse.runtime.state import ProcessState

__all__ = ["SensorService", "build_kubernetes"]

LogFn = Callable[[dict[str, Any]], None]


def build_kubernetes(config: SensorConfig) -> Any:
    """The quarantine client of the configuration, or None."""
    if config.kubernetes is None:
        return None
    from skanse.runtime.kubernetes import HttpKubernetesApi, Quarantine

    k8s = config.kubernetes
    if k8s.api == "in-cluster":
        return Quarantine(HttpKubernetesApi.in_cluster())
    token = None
    if k8s.token_file:
        try:
            token = Path(k8s.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"{k8s.token_file}: {exc.strerror or exc}") from None
    return Quarantine(HttpKubernetesApi(k8s.api, token=token, ca_file=k8s.ca_file))


class SensorService:
    def __init__(
        self,
        config: SensorConfig,
        *,
        stdout: IO[str],
        log: LogFn,
        object_path: Path | None = None,
        btf_path: str = "/sys/kernel/btf/vmlinux",
        dry_run_responses: bool = False,
        config_loader: Callable[[], SensorConfig] | None = None,
    ) -> None:
        self.config = config
        self.config_loader = config_loader
        self._reload_requested = threading.Event()
        self._stop: threading.Event | None = None
        self._drop_monitor: DropMonitor | None = None
        self._next_drop_check = 0.0
        self.exit_reason: str | None = None  # why the sensor stopped itself (drops: exit)
        self.stdout = stdout
        self.log = log
        self.object_path = object_path
        self.btf_path = btf_path
        self.dry_run_responses = dry_run_responses
        self.engine: Engine | None = None
        self.sensor: Any = None
        self.agent: Agent | None = None
        self.outputs: list[Output] = []
        self._metrics: Any = None
        self._cgroups: CgroupPaths | None = None
        self._lock = threading.Lock()
        self.responder: Responder | None = None
        self._kill_cgroups: Callable[[int], None] | None = None  # the kernel kills' scope
        self._next_reisolate_check = 0.0
        self._reisolate_error: str | None = None

    # -- building blocks -------------------------------------------------------------
    def _engine(self, config: SensorConfig | None = None, table: Any = None) -> Engine:
        config = config or self.config
        if not config.rules:
            raise UsageError("no rules: give --rules FILE... or `rules:` in the configuration")
        result = load_rules(read_rules_files(config.rules))
        if result.ruleset is None:
            shown = "\n  ".join(str(d) for d in result.errors[:20])
            raise InputError(f"the rules did not load: {len(result.errors)} error(s)\n  {shown}")
        engine = Engine(result.ruleset, rule_matching=config.rule_matching, table=table)
        if not engine.rules:
            raise InputError("the rules files have no enabled syscall rules")
        return engine

    def _sensor(self, engine: Engine) -> Any:
        if self.config.sensor == "audit":
            from skanse.runtime.audit import AuditSensor

            return AuditSensor(boot_offset_ns=procfs.boot_epoch_offset_ns())
        from skanse.runtime.bpf_sensor import BpfSensor, BpfSensorOptions
        from skanse.runtime.syscalls import SYSCALLS

        types = engine.event_types()
        wanted = frozenset(SYSCALLS) if types is None else types
        return BpfSensor(
            BpfSensorOptions(
                event_types=wanted,
                ring_bytes=self.config.ring_buffer_mib * 1024 * 1024,
                object_path=self.object_path,
                btf_path=self.btf_path,
            )
        )

    def _outputs(self) -> list[Output]:
        out = self.config.outputs
        outputs: list[Output] = []
        if out.stdout:
            outputs.append(
                TextOutput(self.stdout) if out.format == "text" else JsonLinesOutput(self.stdout)
            )
        if out.file:
            outputs.append(JsonLinesOutput(out.file))
        if out.webhook:
            hook = out.webhook
            outputs.append(
                WebhookOutput(
                    hook.url,
                    ca_file=hook.ca_file,
                    insecure=hook.insecure,
                    timeout=hook.timeout,
                    headers=hook.headers,
                )
            )
        if out.syslog:
            outputs.append(SyslogOutput(out.syslog.address, facility=out.syslog.facility))
        return outputs

    def _responder(self, config: SensorConfig | None = None) -> Responder | None:
        config = config or self.config
        policy = config.policy()
        if policy.empty:
            return None
        targets = ResponseTargets(
            cgroup2_mount=self._cgroups.mount if self._cgroups else cgroup2_mount(),
            cgroup1_freezer=cgroup1_freezer_mount(),
        )

        def log(entry: JournalEntry) -> None:
            again = f" (re-isolation, replaces #{entry.reisolates})" if entry.reisolates else ""
            self.log(
                {
                    "level": "warning" if entry.status == "failed" else "info",
                    "msg": f"response {entry.action}{again}: {entry.status}",
                    "response": _entry_dict(entry),
                }
            )

        return Responder(
            policy,
            ResponseJournal(config.state_dir),
            targets=targets,
            kubernetes=build_kubernetes(config),
            dry_run=self.dry_run_responses,
            log=log,
        )

    # -- dry run -----------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        """What the sensor would load and do; nothing is loaded into the kernel."""
        engine = self._engine()
        sensor = self._sensor(engine)
        types = engine.event_types()
        description = sensor.describe()
        rules_cannot_fire: list[str] = []
        unsupported = set(description.get("unsupported_event_types", []))
        if self.config.sensor == "audit":
            unsupported = set(types or ()) - {"execve", "execveat"}
        rules_cannot_fire.extend(
            rule.name
            for rule in engine.rules
            if rule.evttypes is not None and rule.evttypes and rule.evttypes <= unsupported
        )
        policy = self.config.policy()
        return {
            "rules": {
                "files": list(self.config.rules),
                "enabled": len(engine.rules),
                "event_types": sorted(types) if types is not None else "all",
            },
            "sensor": description,
            "rules_that_cannot_fire": rules_cannot_fire,
            "outputs": [
                o
                for o in (
                    "stdout" if self.config.outputs.stdout else None,
                    f"file:{self.config.outputs.file}" if self.config.outputs.file else None,
                    f"webhook:{self.config.outputs.webhook.url}"
                    if self.config.outputs.webhook
                    else None,
                    f"syslog:{self.config.outputs.syslog.address}"
                    if self.config.outputs.syslog
                    else None,
                )
                if o
            ],
            "metrics": (
                f"http://{self.config.metrics.address}:{self.config.metrics.port}/metrics"
                if self.config.metrics
                else None
            ),
            "responses": {
                "by_rule": {k: sorted(a.value for a in v) for k, v in policy.by_rule.items()},
                "by_priority": {p.label: sorted(a.value for a in v) for p, v in policy.by_priority},
                "journal": str(Path(self.config.state_dir) / "responses.json"),
            },
        }

    # -- running -----------------------------------------------------------------------
    def start(self) -> None:
        engine = self._engine()
        started = time.monotonic()
        engine.prepare()
        sensor = self._sensor(engine)
        sensor.start()
        self.sensor = sensor
        try:
            offset = procfs.boot_epoch_offset_ns()
            self._cgroups = CgroupPaths(cgroup2_mount())
            state = ProcessState(
                engine.table,
                users=procfs.UserNames(self.config.host_root),
                cgroups=self._cgroups,
                metadata=ContainerMetadata(RuntimeRoots.under(self.config.host_root)),
                boot_offset_ns=offset,
            )
            kill_plan = self._kill_plan(engine, self.config)
            if kill_plan is not None:
                sensor.set_kill_plan(kill_plan)
                self._kill_cgroups = sensor.add_container_cgroup
            responder = self._responder()
            self.responder = responder
            state.on_container_cgroup = self._container_cgroup
            seeded = state.seed()
            self.outputs = self._outputs()
            extra = (
                compile_output(self.config.append_output, "syscall")
                if self.config.append_output
                else None
            )
            agent = Agent(
                engine,
                sensor,
                state,
                outputs=self.outputs,
                responder=responder,
                append_output=extra,
            )
        except BaseException:
            sensor.close()
            raise
        self.engine = engine
        self.agent = agent
        if self.config.metrics is not None:
            from skanse.runtime.metrics import SensorCollector, serve_metrics

            collector = SensorCollector(
                agent, self.config.sensor, self.outputs, drops=self._drops, busy=self._busy
            )
            try:
                self._metrics = serve_metrics(
                    collector, self.config.metrics.port, self.config.metrics.address
                )
            except OSError as exc:
                self.close()
                raise SensorError(
                    "cannot serve metrics on "
                    f"{self.config.metrics.address}:{self.config.metrics.port}: "
                    f"{exc.strerror or exc}"
                ) from None
        types = engine.event_types()
        self.log(
            {
                "level": "info",
                "msg": "sensor started",
                "sensor": self.config.sensor,
                "rules": len(engine.rules),
                "event_types": sorted(types) if types is not None else "all",
                "processes_seeded": seeded,
                "start_seconds": round(time.monotonic() - started, 3),
                "unsupported_event_types": sorted(getattr(sensor, "unsupported", ())),
                "kernel_kills": kill_plan.describe() if kill_plan is not None else None,
            }
        )

    def _kill_plan(self, engine: Engine, config: SensorConfig) -> KernelKillPlan | None:
        """The kills the kernel program makes itself (eBPF sensor, kill-marked rules)."""
        if config.sensor != "ebpf" or self.dry_run_responses:
            return None
        policy = config.policy()
        kill_rules = [
            rule.name
            for rule in engine.rules
            if Action.KILL in policy.rule_actions(rule.name, rule.priority)
        ]
        plan, _userspace = plan_kernel_kills(engine.rules, kill_rules, allow_host=policy.allow_host)
        return plan

    def _container_cgroup(self, cgroup_id: int) -> None:
        """A container cgroup seen for the first time (an event from it, or the seed)."""
        if self._kill_cgroups is not None:
            self._kill_cgroups(cgroup_id)
        responder = self.responder
        if responder is None or self._cgroups is None:
            return
        # a restarted container's first exec or clone comes from its new cgroup: isolated
        # again at once if the journal says it is isolated
        path = self._cgroups.path(cgroup_id)
        ref = container_from_cgroup(path) if path else None
        if ref is not None:
            self._reisolate(responder, ref.id)

    def _reisolate(self, responder: Responder, container: str | None = None) -> None:
        try:
            responder.reisolate(container)
        except (SkanseError, OSError) as exc:  # the journal unreadable or unwritable
            message = str(exc)
            if message != self._reisolate_error:  # once, not every second
                self._reisolate_error = message
                self.log(
                    {
                        "level": "error",
                        "msg": "cannot check the isolated containers for a restart",
                        "error": message,
                    }
                )
        else:
            self._reisolate_error = None

    def _drops(self) -> tuple[int, int]:
        with self._lock:
            if self.sensor is None:
                return (0, 0)
            try:
                result: tuple[int, int] = self.sensor.drops()
            except SensorError:
                return (0, 0)
            return result

    def _busy(self) -> int:
        return self._counter("dropped_busy")

    def _counter(self, name: str) -> int:
        with self._lock:
            counters = getattr(self.sensor, "counters", None)
            if counters is None:
                return 0
            try:
                return int(getattr(counters(), name))
            except SensorError:
                return 0

    def run(self, stop: threading.Event) -> None:
        if self.agent is None:
            raise SensorError("the sensor was not started")
        self._stop = stop
        self._drop_monitor = DropMonitor(_drop_policy(self.config))
        self.agent.between_batches = self._between_batches
        self.agent.run(stop)
        if self.exit_reason is not None:
            raise SensorError(self.exit_reason)

    def _between_batches(self) -> None:
        self._reload_if_requested()
        now = time.monotonic()
        if self.responder is not None and now >= self._next_reisolate_check:
            # the backstop: a restarted container whose events were missed (dropped, or
            # it runs nothing new) is isolated again within a second
            self._next_reisolate_check = now + 1.0
            self._reisolate(self.responder)
        if self._drop_monitor is not None and now >= self._next_drop_check:
            self._next_drop_check = now + 0.25
            produced, dropped = self._drops()
            report = self._drop_monitor.check(now, produced, dropped)
            if report is not None:
                self._on_drops(report)

    def _on_drops(self, report: DropReport) -> None:
        agent = self.agent
        counts = {
            "n_drops": report.n_drops,
            "n_evts": report.n_evts,
            "n_drops_total": report.n_drops_total,
            "n_evts_total": report.n_evts_total,
            "n_intervals": report.intervals,
        }
        if DropAction.LOG in report.actions:
            self.log({"level": "critical", "msg": report.message(), **counts})
        if DropAction.ALERT in report.actions and agent is not None:
            agent.stats.drop_alerts += 1
            agent.internal_alert(
                Alert(
                    time_ns=time.time_ns(),
                    rule=DROP_RULE,
                    priority=Priority.CRITICAL,
                    source="syscall",
                    hostname=agent.engine.hostname,
                    output=report.message(),
                    output_fields={**counts, "ebpf_enabled": self.config.sensor == "ebpf"},
                    tags=(),
                )
            )
        if DropAction.EXIT in report.actions and self._stop is not None:
            self.exit_reason = (
                f"{report.n_drops} of {report.n_evts} kernel records dropped in the last "
                "second (syscall_event_drops: exit)"
            )
            self._stop.set()

    # -- reload (SIGHUP) ---------------------------------------------------------------
    def request_reload(self) -> None:
        """Reload rules and configuration at the loop's next turn (safe in a signal handler)."""
        self._reload_requested.set()

    def _reload_if_requested(self) -> None:
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            if self.reload() and self._drop_monitor is not None:
                self._drop_monitor.policy = _drop_policy(self.config)

    def reload(self) -> bool:
        """Rules and configuration read again and swapped in whole, or not at all.

        Everything new is built first (configuration, rules compiled, responses, the
        append_output format); only then is it swapped in, between two batches, and the
        kernel's syscall filter reprogrammed for the new rules' event types. A file that
        does not load leaves the running ruleset and configuration as they were, and the
        error, located in its file, is logged. Outputs, metrics and the sensor kind are
        fixed at start: a change to them is logged as needing a restart.
        """
        agent = self.agent
        if agent is None or self.engine is None:
            return False
        try:
            config = self.config_loader() if self.config_loader is not None else self.config
            engine = self._engine(config, table=self.engine.table)
            engine.prepare()
            responder = self._responder(config)
            extra = (
                compile_output(config.append_output, "syscall") if config.append_output else None
            )
        except SkanseError as exc:
            self.log(
                {
                    "level": "error",
                    "msg": "reload failed: the rules and configuration loaded before stay",
                    "error": str(exc),
                }
            )
            return False
        fixed = [
            key
            for key in ("sensor", "outputs", "metrics", "ring_buffer_mib", "host_root")
            if getattr(config, key) != getattr(self.config, key)
        ]
        types = engine.event_types()
        kill_plan = self._kill_plan(engine, config)
        if self.config.sensor != "audit" and hasattr(self.sensor, "set_event_types"):
            from skanse.runtime.syscalls import SYSCALLS

            self.sensor.set_event_types(frozenset(SYSCALLS) if types is None else types)
            if kill_plan is not None:
                self.sensor.set_kill_plan(kill_plan)
                self._kill_cgroups = self.sensor.add_container_cgroup
        agent.engine = engine
        agent.responder = responder
        self.responder = responder
        agent.append_output = extra
        self.engine = engine
        self.config = config
        record: dict[str, Any] = {
            "level": "info",
            "msg": "rules reloaded",
            "rules": len(engine.rules),
            "event_types": sorted(types) if types is not None else "all",
        }
        if fixed:
            record["needs_restart"] = fixed
        self.log(record)
        return True

    def close(self) -> dict[str, Any]:
        """Stop everything; the summary (events, alerts, produced/delivered/dropped)."""
        summary: dict[str, Any] = {}
        if self._metrics is not None:
            server, thread = self._metrics
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._metrics = None
        if self.sensor is not None:
            produced, dropped = self._drops()
            agent = self.agent
            summary = {
                "records_produced": produced,
                "records_dropped_with_room_left": self._busy(),
                "reservations_retried": self._counter("retried"),
                "records_delivered": self.sensor.delivered,
                "records_dropped": dropped,
                "events_evaluated": agent.stats.events if agent else 0,
                "alerts": agent.stats.alerts if agent else 0,
                "malformed_records": agent.stats.malformed if agent else 0,
                "record_errors": agent.stats.errors if agent else 0,
                "max_backlog_bytes": agent.stats.max_backlog_bytes if agent else 0,
                "events_by_type": dict(sorted(agent.stats.by_kind.items())) if agent else {},
            }
            with self._lock:
                self.sensor.close()
                self.sensor = None
        for output in self.outputs:
            output.close()
            if output.stats.failed or output.stats.dropped:
                summary.setdefault("output_failures", {})[output.name] = (
                    output.stats.failed + output.stats.dropped
                )
        self.outputs = []
        if self._cgroups is not None:
            self._cgroups.close()
            self._cgroups = None
        return summary

    def on_alert(self, callback: Callable[[Alert, Mapping[str, Any]], None]) -> None:
        if self.agent is not None:
            self.agent.on_alert = callback


def _drop_policy(config: SensorConfig) -> DropPolicy:
    drops = config.syscall_event_drops
    return DropPolicy.parse(drops.threshold, drops.actions, drops.rate, drops.max_burst)


def _entry_dict(entry: JournalEntry) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: v for k, v in asdict(entry).items() if v is not None}
