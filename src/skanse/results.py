"""From raw findings to what is reported and how the run exits.

Three steps, in this order, each a pure function of its inputs (today's date included):
suppressions (inline, annotation and config; expired ones stop applying and are named in a
warning), the severity filter (`--severity`: what is shown) and the exit decision
(`--fail-on`: what fails; by default any reported finding; `--exit-zero`; `--strict`).

Exit codes: 0 nothing fails; 1 findings fail; 2 an internal error, nothing could be scanned,
an input that was meant to be checked and could not be (a gate fails closed; with
`--allow-unchecked` that is a warning), or nothing found to check under `--strict`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skanse.model import CheckID, Finding, ProblemKind, ScanResult, Severity, Suppression

if TYPE_CHECKING:
    from skanse.config import ConfigSuppression

__all__ = [
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "Outcome",
    "apply_suppressions",
    "decide",
    "filter_severities",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def apply_suppressions(
    result: ScanResult,
    config: Sequence[ConfigSuppression],
    resolve: Callable[[str], list[CheckID]],
    today: dt.date,
) -> ScanResult:
    """Attach the suppression that applies to each finding; warn about expired ones once."""
    warnings = list(result.warnings)
    warned: set[str] = set()
    findings = []
    for finding in result.findings:
        candidates: list[Suppression] = list(finding.declared_suppressions)
        candidates += [c.suppression() for c in config if c.matches(finding, resolve)]
        if not candidates and finding.suppression is None and not finding.expired_suppressions:
            findings.append(finding)  # most findings: nothing to attach, no copy to make
            continue
        chosen = None
        expired: list[Suppression] = []
        for candidate in candidates:
            if candidate.expired(today):
                expired.append(candidate)
                if candidate.origin not in warned:
                    warned.add(candidate.origin)
                    warnings.append(
                        f"suppression at {candidate.origin} expired on "
                        f"{candidate.expires}; its findings are reported again "
                        f"(reason was: {candidate.reason})"
                    )
                continue
            chosen = candidate
            break
        findings.append(
            dataclasses.replace(finding, suppression=chosen, expired_suppressions=tuple(expired))
        )
    per_namespace = {check.id for check in result.checks if check.per_namespace}
    if per_namespace:
        findings = _one_per_namespace(findings, per_namespace)
    return dataclasses.replace(result, findings=tuple(findings), warnings=tuple(warnings))


def _one_per_namespace(findings: list[Finding], checks: set[CheckID]) -> list[Finding]:
    """Of the findings a namespace-wide check reported on each workload of a namespace (the
    same message), the first not suppressed, else the first: a suppression scoped to one
    workload (annotation, inline or .skanse.yaml) hides the finding for that one only."""
    kept: dict[tuple[CheckID, str], int] = {}
    for index, finding in enumerate(findings):
        if finding.check_id not in checks:
            continue
        key = (finding.check_id, finding.message)
        first = kept.get(key)
        if first is None or (
            findings[first].suppression is not None and finding.suppression is None
        ):
            kept[key] = index
    chosen = set(kept.values())
    return [f for i, f in enumerate(findings) if f.check_id not in checks or i in chosen]


def filter_severities(result: ScanResult, severities: frozenset[Severity]) -> ScanResult:
    """Keep findings of the reported severities (checks outside them are not listed either)."""
    return dataclasses.replace(
        result,
        findings=tuple(f for f in result.findings if f.severity in severities),
        checks=tuple(c for c in result.checks if c.severity in severities),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int
    reason: str
    failing: int  # unsuppressed findings at or above --fail-on
    hidden_failing: int  # of those, how many --severity does not show


def decide(
    result: ScanResult,
    *,
    severities: frozenset[Severity],
    fail_on: Severity | None,
    exit_zero: bool,
    strict: bool,
    allow_unchecked: bool = False,
) -> Outcome:
    """The exit code for a result whose suppressions are applied (all severities kept)."""
    internal = [p for p in result.problems if p.kind is ProblemKind.INTERNAL]
    if internal:
        return Outcome(
            EXIT_ERROR, f"{len(internal)} internal error(s); results are incomplete", 0, 0
        )
    if result.problems and result.objects_scanned == 0:
        return Outcome(EXIT_ERROR, "nothing could be scanned", 0, 0)
    if strict and result.objects_scanned == 0:
        return Outcome(EXIT_ERROR, "--strict: nothing was found to check", 0, 0)
    if strict and result.problems:
        return Outcome(
            EXIT_ERROR, f"--strict: {len(result.problems)} input(s) could not be checked", 0, 0
        )
    if result.problems and not allow_unchecked:
        return Outcome(
            EXIT_ERROR,
            f"{len(result.problems)} input(s) could not be checked "
            "(--allow-unchecked reports them as a warning instead)",
            0,
            0,
        )
    live = [
        f
        for f in result.findings
        if not f.suppressed and (f.severity >= fail_on if fail_on else f.severity in severities)
    ]
    hidden = sum(1 for f in live if f.severity not in severities)
    if not live:
        return Outcome(EXIT_OK, "no findings fail the run", 0, 0)
    if exit_zero:
        return Outcome(EXIT_OK, "--exit-zero", len(live), hidden)
    return Outcome(EXIT_FINDINGS, f"{len(live)} finding(s) fail the run", len(live), hidden)
