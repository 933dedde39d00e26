"""Pod Security Standards, versioned, with the semantics of the Pod Security Admission code.

Each control below follows the upstream implementation of the same name
(kubernetes/pod-security-admission, `policy/check_*.go`): which fields it reads, how pod and
container levels combine, which policy version introduced or changed it, and the wording of
its reason and detail, so a user can diff skanse against `kubectl --dry-run=server`.
This is written here rather than reused because no Python implementation of PSA exists.

A control yields one `Site` per offending field (so a finding points at the exact key and
one suppression cannot hide a sibling container) and also the aggregate detail exactly as
PSA words it, which `evaluate()` joins into the admission denial message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from skanse.checks._registry import Violation
from skanse.checks.kubernetes.base import CheckContext, K8sCheckSet
from skanse.checks.kubernetes.pss_policy import (
    BASELINE,
    LATEST_MINOR,
    RESTRICTED,
    PSSLevel,
    PSSPolicy,
)
from skanse.controls import GDPR_SECURITY, NSA_NON_ROOT, NSA_POD_SECURITY, cis, nsa, pss
from skanse.model import ControlRef, Severity
from skanse.sources.kubernetes import PodSpecView, as_dict, as_list, recall, remember
from skanse.sources.yamlpos import join_pointer

__all__ = [
    "BASELINE_CAPABILITIES",
    "CONTROLS",
    "PSS_CHECKS",
    "Control",
    "ControlResult",
    "Denial",
    "control_result",
    "controls_for",
    "evaluate",
]


@dataclass(frozen=True, slots=True)
class Site:
    """One offending field: where it is and PSA's detail for it alone."""

    pointer: str
    detail: str
    # hostPath among the restricted volume types stays as severe as the baseline control
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class ControlResult:
    """A control that failed: PSA's reason and aggregate detail, plus each offending field."""

    reason: str
    detail: str
    sites: tuple[Site, ...]


ControlFn = Callable[[PodSpecView], "ControlResult | None"]


@dataclass(frozen=True, slots=True)
class VersionedImpl:
    minimum_minor: int
    fn: ControlFn
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Control:
    """A PSA check: its id, level and versioned implementations (strictly increasing)."""

    id: str
    level: PSSLevel
    versions: tuple[VersionedImpl, ...]

    def impl_for(self, minor: int) -> VersionedImpl | None:
        """The newest implementation at or below `minor`, or None before the first one."""
        chosen = None
        for impl in self.versions:
            if impl.minimum_minor <= minor:
                chosen = impl
        return chosen


# ---------------------------------------------------------------------------------------------
# Helpers with PSA's exact formatting (policy/helpers.go).


