"""A table of findings for people, followed by what was suppressed, what could not be
checked, and a one-line summary. Every value that comes from an input (paths, names,
messages, reasons) is shown through `printable`: no raw control character reaches a
terminal or a log."""

from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from skanse.model import Finding, ScanResult, Severity, Suppression
from skanse.printable import printable
from skanse.report._info import ReportInfo, in_report_order, summary_counts

__all__ = ["print_could_not_check", "print_suppressed", "render"]


def _resource(f: Finding) -> str:
    """The resource column; a Dockerfile is already named by the location column."""
    if f.resource.name == f.location.file:
        return printable(f.resource.kind)
    return printable(str(f.resource))


def _where(f: Finding) -> str:
    return f"{printable(f.location.file)}:{f.location.line}"


_ANSI = {
    Severity.CRITICAL: "\x1b[1;37;41m",
    Severity.HIGH: "\x1b[1;31m",
    Severity.MEDIUM: "\x1b[33m",
    Severity.LOW: "\x1b[36m",
    Severity.INFO: "\x1b[2m",
}
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"
_HEADER = ("SEVERITY", "CHECK", "RESOURCE", "LOCATION", "MESSAGE")


def _fold(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def _table(
    rows: list[tuple[Severity, str, str, str, str, str]], width: int, color: bool, wrap: bool
) -> str:
    """The findings table. Laid out here rather than with rich.Table, which needs about 10 s
    for the 13,000 findings of a large repository; this takes a fraction of a second. Without
    `wrap` (not a terminal) no cell is folded: `file:line` stays whole for grep and editors."""
    cap = (36, 40) if wrap else (sys.maxsize, sys.maxsize)
    widths = [
        max(len(_HEADER[0]), *(len(r[1]) for r in rows)),
        max(len(_HEADER[1]), *(len(r[2]) for r in rows)),
        min(cap[0], max(len(_HEADER[2]), *(len(r[3]) for r in rows))),
        min(cap[1], max(len(_HEADER[3]), *(len(r[4]) for r in rows))),
    ]
    message_width = max(30, width - sum(widths) - 2 * len(widths)) if wrap else sys.maxsize
    lines = []
    header = "  ".join(h.ljust(w) for h, w in zip(_HEADER, widths, strict=False)) + "  MESSAGE"
    lines.append(f"{_BOLD}{header}{_RESET}" if color else header)
    for severity, name, check, resource, where, message in rows:
        columns = [
            [name],
            [check],
            _fold(resource, widths[2]),
            _fold(where, widths[3]),
            (textwrap.wrap(message, message_width, break_on_hyphens=False) if wrap else [message])
            or [""],
        ]
        for i in range(max(len(c) for c in columns)):
            cells = [c[i] if i < len(c) else "" for c in columns]
            first = cells[0].ljust(widths[0])
            if color and cells[0]:
                first = f"{_ANSI[severity]}{cells[0]}{_RESET}" + " " * (widths[0] - len(cells[0]))
            rest = [cells[j].ljust(widths[j]) for j in range(1, 4)]
            lines.append("  ".join([first, *rest, cells[4]]).rstrip())
    return "\n".join(lines) + "\n"


def print_suppressed(console: Console, entries: Sequence[tuple[str, Suppression | None]]) -> None:
    """The "Suppressed (n):" block of a text report: each subject, then why, declared where
    and until when. Nothing when there are none."""
    if not entries:
        return
    console.print(Text(f"Suppressed ({len(entries)}):", style="bold"))
    for subject, s in entries:
        assert s is not None
        expiry = f", expires {s.expires.isoformat()}" if s.expires else ""
        console.print(
            printable(f"  {subject}: {s.reason} ({s.source.value} {s.origin}{expiry})"),
            markup=False,
            soft_wrap=True,
        )
    console.print()


def print_could_not_check(
    console: Console, lines: Sequence[str], *, most: int | None = None
) -> None:
    """The "Could not check (n):" block: what was not checked and why (the first `most`,
    then how many more). Nothing when everything was checked."""
    if not lines:
        return
    console.print(Text(f"Could not check ({len(lines)}):", style="bold red"))
    for line in lines[:most]:
        console.print(f"  {printable(line)}", markup=False, soft_wrap=True)
    if most is not None and len(lines) > most:
        console.print(f"  ... and {len(lines) - most} more (-f json lists them)", markup=False)
    console.print()


def render(result: ScanResult, info: ReportInfo) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=info.width,
        color_system="standard" if info.color else None,
        force_terminal=info.color,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )
    order = in_report_order(result.findings)
    live = [f for f in order if not f.suppressed]
    suppressed = [f for f in order if f.suppressed]

    if live:
        rows = [
            (
                f.severity,
                f.severity.value,
                printable(str(f.check_id)),
                _resource(f),
                _where(f),
                printable(f.message),
            )
            for f in live
        ]
        out.write(_table(rows, info.width, info.color, info.wrap))
        out.write("\n")

    print_suppressed(
        console,
        [(f"{f.check_id} {f.resource} {_where(f)}", f.suppression) for f in suppressed],
    )
    print_could_not_check(
        console,
        [
            f"{f'{p.file}:{p.line}' if p.line else p.file}: {p.kind.value}: {p.message}"
            for p in result.problems
        ],
    )

    if result.skipped and info.verbose:
        console.print(
            Text(f"Not Kubernetes objects, skipped ({len(result.skipped)}):", style="bold")
        )
        for doc in result.skipped:
            console.print(
                printable(f"  {doc.file}:{doc.line}: {doc.reason}"), markup=False, soft_wrap=True
            )
        console.print()

    if result.unknown_kinds and info.verbose:
        total = sum(result.unknown_kinds.values())
        console.print(Text(f"Custom resources, not checked ({total}):", style="bold"))
        for kind, count in result.unknown_kinds.items():
            console.print(f"  {count:>5}  {printable(kind)}", markup=False)
        console.print()

    if result.not_applicable and info.verbose:
        console.print(Text(f"Not applicable ({len(result.not_applicable)}):", style="bold"))
        for na in result.not_applicable:
            console.print(printable(f"  {na.check_id}: {na.reason}"), markup=False, soft_wrap=True)
        console.print()

    for name, value in result.facts.items():
        first, *rest = value.splitlines() or [""]
        console.print(printable(f"{name}: {first}"), markup=False, soft_wrap=True)
        for line in rest:
            console.print(printable(f"  {line}"), markup=False, soft_wrap=True)
    if result.facts:
        console.print()

    counts = summary_counts(result.findings)
    by_severity = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    parts = [
        f"{len(live)} finding{'s' if len(live) != 1 else ''}"
        + (f" ({by_severity})" if by_severity else ""),
        f"{result.objects_scanned} object{'s' if result.objects_scanned != 1 else ''} "
        f"in {result.files_scanned} file{'s' if result.files_scanned != 1 else ''}",
    ]
    if suppressed:
        parts.append(f"{len(suppressed)} suppressed")
    if result.problems:
        parts.append(f"{len(result.problems)} could not be checked")
    if result.skipped:
        parts.append(f"{len(result.skipped)} documents skipped")
    if result.unknown_kinds:
        parts.append(f"{sum(result.unknown_kinds.values())} custom resources not checked")
    if result.not_applicable:
        parts.append(f"{len(result.not_applicable)} not applicable")
    console.print(Text(" · ".join(parts), style="bold"), markup=False)
    setting = f"profile {result.profile}" + (f", Pod Security {result.pss}" if result.pss else "")
    console.print(setting, markup=False, style="dim")
    # rich pads table cells to the column width; trailing blanks only get in the way
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"
