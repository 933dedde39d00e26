"""Advisories as the importers read them, and matches as the matcher reports them."""

from __future__ import annotations

import enum
from collections.abc import Set
from dataclasses import dataclass, field

from skanse.inventory.model import Package
from skanse.model import Severity, Suppression
from skanse.vuln.versions import Scheme

__all__ = [
    "Advisory",
    "Affected",
    "Event",
    "FixState",
    "Match",
    "Rating",
    "Rejected",
]


class FixState(enum.StrEnum):
    """What the data says about a fix for the matched package (Grype's vocabulary)."""

    FIXED = "fixed"  # a fixed version exists
    NOT_FIXED = "not-fixed"  # affected, no fix yet
    WONT_FIX = "wont-fix"  # the distribution will not fix it (Debian no-dsa, end of life)
    NOT_AFFECTED = "not-affected"  # the distribution says the package is not affected
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Event:
    """An OSV range event: `introduced`, `fixed`, `last_affected` or `limit`, and a version."""

    kind: str
    version: str


@dataclass(frozen=True, slots=True)
class Affected:
    """The versions of one package in one ecosystem that an advisory covers.

    A version is affected when it is listed in `versions`, lies in one of `ranges` (OSV event
    lists), or meets one of `constraints` (Grype's grammar: `> 1.0, < 1.2`). An entry whose
    `fix_state` is NOT_AFFECTED says the opposite: this package is not affected at all.
    """

    ecosystem: str  # our key: pypi, debian:12, alpine:3.18 (see skanse.vuln.ecosystems)
    name: str  # normalised for the ecosystem; the SOURCE package for distributions
    scheme: Scheme
    ranges: tuple[tuple[Event, ...], ...] = ()
    versions: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    fix_state: FixState | None = None  # None: FIXED or NOT_FIXED, decided by the range hit
    note: str = ""  # why: "no-dsa: ignored", "end-of-life", "NAK"
    severity: Severity | None = None  # the distribution's own rating for this package
    module: str = ""  # rpm modularity stream (`postgresql:10`), if any
    fixed: str = ""  # the fixed version of a `constraints` entry (ranges carry their own)


@dataclass(frozen=True, slots=True)
class Rating:
    """How bad an advisory is, and where that came from (CVSS vector or a vendor's word)."""

    severity: Severity | None = None  # None: the data gives no severity at all
    score: float | None = None
    vector: str | None = None
    method: str = ""  # CVSSv2, CVSSv3, CVSSv4, or the vendor (debian, ghsa, alpine...)


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    source: str  # osv | alpine-secdb | debian-tracker | vunnel
    aliases: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    published: str | None = None
    modified: str | None = None
    withdrawn: str | None = None
    rating: Rating = Rating()
    references: tuple[str, ...] = ()
    affected: tuple[Affected, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record or file an import could not use, and why; it is counted and named."""

    origin: str  # file (and member or record) name
    reason: str
    # the source as a whole is incomplete (an archive over its cap, pages missing): the
    # build fails and keeps the previous database unless --allow-partial
    partial: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    """One advisory that applies to one installed package."""

    package: Package
    advisory_id: str
    aliases: tuple[str, ...]
    summary: str
    rating: Rating
    fix_state: FixState
    fixed_version: str | None
    ecosystem: str  # where it matched: debian:12, pypi
    matched_name: str  # the name looked up: the source package for distributions
    matched_version: str
    source: str  # the data source that said so (osv, debian-tracker...)
    references: tuple[str, ...] = ()
    suppression: Suppression | None = None
    # every advisory id that was folded into this match (the same issue from several sources)
    related: tuple[str, ...] = field(default=())
    # the own ids (id and aliases) of each advisory folded into this match; () when none was
    # folded: what `covered_by` needs to tell an alias from a second vulnerability
    members: tuple[tuple[str, ...], ...] = field(default=())
    # where `rating.severity` came from: the distribution or the advisory's publisher first
    # (debian, alpine, ghsa...), then a scoring authority (nvd); "" when nothing rates it
    severity_source: str = ""
    cvss: Rating | None = None  # the CVSS vector and score that best describe it, if any
    epss: tuple[float, float] | None = None  # FIRST EPSS (score, percentile)
    kev: bool = False  # listed in CISA's Known Exploited Vulnerabilities catalogue

    @property
    def ids(self) -> frozenset[str]:
        return frozenset((self.advisory_id, *self.aliases, *self.related))

    def covered_by(self, names: Set[str]) -> bool:
        """Whether statements about `names` (not-affected records, VEX) cover all of this
        match, not just one of the vulnerabilities folded into it.

        Every CVE the match names must be covered: named itself, or through the id of an
        advisory that names only that CVE (GHSA-x about CVE-1 is CVE-1; DSA-y about CVE-1
        and CVE-2 is both, so naming the DSA covers both, while naming CVE-1 leaves CVE-2).
        A match without CVEs is covered when each of its advisories is named by some id.
        """
        members = self.members or ((self.advisory_id, *self.aliases),)
        cves = {i for m in members for i in m if i.startswith("CVE-")}
        if not cves:
            return all(any(i in names for i in m) for m in members)
        covered = cves & names
        for member in members:
            if any(i in names for i in member if not i.startswith("CVE-")):
                covered.update(i for i in member if i.startswith("CVE-"))
        return covered >= cves

    @property
    def gate_severity(self) -> Severity | None:
        """The severity `--fail-on` and risk scores use: CRITICAL when known exploited."""
        return Severity.CRITICAL if self.kev else self.rating.severity