def _join_quote(items: Sequence[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _go_quote(value: str) -> str:
    """Go's %q for the strings that appear in manifests (ASCII escapes as JSON writes them)."""
    return json.dumps(value, ensure_ascii=False)


def _containers_label(names: Sequence[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


def _setters(pod: bool, containers: Sequence[str]) -> str:
    parts = ["pod"] if pod else []
    if containers:
        parts.append(_containers_label(containers))
    return " and ".join(parts)


def _is_set(value: object) -> bool:
    """A field explicitly set to something other than null/false (fail closed on odd types)."""
    return value is not None and value is not False


def _str(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_zero(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


# ---------------------------------------------------------------------------------------------
# Baseline controls.


def _host_namespaces(pod: PodSpecView) -> ControlResult | None:
    sites = [
        Site(pod.pointer(field), f"{field}=true")
        for field in ("hostNetwork", "hostPID", "hostIPC")
        if _is_set(pod.spec.get(field))
    ]
    if not sites:
        return None
    return ControlResult("host namespaces", ", ".join(s.detail for s in sites), tuple(sites))


def _privileged(pod: PodSpecView) -> ControlResult | None:
    names, sites = [], []
    for c in pod.containers():
        if _is_set(c.security_context.get("privileged")):
            names.append(c.name)
            detail = f"{_containers_label([c.name])} must not set securityContext.privileged=true"
            sites.append(Site(f"{c.pointer}/securityContext/privileged", detail))
    if not names:
        return None
    detail = f"{_containers_label(names)} must not set securityContext.privileged=true"
    return ControlResult("privileged", detail, tuple(sites))


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip


def _capabilities_baseline(pod: PodSpecView) -> ControlResult | None:
    names: list[str] = []
    forbidden: set[str] = set()
    sites = []
    for c in pod.containers():
        caps = c.security_context.get("capabilities")
        if not isinstance(caps, dict):
            continue
        bad = [
            (i, _str(cap))
            for i, cap in enumerate(as_list(caps.get("add")))
            if _str(cap) not in BASELINE_CAPABILITIES
        ]
        if bad:
            names.append(c.name)
            forbidden.update(cap for _, cap in bad)
            own = sorted({cap for _, cap in bad})
            detail = (
                f"{_containers_label([c.name])} must not include {_join_quote(own)} "
                "in securityContext.capabilities.add"
            )
            sites.append(Site(f"{c.pointer}/securityContext/capabilities/add/{bad[0][0]}", detail))
    if not names:
        return None
    detail = (
        f"{_containers_label(names)} must not include {_join_quote(sorted(forbidden))} "
        "in securityContext.capabilities.add"
    )
    return ControlResult("non-default capabilities", detail, tuple(sites))


def _host_path_volumes(pod: PodSpecView) -> ControlResult | None:
    names, sites = [], []
    for i, volume in enumerate(as_list(pod.spec.get("volumes"))):
        volume = as_dict(volume)
        if volume.get("hostPath") is not None:
            name = _str(volume.get("name"))
            names.append(name)
            sites.append(Site(pod.pointer("volumes", i, "hostPath"), f'volume "{name}"'))
    if not names:
        return None
    detail = f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}"
    return ControlResult("hostPath volumes", detail, tuple(sites))


def _host_ports(pod: PodSpecView) -> ControlResult | None:
    names: list[str] = []
    ports: set[str] = set()
    sites = []
    for c in pod.containers():
        own: list[str] = []
        first = None
        for i, port in enumerate(as_list(c.data.get("ports"))):
            host_port = as_dict(port).get("hostPort")
            if host_port is not None and not _is_zero(host_port):
                own.append(_str(host_port))
                first = first if first is not None else i
        if own:
            names.append(c.name)
            ports.update(own)
            detail = (
                f"{_containers_label([c.name])} uses "
                f"{_plural('hostPort', 'hostPorts', len(set(own)))} {', '.join(sorted(set(own)))}"
            )
            sites.append(Site(f"{c.pointer}/ports/{first}/hostPort", detail))
    if not names:
        return None
    detail = (
        f"{_containers_label(names)} {_plural('uses', 'use', len(names))} "
        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}"
    )
    return ControlResult("hostPort", detail, tuple(sites))


_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_annotation_ok(value: str) -> bool:
    return value == "" or value == "runtime/default" or value.startswith("localhost/")


def _apparmor_type_ok(value: object) -> bool:
    return value in ("RuntimeDefault", "Localhost")


def _apparmor_profile(pod: PodSpecView) -> ControlResult | None:
    setters: list[str] = []
    values: set[str] = set()
    sites: list[Site] = []

    def detail_for(setter: str, bad: Sequence[str]) -> str:
        return f"{setter} must not set AppArmor profile type to {_join_quote(bad)}"

    profile = pod.security_context.get("appArmorProfile")
    if isinstance(profile, dict) and not _apparmor_type_ok(profile.get("type")):
        value = _str(profile.get("type"))
        setters.append("pod")
        values.add(value)
        sites.append(
            Site(
                pod.pointer("securityContext", "appArmorProfile", "type"),
                detail_for("pod", [value]),
            )
        )
    names = []
    for c in pod.containers():
        profile = c.security_context.get("appArmorProfile")
        if isinstance(profile, dict) and not _apparmor_type_ok(profile.get("type")):
            value = _str(profile.get("type"))
            names.append(c.name)
            values.add(value)
            sites.append(
                Site(
                    f"{c.pointer}/securityContext/appArmorProfile/type",
                    detail_for(_containers_label([c.name]), [value]),
                )
            )
    if names:
        setters.append(_containers_label(names))
    forbidden_annotations = []
    for key, raw in pod.annotations.items():
        value = _str(raw)
        if key.startswith(_APPARMOR_ANNOTATION_PREFIX) and not _apparmor_annotation_ok(value):
            text = f"{key}={_go_quote(value)}"
            forbidden_annotations.append(text)
            sites.append(
                Site(
                    _annotation_pointer(pod, key),
                    detail_for("annotation", [text]),
                )
            )
    value_list = sorted(values)
    if forbidden_annotations:
        value_list += sorted(forbidden_annotations)
        setters.append(_plural("annotation", "annotations", len(forbidden_annotations)))
    if not setters:
        return None
    reason = _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(value_list))
    detail = detail_for(" and ".join(setters), value_list)
    return ControlResult(reason, detail, tuple(sites))


_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux_options(allowed: frozenset[str]) -> ControlFn:
    def control(pod: PodSpecView) -> ControlResult | None:
        setters: list[str] = []
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}
        sites: list[Site] = []

        def invalid(opts: dict[str, object]) -> list[str]:
            problems = []
            kind = _str(opts.get("type"))
            if kind not in allowed:
                bad_types.add(kind)
                problems.append(f'type "{kind}"')
            for field in ("user", "role"):
                if _str(opts.get(field)):
                    flags[field] = True
                    problems.append(f"{field} may not be set")
            return problems

        def site(pointer: str, setter: str, problems: list[str]) -> Site:
            text = "; ".join(problems)
            return Site(pointer, f"{setter} set forbidden securityContext.seLinuxOptions: {text}")

        opts = pod.security_context.get("seLinuxOptions")
        if isinstance(opts, dict) and (problems := invalid(opts)):
            setters.append("pod")
            sites.append(site(pod.pointer("securityContext", "seLinuxOptions"), "pod", problems))
        names = []
        for c in pod.containers():
            opts = c.security_context.get("seLinuxOptions")
            if isinstance(opts, dict) and (problems := invalid(opts)):
                names.append(c.name)
                pointer = f"{c.pointer}/securityContext/seLinuxOptions"
                sites.append(site(pointer, _containers_label([c.name]), problems))
        if names:
            setters.append(_containers_label(names))
        if not setters:
            return None
        data = []
        if bad_types:
            label = _plural("type", "types", len(bad_types))
            data.append(f"{label} {_join_quote(sorted(bad_types))}")
        data.extend(f"{field} may not be set" for field in ("user", "role") if flags[field])
        detail = (
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
            f"{'; '.join(data)}"
        )
        return ControlResult("seLinuxOptions", detail, tuple(sites))

    return control


def _proc_mount(pod: PodSpecView) -> ControlResult | None:
    names: list[str] = []
    kinds: set[str] = set()
    sites = []
    for c in pod.containers():
        value = c.security_context.get("procMount")
        if value is not None and value != "Default":
            names.append(c.name)
            kinds.add(_str(value))
            detail = (
                f"{_containers_label([c.name])} must not set securityContext.procMount to "
                f"{_join_quote([_str(value)])}"
            )
            sites.append(Site(f"{c.pointer}/securityContext/procMount", detail))
    if not names:
        return None
    detail = (
        f"{_containers_label(names)} must not set securityContext.procMount to "
        f"{_join_quote(sorted(kinds))}"
    )
    return ControlResult("procMount", detail, tuple(sites))


def _proc_mount_1_35_baseline(pod: PodSpecView) -> ControlResult | None:
    return None if pod.host_users_disabled else _proc_mount(pod)


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_annotation_ok(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def _seccomp_type_ok(value: object) -> bool:
    return value in ("RuntimeDefault", "Localhost")


def _annotation_pointer(pod: PodSpecView, key: str) -> str:
    return join_pointer(pod.metadata_pointer, "annotations", key)


def _seccomp_baseline_1_0(pod: PodSpecView) -> ControlResult | None:
    forbidden: dict[str, Site] = {}
    annotations = pod.annotations

    def consider(key: str) -> None:
        if key in annotations:
            value = _str(annotations[key])
            if not _seccomp_annotation_ok(value):
                text = f"{key}={_go_quote(value)}"
                forbidden[text] = Site(
                    _annotation_pointer(pod, key), f"forbidden annotation {text}"
                )

    consider(_SECCOMP_POD_ANNOTATION)
    for c in pod.containers():
        consider(_SECCOMP_CONTAINER_PREFIX + c.name)
    if not forbidden:
        return None
    keys = sorted(forbidden)
    detail = f"forbidden {_plural('annotation', 'annotations', len(keys))} {', '.join(keys)}"
    return ControlResult("seccompProfile", detail, tuple(forbidden[k] for k in keys))


def _seccomp_fields(pod: PodSpecView, *, required: bool) -> ControlResult | None:
    """seccompProfile_baseline (v1.19+) and, with `required`, seccompProfile_restricted."""
    setters: list[str] = []
    values: set[str] = set()
    sites: list[Site] = []

    def must_not(setter: str, value: str) -> str:
        return (
            f"{setter} must not set securityContext.seccompProfile.type to {_join_quote([value])}"
        )

    pod_ok = False
    profile = pod.security_context.get("seccompProfile")
    if isinstance(profile, dict):
        if _seccomp_type_ok(profile.get("type")):
            pod_ok = True
        else:
            value = _str(profile.get("type"))
            setters.append("pod")
            values.add(value)
            sites.append(
                Site(
                    pod.pointer("securityContext", "seccompProfile", "type"), must_not("pod", value)
                )
            )
    explicit, implicit = [], []
    implicit_sites = []
    for c in pod.containers():
        profile = c.security_context.get("seccompProfile")
        if isinstance(profile, dict):
            if not _seccomp_type_ok(profile.get("type")):
                value = _str(profile.get("type"))
                explicit.append(c.name)
                values.add(value)
                sites.append(
                    Site(
                        f"{c.pointer}/securityContext/seccompProfile/type",
                        must_not(_containers_label([c.name]), value),
                    )
                )
        elif required and not pod_ok:
            implicit.append(c.name)
            implicit_sites.append(
                Site(
                    f"{c.pointer}/securityContext/seccompProfile",
                    f"pod or {_containers_label([c.name])} must set "
                    'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
                )
            )
    if explicit:
        setters.append(_containers_label(explicit))
    if setters:
        detail = (
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}"
        )
        return ControlResult("seccompProfile", detail, tuple(sites + implicit_sites))
    if implicit:
        detail = (
            f"pod or {_containers_label(implicit)} must set securityContext.seccompProfile.type "
            'to "RuntimeDefault" or "Localhost"'
        )
        return ControlResult("seccompProfile", detail, tuple(implicit_sites))
    return None


def _seccomp_baseline_1_19(pod: PodSpecView) -> ControlResult | None:
    return _seccomp_fields(pod, required=False)


_SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SYSCTLS_1_37 = _SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> ControlFn:
    def control(pod: PodSpecView) -> ControlResult | None:
        names, sites = [], []
        for i, item in enumerate(as_list(pod.security_context.get("sysctls"))):
            name = _str(as_dict(item).get("name"))
            if name not in allowed:
                names.append(name)
                sites.append(Site(pod.pointer("securityContext", "sysctls", i, "name"), name))
        if not names:
            return None
        return ControlResult("forbidden sysctls", ", ".join(names), tuple(sites))

    return control


def _host_process_set(context: dict[str, object]) -> bool:
    return _is_set(as_dict(context.get("windowsOptions")).get("hostProcess"))


def _windows_host_process(pod: PodSpecView) -> ControlResult | None:
    def detail_for(setter: str) -> str:
        return f"{setter} must not set securityContext.windowsOptions.hostProcess=true"

    names = []
    sites = []
    for c in pod.containers():
        if _host_process_set(c.security_context):
            names.append(c.name)
            sites.append(
                Site(
                    f"{c.pointer}/securityContext/windowsOptions/hostProcess",
                    detail_for(_containers_label([c.name])),
                )
            )
    pod_bad = _host_process_set(pod.security_context)
    if pod_bad:
        pointer = pod.pointer("securityContext", "windowsOptions", "hostProcess")
        sites.insert(0, Site(pointer, detail_for("pod")))
    if not sites:
        return None
    return ControlResult("hostProcess", detail_for(_setters(pod_bad, names)), tuple(sites))


def _probe_hosts(handler: object, pointer: str, where: str) -> list[tuple[str, str]]:
    """(host, its pointer) of the handler at `pointer`/`where` (built only when found: this
    runs for five handlers of every container)."""
    if not isinstance(handler, dict):
        return []
    found = []
    for kind in ("httpGet", "tcpSocket"):
        action = handler.get(kind)
        host = action.get("host") if isinstance(action, dict) else None
        if host is not None and _str(host) != "":
            found.append((_str(host), f"{pointer}/{where}/{kind}/host"))
    return found


def _host_probes_and_lifecycle(pod: PodSpecView) -> ControlResult | None:
    bad_containers: set[str] = set()
    hosts: set[str] = set()
    sites = []
    for c in pod.containers():
        found: list[tuple[str, str]] = []
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            found.extend(_probe_hosts(c.data.get(probe), c.pointer, probe))
        lifecycle = as_dict(c.data.get("lifecycle"))
        for hook in ("postStart", "preStop"):
            found.extend(_probe_hosts(lifecycle.get(hook), c.pointer, f"lifecycle/{hook}"))
        if found:
            bad_containers.add(c.name)
            own = sorted({h for h, _ in found})
            hosts.update(own)
            detail = (
                f"{_containers_label([c.name])} uses "
                f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(own))} "
                f"{_join_quote(own)}"
            )
            sites.append(Site(found[0][1], detail))
    if not bad_containers:
        return None
    names = sorted(bad_containers)
    detail = (
        f"{_containers_label(names)} {_plural('uses', 'use', len(names))} "
        f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
        f"{_join_quote(sorted(hosts))}"
    )
    return ControlResult("probe or lifecycle host", detail, tuple(sites))


