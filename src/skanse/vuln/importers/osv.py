"""OSV records (ossf/osv-schema): PyPI, npm, Go, crates.io, Maven, Debian, Alpine, Ubuntu...

Each `affected[]` entry becomes an `Affected` keyed by our ecosystem key and normalised
name; ECOSYSTEM ranges compare by the ecosystem's scheme, SEMVER ranges by SemVer (Go's
rules for Go). GIT ranges name commits, not versions, and are left out. Ratings come from
`severity[]` (CVSS vectors, Ubuntu priorities) and GHSA's `database_specific.severity`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skanse.vuln import severity as sev
from skanse.vuln.ecosystems import normalise_name, osv_ecosystem, scheme_for
from skanse.vuln.importers._common import (
    RecordError,
    as_list,
    as_mapping,
    as_str,
    opt_str,
    version_text,
)
from skanse.vuln.model import Advisory, Affected, Event, Rating
from skanse.vuln.versions import Scheme

__all__ = ["looks_like_osv", "osv_advisory"]

_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


def looks_like_osv(data: object) -> bool:
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("id"), str)
        and ("affected" in data or "modified" in data or "schema_version" in data)
    )


def _ratings(items: list[Any], what: str) -> list[Rating]:
    ratings = []
    for i, raw in enumerate(items):
        item = as_mapping(raw, f"{what}[{i}]")
        kind = str(item.get("type", ""))
        score = item.get("score")
        if not isinstance(score, str):
            continue
        if kind.startswith("CVSS"):
            rating = sev.rate_vector(score)
            if rating is not None:
                ratings.append(rating)
        else:  # "Ubuntu": a priority word
            word = sev.from_word(score)
            if word is not None:
                ratings.append(Rating(word, None, None, kind.lower() or "vendor"))
    return ratings


def _events(raw: object, what: str) -> tuple[Event, ...]:
    events = []
    for i, item in enumerate(as_list(raw, what)):
        entry = as_mapping(item, f"{what}[{i}]")
        kinds = [k for k in _EVENT_KINDS if k in entry]
        if len(kinds) != 1:
            raise RecordError(f"{what}[{i}] must have exactly one of {', '.join(_EVENT_KINDS)}")
        events.append(Event(kinds[0], version_text(entry[kinds[0]], f"{what}[{i}].{kinds[0]}")))
    if not events:
        raise RecordError(f"{what} has no events")
    return tuple(events)


def _affected(raw: object, what: str) -> Affected | None:
    entry = as_mapping(raw, what)
    package = as_mapping(entry.get("package"), f"{what}.package")
    ecosystem = osv_ecosystem(as_str(package.get("ecosystem"), f"{what}.package.ecosystem"))
    name = normalise_name(ecosystem, as_str(package.get("name"), f"{what}.package.name"))
    ranges = []
    semver_only = True
    for i, item in enumerate(as_list(entry.get("ranges"), f"{what}.ranges")):
        rng = as_mapping(item, f"{what}.ranges[{i}]")
        kind = rng.get("type")
        if kind == "GIT":
            continue  # commit ranges, not versions
        if kind not in ("ECOSYSTEM", "SEMVER"):
            raise RecordError(f"{what}.ranges[{i}].type {kind!r} is not ECOSYSTEM, SEMVER or GIT")
        semver_only = semver_only and kind == "SEMVER"
        ranges.append(_events(rng.get("events"), f"{what}.ranges[{i}].events"))
    versions = tuple(
        version_text(v, f"{what}.versions[{i}]")
        for i, v in enumerate(as_list(entry.get("versions"), f"{what}.versions"))
    )
    if not ranges and not versions:
        return None  # GIT-only: nothing that names a released version
    scheme = scheme_for(ecosystem)
    if ranges and semver_only and scheme not in (Scheme.GO,):
        scheme = Scheme.SEMVER
    return Affected(ecosystem, name, scheme, tuple(ranges), versions)


def osv_advisory(data: object) -> Advisory:
    """One OSV record; `RecordError` says what is wrong with a malformed one."""
    record = as_mapping(data, "record")
    advisory_id = as_str(record.get("id"), "id")
    aliases = tuple(
        as_str(a, f"aliases[{i}]") for i, a in enumerate(as_list(record.get("aliases"), "aliases"))
    )
    ratings = _ratings(as_list(record.get("severity"), "severity"), "severity")
    specific = record.get("database_specific")
    if isinstance(specific, Mapping) and isinstance(specific.get("severity"), str):
        word = sev.from_word(specific["severity"])
        if word is not None:
            ratings.append(Rating(word, None, None, "ghsa"))
    affected = []
    for i, item in enumerate(as_list(record.get("affected"), "affected")):
        entry = _affected(item, f"affected[{i}]")
        if entry is not None:
            affected.append(entry)
    references = []
    for i, ref in enumerate(as_list(record.get("references"), "references")):
        url = as_mapping(ref, f"references[{i}]").get("url")
        if isinstance(url, str):
            references.append(url)
    summary = opt_str(record.get("summary"), "summary") or ""
    details = opt_str(record.get("details"), "details") or ""
    return Advisory(
        id=advisory_id,
        source="osv",
        aliases=tuple(a for a in aliases if a != advisory_id),
        summary=summary.strip() or details.strip().split("\n", 1)[0][:200],
        details=details,
        published=opt_str(record.get("published"), "published"),
        modified=opt_str(record.get("modified"), "modified"),
        withdrawn=opt_str(record.get("withdrawn"), "withdrawn"),
        rating=sev.best_rating(ratings),
        references=tuple(references),
        affected=tuple(affected),
    )
