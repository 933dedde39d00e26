"""Suppressions, severity filters and the exit decision."""

from __future__ import annotations

import dataclasses
import datetime as dt

from skanse.checks._all import REGISTRY
from skanse.model import (
    CheckID,
    CheckMeta,
    Finding,
    InputProblem,
    Layer,
    Location,
    ProblemKind,
    ResourceRef,
    ScanResult,
    Severity,
    Suppression,
    SuppressionSource,
)
from skanse.results import (
    EXIT_ERROR,
    EXIT_FINDINGS,
    EXIT_OK,
    apply_suppressions,
    decide,
    filter_severities,
)

TODAY = dt.date(2026, 11, 28)
ALL = frozenset(Severity)


def finding(severity: Severity, *declared: Suppression) -> Finding:
    return Finding(
        check_id=CheckID(f"SKN-K8S-{severity.rank:03d}"),
        severity=severity,
        title="t",
        message="m",
        location=Location("a.yaml"),
        resource=ResourceRef("Pod", "p"),
        declared_suppressions=declared,
    )


def result(
    *findings: Finding, problems: tuple[InputProblem, ...] = (), objects: int = 1
) -> ScanResult:
    checks = tuple(
        CheckMeta(f.check_id, "t", f.severity, Layer.KUBERNETES, "d", "r") for f in findings
    )
    return ScanResult(findings=findings, checks=checks, problems=problems, objects_scanned=objects)


def inline(reason: str, expires: dt.date | None) -> Suppression:
    return Suppression(SuppressionSource.INLINE, reason, "a.yaml:3", expires)


def test_suppression_applies_until_its_expiry_day_inclusive() -> None:
    raw = result(finding(Severity.HIGH, inline("accepted", TODAY)))
    on_the_day = apply_suppressions(raw, (), REGISTRY.resolve, TODAY)
    assert on_the_day.findings[0].suppressed and on_the_day.warnings == ()
    day_after = apply_suppressions(raw, (), REGISTRY.resolve, TODAY + dt.timedelta(days=1))
    assert not day_after.findings[0].suppressed
    (warning,) = day_after.warnings
    assert "expired on 2026-11-28" in warning and "accepted" in warning


def test_an_expired_suppression_falls_through_to_a_live_one() -> None:
    raw = result(
        finding(Severity.HIGH, inline("old", TODAY - dt.timedelta(days=1)), inline("new", None))
    )
    applied = apply_suppressions(raw, (), REGISTRY.resolve, TODAY)
    assert applied.findings[0].suppression is not None
    assert applied.findings[0].suppression.reason == "new"


def test_exit_codes() -> None:
    high, low = finding(Severity.HIGH), finding(Severity.LOW)
    ok = {"exit_zero": False, "strict": False}
    assert decide(result(), severities=ALL, fail_on=None, **ok).exit_code == EXIT_OK
    assert decide(result(low), severities=ALL, fail_on=None, **ok).exit_code == EXIT_FINDINGS
    # --fail-on decides failure independently of what is shown
    assert decide(result(low), severities=ALL, fail_on=Severity.HIGH, **ok).exit_code == EXIT_OK
    outcome = decide(
        result(high), severities=frozenset({Severity.CRITICAL}), fail_on=Severity.HIGH, **ok
    )
    assert (outcome.exit_code, outcome.hidden_failing) == (EXIT_FINDINGS, 1)
    # by default only reported findings fail
    assert (
        decide(result(low), severities=frozenset({Severity.HIGH}), fail_on=None, **ok).exit_code
        == EXIT_OK
    )
    assert (
        decide(result(high), severities=ALL, fail_on=None, exit_zero=True, strict=False).exit_code
        == EXIT_OK
    )


def test_suppressed_findings_never_fail() -> None:
    applied = apply_suppressions(
        result(finding(Severity.CRITICAL, inline("ok", None))), (), REGISTRY.resolve, TODAY
    )
    assert (
        decide(applied, severities=ALL, fail_on=None, exit_zero=False, strict=False).exit_code
        == EXIT_OK
    )


def test_problems_exit_two_unless_allowed_and_strict_needs_something_checked() -> None:
    problem = (InputProblem("x.yaml", ProblemKind.PARSE, "bad"),)
    partial = result(problems=problem, objects=3)
    assert (
        decide(partial, severities=ALL, fail_on=None, exit_zero=False, strict=False).exit_code
        == EXIT_ERROR
    )
    allowed = decide(
        partial, severities=ALL, fail_on=None, exit_zero=False, strict=False, allow_unchecked=True
    )
    assert allowed.exit_code == EXIT_OK
    empty = result(objects=0)
    assert (
        decide(empty, severities=ALL, fail_on=None, exit_zero=False, strict=False).exit_code
        == EXIT_OK
    )
    assert (
        decide(empty, severities=ALL, fail_on=None, exit_zero=True, strict=True).exit_code
        == EXIT_ERROR
    )
    nothing = result(problems=problem, objects=0)
    assert (
        decide(nothing, severities=ALL, fail_on=None, exit_zero=True, strict=False).exit_code
        == EXIT_ERROR
    )


def test_internal_errors_always_exit_two() -> None:
    problem = (InputProblem("x.yaml", ProblemKind.INTERNAL, "check crashed"),)
    assert (
        decide(
            result(problems=problem), severities=ALL, fail_on=None, exit_zero=True, strict=False
        ).exit_code
        == EXIT_ERROR
    )


def test_severity_filter_keeps_checks_and_findings_together() -> None:
    raw = result(finding(Severity.HIGH), finding(Severity.LOW))
    shown = filter_severities(raw, frozenset({Severity.HIGH, Severity.CRITICAL}))
    assert [f.severity for f in shown.findings] == [Severity.HIGH]
    assert [c.severity for c in shown.checks] == [Severity.HIGH]
    assert dataclasses.replace(shown, findings=()).findings == ()
