"""Isolation check: a host that shares its kernel with others, SKN-HOST-090."""

from __future__ import annotations

from collections.abc import Iterator

from skanse.checks._registry import CheckSet
from skanse.errors import FactUnavailable
from skanse.host.checks.base import HostViolation, host_check
from skanse.host.facts import AuditContext, HostFacts, HostProfile
from skanse.model import Severity

__all__ = ["ISOLATION_CHECKS"]

ISOLATION_CHECKS = CheckSet(__name__)

_SYSTEM_CONTAINERS = ("lxc", "lxc-libvirt", "openvz", "systemd-nspawn", "container-other")


@host_check(
    ISOLATION_CHECKS,
    id="SKN-HOST-090",
    title="Host shares its kernel with other tenants (container, not VM)",
    severity=Severity.HIGH,
    description="A system container (LXC, OpenVZ/Virtuozzo, nspawn) or application container "
    "runs on a kernel shared with every other container of its host: one kernel exploit "
    "reaches all of them, and kernel hardening is not yours to set. Sold as a 'VPS', it is "
    "not a virtual machine.",
    remediation="Run workloads that need kernel isolation (untrusted code, Kubernetes nodes) "
    "on a VM or bare metal with its own kernel (KVM, Firecracker, Xen, Hyper-V), or add a "
    "sandboxing runtime (gVisor, Kata Containers).",
    references=(
        "https://github.com/systemd/systemd/blob/main/src/basic/virt.c",
        "https://docs.kernel.org/admin-guide/namespaces/",
    ),
)
def shared_kernel(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    iso = facts.isolation()
    if iso.kernel == "unknown":
        raise FactUnavailable(
            "isolation signals could not be read: "
            + ("; ".join(iso.unreadable) or "no signal at all"),
            path="/proc",
        )
    if iso.kernel != "shared":
        return
    evidence = "; ".join(str(e) for e in iso.evidence if e.points_to.startswith("container"))
    system = iso.container in _SYSTEM_CONTAINERS
    severity = Severity.HIGH if system or ctx.profile is HostProfile.K8S_NODE else Severity.MEDIUM
    yield HostViolation(
        f"this is {iso.summary()}: its kernel is shared with the host and every other "
        f"container on it (evidence: {evidence})",
        severity=severity,
        file="/proc/1",
    )
