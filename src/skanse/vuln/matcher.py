"""Installed packages x advisory database -> matches, with distro facts applied.

How each package is looked up (`lookup_keys`):
- OS packages (deb, apk, rpm) by their distribution release and SOURCE package (dpkg
  `Source:`, apk origin, the source RPM; or the purl's `upstream=` qualifier), never by
  CPE. An rpm is also looked up by its own name (Red Hat data names binary packages).
  The release comes from the purl's `distro=` qualifier, else the image's os-release; an OS
  package whose release is unknown is *not checked*, and said so.
- Language packages by purl type -> ecosystem and the ecosystem's name rules.

Then, per advisory entry: withdrawn advisories never match; a version is affected when it
is in an OSV range (events swept in version order, as the OSV schema specifies), listed in
`versions`, or meets a Grype-style constraint. A distribution's "not affected" entry (an
Alpine NAK, a Debian tracker `0`, a vunnel `0`) for the same package and the same issue
(by id or alias) turns a match into a suppressed one, with that reason. Matches for the
same package whose ids overlap (PYSEC-x, GHSA-y and their CVE) are reported once, one CVE
rated by its preferred source, a fold of several CVEs by the highest of them; not-affected
records suppress that match only when they cover every CVE folded into it
(`Match.covered_by`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from packageurl import PackageURL

from skanse.inventory.model import Distro, Inventory, Package
from skanse.model import Suppression, SuppressionSource
from skanse.vuln.db import Candidate, Database
from skanse.vuln.ecosystems import (
    distro_key,
    ecosystem_of_purl_type,
    family_of,
    normalise_name,
)
from skanse.vuln.model import Affected, Event, FixState, Match, Rating
from skanse.vuln.versions import InvalidVersion, Scheme, Version, parse, satisfies

__all__ = ["LookupKey", "MatchReport", "NotChecked", "lookup_keys", "match_inventory"]

# skanse/Syft package types -> purl types, for packages that carry no purl
_TYPE_TO_PURL = {
    "python": "pypi",
    "npm": "npm",
    "go-module": "golang",
    "java-archive": "maven",
    "rust-crate": "cargo",
    "gem": "gem",
}
_OS_TYPES = frozenset({"deb", "apk", "rpm"})


@dataclass(frozen=True, slots=True)
class LookupKey:
    ecosystem: str
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class NotChecked:
    package: Package
    reason: str
    # True when the package could have advisories but cannot be looked up (an OS package
    # of an unknown release, no version): "could not check", not just "nothing to check"
    problem: bool = False


@dataclass(frozen=True, slots=True)
class MatchReport:
    matches: tuple[Match, ...]
    packages: int  # packages in the inventory
    checked: int  # packages looked up in an ecosystem the database has data for
    not_checked: tuple[NotChecked, ...] = ()
    withdrawn: int = 0  # affected entries skipped because their advisory was withdrawn
    problems: tuple[str, ...] = ()  # comparisons that could not be made
    # ecosystems looked up that the database has no advisory data for at all, with the
    # number of packages each: "no vulnerabilities" there would mean "not checked"
    uncovered: tuple[tuple[str, int], ...] = ()


def _purl(package: Package) -> PackageURL | None:
    if not package.purl:
        return None
    try:
        return PackageURL.from_string(package.purl)
    except ValueError:
        return None


def _distro_from_qualifier(value: str) -> tuple[str, str] | None:
    """`debian-12` -> (debian, 12); `opensuse-leap-15.5` -> (opensuse-leap, 15.5)."""
    head, sep, tail = value.rpartition("-")
    if not sep or not head or not tail[:1].isdigit():
        return (value, "") if value else None
    return head, tail


def _source_rpm(value: str) -> str | None:
    """`openssl-3.0.7-24.el9.src.rpm` -> `openssl`."""
    if not value.endswith(".rpm"):
        return value or None
    stem = value.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    parts = stem.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else None


def lookup_keys(package: Package, distro: Distro | None) -> list[LookupKey] | str:
    """Where to look the package up; a string says why it cannot be looked up."""
    purl = _purl(package)
    if purl is None and package.purl:
        # what it is cannot be told, so it was not checked: never "no advisories"
        return "its purl is not a valid package URL"
    purl_type = purl.type if purl else _TYPE_TO_PURL.get(package.type, package.type)
    version = (purl.version if purl and purl.version else None) or package.version
    if not version:
        return "no version"
    if package.type in _OS_TYPES or purl_type in _OS_TYPES:
        return _os_keys(package, purl, purl_type, version, distro)
    ecosystem = ecosystem_of_purl_type(purl_type)
    if ecosystem is None:
        return f"no advisory data for {purl_type or package.type} packages"
    name = package.name
    if purl is not None:
        name = purl.name
        if purl.namespace:
            separator = ":" if ecosystem == "maven" else "/"
            name = f"{purl.namespace}{separator}{purl.name}"
    elif ecosystem == "maven" and package.metadata.get("group"):
        name = f"{package.metadata['group']}:{package.name}"
    return [LookupKey(ecosystem, normalise_name(ecosystem, name), version)]


def _os_keys(
    package: Package,
    purl: PackageURL | None,
    purl_type: str,
    version: str,
    distro: Distro | None,
) -> list[LookupKey] | str:
    qualifiers = dict(purl.qualifiers or {}) if purl else {}
    release: tuple[str, str] | None = None
    if qualifiers.get("distro"):
        release = _distro_from_qualifier(str(qualifiers["distro"]))
    if (release is None or not release[1]) and distro is not None:
        release = (distro.id, distro.version_id or distro.version_codename)
    if release is None or not release[1]:
        family = family_of(release[0]) if release else (purl.namespace if purl else "")
        if family not in ("wolfi", "chainguard", "minimos", "archlinux"):
            return "the distribution release is unknown (no os-release, no distro= in the purl)"
        release = (family or "", "")
    ecosystem = distro_key(release[0], release[1])
    upstream = str(qualifiers.get("upstream", ""))
    source_name = package.source_name
    source_version = package.source_version
    if not source_name and upstream:
        if purl_type == "rpm":
            source_name = _source_rpm(upstream)
        else:
            source_name, _, upstream_version = upstream.partition("@")
            source_version = source_version or upstream_version or None
    if purl_type == "rpm":
        epoch = qualifiers.get("epoch")
        if epoch and ":" not in version:
            version = f"{epoch}:{version}"
        names = [n for n in (source_name, package.name) if n]
        return [LookupKey(ecosystem, n, version) for n in dict.fromkeys(names)]
    if purl_type == "deb":
        epoch = qualifiers.get("epoch")  # Trivy's deb purls carry the epoch as a qualifier
        if epoch and ":" not in version:
            version = f"{epoch}:{version}"
        if source_version:
            version = source_version  # binNMUs (+b1) do not change what the source fixed
    return [LookupKey(ecosystem, source_name or package.name, version)]


# -- version evaluation -------------------------------------------------------------------


def _event_cmp(scheme: Scheme, a: Event, b: Event) -> int:
    if a.version == b.version:
        return 0
    if a.kind == "introduced" and a.version == "0":
        return -1
    if b.kind == "introduced" and b.version == "0":
        return 1
    return parse(scheme, a.version).compare(parse(scheme, b.version))


def _in_range(scheme: Scheme, version: Version, events: Sequence[Event]) -> tuple[bool, str | None]:
    """OSV's rule: sort the events, sweep; affected after `introduced` until `fixed`
    (exclusive) or past `last_affected`; nothing at or above `limit`. Also the fix that
    closes the interval holding `version`, if any."""

    def order(a: Event, b: Event) -> int:
        return _event_cmp(scheme, a, b)

    # data is nearly always written in order: check that (n-1 comparisons) before sorting
    ordered: Sequence[Event] = events
    if any(order(a, b) > 0 for a, b in itertools.pairwise(events)):
        ordered = sorted(events, key=functools.cmp_to_key(order))
    affected = False
    for event in ordered:
        if event.kind == "introduced" and event.version == "0":
            affected = True
            continue
        bound = version.compare(parse(scheme, event.version))
        if event.kind == "introduced" and bound >= 0:
            affected = True
        elif event.kind == "fixed" and bound >= 0:
            affected = False
        elif event.kind == "last_affected" and bound > 0:
            affected = False
        elif event.kind == "limit" and bound >= 0:
            return False, None
    if not affected:
        return False, None
    for event in ordered:
        if event.kind == "fixed" and version.compare(parse(scheme, event.version)) < 0:
            return True, event.version
        if event.kind in ("last_affected", "introduced") and event.version != "0":
            if version.compare(parse(scheme, event.version)) < 0:
                break  # the interval ends without a fix before the next one starts
    return True, None


def _evaluate(entry: Affected, version_text: str) -> tuple[bool, str | None]:
    """(affected, fixed version) for one entry; raises InvalidVersion if it cannot tell."""
    version = parse(entry.scheme, version_text)
    for events in entry.ranges:
        hit, fixed = _in_range(entry.scheme, version, events)
        if hit:
            return True, fixed
    for listed in entry.versions:
        if listed == version_text:
            return True, None
    for constraint in entry.constraints:
        if satisfies(entry.scheme, version_text, constraint):
            return True, entry.fixed or None
    if entry.versions:
        for listed in entry.versions:
            try:
                if version.compare(parse(entry.scheme, listed)) == 0:
                    return True, None
            except InvalidVersion:
                continue
    return False, None


def _module_applies(entry: Affected, package: Package) -> bool:
    """An rpm module stream entry applies only to packages from that stream."""
    if not entry.module:
        return True
    purl = _purl(package)
    stream = str((purl.qualifiers or {}).get("rpmmod", "")) if purl else ""
    if not stream:
        return False
    return stream.split(":")[:2] == entry.module.split(":")[:2]


def match_inventory(db: Database, inventory: Inventory) -> MatchReport:
    """Look every package up and keep what applies (see the module docstring)."""
    matches: list[Match] = []
    not_checked: list[NotChecked] = []
    problems: list[str] = []
    withdrawn = 0
    checked = 0
    coverage = db.coverage()
    uncovered: dict[str, int] = {}
    for package in inventory.packages:
        keys = lookup_keys(package, inventory.distro)
        if isinstance(keys, str):
            problem = not keys.startswith("no advisory data")
            not_checked.append(NotChecked(package, keys, problem))
            continue
        for key in keys:
            if key.ecosystem not in coverage:
                uncovered[key.ecosystem] = uncovered.get(key.ecosystem, 0) + 1
        # looked up where the database has data: a package of an ecosystem it has no
        # advisories for at all was not checked ("uncovered" says so), whatever the count
        if any(key.ecosystem in coverage for key in keys):
            checked += 1
        found: list[Match] = []
        advisory_rating: dict[str, Rating] = {}  # each matched advisory's own rating
        not_affected: dict[str, Candidate] = {}
        for key in keys:
            for candidate in db.candidates(key.ecosystem, key.name):
                advisory, entry = candidate.advisory, candidate.entry
                if advisory.withdrawn:
                    withdrawn += 1
                    continue
                if entry.fix_state is FixState.NOT_AFFECTED:
                    for identifier in (advisory.id, *advisory.aliases):
                        not_affected.setdefault(identifier, candidate)
                    continue
                if not _module_applies(entry, package):
                    continue
                try:
                    hit, fixed = _evaluate(entry, key.version)
                except InvalidVersion as exc:
                    problems.append(
                        f"{package.name} {key.version}: could not compare with {advisory.id} "
                        f"({entry.scheme.value}): {exc}"
                    )
                    continue
                if not hit:
                    continue
                state = entry.fix_state or (FixState.FIXED if fixed else FixState.NOT_FIXED)
                rating = advisory.rating
                advisory_rating[advisory.id] = rating
                if entry.severity is not None:  # the distribution's own rating wins
                    rating = Rating(entry.severity, None, None, advisory.source)
                found.append(
                    Match(
                        package=package,
                        advisory_id=advisory.id,
                        aliases=advisory.aliases,
                        summary=advisory.summary,
                        rating=rating,
                        fix_state=state,
                        fixed_version=fixed,
                        ecosystem=key.ecosystem,
                        matched_name=key.name,
                        matched_version=key.version,
                        source=advisory.source,
                        references=advisory.references,
                    )
                )
        rated = [_rate(db, m, advisory_rating) for m in found]
        matches.extend(_exploitation(db, m) for m in _merge(rated, not_affected))
    return MatchReport(
        matches=tuple(matches),
        packages=len(inventory.packages),
        checked=checked,
        not_checked=tuple(not_checked),
        withdrawn=withdrawn,
        problems=tuple(dict.fromkeys(problems)),
        uncovered=tuple(sorted(uncovered.items())),
    )


# advisory sources -> the publisher named as a match's severity source
_PUBLISHERS = {"debian-tracker": "debian", "alpine-secdb": "alpine"}


def _publisher(match: Match) -> str:
    if match.source == "osv":
        if match.advisory_id.startswith("GHSA-"):
            return "ghsa"
        return match.advisory_id.split("-", 1)[0].lower() or "osv"  # PYSEC, RUSTSEC, DSA...
    if match.source == "vunnel":
        return match.ecosystem.split(":", 1)[0]  # the distribution the record is about
    return _PUBLISHERS.get(match.source, match.source)


def _rate(db: Database, match: Match, advisory_rating: dict[str, Rating]) -> Match:
    """Severity from the publisher first, then NVD (as Grype and Trivy); CVSS, EPSS, KEV.

    The publisher is the distribution for OS packages (Debian urgency, Alpine, a vunnel
    record's vendor) and the advisory's database for language packages (GHSA, PyPA). NVD's
    rating of a CVE the match names is used only when the publisher gives no severity.
    """
    cves = sorted(i for i in (match.advisory_id, *match.aliases) if i.startswith("CVE-"))
    nvd = next((r for cve in cves for source, r in db.cve_ratings(cve) if source == "nvd"), None)
    rating, severity_source = match.rating, ""
    if rating.severity is not None:
        severity_source = _publisher(match)
    elif nvd is not None and nvd.severity is not None:
        rating, severity_source = nvd, "nvd"
    own = advisory_rating.get(match.advisory_id)
    cvss = next(
        (r for r in (rating, own, nvd) if r is not None and r.vector and r.score is not None), None
    )
    return replace(match, rating=rating, severity_source=severity_source, cvss=cvss)


def _exploitation(db: Database, match: Match) -> Match:
    """EPSS (the highest of the CVEs the match names, folded ones included) and KEV."""
    cves = sorted(i for i in match.ids if i.startswith("CVE-"))
    epss = max((e for cve in cves if (e := db.epss(cve)) is not None), default=None)
    kev = any(db.in_kev(cve) for cve in cves)
    return replace(match, epss=epss, kev=kev)


def _preference(match: Match) -> tuple[bool, bool, str]:
    return (match.rating.severity is None, match.fixed_version is None, match.advisory_id)


def _severity_rank(match: Match) -> int:
    return -1 if match.rating.severity is None else match.rating.severity.rank


def _groups(found: Sequence[Match]) -> list[list[int]]:
    """Positions of the matches whose ids overlap, transitively (union-find: linear, even
    when aliases chain thousands of advisories), in order of each group's first match."""
    parent = list(range(len(found)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for position, match in enumerate(found):
        for identifier in (match.advisory_id, *match.aliases):
            seen = first.setdefault(identifier, position)
            a, b = root(seen), root(position)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for position in range(len(found)):
        groups.setdefault(root(position), []).append(position)
    return list(groups.values())


def _merge(found: Iterable[Match], not_affected: dict[str, Candidate]) -> list[Match]:
    """One match per issue: matches whose ids overlap are folded into the best-described.

    A fold of several CVEs is never rated lower than any of its advisories (a source added to
    the database must not lower a gate; one CVE keeps its preferred rating, vendor first),
    and a distribution's not-affected records suppress it only when they cover every
    vulnerability in it (`Match.covered_by`): a DSA that fixes CVE-1 and CVE-2 is not "not
    affected" because CVE-1 is.
    """
    matches = list(found)
    merged = []
    for positions in _groups(matches):
        members = [matches[p] for p in positions]
        primary = min(members, key=_preference)
        ids = {i for m in members for i in (m.advisory_id, *m.aliases)}
        highest = max(members, key=_severity_rank)
        # one vulnerability keeps its preferred source's rating (vendor first, NVD second);
        # only a fold of several CVEs takes the highest, so none of them is rated down
        several = sum(1 for i in ids if i.startswith("CVE-")) > 1
        if several and _severity_rank(highest) > _severity_rank(primary):
            primary = replace(
                primary,
                rating=highest.rating,
                severity_source=highest.severity_source,
                cvss=highest.cvss or primary.cvss,
            )
        related = tuple(sorted(ids - {primary.advisory_id, *primary.aliases}))
        owned = tuple(dict.fromkeys((m.advisory_id, *m.aliases) for m in members))
        primary = replace(primary, related=related, members=owned if len(owned) > 1 else ())
        if primary.fixed_version is None and primary.fix_state is FixState.FIXED:
            primary = replace(primary, fix_state=FixState.NOT_FIXED)
        nak = next((not_affected[i] for i in sorted(ids) if i in not_affected), None)
        if nak is not None and primary.covered_by(not_affected.keys()):
            note = nak.entry.note or "not affected"
            primary = replace(
                primary,
                suppression=Suppression(
                    SuppressionSource.DISTRO,
                    f"{nak.entry.ecosystem} {nak.entry.name}: {note} "
                    f"({nak.advisory.id}, {nak.advisory.source})",
                    f"{nak.advisory.source}:{nak.advisory.id}",
                ),
            )
        merged.append(primary)
    return merged