# ---------------------------------------------------------------------------------------------
# Restricted controls.

_ALLOWED_VOLUME_SOURCES = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
    "persistentVolumeClaim", "projected", "secret",
)  # fmt: skip
# In PSA's order of precedence when naming the type of a forbidden volume.
_RESTRICTED_VOLUME_SOURCES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
    "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
    "scaleIO", "storageos",
)  # fmt: skip


def _restricted_volumes(pod: PodSpecView) -> ControlResult | None:
    names: list[str] = []
    kinds: set[str] = set()
    sites = []
    for i, raw in enumerate(as_list(pod.spec.get("volumes"))):
        volume = as_dict(raw)
        # the keys set besides the name: a volume has one (its source), so this is short
        sources = [k for k, v in volume.items() if v is not None and k != "name"]
        if any(k in _ALLOWED_VOLUME_SOURCES for k in sources):
            continue
        if not sources:
            # The API server defaults a volume without a source to emptyDir before admission
            # sees it. An unknown source key, though, fails closed (PSA would drop it).
            continue
        name = _str(volume.get("name"))
        kind = next((k for k in _RESTRICTED_VOLUME_SOURCES if volume.get(k) is not None), None)
        names.append(name)
        kinds.add(kind or "unknown")
        pointer = pod.pointer("volumes", i, kind) if kind else pod.pointer("volumes", i)
        detail = f'volume "{name}" uses restricted volume type "{kind or "unknown"}"'
        sites.append(Site(pointer, detail, Severity.HIGH if kind == "hostPath" else None))
    if not names:
        return None
    detail = (
        f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)} "
        f"{_plural('uses', 'use', len(names))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} "
        f"{_join_quote(sorted(kinds))}"
    )
    return ControlResult("restricted volume types", detail, tuple(sites))


