"""A rich table of findings for people, followed by what was suppressed, what could not be
checked, and a one-line summary."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from skanse.model import Finding, ScanResult, Severity
from skanse.report._info import ReportInfo, summary_counts

__all__ = ["render"]

_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _where(f: Finding) -> str:
    return f"{f.location.file}:{f.location.line}"


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
    order = sorted(
        result.findings,
        key=lambda f: (f.location.file, f.location.document, f.location.line, f.check_id),
    )
    live = [f for f in order if not f.suppressed]
    suppressed = [f for f in order if f.suppressed]

    if live:
        table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
        table.add_column("SEVERITY", no_wrap=True)
        table.add_column("CHECK", no_wrap=True)
        table.add_column("RESOURCE", overflow="fold", max_width=36)
        table.add_column("LOCATION", overflow="fold", max_width=40)
        table.add_column("MESSAGE", overflow="fold", ratio=1)
        for f in live:
            table.add_row(
                Text(f.severity.value, style=_STYLE[f.severity]),
                f.check_id,
                str(f.resource),
                _where(f),
                f.message,
            )
        console.print(table)
        console.print()

    if suppressed:
        console.print(Text(f"Suppressed ({len(suppressed)}):", style="bold"))
        for f in suppressed:
            assert f.suppression is not None
            s = f.suppression
            expiry = f", expires {s.expires.isoformat()}" if s.expires else ""
            console.print(
                f"  {f.check_id} {f.resource} {_where(f)}: {s.reason} "
                f"({s.source.value} {s.origin}{expiry})",
                markup=False,
                soft_wrap=True,
            )
        console.print()

    if result.problems:
        console.print(Text(f"Could not check ({len(result.problems)}):", style="bold red"))
        for p in result.problems:
            where = f"{p.file}:{p.line}" if p.line else p.file
            console.print(f"  {where}: {p.kind.value}: {p.message}", markup=False, soft_wrap=True)
        console.print()

    if result.skipped and info.verbose:
        console.print(
            Text(f"Not Kubernetes objects, skipped ({len(result.skipped)}):", style="bold")
        )
        for doc in result.skipped:
            console.print(f"  {doc.file}:{doc.line}: {doc.reason}", markup=False, soft_wrap=True)
        console.print()

    if result.unknown_kinds and info.verbose:
        total = sum(result.unknown_kinds.values())
        console.print(Text(f"Custom resources, not checked ({total}):", style="bold"))
        for kind, count in result.unknown_kinds.items():
            console.print(f"  {count:>5}  {kind}", markup=False)
        console.print()

    if result.not_applicable and info.verbose:
        console.print(Text(f"Not applicable ({len(result.not_applicable)}):", style="bold"))
        for na in result.not_applicable:
            console.print(f"  {na.check_id}: {na.reason}", markup=False, soft_wrap=True)
        console.print()

    for name, value in result.facts.items():
        first, *rest = value.splitlines() or [""]
        console.print(f"{name}: {first}", markup=False, soft_wrap=True)
        for line in rest:
            console.print(f"  {line}", markup=False, soft_wrap=True)
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
