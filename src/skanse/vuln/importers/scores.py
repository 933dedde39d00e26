"""Severity data about CVEs, not advisories: NVD's CVSS, FIRST's EPSS, CISA's KEV catalogue.

    for item in nvd_ratings(document, origin): ...   # CveRating
    for item in epss_scores(text, origin): ...       # EpssScore
    for item in kev_entries(document, origin): ...   # KevEntry

The formats, as published:
- NVD CVE API 2.0 (the `/rest/json/cves/2.0` response, also how the yearly feeds are
  mirrored): `{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": {"id",
  "metrics": {"cvssMetricV40"|"cvssMetricV31"|"cvssMetricV30"|"cvssMetricV2": [{"source",
  "type": "Primary"|"Secondary", "cvssData": {"version", "vectorString", "baseScore", ...}}]}}}]}`
  (schema: csrc.nist.gov/schema/nvd/api/2.0/cve_api_json_2.0.schema). NVD's own ("Primary")
  metric of the newest CVSS version is kept; the vector is scored again here, so a record whose
  vector and score disagree cannot raise a severity.
- EPSS CSV (epss.cyentia.com/epss_scores-YYYY-MM-DD.csv.gz): a `#model_version:...,
  score_date:...` comment line, a `cve,epss,percentile` header, one row per CVE.
- KEV (cisa.gov known_exploited_vulnerabilities.json, schema
  known_exploited_vulnerabilities_schema.json): `{"title", "catalogVersion", "dateReleased",
  "count", "vulnerabilities": [{"cveID", "vendorProject", "product", "dateAdded",
  "knownRansomwareCampaignUse", ...}]}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from skanse.vuln import severity as sev
from skanse.vuln.model import Rating, Rejected

__all__ = [
    "CveRating",
    "EpssScore",
    "KevEntry",
    "NvdPage",
    "epss_rows",
    "epss_scores",
    "kev_entries",
    "looks_like_kev",
    "looks_like_nvd",
    "nvd_gaps",
    "nvd_page",
    "nvd_ratings",
]

CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}")
_METRICS = (("cvssMetricV40", "CVSSv4"), ("cvssMetricV31", "CVSSv3"), ("cvssMetricV30", "CVSSv3"))
_METRICS_V2 = ("cvssMetricV2", "CVSSv2")
_NVD_SOURCE = "nvd@nist.gov"
MAX_EPSS_ROWS = 2_000_000  # about 270,000 CVEs are scored today
MAX_EPSS_BAD_ROWS = 1_000


@dataclass(frozen=True, slots=True)
class CveRating:
    """A CVSS rating of one CVE by a scoring authority (NVD), not by a vendor."""

    cve: str
    rating: Rating
    source: str  # nvd


@dataclass(frozen=True, slots=True)
class EpssScore:
    cve: str
    score: float  # probability of exploitation in the next 30 days, 0..1
    percentile: float  # 0..1


@dataclass(frozen=True, slots=True)
class KevEntry:
    cve: str
    date_added: str
    ransomware: str  # "Known" | "Unknown"


@dataclass(frozen=True, slots=True)
class NvdPage:
    """Where one NVD CVE API 2.0 response sits in the results of its query: `startIndex`,
    the CVEs it holds, `totalResults`. The pages of one source must leave no gap."""

    origin: str
    start: int
    count: int
    total: int


def looks_like_nvd(data: object) -> bool:
    return (
        isinstance(data, Mapping)
        and data.get("format") == "NVD_CVE"
        and isinstance(data.get("vulnerabilities"), list)
    )


def looks_like_kev(data: object) -> bool:
    return (
        isinstance(data, Mapping)
        and "catalogVersion" in data
        and isinstance(data.get("vulnerabilities"), list)
    )


def _metric_rating(metric: object, method: str) -> Rating | None:
    if not isinstance(metric, Mapping):
        return None
    data = metric.get("cvssData")
    if not isinstance(data, Mapping) or not isinstance(data.get("vectorString"), str):
        return None
    rating = sev.rate_vector(data["vectorString"])
    if rating is None or rating.method != method:
        return None
    return rating


def _best_metric(metrics: Mapping[str, Any]) -> Rating | None:
    """NVD's own (Primary) rating of the newest CVSS version, else another source's."""
    for key, method in (*_METRICS, _METRICS_V2):
        entries = metrics.get(key)
        if not isinstance(entries, list):
            continue
        ranked = sorted(
            (e for e in entries if isinstance(e, Mapping)),
            key=lambda e: (e.get("source") != _NVD_SOURCE, e.get("type") != "Primary"),
        )
        for entry in ranked:
            rating = _metric_rating(entry, method)
            if rating is not None:
                return rating
    return None


def nvd_ratings(data: Mapping[str, Any], origin: str) -> Iterator[CveRating | Rejected]:
    """One `CveRating` per CVE of an NVD CVE API 2.0 document that has a usable metric."""
    items = data.get("vulnerabilities")
    if not isinstance(items, list):
        yield Rejected(origin, "no vulnerabilities list")
        return
    for index, item in enumerate(items):
        cve = item.get("cve") if isinstance(item, Mapping) else None
        if not isinstance(cve, Mapping) or not isinstance(cve.get("id"), str):
            yield Rejected(f"{origin}[{index}]", "no cve.id")
            continue
        if not CVE_ID.fullmatch(cve["id"]):
            yield Rejected(f"{origin}[{index}]", f"{cve['id'][:40]!r} is not a CVE id")
            continue
        if cve.get("vulnStatus") == "Rejected":
            continue
        metrics = cve.get("metrics")
        rating = _best_metric(metrics) if isinstance(metrics, Mapping) else None
        if rating is not None:
            yield CveRating(cve["id"], rating, "nvd")


def epss_scores(text: str, origin: str) -> Iterator[EpssScore | Rejected]:
    """Rows of an EPSS CSV held in memory (see `epss_rows`)."""
    return epss_rows(text.splitlines(), origin)


def epss_rows(lines: Iterable[str], origin: str) -> Iterator[EpssScore | Rejected]:
    """Rows of an EPSS CSV, read as they come; a malformed row is rejected, a missing header
    rejects the file, and so do more than `MAX_EPSS_ROWS` lines or `MAX_EPSS_BAD_ROWS`
    malformed rows (a file of something else, not a list of that many rejections to keep)."""
    header_seen = False
    bad = 0
    for line_no, line in enumerate(lines, start=1):
        if line_no > MAX_EPSS_ROWS:
            yield Rejected(origin, f"more than {MAX_EPSS_ROWS} rows")
            return
        if bad > MAX_EPSS_BAD_ROWS:
            reason = f"more than {MAX_EPSS_BAD_ROWS} malformed rows; the rest is not read"
            yield Rejected(origin, reason)
            return
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if not header_seen:
            if fields[:3] != ["cve", "epss", "percentile"]:
                yield Rejected(origin, "not an EPSS CSV (no cve,epss,percentile header)")
                return
            header_seen = True
            continue
        try:
            cve, score, percentile = fields[0], float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            bad += 1
            yield Rejected(f"{origin}:{line_no}", "not cve,epss,percentile")
            continue
        if not CVE_ID.fullmatch(cve) or not (0 <= score <= 1 and 0 <= percentile <= 1):
            bad += 1
            yield Rejected(f"{origin}:{line_no}", "not a CVE id with scores between 0 and 1")
            continue
        yield EpssScore(cve, score, percentile)
    if not header_seen:
        yield Rejected(origin, "not an EPSS CSV (no cve,epss,percentile header)")


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def nvd_page(data: Mapping[str, Any], origin: str) -> NvdPage | None:
    """The page an NVD response is; None when it does not say (no `startIndex` or
    `totalResults`), and then nothing can be checked about the pages around it."""
    items = data.get("vulnerabilities")
    start, total = _count(data.get("startIndex")), _count(data.get("totalResults"))
    if not isinstance(items, list) or start is None or total is None:
        return None
    return NvdPage(origin, start, len(items), total)


def nvd_gaps(pages: Iterable[NvdPage], origin: str) -> Rejected | None:
    """A rejection that makes the source incomplete when its NVD pages leave results out.

    A file that holds all the results of its query (a yearly feed: `startIndex` 0, every
    CVE of `totalResults`) is complete by itself. The others are pages of one query, which
    must cover results 0 to the highest `totalResults` they give (a query that grew while
    it was paged through ends with the larger total) with the CVEs they actually hold: a
    page missing, or one cut short, leaves a gap.
    """
    partial = [p for p in pages if not (p.start == 0 and p.count >= p.total)]
    if not partial:
        return None
    total = max(p.total for p in partial)
    reached = 0
    for page in sorted(partial, key=lambda p: p.start):
        if page.start > reached:
            break
        reached = max(reached, page.start + page.count)
    if reached >= total:
        return None
    following = [p.start for p in partial if p.start > reached]
    end = min(following, default=total) - 1
    return Rejected(
        origin,
        f"NVD pages leave results {reached:,} to {end:,} of {total:,} out "
        "(by their startIndex and totalResults): a page is missing or cut short",
        partial=True,
    )


def kev_entries(data: Mapping[str, Any], origin: str) -> Iterator[KevEntry | Rejected]:
    items = data.get("vulnerabilities")
    if not isinstance(items, list):
        yield Rejected(origin, "no vulnerabilities list")
        return
    count = _count(data.get("count"))
    if count is not None and count != len(items):
        # a catalogue cut short (or padded) would otherwise be imported as if whole
        reason = f"count says {count:,} entries, the catalogue lists {len(items):,}"
        yield Rejected(origin, f"{reason}: cut short or altered", partial=True)
    for index, item in enumerate(items):
        cve = item.get("cveID") if isinstance(item, Mapping) else None
        if not isinstance(cve, str) or not CVE_ID.fullmatch(cve):
            yield Rejected(f"{origin}[{index}]", "no valid cveID")
            continue
        assert isinstance(item, Mapping)
        yield KevEntry(
            cve,
            str(item.get("dateAdded") or ""),
            str(item.get("knownRansomwareCampaignUse") or ""),
        )
