"""Top risks: findings of every layer joined per workload, scored by severity and reach.

A workload's score adds the worst item of each kind of evidence against it, then multiplies
by how far an attacker who lands there can go:

    score = (config + vulnerability + signature + runtime) x reach

    config         worst unsuppressed manifest or network finding on the workload
    vulnerability  worst unsuppressed vulnerability in an image it runs; half when no fixed
                   version exists (nothing to do today but accept or remove the package)
    signature      15 when an image it runs failed signature verification
    runtime        worst runtime alert from its containers
    points         CRITICAL 40, HIGH 25, MEDIUM 10, LOW 3, INFO 0
    reach          x1.5 when it can open a connection to a database port of another
                   workload; x1.5 when it accepts connections from outside the cluster;
                   x1 when the network layer was not assessed (and the risk says so)

Only the worst item of each kind counts, so many small findings never outrank one critical
one; the count is shown beside it. A privileged workload (40) that reaches the database and
the internet (x2.25) and runs an image with a fixable critical vulnerability (40) scores 180,
above the same privileged workload isolated (40) or the image alone. Host and Dockerfile
subjects score by their worst finding only (they have no network reach of their own).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skanse.model import Severity
from skanse.vuln.severity import from_score

__all__ = [
    "DATABASE_REACH",
    "EPSS_HIGH",
    "EXTERNAL_REACH",
    "SEVERITY_POINTS",
    "SEVERITY_UNKNOWN",
    "UNSIGNED_POINTS",
    "Evidence",
    "EvidenceKind",
    "Risk",
    "RiskSubject",
    "rank",
    "score",
    "severity_of",
    "vulnerability_rating",
]

SEVERITY_POINTS: dict[Severity, float] = {
    Severity.CRITICAL: 40.0,
    Severity.HIGH: 25.0,
    Severity.MEDIUM: 10.0,
    Severity.LOW: 3.0,
    Severity.INFO: 0.0,
}
UNSIGNED_POINTS = 15.0
UNFIXABLE_FACTOR = 0.5
DATABASE_REACH = 1.5
EXTERNAL_REACH = 1.5


class EvidenceKind(enum.StrEnum):
    CONFIG = "config"
    VULNERABILITY = "vulnerability"
    SIGNATURE = "signature"
    RUNTIME = "runtime"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One thing found against a subject, by any layer."""

    kind: EvidenceKind
    severity: Severity
    text: str  # check or advisory id and message, for people
    fixable: bool = True  # vulnerabilities: a fixed version exists

    @property
    def points(self) -> float:
        if self.kind is EvidenceKind.SIGNATURE:
            return UNSIGNED_POINTS
        base = SEVERITY_POINTS[self.severity]
        if self.kind is EvidenceKind.VULNERABILITY and not self.fixable:
            return base * UNFIXABLE_FACTOR
        return base


@dataclass(frozen=True, slots=True)
class RiskSubject:
    """A workload (kind/namespace/name), a host, or a Dockerfile."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind}/{self.name}")
        )


@dataclass(frozen=True, slots=True)
class Risk:
    subject: RiskSubject
    score: float
    worst: Severity
    # (kind, points, worst item's text, how many items of that kind)
    contributions: tuple[tuple[EvidenceKind, float, str, int], ...]
    reach: tuple[str, ...]  # why the score was multiplied, or why it could not be
    images: tuple[str, ...] = field(default=())


def severity_of(value: object) -> Severity:
    """A severity from its name; anything else (UNKNOWN, null) is INFO."""
    try:
        return Severity.parse(str(value))
    except ValueError:
        return Severity.INFO  # UNKNOWN (vulnerabilities without a rating) ranks lowest


# EPSS: the estimated probability of exploitation in the next 30 days (FIRST.org). At 10% or
# more a vulnerability is ranked at least HIGH, whatever its base severity.
EPSS_HIGH = 0.1
SEVERITY_UNKNOWN = "severity unknown"


def vulnerability_rating(match: Mapping[str, Any]) -> tuple[Severity, tuple[str, ...]]:
    """The severity a vulnerability match is ranked at, and why when it is not its own.

    CISA KEV listing ranks CRITICAL (exploited in the wild); an EPSS score of 10% or more
    ranks at least HIGH; a match without a usable severity takes its CVSS base score when
    it has one, else ranks MEDIUM and says "severity unknown": an unrated vulnerability is
    not a harmless one.
    """
    notes: list[str] = []
    try:
        rated: Severity | None = Severity.parse(str(match.get("severity")))
    except ValueError:
        rated = None
    cvss = match.get("cvss")
    score = cvss.get("score") if isinstance(cvss, Mapping) else None
    if rated is None and isinstance(score, (int, float)) and not isinstance(score, bool):
        rated = from_score(float(score))
        notes.append(f"severity from CVSS {score}")
    if rated is None:
        rated = Severity.MEDIUM
        notes.append(SEVERITY_UNKNOWN)
    epss = match.get("epss")
    probability = epss.get("score") if isinstance(epss, Mapping) else None
    if isinstance(probability, (int, float)) and not isinstance(probability, bool):
        if probability >= EPSS_HIGH and rated < Severity.HIGH:
            rated = Severity.HIGH
            notes.append(f"EPSS {probability:.2f}")
    if match.get("kev") is True:
        rated = Severity.CRITICAL
        notes.append("CISA KEV: exploited in the wild")
    return rated, tuple(notes)


def score(
    subject: RiskSubject,
    evidence: Iterable[Evidence],
    *,
    reaches_database: bool | None = None,
    reachable_from_outside: bool | None = None,
    images: Sequence[str] = (),
) -> Risk | None:
    """The subject's risk, or None when nothing stands against it.

    `None` for a reach argument means "not assessed": no multiplier, and the risk says so.
    """
    by_kind: dict[EvidenceKind, list[Evidence]] = {}
    for item in evidence:
        by_kind.setdefault(item.kind, []).append(item)
    if not by_kind:
        return None
    contributions = []
    total = 0.0
    worst = Severity.INFO
    for kind in EvidenceKind:
        items = by_kind.get(kind)
        if not items:
            continue
        top = max(items, key=lambda e: (e.points, e.severity.rank))
        contributions.append((kind, top.points, top.text, len(items)))
        total += top.points
        worst = max(worst, max(e.severity for e in items))
    reach: list[str] = []
    multiplier = 1.0
    if reaches_database:
        multiplier *= DATABASE_REACH
        reach.append(f"can reach a database port (x{DATABASE_REACH})")
    if reachable_from_outside:
        multiplier *= EXTERNAL_REACH
        reach.append(f"accepts connections from outside the cluster (x{EXTERNAL_REACH})")
    if reaches_database is None and reachable_from_outside is None and subject.namespace:
        reach.append("network reach not assessed")
    return Risk(
        subject,
        round(total * multiplier, 2),
        worst,
        tuple(contributions),
        tuple(reach),
        tuple(images),
    )


def rank(risks: Iterable[Risk | None]) -> list[Risk]:
    """Highest score first; ties by worst severity, then by name (stable across runs)."""
    present = [r for r in risks if r is not None]
    return sorted(present, key=lambda r: (-r.score, -r.worst.rank, str(r.subject)))
