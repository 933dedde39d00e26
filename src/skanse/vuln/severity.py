"""Severities from CVSS vectors (scored with the `cvss` package) and from vendors' words.

An advisory may carry several ratings; the newest CVSS version wins (v4, then v3, then v2),
then a vendor's qualitative rating (GHSA `MODERATE`, Debian urgency, Ubuntu priority).
Scores map to severities by the CVSS v3 bands: 9.0 critical, 7.0 high, 4.0 medium, 0.1 low.
"""

from __future__ import annotations

import functools

from skanse.model import Severity
from skanse.vuln.model import Rating

__all__ = ["best_rating", "from_score", "from_word", "rate_vector"]

_WORDS = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "important": Severity.HIGH,  # Red Hat
    "moderate": Severity.MEDIUM,  # GHSA, Red Hat
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.INFO,
    "unimportant": Severity.INFO,  # Debian: no security impact on Debian users
    "none": Severity.INFO,
}
_CVSS_RANK = {"CVSSv4": 3, "CVSSv3": 2, "CVSSv2": 1}


def from_score(score: float) -> Severity:
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.INFO


def from_word(word: str) -> Severity | None:
    """`High`, `MODERATE`, `medium**` (Debian's "guessed" mark) -> a severity; else None."""
    return _WORDS.get(word.strip().rstrip("*").strip().lower())


@functools.lru_cache(maxsize=16_384)
def rate_vector(vector: str) -> Rating | None:
    """Score a CVSS v2, v3.x or v4.0 vector; None if it does not parse."""
    from cvss import CVSS2, CVSS3, CVSS4

    text = vector.strip()
    try:
        if text.startswith("CVSS:4"):
            v4 = CVSS4(text)
            score = float(v4.base_score)
            return Rating(from_score(score), score, text, "CVSSv4")
        if text.startswith("CVSS:3"):
            score = float(CVSS3(text).scores()[0])
            return Rating(from_score(score), score, text, "CVSSv3")
        score = float(CVSS2(text.removeprefix("(").removesuffix(")")).scores()[0])
        return Rating(from_score(score), score, text, "CVSSv2")
    except Exception:  # the cvss package raises its own error types, and ValueError/KeyError
        return None


def best_rating(ratings: list[Rating]) -> Rating:
    """The rating to report: newest CVSS version, higher score; then a vendor's word."""
    scored = [r for r in ratings if r.method in _CVSS_RANK and r.score is not None]
    if scored:
        return max(scored, key=lambda r: (_CVSS_RANK[r.method], r.score or 0.0))
    worded = [r for r in ratings if r.severity is not None]
    if worded:
        return max(worded, key=lambda r: r.severity.rank if r.severity else -1)
    return Rating()
