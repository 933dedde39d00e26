"""podman and CRI-O checks (containers-common's configuration): SKN-HOST-087 to 089.

The settings the zero-trust standard cares about, as the engines read them for root:
default capabilities and the seccomp profile (087), user namespaces (088) and registries
pulled from without TLS verification (089). Facts: skanse.host.containers_conf.
"""

from __future__ import annotations

from collections.abc import Iterator

from skanse.checks._registry import CheckSet
from skanse.controls import GDPR_SECURITY, NSA_HARDENING, NSA_IMAGES, NSA_NON_ROOT, nsa
from skanse.host.checks.base import HostViolation, host_check
from skanse.host.facts import AuditContext, HostFacts
from skanse.model import Severity

__all__ = ["ENGINE_CHECKS"]

ENGINE_CHECKS = CheckSet(__name__)

_CONTAINERS_CONF = "https://github.com/containers/common/blob/main/docs/containers.conf.5.md"
_STORAGE_CONF = "https://github.com/containers/storage/blob/main/docs/containers-storage.conf.5.md"
_REGISTRIES_CONF = (
    "https://github.com/containers/image/blob/main/docs/containers-registries.conf.5.md"
)
# Capabilities that give a container's root a way out or onto the network stack; none is in
# podman's default set (CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE SETFCAP SETGID
# SETPCAP SETUID SYS_CHROOT) and each is what the Pod Security restricted profile drops.
DANGEROUS_CAPABILITIES = frozenset(
    {
        "AUDIT_CONTROL", "AUDIT_WRITE", "BPF", "DAC_READ_SEARCH", "IPC_LOCK", "LINUX_IMMUTABLE",
        "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_RAW", "PERFMON", "SYSLOG",
        "SYS_ADMIN", "SYS_BOOT", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE",
        "SYS_TIME",
    }
)  # fmt: skip
# [containers] userns values that give containers their own user namespace
_PRIVATE_USERNS = ("auto", "private", "nomap", "keep-id")


def _capability(name: object) -> str:
    return str(name).upper().removeprefix("CAP_")


@host_check(
    ENGINE_CHECKS,
    id="SKN-HOST-087",
    controls=(nsa(NSA_HARDENING), GDPR_SECURITY),
    title="podman/CRI-O container defaults weaken isolation",
    severity=Severity.MEDIUM,
    description="containers.conf sets what every container gets unless it asks otherwise: "
    "extra default capabilities (NET_RAW, SYS_ADMIN, ...) or seccomp_profile = "
    '"unconfined" (or a profile file that does not exist) give every container more of '
    "the kernel than it needs.",
    remediation="Remove the capabilities from `default_capabilities` in [containers] (grant "
    "them per container with --cap-add), and leave `seccomp_profile` unset or pointing at an "
    "existing profile (/usr/share/containers/seccomp.json).",
    references=(_CONTAINERS_CONF,),
)
def engine_defaults(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    conf = facts.containers_conf()
    capabilities = conf.containers("default_capabilities")
    if capabilities is not None and isinstance(capabilities.value, list):
        extra = sorted({_capability(c) for c in capabilities.value} & DANGEROUS_CAPABILITIES)
        if extra:
            yield HostViolation(
                f"default_capabilities adds {', '.join(extra)} to every container",
                pointer="default_capabilities",
                file=capabilities.file,
                line=capabilities.line,
            )
    seccomp = conf.containers("seccomp_profile")
    if seccomp is not None and isinstance(seccomp.value, str):
        if seccomp.value.strip() == "unconfined":
            yield HostViolation(
                'seccomp_profile = "unconfined": containers run without a syscall filter',
                pointer="seccomp_profile",
                file=seccomp.file,
                line=seccomp.line,
            )
        elif seccomp.value.strip() and not facts.root.exists(seccomp.value.strip()):
            yield HostViolation(
                f"seccomp_profile {seccomp.value} does not exist",
                pointer="seccomp_profile",
                file=seccomp.file,
                line=seccomp.line,
            )


@host_check(
    ENGINE_CHECKS,
    id="SKN-HOST-088",
    controls=(nsa(NSA_NON_ROOT, approximate=True, note="root in a container"), GDPR_SECURITY),
    title="podman/CRI-O containers share the host's user namespace",
    severity=Severity.LOW,
    description="Without a user namespace, root in a rootful container is root on the "
    "host: a container escape keeps every privilege. containers.conf's `userns` (auto gives "
    "each container its own range of subordinate ids) or storage.conf's remap-uids, "
    "remap-gids or remap-user turn it on.",
    remediation='Set `userns = "auto"` in [containers] of /etc/containers/containers.conf '
    "(and a `containers` entry in /etc/subuid and /etc/subgid), or remap-user in "
    "[storage.options] of storage.conf; or run podman rootless.",
    references=(_CONTAINERS_CONF, _STORAGE_CONF),
)
def engine_userns(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    conf = facts.containers_conf()
    userns = conf.containers("userns")
    value = str(userns.value).strip() if userns is not None else ""
    if value.split(":", 1)[0] in _PRIVATE_USERNS:
        return
    for key in ("remap-user", "remap-uids", "remap-gids"):
        if conf.storage_option(key) is not None:
            return
    how = f'userns = "{value}"' if userns is not None else "userns is not set"
    yield HostViolation(
        f"{how} and storage.conf remaps no ids: root in a container is root on the host",
        pointer="userns",
        file=userns.file if userns else (conf.sources[-1] if conf.sources else ""),
        line=userns.line if userns else 1,
    )


@host_check(
    ENGINE_CHECKS,
    id="SKN-HOST-089",
    controls=(nsa(NSA_IMAGES, approximate=True, note="images pulled without TLS"), GDPR_SECURITY),
    title="podman/CRI-O pull from insecure registries",
    severity=Severity.HIGH,
    description="A registry marked insecure in registries.conf is reached over plain HTTP or "
    "without certificate verification: anyone on the path can substitute images.",
    remediation="Remove `insecure = true` (and v1 [registries.insecure] entries); trust the "
    "registry's CA in /etc/containers/certs.d/<registry>/ca.crt instead.",
    references=(_REGISTRIES_CONF,),
)
def engine_insecure_registries(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    for name, file, line in facts.containers_conf().insecure_registries():
        yield HostViolation(f"{name} is pulled from without TLS verification", file=file, line=line)