def _allow_privilege_escalation_1_8(pod: PodSpecView) -> ControlResult | None:
    names, sites = [], []
    for c in pod.containers():
        if c.security_context.get("allowPrivilegeEscalation") is not False:
            names.append(c.name)
            sites.append(
                Site(
                    f"{c.pointer}/securityContext/allowPrivilegeEscalation",
                    f"{_containers_label([c.name])} must set "
                    "securityContext.allowPrivilegeEscalation=false",
                )
            )
    if not names:
        return None
    detail = f"{_containers_label(names)} must set securityContext.allowPrivilegeEscalation=false"
    return ControlResult("allowPrivilegeEscalation != false", detail, tuple(sites))


def _unless_windows(fn: ControlFn) -> ControlFn:
    """v1.25: controls that do not apply to Windows pods (`spec.os.name: windows`)."""

    def control(pod: PodSpecView) -> ControlResult | None:
        return None if pod.is_windows else fn(pod)

    return control


def _unless_user_namespace(fn: ControlFn) -> ControlFn:
    """v1.35: controls relaxed for pods in a user namespace (`hostUsers: false`)."""

    def control(pod: PodSpecView) -> ControlResult | None:
        return None if pod.host_users_disabled else fn(pod)

    return control


def _run_as_non_root_1_0(pod: PodSpecView) -> ControlResult | None:
    setters: list[str] = []
    sites: list[Site] = []
    pod_true = False
    value = pod.security_context.get("runAsNonRoot")
    if value is not None:
        if value is True:
            pod_true = True
        else:
            setters.append("pod")
            sites.append(
                Site(
                    pod.pointer("securityContext", "runAsNonRoot"),
                    "pod must not set securityContext.runAsNonRoot=false",
                )
            )
    explicit, implicit, implicit_sites = [], [], []
    for c in pod.containers():
        value = c.security_context.get("runAsNonRoot")
        if value is not None:
            if value is not True:
                explicit.append(c.name)
                sites.append(
                    Site(
                        f"{c.pointer}/securityContext/runAsNonRoot",
                        f"{_containers_label([c.name])} must not set "
                        "securityContext.runAsNonRoot=false",
                    )
                )
        elif not pod_true:
            implicit.append(c.name)
            implicit_sites.append(
                Site(
                    f"{c.pointer}/securityContext/runAsNonRoot",
                    f"pod or {_containers_label([c.name])} must set "
                    "securityContext.runAsNonRoot=true",
                )
            )
    if explicit:
        setters.append(_containers_label(explicit))
    if setters:
        detail = f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
        return ControlResult("runAsNonRoot != true", detail, tuple(sites + implicit_sites))
    if implicit:
        detail = f"pod or {_containers_label(implicit)} must set securityContext.runAsNonRoot=true"
        return ControlResult("runAsNonRoot != true", detail, tuple(implicit_sites))
    return None


