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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from skanse.model import Severity

__all__ = [
    "DATABASE_REACH",
    "EXTERNAL_REACH",
    "SEVERITY_POINTS",
    "UNSIGNED_POINTS",
    "Evidence",
    "EvidenceKind",
    "Risk",
    "RiskSubject",
    "rank",
    "score",
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
