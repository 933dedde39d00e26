"""Every host check, imported explicitly: adding a host check module means adding it here."""

from __future__ import annotations

from skanse.checks._registry import Registry
from skanse.host.checks.engines import ENGINE_CHECKS
from skanse.host.checks.interfaces import INTERFACE_CHECKS
from skanse.host.checks.isolation import ISOLATION_CHECKS
from skanse.host.checks.kubelet import KUBELET_CHECKS
from skanse.host.checks.runtime import RUNTIME_CHECKS
from skanse.host.checks.sysctl import SYSCTL_CHECKS

__all__ = ["HOST_REGISTRY"]

HOST_REGISTRY = Registry(
    SYSCTL_CHECKS,
    INTERFACE_CHECKS,
    KUBELET_CHECKS,
    RUNTIME_CHECKS,
    ENGINE_CHECKS,
    ISOLATION_CHECKS,
)