def _run_as_user_1_23(pod: PodSpecView) -> ControlResult | None:
    sites = []
    pod_bad = _is_zero(pod.security_context.get("runAsUser"))
    if pod_bad:
        sites.append(
            Site(pod.pointer("securityContext", "runAsUser"), "pod must not set runAsUser=0")
        )
    names = []
    for c in pod.containers():
        if _is_zero(c.security_context.get("runAsUser")):
            names.append(c.name)
            sites.append(
                Site(
                    f"{c.pointer}/securityContext/runAsUser",
                    f"{_containers_label([c.name])} must not set runAsUser=0",
                )
            )
    if not sites:
        return None
    return ControlResult(
        "runAsUser=0", f"{_setters(pod_bad, names)} must not set runAsUser=0", tuple(sites)
    )


def _seccomp_restricted_1_19(pod: PodSpecView) -> ControlResult | None:
    return _seccomp_fields(pod, required=True)


def _capabilities_restricted_1_22(pod: PodSpecView) -> ControlResult | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    sites = []
    for c in pod.containers():
        caps = c.security_context.get("capabilities")
        if not isinstance(caps, dict) or "ALL" not in [_str(x) for x in as_list(caps.get("drop"))]:
            missing_drop.append(c.name)
            sites.append(
                Site(
                    f"{c.pointer}/securityContext/capabilities/drop",
                    f"{_containers_label([c.name])} must set "
                    'securityContext.capabilities.drop=["ALL"]',
                )
            )
            if not isinstance(caps, dict):
                continue
        bad = [
            (i, _str(x)) for i, x in enumerate(as_list(caps.get("add"))) if x != "NET_BIND_SERVICE"
        ]
        if bad:
            adding.append(c.name)
            forbidden.update(x for _, x in bad)
            own = sorted({x for _, x in bad})
            sites.append(
                Site(
                    f"{c.pointer}/securityContext/capabilities/add/{bad[0][0]}",
                    f"{_containers_label([c.name])} must not include {_join_quote(own)} "
                    "in securityContext.capabilities.add",
                )
            )
    details = []
    if missing_drop:
        details.append(
            f'{_containers_label(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_label(adding)} must not include {_join_quote(sorted(forbidden))} "
            "in securityContext.capabilities.add"
        )
    if not details:
        return None
    return ControlResult("unrestricted capabilities", "; ".join(details), tuple(sites))


# ---------------------------------------------------------------------------------------------
# The registry of controls, with PSA's versions and overrides (policy/check_*.go).

