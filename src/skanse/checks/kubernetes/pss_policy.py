"""Pod Security Standards levels and policy versions (`restricted@v1.29`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BASELINE", "LATEST_MINOR", "RESTRICTED", "PSSLevel", "PSSPolicy", "parse_policy"]

BASELINE = "baseline"
RESTRICTED = "restricted"
PSSLevel = str  # BASELINE or RESTRICTED

# Newest policy version with a registered check variant (v1.37 added two safe sysctls).
LATEST_MINOR = 37

_VERSION = re.compile(r"^v?1\.(\d+)\Z")


@dataclass(frozen=True, slots=True)
class PSSPolicy:
    """A level at a policy version; versions newer than LATEST_MINOR behave as the newest."""

    level: PSSLevel
    minor: int
    requested: str = "latest"

    @property
    def label(self) -> str:
        """`restricted:v1.29` or `restricted:latest`, as Pod Security Admission writes it."""
        return f"{self.level}:{self.requested}"

    def __str__(self) -> str:
        return f"{self.level}@{self.requested}"


def parse_policy(text: str) -> PSSPolicy:
    """`baseline`, `restricted@latest`, `restricted@v1.25` or `baseline@1.30`, in any case."""
    level, _, version = text.strip().lower().partition("@")
    if level not in (BASELINE, RESTRICTED):
        raise ValueError(f"unknown Pod Security level {level!r} (expected baseline or restricted)")
    version = version or "latest"
    if version == "latest":
        return PSSPolicy(level, LATEST_MINOR, "latest")
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"invalid Pod Security version {version!r} (expected v1.N or latest)")
    minor = int(match.group(1))
    if minor > LATEST_MINOR:
        raise ValueError(
            f"unknown Pod Security version v1.{minor} (this skanse knows v1.0 to "
            f"v1.{LATEST_MINOR}; use latest for the newest it knows)"
        )
    return PSSPolicy(level, minor, f"v1.{minor}")
