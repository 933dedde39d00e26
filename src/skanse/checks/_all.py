"""Every check skanse has, imported explicitly: adding a check module means adding it here."""

from __future__ import annotations

from skanse.checks._registry import Registry
from skanse.checks.dockerfile.rules import DOCKERFILE_CHECKS
from skanse.checks.kubernetes.exposure import EXPOSURE_CHECKS
from skanse.checks.kubernetes.pss import PSS_CHECKS
from skanse.checks.kubernetes.zerotrust import ZERO_TRUST_CHECKS
from skanse.checks.network.netpol import NETWORK_CHECKS

__all__ = ["REGISTRY"]

REGISTRY = Registry(
    PSS_CHECKS, ZERO_TRUST_CHECKS, EXPOSURE_CHECKS, NETWORK_CHECKS, DOCKERFILE_CHECKS
)