CONTROLS: tuple[Control, ...] = (
    Control("hostNamespaces", BASELINE, (VersionedImpl(0, _host_namespaces),)),
    Control("privileged", BASELINE, (VersionedImpl(0, _privileged),)),
    Control("capabilities_baseline", BASELINE, (VersionedImpl(0, _capabilities_baseline),)),
    Control("hostPathVolumes", BASELINE, (VersionedImpl(0, _host_path_volumes),)),
    Control("hostPorts", BASELINE, (VersionedImpl(0, _host_ports),)),
    Control("appArmorProfile", BASELINE, (VersionedImpl(0, _apparmor_profile),)),
    Control(
        "seLinuxOptions",
        BASELINE,
        (
            VersionedImpl(0, _selinux_options(_SELINUX_TYPES_1_0)),
            VersionedImpl(31, _selinux_options(_SELINUX_TYPES_1_31)),
        ),
    ),
    Control(
        "procMount",
        BASELINE,
        (VersionedImpl(0, _proc_mount), VersionedImpl(35, _proc_mount_1_35_baseline)),
    ),
    Control(
        "seccompProfile_baseline",
        BASELINE,
        (VersionedImpl(0, _seccomp_baseline_1_0), VersionedImpl(19, _seccomp_baseline_1_19)),
    ),
    Control(
        "sysctls",
        BASELINE,
        (
            VersionedImpl(0, _sysctls(_SYSCTLS_1_0)),
            VersionedImpl(27, _sysctls(_SYSCTLS_1_27)),
            VersionedImpl(29, _sysctls(_SYSCTLS_1_29)),
            VersionedImpl(32, _sysctls(_SYSCTLS_1_32)),
            VersionedImpl(37, _sysctls(_SYSCTLS_1_37)),
        ),
    ),
    Control("windowsHostProcess", BASELINE, (VersionedImpl(0, _windows_host_process),)),
    Control(
        "hostProbesAndHostLifecycle", BASELINE, (VersionedImpl(34, _host_probes_and_lifecycle),)
    ),
    Control(
        "restrictedVolumes",
        RESTRICTED,
        (VersionedImpl(0, _restricted_volumes, ("hostPathVolumes",)),),
    ),
    Control(
        "allowPrivilegeEscalation",
        RESTRICTED,
        (
            VersionedImpl(8, _allow_privilege_escalation_1_8),
            VersionedImpl(25, _unless_windows(_allow_privilege_escalation_1_8)),
        ),
    ),
    Control(
        "runAsNonRoot",
        RESTRICTED,
        (
            VersionedImpl(0, _run_as_non_root_1_0),
            VersionedImpl(35, _unless_user_namespace(_run_as_non_root_1_0)),
        ),
    ),
    Control(
        "runAsUser",
        RESTRICTED,
        (
            VersionedImpl(23, _run_as_user_1_23),
            VersionedImpl(35, _unless_user_namespace(_run_as_user_1_23)),
        ),
    ),
    Control(
        "seccompProfile_restricted",
        RESTRICTED,
        (
            VersionedImpl(19, _seccomp_restricted_1_19, ("seccompProfile_baseline",)),
            VersionedImpl(
                25, _unless_windows(_seccomp_restricted_1_19), ("seccompProfile_baseline",)
            ),
        ),
    ),
    Control(
        "capabilities_restricted",
        RESTRICTED,
        (
            VersionedImpl(22, _capabilities_restricted_1_22, ("capabilities_baseline",)),
            VersionedImpl(
                25, _unless_windows(_capabilities_restricted_1_22), ("capabilities_baseline",)
            ),
        ),
    ),
    Control(
        "procMount_restricted",
        RESTRICTED,
        (VersionedImpl(35, _proc_mount, ("procMount",)),),
    ),
)

_BY_ID = {c.id: c for c in CONTROLS}


def control_result(pod: PodSpecView, control: Control, impl: VersionedImpl) -> ControlResult | None:
    """`impl.fn(pod)`: the failing result the control's check kept for this pod, or else
    computed. The webhook's PSA-worded denial needs the failing controls' results right after
    their checks; on a pod of 1,000 containers running them again was a tenth of the answer.
    Passing results are not kept: most reviews pass every control."""
    kept = recall(pod.obj, _result_key(control, impl))
    return kept if isinstance(kept, ControlResult) else impl.fn(pod)


def _result_key(control: Control, impl: VersionedImpl) -> str:
    return f"pss:{control.id}:{impl.minimum_minor}"


def controls_for(policy: PSSPolicy) -> list[tuple[Control, VersionedImpl]]:
    """The controls PSA runs for a level and version, in PSA's order.

    Baseline runs baseline controls; restricted runs restricted controls plus the baseline
    ones that no active restricted control overrides at that version. Order: baseline ids
    sorted, then restricted ids sorted (policy/registry.go).
    """
    minor = min(policy.minor, LATEST_MINOR)
    active = {
        c.id: impl
        for c in CONTROLS
        if (c.level == BASELINE or policy.level == RESTRICTED)
        and (impl := c.impl_for(minor)) is not None
    }
    overridden = {
        o for cid, impl in active.items() if _BY_ID[cid].level == RESTRICTED for o in impl.overrides
    }
    ordered = sorted(c for c in active if _BY_ID[c].level == BASELINE) + sorted(
        c for c in active if _BY_ID[c].level == RESTRICTED
    )
    return [(_BY_ID[cid], active[cid]) for cid in ordered if cid not in overridden]


@dataclass(frozen=True, slots=True)
class Denial:
    """PSA's verdict on one pod: the failing controls and its one-line message."""

    policy: PSSPolicy
    failures: tuple[tuple[str, ControlResult], ...]

    @property
    def allowed(self) -> bool:
        return not self.failures

    @property
    def message(self) -> str:
        """`violates PodSecurity "restricted:latest": reason (detail), ...` as PSA writes it."""
        parts = [f"{r.reason} ({r.detail})" if r.detail else r.reason for _, r in self.failures]
        return f'violates PodSecurity "{self.policy.label}": {", ".join(parts)}'


