"""`skanse history list | prune`: the posture reports kept over time."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

__all__ = ["add_arguments", "run"]


def _store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="SQLite file or postgresql:// URL (default: $SKANSE_HISTORY, else "
        "~/.local/share/skanse/history.sqlite)",
    )
    parser.add_argument("--cluster", metavar="NAME", default=None, help="only this cluster's runs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The runs `skanse report --history` recorded: when, for which cluster, how many\n"
        "findings by severity. Prune old runs by count or by date.\n\n"
        "  skanse history list\n"
        "  skanse history list --store postgresql://skanse@db.example/skanse --cluster prod\n"
        "  skanse history prune --keep 90\n"
        "  skanse history prune --before 2026-01-01"
    )
    sub = parser.add_subparsers(dest="history_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="the recorded runs, oldest first")
    _store(p)
    p.add_argument("-n", "--last", type=int, default=None, help="only the last N runs")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p = sub.add_parser("prune", help="delete old runs")
    _store(p)
    p.add_argument("--keep", type=int, default=None, metavar="N", help="keep the newest N runs")
    p.add_argument(
        "--before",
        metavar="DATE",
        default=None,
        help="delete runs before this date (YYYY-MM-DD or an ISO 8601 time, UTC)",
    )


def run(args: argparse.Namespace) -> int:
    from skanse.errors import UsageError
    from skanse.printable import printable
    from skanse.report.history import MAX_RUNS, open_history, redact

    if args.history_command == "prune":
        if args.keep is None and args.before is None:
            raise UsageError("prune needs --keep N and/or --before DATE")
        if args.keep is not None and args.keep < 1:
            raise UsageError("--keep must be at least 1 (to delete every run, delete the store)")
        before = None
        if args.before is not None:
            try:
                before = dt.datetime.fromisoformat(args.before)
            except ValueError:
                raise UsageError(f"--before {args.before!r} is not a date") from None
            if before.tzinfo is None:
                before = before.replace(tzinfo=dt.UTC)
            try:  # in UTC now, so that a date at the end of the calendar is the user's error
                before = before.astimezone(dt.UTC)
            except OverflowError:
                raise UsageError(f"--before {args.before!r} is out of range in UTC") from None
        with open_history(args.store, create=False) as store:
            deleted = store.prune(keep=args.keep, before=before, cluster=args.cluster)
            print(
                f"skanse: deleted {deleted} run(s) from {redact(store.location)}", file=sys.stderr
            )
        return 0
    if args.last is not None and not 1 <= args.last <= MAX_RUNS:
        raise UsageError(f"--last must be between 1 and {MAX_RUNS}")
    with open_history(args.store, create=False) as store:
        runs = store.runs(args.cluster, args.last) if args.cluster else store.runs(None)
        if args.last is not None and not args.cluster:
            runs = runs[-args.last :]
        if args.json:
            doc = [
                {
                    "id": r.id,
                    "cluster": r.cluster,
                    "generated": r.generated,
                    "title": r.title,
                    "tool_version": r.tool_version,
                    "findings": r.findings,
                    "by_severity": dict(r.by_severity),
                }
                for r in runs
            ]
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return 0
        sys.stdout.write(
            f"{'ID':>5}  {'CLUSTER':<16} {'GENERATED':<26} {'FINDINGS':>8}  BY SEVERITY\n"
        )
        for r in runs:
            severities = " ".join(f"{k[0]}{v}" for k, v in r.by_severity.items() if v)
            # a shared store is written by others: its text must not repaint the terminal or
            # add rows of its own
            cluster, generated = printable(r.cluster)[:16], printable(r.generated)[:26]
            sys.stdout.write(
                f"{r.id:>5}  {cluster:<16} {generated:<26} {r.findings:>8}  {severities or '-'}\n"
            )
        if not runs:
            print(
                f"skanse: no run recorded in {printable(redact(store.location))}", file=sys.stderr
            )
    return 0
