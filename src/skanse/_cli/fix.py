"""`skanse fix`: rewrite files into the standard, show the diff, or check nothing is left."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skanse.fix.model import FileFix, FixReport

__all__ = ["add_arguments", "run"]

DEFAULT_POLICY_FILE = "default-deny-networkpolicies.yaml"
_DEFAULT = "\0default"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fix what skanse scan finds, in place: the pod and container securityContext of\n"
        "Kubernetes workloads, non-root users in Dockerfiles, ADD -> COPY, COPY --chown, and\n"
        "(with --network-policies) default-deny NetworkPolicies. Same inputs, settings and\n"
        "suppressions as skanse scan; suppressed findings are never touched.\n\n"
        "Fixes are safe (they cannot take away anything the workload does at run time beyond\n"
        "the finding, and never overturn a value the author wrote) or unsafe (a new user,\n"
        "a read-only root filesystem, removed capabilities...). Only safe fixes are applied\n"
        "unless --unsafe-fixes; --diff shows both, marked. Capabilities a container needs (a\n"
        "port below 1024, a known workload) are kept and reported.\n\n"
        "  skanse fix deploy/ --diff         # show what would change\n"
        "  skanse fix deploy/ --unsafe-fixes --select SKN-K8S-023\n"
        "  skanse fix deploy/ --check        # exit 1 if anything would change (CI)\n"
        "  skanse fix deploy/ Dockerfile --network-policies\n\n"
        "exit codes: 0 done (or nothing to do), 1 with --check: something would change,\n"
        "2 usage or configuration error, an input that could not be read or parsed, or a\n"
        "file that needed fixing and could not be fixed (such files are left untouched)."
    )
    parser.add_argument(
        "paths",
        nargs="*",
        default=None,
        metavar="PATH",
        help="files or directories to fix (default: .)",
    )
    mode = parser.add_argument_group("mode")
    mode.add_argument(
        "--diff", action="store_true", help="print a unified diff instead of writing files"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if anything would change (with --diff: show it too)",
    )
    parser.add_argument(
        "--unsafe-fixes",
        action="store_true",
        default=None,
        help="apply unsafe fixes too (they may change what the workload can do at run time)",
    )
    parser.add_argument(
        "--select",
        metavar="ID[,ID]",
        action="append",
        default=None,
        help="fix only findings of these checks (ids or peers' aliases)",
    )
    parser.add_argument(
        "--ignore",
        metavar="ID[,ID]",
        action="append",
        default=None,
        help="leave findings of these checks as they are",
    )
    parser.add_argument(
        "--network-policies",
        nargs="?",
        const=_DEFAULT,
        default=None,
        metavar="FILE",
        help="write a default-deny NetworkPolicy for each namespace that has workloads and "
        f"none, into the new FILE (default: {DEFAULT_POLICY_FILE} in the first PATH)",
    )
    parser.add_argument(
        "--profile",
        choices=("pss-baseline", "pss-restricted", "zero-trust"),
        default=None,
        help="checks whose findings are fixed (default: zero-trust)",
    )
    parser.add_argument("--pss", metavar="LEVEL[@VERSION]", default=None, help="as for skanse scan")
    parser.add_argument(
        "--type",
        choices=("auto", "kubernetes", "dockerfile"),
        default=None,
        help="what the inputs are (default: auto, by file name)",
    )
    parser.add_argument("--enable", metavar="ID[,ID]", action="append", default=None)
    parser.add_argument(
        "--disable", metavar="ID[,ID]", action="append", default=None, help="never fix these"
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        default=None,
        help="namespace of objects that name none (default: default)",
    )
    parser.add_argument("--max-file-size", metavar="MIB", type=int, default=None)
    from skanse._cli.scan import add_build_context_argument

    add_build_context_argument(parser)
    config = parser.add_mutually_exclusive_group()
    config.add_argument(
        "--config", metavar="FILE", default=None, help="read settings and suppressions from FILE"
    )
    config.add_argument("--no-config", action="store_true", help="ignore .skanse.yaml")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on standard error")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def _policy_path(args: argparse.Namespace, paths: list[str]) -> str | None:
    if args.network_policies is None:
        return None
    if args.network_policies != _DEFAULT:
        return str(args.network_policies)
    first = paths[0]
    directory = first if os.path.isdir(first) else os.path.dirname(first) or "."
    return os.path.join(directory, DEFAULT_POLICY_FILE)


def run(args: argparse.Namespace) -> int:
    import datetime as dt

    from rich.console import Console

    from skanse._cli._common import Settings, as_bool, load_config_for, progress_line
    from skanse._cli.scan import scan_options
    from skanse.fix import FixOptions, plan_fixes, write_fixes
    from skanse.printable import printable

    paths: list[str] = args.paths or ["."]
    loaded = load_config_for(args, paths)
    settings = Settings(args, os.environ, loaded.file, str(loaded.path))
    options = FixOptions(
        scan=scan_options(settings),
        network_policies=_policy_path(args, paths),
        unsafe_fixes=settings.get("unsafe-fixes", as_bool, False),
        select=_check_ids("--select", args.select),
        ignore=_check_ids("--ignore", args.ignore),
    )
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    with progress_line(args, "scanning") as show:
        report = plan_fixes(
            paths,
            options,
            suppressions=loaded.suppressions,
            today=dt.date.today(),
            on_scan=None if show is None else lambda path: show(f"scanning {path}"),
            on_file=None if show is None else lambda path: show(f"fixing {path}"),
        )

    out = sys.stdout
    changed = report.changed
    failed = list(report.failed)
    if args.diff:
        for item in report.files:
            if item.changed:
                out.write(_diff(item, item.before, item.after, safe=not options.unsafe_fixes))
            if item.pending_after is not None:
                out.write(_diff(item, item.after or item.before, item.pending_after, safe=False))
    elif not args.check:
        outcome = write_fixes(report)
        changed = outcome.written
        failed += outcome.failed
    if not args.diff:
        verb = "would fix" if args.check else "fixed"
        for item in changed:
            verb_here = ("would write" if args.check else "wrote") if item.created else verb
            out.write(printable(f"{verb_here} {item.path}") + "\n")
            for change in item.changes:
                mark = "" if change.safe else "  (unsafe)"
                line = f"  {change.check_id}  {change.resource}  {change.description}{mark}"
                out.write(printable(line) + "\n")
    out.flush()

    if not args.quiet:
        for warning in report.warnings:
            err.print(printable(f"warning: {warning}"), markup=False, style="yellow")
        for problem in report.problems:
            where = f":{problem.line}" if problem.line else ""
            err.print(printable(f"problem: {problem.file}{where}: {problem.message}"), markup=False)
        for declined in report.declined:
            err.print(
                printable(f"not fixed: {declined.check_id} {declined.resource}: {declined.reason}"),
                markup=False,
            )
        pending = [(item, c) for item in report.files for c in item.pending]
        for item, change in pending:
            err.print(
                printable(
                    f"unsafe fix not applied: {item.path}: {change.check_id} {change.resource}: "
                    f"{change.description}"
                ),
                markup=False,
            )
        err.print(_summary(report, changed, failed, args, len(pending)), markup=False)
    for item in failed:
        err.print(printable(f"error: {item.path} {item.problem}"), markup=False, style="red")
    if failed or report.problems:
        return 2
    if args.check and changed:
        return 1
    return 0


def _check_ids(flag: str, values: list[str] | None) -> frozenset[str]:
    """Check ids or aliases named by --select/--ignore; an unknown one is a usage error."""
    from skanse._cli._common import names
    from skanse.checks._all import REGISTRY
    from skanse.errors import UsageError

    given = names(values) if values else frozenset()
    unknown = sorted(n for n in given if not REGISTRY.resolve(n))
    if unknown:
        raise UsageError(f"{flag}: unknown check id(s): {', '.join(unknown)}")
    return given


def _summary(
    report: FixReport,
    changed: tuple[FileFix, ...],
    failed: list[FileFix],
    args: argparse.Namespace,
    pending: int,
) -> str:
    fixes = sum(len(f.changes) for f in changed)
    verb = "would change" if args.check or args.diff else "changed"
    parts = [f"{fixes} fix(es): {verb} {len(changed)} file(s)"]
    if pending:
        parts.append(f"{pending} unsafe fix(es) not applied (--unsafe-fixes applies them)")
    left = report.not_fixable + len(report.declined)
    if left:
        parts.append(f"{left} finding(s) left for a person (skanse scan lists them)")
    if report.suppressed:
        parts.append(f"{report.suppressed} suppressed finding(s) left alone")
    if failed:
        parts.append(f"{len(failed)} file(s) could not be fixed")
    return "; ".join(parts)


def _diff(item: FileFix, old: bytes | None, new: bytes | None, *, safe: bool) -> str:
    """A unified diff, preceded by a line saying whether its fixes are safe (text outside a
    diff's hunks is ignored by patch and git apply)."""
    import difflib

    from skanse.printable import printable

    before = (old or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    after = (new or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    name = printable(item.path.lstrip("/"))
    source = "/dev/null" if item.created else f"a/{name}"
    lines = list(difflib.unified_diff(before, after, source, f"b/{name}"))
    if not lines:
        return ""
    if safe:
        head = "# safe fixes\n"
    else:
        unsafe = [c for c in (*item.changes, *item.pending) if not c.safe]
        head = "# unsafe fixes" + (
            " (not applied; --unsafe-fixes applies them)\n" if item.pending else "\n"
        )
        head += "".join(f"#   {c.check_id} {printable(c.description)}\n" for c in unsafe)
    return head + "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