def evaluate(pod: PodSpecView, policy: PSSPolicy) -> Denial:
    """Evaluate one pod spec exactly as Pod Security Admission would."""
    failures = []
    for control, impl in controls_for(policy):
        result = impl.fn(pod)
        if result is not None:
            failures.append((control.id, result))
    return Denial(policy, tuple(failures))


# ---------------------------------------------------------------------------------------------
# The controls as skanse checks: one check id per PSA control.

PSS_CHECKS = K8sCheckSet(__name__)

_PSS_DOC = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"


@dataclass(frozen=True, slots=True)
class _ControlMeta:
    id: str
    title: str
    severity: Severity
    remediation: str
    aliases: tuple[str, ...]
    anchor: str


_META: tuple[tuple[str, _ControlMeta], ...] = (
    ("hostNamespaces", _ControlMeta(
        "SKN-K8S-001", "Pod shares the host's network, PID or IPC namespace", Severity.HIGH,
        "Remove hostNetwork, hostPID and hostIPC from the pod spec (or set them to false).",
        ("KSV-0008", "KSV-0009", "KSV-0010", "CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19"),
        "baseline")),
    ("privileged", _ControlMeta(
        "SKN-K8S-002", "Container runs privileged", Severity.CRITICAL,
        "Remove securityContext.privileged from every container (or set it to false).",
        ("KSV-0017", "CKV_K8S_16"), "baseline")),
    ("capabilities_baseline", _ControlMeta(
        "SKN-K8S-003", "Container adds capabilities beyond the default set", Severity.HIGH,
        "Remove capabilities outside the container runtime's default set from "
        "securityContext.capabilities.add (NET_RAW, SYS_ADMIN and the like).",
        ("KSV-0022", "CKV_K8S_25"), "baseline")),
    ("hostPathVolumes", _ControlMeta(
        "SKN-K8S-004", "Pod mounts a hostPath volume", Severity.HIGH,
        "Replace hostPath volumes with emptyDir, configMap, secret or a PersistentVolumeClaim.",
        ("KSV-0023",), "baseline")),
    ("hostPorts", _ControlMeta(
        "SKN-K8S-005", "Container binds a host port", Severity.MEDIUM,
        "Remove hostPort from container ports; expose the pod through a Service instead.",
        ("KSV-0024", "CKV_K8S_26"), "baseline")),
    ("appArmorProfile", _ControlMeta(
        "SKN-K8S-006", "AppArmor profile is overridden or disabled", Severity.MEDIUM,
        "Use appArmorProfile.type RuntimeDefault or Localhost (or the annotation values "
        "runtime/default or localhost/<profile>); never Unconfined.",
        ("KSV-0002",), "baseline")),
    ("seLinuxOptions", _ControlMeta(
        "SKN-K8S-007", "SELinux options set a custom type, user or role", Severity.MEDIUM,
        "Remove seLinuxOptions.user and .role, and use only the container_t family of types.",
        ("KSV-0025",), "baseline")),
    ("procMount", _ControlMeta(
        "SKN-K8S-008", "Container unmasks /proc", Severity.MEDIUM,
        "Remove securityContext.procMount or set it to Default.",
        ("KSV-0027",), "baseline")),
    ("seccompProfile_baseline", _ControlMeta(
        "SKN-K8S-009", "Seccomp is explicitly disabled", Severity.MEDIUM,
        "Set seccompProfile.type to RuntimeDefault or Localhost instead of Unconfined.",
        ("KSV-0104",), "baseline")),
    ("sysctls", _ControlMeta(
        "SKN-K8S-010", "Pod sets an unsafe sysctl", Severity.MEDIUM,
        "Remove sysctls outside the namespaced safe set from securityContext.sysctls.",
        ("KSV-0026",), "baseline")),
    ("windowsHostProcess", _ControlMeta(
        "SKN-K8S-011", "Windows pod runs as a host process", Severity.CRITICAL,
        "Remove windowsOptions.hostProcess (or set it to false) at pod and container level.",
        ("KSV-0103",), "baseline")),
    ("hostProbesAndHostLifecycle", _ControlMeta(
        "SKN-K8S-012", "Probe or lifecycle handler targets another host", Severity.MEDIUM,
        "Remove the host field from httpGet and tcpSocket probes and lifecycle handlers; "
        "they must target the pod itself.",
        (), "baseline")),
    ("restrictedVolumes", _ControlMeta(
        "SKN-K8S-013", "Pod uses a volume type outside the restricted set", Severity.MEDIUM,
        "Use only configMap, csi, downwardAPI, emptyDir, ephemeral, image, "
        "persistentVolumeClaim, projected and secret volumes.",
        ("KSV-0028",), "restricted")),
    ("allowPrivilegeEscalation", _ControlMeta(
        "SKN-K8S-014", "Container allows privilege escalation", Severity.HIGH,
        "Set securityContext.allowPrivilegeEscalation: false on every container.",
        ("KSV-0001", "CKV_K8S_20"), "restricted")),
    ("runAsNonRoot", _ControlMeta(
        "SKN-K8S-015", "Container may run as root", Severity.HIGH,
        "Set securityContext.runAsNonRoot: true at pod level, and never false on a container.",
        ("KSV-0012", "CKV_K8S_23"), "restricted")),
    ("runAsUser", _ControlMeta(
        "SKN-K8S-016", "Container runs as UID 0", Severity.HIGH,
        "Set runAsUser to a non-zero UID (10000 or above) at pod and container level.",
        ("KSV-0105",), "restricted")),
    ("seccompProfile_restricted", _ControlMeta(
        "SKN-K8S-017", "Seccomp profile is not RuntimeDefault or Localhost", Severity.MEDIUM,
        "Set securityContext.seccompProfile.type: RuntimeDefault at pod level.",
        ("KSV-0030", "CKV_K8S_31"), "restricted")),
    ("capabilities_restricted", _ControlMeta(
        "SKN-K8S-018", "Container does not drop ALL capabilities", Severity.MEDIUM,
        'Set securityContext.capabilities.drop: ["ALL"] on every container; add back at '
        "most NET_BIND_SERVICE.",
        ("KSV-0003", "KSV-0106", "CKV_K8S_37"), "restricted")),
    ("procMount_restricted", _ControlMeta(
        "SKN-K8S-019", "Container unmasks /proc (restricted)", Severity.MEDIUM,
        "Remove securityContext.procMount or set it to Default; restricted allows no "
        "exception for user-namespaced pods.",
        ("KSV-0027",), "restricted")),
)  # fmt: skip


