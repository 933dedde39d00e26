"""`skanse runtime ...`: runtime detection.

`run` is the live sensor (eBPF, or the audit fallback), `release` undoes the responses it
took against a container, `replay` evaluates recorded events offline. Each action is one
entry of `ACTIONS` (`add_arguments(sub)` and `run(args)`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from typing import Any

from skanse._cli import shown

__all__ = ["ACTIONS", "add_arguments", "run"]

FORMATS = ("text", "jsonl", "json", "sarif", "junit")


def _replay_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="evaluate recorded events (JSON lines, a .scap capture) or a Kubernetes audit "
        "log against rules",
        description=(
            "Replay recorded events through the rules engine and print the alerts.\n\n"
            "  skanse runtime replay events.jsonl --rules falco_rules.yaml\n"
            "  skanse runtime replay incident.scap --rules falco_rules.yaml\n"
            "  skanse runtime replay --source k8s_audit audit.log --rules k8s_audit_rules.yaml\n\n"
            "Syscall events follow docs/runtime-events.md; a .scap capture (Falco's or\n"
            "sysdig's, gzipped or not) is decoded by sysdig, libsinsp's reader, and its\n"
            "exit events replayed; audit logs are the API server's\n"
            "JSON lines (one audit.k8s.io Event per line). Invalid lines are reported with\n"
            "their number and skipped. Formats: text (Falco's alert lines), jsonl (Falco's\n"
            "JSON alerts, one per line), json, sarif, junit (skanse reports)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("input", metavar="EVENTS", help="events file; - reads standard input")
    replay.add_argument(
        "--rules", nargs="+", required=True, metavar="FILE", help="rules files, loaded in order"
    )
    replay.add_argument("--source", choices=("syscall", "k8s_audit"), default="syscall")
    replay.add_argument("-f", "--format", choices=FORMATS, default="text")
    replay.add_argument("-o", "--output", metavar="FILE", help="write alerts to FILE (atomically)")
    replay.add_argument(
        "--rule-matching",
        choices=("first", "all"),
        default="first",
        help="stop at the first matching rule per event (Falco's default) or report all",
    )
    replay.add_argument(
        "--strict-missing",
        action="store_true",
        help="do not alert when a rule matched only because a field was missing (a negated "
        "check on an absent value); list those hits on standard error instead",
    )
    replay.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        default=None,
        help="exit 1 if an alert maps to this skanse severity or above",
    )
    replay.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 if any input line could not be read, or an event not fully checked (a "
        "value of the wrong type, which rules read as missing, or a rule that raised on it)",
    )
    replay.add_argument(
        "--max-line-bytes",
        type=int,
        default=16 * 1024 * 1024,
        metavar="N",
        help="skip (and report) event lines longer than N bytes (default: 16 MiB)",
    )
    replay.add_argument("-q", "--quiet", action="store_true", help="no summary on standard error")


def _replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from skanse import __version__
    from skanse._cli._common import emit, emit_stream
    from skanse.errors import InputError, UsageError
    from skanse.model import Severity
    from skanse.report import Format, ReportInfo, render
    from skanse.report._info import find_repo_root
    from skanse.rules.engine import Engine
    from skanse.rules.loader import load_rules, read_rules_files
    from skanse.rules.replay import alerts_to_result

    fail_on = None
    if args.fail_on:
        try:
            fail_on = Severity.parse(args.fail_on)
        except ValueError as exc:
            raise UsageError(f"--fail-on: {exc}") from None
    result = load_rules(read_rules_files(args.rules))
    if result.ruleset is None:
        for diag in result.errors:
            sys.stderr.write(f"{shown(str(diag))}\n")
        raise InputError(f"the rules did not load: {len(result.errors)} error(s)")
    engine = Engine(
        result.ruleset,
        source=args.source,
        rule_matching=args.rule_matching,
        strict_missing=args.strict_missing,
    )
    if not engine.rules:
        sys.stderr.write(f"warning: no enabled {args.source} rules in the rules files\n")
    from skanse.rules.replay import ReplayAlert, ReplaySummary, replay_stream
    from skanse.rules.scap import is_scap, replay_scap_stream

    summary = ReplaySummary()

    def replayed() -> Iterator[ReplayAlert]:
        if args.input == "-":
            yield from replay_stream(
                engine, sys.stdin.buffer, summary, max_line_bytes=args.max_line_bytes
            )
        elif args.source == "syscall" and is_scap(args.input):
            yield from replay_scap_stream(engine, args.input, summary)
        else:
            try:
                stream = open(args.input, "rb")
            except OSError as exc:
                raise InputError(f"{args.input}: {exc.strerror or exc}") from None
            with stream:
                yield from replay_stream(
                    engine, stream, summary, max_line_bytes=args.max_line_bytes
                )

    if args.format in ("text", "jsonl"):
        # alert lines are written as they are found, none kept: a long capture's alerts
        # would otherwise all be held (and their text twice) until the end
        from skanse.printable import printable, printable_json

        def alert_line(item: ReplayAlert) -> str:
            if args.format == "text":  # one line per alert: a newline in a field is escaped
                return printable(item.alert.line()) + "\n"
            document = item.alert.to_json()
            document["output_fields"].update(item.workload)
            return printable_json(document) + "\n"

        with emit_stream(args.output) as write:
            for item in replayed():
                write(alert_line(item))
    else:  # a report is one document of every finding: the alerts are collected for it
        alerts = list(replayed())
        scan = alerts_to_result(alerts, summary, result.ruleset, args.input)
        info = ReportInfo(
            tool_version=__version__,
            source_root=find_repo_root(Path.cwd()),
            kind="skanse.runtime-replay",
        )
        emit(render(Format(args.format), scan, info), args.output)

    if not args.quiet:
        sys.stderr.write(
            f"replayed {summary.events} event(s) from {summary.lines} line(s): "
            f"{summary.alerts} alert(s), {summary.skipped} line(s) skipped"
            + (f", {summary.eval_errors} evaluation error(s)" if summary.eval_errors else "")
            + (
                f", {summary.not_fully_checked} event(s) not fully checked"
                if summary.not_fully_checked
                else ""
            )
            + "\n"
        )
        for problem in summary.problems[:20]:
            sys.stderr.write(f"  {shown(f'{args.input}:{problem.line}: {problem.message}')}\n")
        if summary.skipped > 20:
            sys.stderr.write(f"  ... and {summary.skipped - 20} more\n")
        for problem in summary.unchecked[:20]:
            where = f"{args.input}:{problem.line}"
            sys.stderr.write(f"  {shown(f'{where}: not fully checked: {problem.message}')}\n")
        if summary.not_fully_checked > 20:
            sys.stderr.write(f"  ... and {summary.not_fully_checked - 20} more not fully checked\n")
        for hit in engine.stats.missing_hits[:50]:
            line = (
                f"strict-missing: '{hit.rule}' matched event {hit.event_num} only because "
                f"of missing field(s): {', '.join(hit.fields) or '?'}"
            )
            sys.stderr.write(f"  {shown(line)}\n")
        if engine.stats.missing_hit_count > 50:
            more = engine.stats.missing_hit_count - 50
            sys.stderr.write(f"  ... and {more} more strict-missing hit(s)\n")
    if args.strict and (summary.skipped or summary.not_fully_checked):
        return 2
    if fail_on is not None and summary.worst is not None and summary.worst.severity >= fail_on:
        return 1
    return 0


def _run_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run the eBPF sensor: kernel events against rules, alerts, responses",
        description=(
            "Watch this machine's processes with the eBPF sensor (or the audit fallback),\n"
            "evaluate the events with Falco-compatible rules, write Falco-shaped JSON alerts.\n\n"
            "  skanse runtime run --rules falco_rules.yaml\n"
            "  skanse runtime run --config /etc/skanse/sensor.yaml --metrics-port 9376\n"
            "  skanse runtime run --rules falco_rules.yaml --dry-run\n\n"
            "Needs root (or CAP_BPF, CAP_PERFMON) and a kernel >= 5.17 with BTF; without them it\n"
            "names what is missing. Stops on SIGTERM or SIGINT, detaching everything it loaded.\n"
            "SIGHUP reloads the rules and configuration; a file that does not load keeps\n"
            "the running ones and logs the error with its location.\n"
            "Logs are JSON lines on standard error; alerts go to standard output by default."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--rules", nargs="+", metavar="FILE", help="rules files, loaded in order")
    run.add_argument(
        "--config", metavar="FILE", help="sensor configuration (YAML); flags override it"
    )
    run.add_argument("--sensor", choices=("ebpf", "audit"), help="event source (default: ebpf)")
    run.add_argument("--dry-run", action="store_true", help="print what would be loaded and exit")
    run.add_argument("-f", "--format", choices=("jsonl", "text"), help="standard output format")
    run.add_argument(
        "--no-stdout", action="store_true", help="do not write alerts to standard output"
    )
    run.add_argument("-o", "--output", metavar="FILE", help="also append JSON alerts to FILE")
    run.add_argument("--webhook", metavar="URL", help="POST each alert (Falcosidekick-compatible)")
    run.add_argument("--webhook-ca", metavar="FILE", help="CA bundle for an https webhook")
    run.add_argument(
        "--webhook-insecure",
        action="store_true",
        help="do not verify the webhook's TLS certificate",
    )
    run.add_argument(
        "--syslog", metavar="ADDRESS", help="/dev/log, udp://HOST:PORT or tcp://HOST:PORT"
    )
    run.add_argument(
        "--metrics-port", type=int, metavar="N", help="serve Prometheus metrics on this port"
    )
    run.add_argument(
        "--metrics-address", metavar="ADDR", help="metrics address (default 127.0.0.1)"
    )
    run.add_argument(
        "--respond-rule",
        action="append",
        default=[],
        metavar="RULE=ACTIONS",
        help="act when RULE fires: kill, freeze, isolate, quarantine (comma-separated)",
    )
    run.add_argument(
        "--respond-priority",
        action="append",
        default=[],
        metavar="PRIORITY=ACTIONS",
        help="act on alerts of PRIORITY or more severe",
    )
    run.add_argument(
        "--allow-host-kill", action="store_true", help="let `kill` act on host processes too"
    )
    run.add_argument(
        "--respond-dry-run", action="store_true", help="journal the responses without acting"
    )
    run.add_argument(
        "--kube-api", metavar="URL", help="Kubernetes API for quarantine (or 'in-cluster')"
    )
    run.add_argument("--kube-token-file", metavar="FILE")
    run.add_argument("--kube-ca", metavar="FILE")
    run.add_argument(
        "--state-dir", metavar="DIR", help="response journal directory (default /var/lib/skanse)"
    )
    run.add_argument(
        "--ring-buffer-mib",
        type=int,
        metavar="N",
        help="kernel ring buffer per CPU, MiB (default 16)",
    )
    run.add_argument("--rule-matching", choices=("first", "all"))
    run.add_argument("--append-output", metavar="FORMAT", help="fields appended to every alert")
    run.add_argument("--host-root", metavar="DIR", help="the host's root (in a container: /host)")
    run.add_argument("--bpf-object", metavar="FILE", help="use this compiled BPF object")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    run.add_argument("-q", "--quiet", action="store_true", help="no log lines on standard error")


def _sensor_config(args: argparse.Namespace) -> Any:
    from skanse.errors import UsageError
    from skanse.runtime.config import (
        KubernetesConfig,
        MetricsConfig,
        ResponseRule,
        SensorConfig,
        SyslogConfig,
        WebhookConfig,
        load_sensor_config,
    )

    config = load_sensor_config(args.config) if args.config else SensorConfig()
    updates: dict[str, Any] = {}
    if args.rules:
        updates["rules"] = list(args.rules)
    for key in ("sensor", "rule_matching", "append_output", "state_dir", "host_root"):
        value = getattr(args, key)
        if value is not None:
            updates[key] = value
    if args.ring_buffer_mib is not None:
        updates["ring_buffer_mib"] = args.ring_buffer_mib
    outputs = config.outputs.model_dump()
    if args.format:
        outputs["format"] = args.format
    if args.no_stdout:
        outputs["stdout"] = False
    if args.output:
        outputs["file"] = args.output
    if args.webhook:
        outputs["webhook"] = WebhookConfig(
            url=args.webhook, ca_file=args.webhook_ca, insecure=args.webhook_insecure
        ).model_dump()
    if args.syslog:
        outputs["syslog"] = SyslogConfig(address=args.syslog).model_dump()
    updates["outputs"] = outputs
    if args.metrics_port is not None:
        updates["metrics"] = MetricsConfig(
            port=args.metrics_port, address=args.metrics_address or "127.0.0.1"
        )
    responses = list(config.responses)
    for spec, key in [(s, "rule") for s in args.respond_rule] + [
        (s, "priority") for s in args.respond_priority
    ]:
        selector, sep, actions = spec.rpartition("=")
        if not sep or not selector.strip() or not actions.strip():
            raise UsageError(f"--respond-{key} expects {key.upper()}=ACTIONS, not {spec!r}")
        responses.append(
            ResponseRule(**{key: selector.strip()}, actions=[a.strip() for a in actions.split(",")])
        )
    updates["responses"] = responses
    if args.allow_host_kill:
        updates["allow_host_kill"] = True
    if args.kube_api:
        updates["kubernetes"] = KubernetesConfig(
            api=args.kube_api, token_file=args.kube_token_file, ca_file=args.kube_ca
        )
    try:
        return SensorConfig.model_validate(
            {
                **config.model_dump(),
                **{
                    k: (v.model_dump() if hasattr(v, "model_dump") else v)
                    for k, v in updates.items()
                },
                "responses": [r.model_dump() for r in responses],
            }
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _log_writer(quiet: bool) -> Callable[[dict[str, Any]], None]:
    import datetime as dt

    from skanse.printable import printable_json

    def log(record: dict[str, Any]) -> None:
        if quiet and record.get("level") not in ("warning", "error", "critical"):
            return
        line = {
            "ts": dt.datetime.now(tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.get("level", "info"),
            "logger": "skanse.runtime",
        }
        line.update(record)
        # a log line can carry a rule's name, a path or a reload error's text
        sys.stderr.write(printable_json(line, default=str) + "\n")
        sys.stderr.flush()

    return log


def _run(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading
    from pathlib import Path

    from skanse.runtime.service import SensorService

    config = _sensor_config(args)
    log = _log_writer(args.quiet)
    service = SensorService(
        config,
        stdout=sys.stdout,
        log=log,
        object_path=Path(args.bpf_object) if args.bpf_object else None,
        dry_run_responses=args.respond_dry_run,
        config_loader=lambda: _sensor_config(args),
    )
    if args.dry_run:
        sys.stdout.write(json.dumps(service.plan(), indent=2) + "\n")
        return 0
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def _stop(signum: int, _frame: object) -> None:
        log({"level": "info", "msg": f"received {signal.Signals(signum).name}: stopping"})
        stop.set()

    def _reload(signum: int, _frame: object) -> None:
        log({"level": "info", "msg": "received SIGHUP: reloading rules and configuration"})
        service.request_reload()

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _stop)
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, _reload)
    timer = None
    try:
        service.start()
        if args.duration is not None:
            timer = threading.Timer(args.duration, stop.set)
            timer.daemon = True
            timer.start()
        service.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        summary = service.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
        if summary:
            log({"level": "info", "msg": "sensor stopped", **summary})
    return 0


def _release_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    release = sub.add_parser(
        "release",
        help="undo the responses taken against a container (thaw, remove isolation, unlabel)",
        description=(
            "Undo what `skanse runtime run` did to a container: thaw its frozen cgroup,\n"
            "delete the nftables isolation table in its network namespace, remove the\n"
            "quarantine label from its pod. A killed process stays dead.\n\n"
            "CONTAINER is the 12-hex id alerts show, or more of the full id; unlike\n"
            "docker and podman, which take any unique prefix, nothing shorter is taken,\n"
            "and an id two journaled containers begin with is an error naming both.\n\n"
            "  skanse runtime release 3f2a9c1b7d4e"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    release.add_argument(
        "container",
        metavar="CONTAINER",
        help="container id: its 12-hex short id, or a longer prefix of the full id",
    )
    release.add_argument("--state-dir", default="/var/lib/skanse", metavar="DIR")
    release.add_argument("--kube-api", metavar="URL", help="Kubernetes API (or 'in-cluster')")
    release.add_argument("--kube-token-file", metavar="FILE")
    release.add_argument("--kube-ca", metavar="FILE")


def _release(args: argparse.Namespace) -> int:
    from skanse.runtime.config import KubernetesConfig, SensorConfig
    from skanse.runtime.containers import cgroup1_freezer_mount, cgroup2_mount
    from skanse.runtime.responses import ResponseJournal, ResponseTargets, release
    from skanse.runtime.service import build_kubernetes

    # release() checks the id (the 12-hex short id or more; not ambiguous) before it undoes
    # anything
    kubernetes = None
    if args.kube_api:
        kubernetes = build_kubernetes(
            SensorConfig(
                kubernetes=KubernetesConfig(
                    api=args.kube_api, token_file=args.kube_token_file, ca_file=args.kube_ca
                )
            )
        )
    results = release(
        args.container,
        ResponseJournal(args.state_dir),
        targets=ResponseTargets(
            cgroup2_mount=cgroup2_mount(), cgroup1_freezer=cgroup1_freezer_mount()
        ),
        kubernetes=kubernetes,
    )
    if not results:
        sys.stdout.write(f"nothing to release for container {args.container[:12]}\n")
        return 0
    failed = 0
    for result in results:
        mark = "released" if result.ok else "FAILED"
        sys.stdout.write(
            f"{mark}: {result.entry.action} (response {result.entry.id}): {result.message}\n"
        )
        failed += not result.ok
    return 2 if failed else 0


ACTIONS: dict[str, tuple[Callable[..., None], Callable[[argparse.Namespace], int]]] = {
    "run": (_run_arguments, _run),
    "release": (_release_arguments, _release),
    "replay": (_replay_arguments, _replay),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for add, _ in ACTIONS.values():
        add(sub)


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.action][1](args)
