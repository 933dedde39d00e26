"""`skanse runtime ...`: runtime detection. `replay` evaluates recorded events offline.

Each action is one entry of `ACTIONS` (`add_arguments(sub)` and `run(args)`), so the live
sensor (`skanse runtime run`) is added as another entry without touching `replay`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["ACTIONS", "add_arguments", "run"]

FORMATS = ("text", "jsonl", "json", "sarif", "junit")


def _replay_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="evaluate recorded events (JSON lines) or a Kubernetes audit log against rules",
        description=(
            "Replay recorded events through the rules engine and print the alerts.\n\n"
            "  skanse runtime replay events.jsonl --rules falco_rules.yaml\n"
            "  skanse runtime replay --source k8s_audit audit.log --rules k8s_audit_rules.yaml\n\n"
            "Syscall events follow docs/runtime-events.md; audit logs are the API server's\n"
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
        "--strict", action="store_true", help="exit 2 if any input line could not be read"
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
    import io
    from pathlib import Path

    from skanse import __version__
    from skanse.errors import InputError, UsageError
    from skanse.files import write_atomic
    from skanse.model import Severity
    from skanse.report import Format, ReportInfo, render
    from skanse.report._info import find_repo_root
    from skanse.rules.engine import Engine
    from skanse.rules.loader import RulesFile, load_rules
    from skanse.rules.replay import alerts_to_result, replay

    fail_on = None
    if args.fail_on:
        try:
            fail_on = Severity.parse(args.fail_on)
        except ValueError as exc:
            raise UsageError(f"--fail-on: {exc}") from None
    files = []
    for name in args.rules:
        try:
            files.append(RulesFile(name, Path(name).read_bytes()))
        except OSError as exc:
            raise InputError(f"{name}: {exc.strerror or exc}") from None
    result = load_rules(files)
    if result.ruleset is None:
        for diag in result.errors:
            sys.stderr.write(f"{diag}\n")
        raise InputError(f"the rules did not load: {len(result.errors)} error(s)")
    engine = Engine(
        result.ruleset,
        source=args.source,
        rule_matching=args.rule_matching,
        strict_missing=args.strict_missing,
    )
    if not engine.rules:
        sys.stderr.write(f"warning: no enabled {args.source} rules in the rules files\n")
    if args.input == "-":
        alerts, summary = replay(engine, sys.stdin.buffer, max_line_bytes=args.max_line_bytes)
    else:
        try:
            stream = open(args.input, "rb")
        except OSError as exc:
            raise InputError(f"{args.input}: {exc.strerror or exc}") from None
        with stream:
            alerts, summary = replay(engine, stream, max_line_bytes=args.max_line_bytes)

    out = io.StringIO()
    if args.format == "text":
        for item in alerts:
            out.write(item.alert.line() + "\n")
    elif args.format == "jsonl":
        import json

        for item in alerts:
            out.write(json.dumps(item.alert.to_json(), ensure_ascii=False) + "\n")
    else:
        scan = alerts_to_result(alerts, summary, result.ruleset, args.input)
        info = ReportInfo(
            tool_version=__version__,
            source_root=find_repo_root(Path.cwd()),
            kind="skanse.runtime-replay",
        )
        out.write(render(Format(args.format), scan, info))
    if args.output:
        write_atomic(args.output, out.getvalue())
    else:
        sys.stdout.write(out.getvalue())
        sys.stdout.flush()

    if not args.quiet:
        sys.stderr.write(
            f"replayed {summary.events} event(s) from {summary.lines} line(s): "
            f"{summary.alerts} alert(s), {len(summary.problems)} line(s) skipped"
            + (f", {summary.eval_errors} evaluation error(s)" if summary.eval_errors else "")
            + "\n"
        )
        for problem in summary.problems[:20]:
            sys.stderr.write(f"  {args.input}:{problem.line}: {problem.message}\n")
        if len(summary.problems) > 20:
            sys.stderr.write(f"  ... and {len(summary.problems) - 20} more\n")
        for hit in engine.stats.missing_hits[:50]:
            sys.stderr.write(
                f"  strict-missing: '{hit.rule}' matched event {hit.event_num} only because "
                f"of missing field(s): {', '.join(hit.fields) or '?'}\n"
            )
    if args.strict and summary.problems:
        return 2
    if fail_on is not None and any(a.alert.priority.severity >= fail_on for a in alerts):
        return 1
    return 0


ACTIONS: dict[str, tuple[Callable[..., None], Callable[[argparse.Namespace], int]]] = {
    "replay": (_replay_arguments, _replay),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for add, _ in ACTIONS.values():
        add(sub)


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.action][1](args)
