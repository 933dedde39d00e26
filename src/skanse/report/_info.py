"""What renderers need besides the result: versions, paths and terminal settings."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from skanse.model import Finding, Severity

__all__ = ["ReportInfo", "find_repo_root", "in_report_order", "summary_counts"]


@dataclass(frozen=True, slots=True)
class ReportInfo:
    tool_version: str
    # Paths in SARIF are made relative to this directory (the repository root by default).
    source_root: Path = field(default_factory=lambda: Path.cwd())
    exit_code: int | None = None
    color: bool = False
    width: int = 120
    # fold long cells to `width` (on a terminal); piped text keeps every line whole
    wrap: bool = True
    verbose: bool = False
    # What produced the result, for JSON readers that combine several (skanse report).
    kind: str = "skanse.scan"


def find_repo_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `.git`, else `start` itself."""
    start = Path(os.path.abspath(start))
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return start


def summary_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Unsuppressed findings per severity, every severity present (zero included)."""
    counts = {s.value: 0 for s in Severity}
    for f in findings:
        if not f.suppressed:
            counts[f.severity.value] += 1
    return counts


def in_report_order(findings: Iterable[Finding]) -> list[Finding]:
    """Findings by file, document, line and check id: the order every format lists them in."""
    return sorted(
        findings,
        key=lambda f: (f.location.file, f.location.document, f.location.line, f.check_id),
    )