# The compliance controls each PSA control evidences (skanse.controls cites the editions).
# Every PSS control is what the NSA/CISA guide's "Pod security enforcement" asks to enforce.
_CONTROL_REFS: dict[str, tuple[ControlRef, ...]] = {
    "hostNamespaces": (pss("Host Namespaces"), cis("5.2.3"), cis("5.2.4"), cis("5.2.5")),
    "privileged": (pss("Privileged Containers"), cis("5.2.2")),
    "capabilities_baseline": (
        pss("Capabilities"),
        cis("5.2.9", approximate=True, note="baseline still allows the runtime's default set"),
    ),
    "hostPathVolumes": (pss("HostPath Volumes"), cis("5.2.12")),
    "hostPorts": (pss("Host Ports"), cis("5.2.13")),
    "appArmorProfile": (pss("AppArmor"), cis("5.7.3", approximate=True)),
    "seLinuxOptions": (pss("SELinux"), cis("5.7.3", approximate=True)),
    "procMount": (pss("/proc Mount Type"), cis("5.7.3", approximate=True)),
    "seccompProfile_baseline": (
        pss("Seccomp"),
        cis("5.7.2", approximate=True, note="baseline only forbids Unconfined"),
    ),
    "sysctls": (pss("Sysctls"), cis("5.7.3", approximate=True)),
    "windowsHostProcess": (pss("HostProcess"), cis("5.2.11")),
    "hostProbesAndHostLifecycle": (pss("Host Probes / Lifecycle Hooks"),),
    "restrictedVolumes": (
        pss("Volume Types"),
        cis("5.2.12", approximate=True, note="hostPath is one of the volume types refused"),
    ),
    "allowPrivilegeEscalation": (pss("Privilege Escalation"), cis("5.2.6")),
    "runAsNonRoot": (pss("Running as Non-root"), cis("5.2.7"), nsa(NSA_NON_ROOT)),
    "runAsUser": (pss("Running as Non-root user"), cis("5.2.7"), nsa(NSA_NON_ROOT)),
    "seccompProfile_restricted": (pss("Seccomp"), cis("5.7.2")),
    "capabilities_restricted": (
        pss("Capabilities (restricted)"),
        cis("5.2.10"),
        cis("5.2.8", note="dropping ALL removes NET_RAW"),
    ),
    "procMount_restricted": (pss("/proc Mount Type"),),
}


# Controls whose every finding `skanse fix` resolves (skanse.fix.kubernetes has the fixes).
_FIXABLE = frozenset(
    {"privileged", "seccompProfile_baseline", "allowPrivilegeEscalation", "runAsNonRoot",
     "runAsUser", "seccompProfile_restricted"}
)  # fmt: skip
# capabilities_restricted is partly fixable: a capability the container needs (a port below
# 1024, a known workload) is kept and reported.


def _register(control: Control, meta: _ControlMeta) -> None:
    @PSS_CHECKS.pod_check(
        id=meta.id,
        title=meta.title,
        severity=meta.severity,
        description=(
            f"Pod Security Standards {control.level} control `{control.id}`, evaluated as Pod "
            "Security Admission does for the selected policy version."
        ),
        remediation=meta.remediation,
        references=(f"{_PSS_DOC}#{meta.anchor}",),
        aliases=meta.aliases,
        pss_control=control.id,
        pss_level=control.level,
        fixable=control.id in _FIXABLE,
        controls=(*_CONTROL_REFS[control.id], nsa(NSA_POD_SECURITY), GDPR_SECURITY),
    )
    def run(pod: PodSpecView, ctx: CheckContext) -> Iterable[Violation]:
        # a plain function, not a generator: most controls pass, and the webhook runs
        # fifteen of them per review
        impl = control.impl_for(ctx.pss.minor)  # one to three versions to look through
        if impl is None:
            return ()
        result = impl.fn(pod)
        if result is None:
            return ()
        remember(pod.obj, _result_key(control, impl), result)  # for the PSA-worded denial
        return [
            Violation(f"{result.reason} ({site.detail})", site.pointer, site.severity)
            for site in result.sites
        ]


for _control_id, _meta in _META:
    _register(_BY_ID[_control_id], _meta)
