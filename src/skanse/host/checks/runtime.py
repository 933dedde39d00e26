"""Container runtime checks: Docker (SKN-HOST-070 to 077) and containerd (080 to 086).

Docker ids follow docker-bench-security / CIS Docker Benchmark section 2 (daemon
configuration) and 3 (files) where they exist; those are the aliases.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from skanse.checks._registry import CheckSet
from skanse.errors import HostFactError
from skanse.host.checks.base import DockerFix, HostViolation, host_check
from skanse.host.facts import AuditContext, HostFacts
from skanse.host.root import FileInfo
from skanse.model import Severity

__all__ = ["RUNTIME_CHECKS"]

RUNTIME_CHECKS = CheckSet(__name__)

_DOCKER_DOC = "https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file"
_DOCKER_BENCH = "https://github.com/docker/docker-bench-security"
_ROOTLESS = "https://docs.docker.com/engine/security/rootless/"
_USERNS = "https://docs.docker.com/engine/security/userns-remap/"
_CRI_DOC = "https://github.com/containerd/containerd/blob/main/docs/cri/config.md"
_HOSTS_DOC = "https://github.com/containerd/containerd/blob/main/docs/hosts.md"


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "t", "true"))


def _socket_problems(info: FileInfo, daemon_uid: int = 0) -> list[str]:
    problems = []
    if info.mode & 0o007:
        problems.append(f"mode {info.mode:04o} gives every local user access")
    if info.uid != daemon_uid:
        problems.append(f"owned by uid {info.uid}, not {daemon_uid}")
    return problems


# --- Docker --------------------------------------------------------------------------------


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-070",
    title="Docker daemon runs as root without user namespaces",
    severity=Severity.MEDIUM,
    description="A rootful daemon without userns-remap maps container root to host root: "
    "any container escape is a root shell on the host.",
    remediation="Run Docker rootless (dockerd-rootless-setuptool.sh install), or set "
    '`"userns-remap": "default"` in /etc/docker/daemon.json.',
    references=(_ROOTLESS, _USERNS, _DOCKER_BENCH),
    aliases=("docker-bench-2.9", "docker-bench-2.1"),
    fixable=True,
)
def docker_userns(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    if d.rootless:
        return
    remap, file, line = d.setting("userns-remap", "--userns-remap")
    if remap:
        return
    state = "runs as root" if d.rootless is False else "is configured to run as root"
    yield HostViolation(
        f"the Docker daemon {state} and userns-remap is not set: container root is host root",
        pointer="/userns-remap",
        file=file,
        line=line,
        fix=DockerFix("userns-remap", "default"),
    )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-071",
    title="Docker containers may gain new privileges",
    severity=Severity.MEDIUM,
    description="Without no-new-privileges, setuid binaries inside a container can raise "
    "their privileges.",
    remediation='Set `"no-new-privileges": true` in daemon.json.',
    references=(_DOCKER_DOC, _DOCKER_BENCH),
    aliases=("docker-bench-2.14",),
    fixable=True,
)
def docker_no_new_privileges(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    value, file, line = d.setting("no-new-privileges", "--no-new-privileges")
    if not _true(value):
        yield HostViolation(
            "no-new-privileges is not set for containers",
            pointer="/no-new-privileges",
            file=file,
            line=line,
            fix=DockerFix("no-new-privileges", True),
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-072",
    title="Containers on the default bridge can talk to each other",
    severity=Severity.LOW,
    description="With icc on, every container on docker0 reaches every other one on any port.",
    remediation='Set `"icc": false` in daemon.json and link or network containers explicitly.',
    references=(_DOCKER_DOC, _DOCKER_BENCH),
    aliases=("docker-bench-2.2",),
    fixable=True,
)
def docker_icc(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    value, file, line = d.setting("icc", "--icc")
    if value is None or _true(value):
        yield HostViolation(
            "inter-container communication on the default bridge is allowed",
            pointer="/icc",
            file=file,
            line=line,
            fix=DockerFix("icc", False),
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-073",
    title="Docker live restore is off",
    severity=Severity.LOW,
    description="Without live-restore, restarting or upgrading dockerd stops every container.",
    remediation='Set `"live-restore": true` in daemon.json (not with Swarm).',
    references=(_DOCKER_DOC, _DOCKER_BENCH),
    aliases=("docker-bench-2.15",),
    fixable=True,
)
def docker_live_restore(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    value, file, line = d.setting("live-restore", "--live-restore")
    if not _true(value):
        yield HostViolation(
            "live-restore is off",
            pointer="/live-restore",
            file=file,
            line=line,
            fix=DockerFix("live-restore", True),
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-074",
    title="Docker trusts insecure registries",
    severity=Severity.HIGH,
    description="Images from an insecure registry are pulled over plain HTTP or unverified "
    "TLS: anyone on the path can substitute them.",
    remediation="Remove `insecure-registries` (and --insecure-registry); give the registry a "
    "certificate in /etc/docker/certs.d/<host>/ca.crt instead.",
    references=(_DOCKER_DOC, _DOCKER_BENCH),
    aliases=("docker-bench-2.5",),
    fixable=True,
)
def docker_insecure_registries(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    value, file, line = d.setting("insecure-registries", "--insecure-registry")
    registries = value if isinstance(value, list) else [value] if value else []
    if registries:
        yield HostViolation(
            f"insecure registries: {', '.join(str(r) for r in registries)}",
            pointer="/insecure-registries",
            file=file,
            line=line,
            fix=DockerFix("insecure-registries", []),
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-075",
    title="Docker API listens on TCP without client certificate verification",
    severity=Severity.CRITICAL,
    description="The Docker API is root on the host; on TCP without tlsverify anyone who "
    "reaches the port can start a privileged container.",
    remediation="Listen on the unix socket only, or set `tlsverify: true` with `tlscacert`, "
    "`tlscert` and `tlskey` for every tcp:// host.",
    references=("https://docs.docker.com/engine/security/protect-access/", _DOCKER_BENCH),
    aliases=("docker-bench-2.7",),
)
def docker_tcp_tls(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    tcp = [(h, f, ln) for h, f, ln in d.hosts() if h.startswith("tcp://")]
    if not tcp:
        return
    verify, _f, _l = d.setting("tlsverify", "--tlsverify")
    if _true(verify):
        return
    tls, _f, _l = d.setting("tls", "--tls")
    for host, file, line in tcp:
        detail = "TLS without client verification" if _true(tls) else "no TLS"
        yield HostViolation(
            f"the Docker API listens on {host} with {detail}",
            pointer="/hosts",
            file=file,
            line=line,
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-076",
    title="Container logs grow without limit",
    severity=Severity.LOW,
    description="The default json-file log driver never rotates: one chatty container fills "
    "the disk and takes the node down.",
    remediation='Set `"log-opts": {"max-size": "10m", "max-file": "3"}` or `"log-driver": '
    '"local"` in daemon.json.',
    references=("https://docs.docker.com/engine/logging/drivers/json-file/",),
    fixable=True,
)
def docker_log_limits(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    driver, _file, _line = d.setting("log-driver", "--log-driver")
    if driver not in (None, "json-file"):
        return  # local rotates by default; journald/syslog/remote drivers are bounded elsewhere
    opts = d.daemon_json.get("log-opts")
    if isinstance(opts, Mapping) and opts.get("max-size"):
        return
    yield HostViolation(
        "the json-file log driver has no max-size",
        pointer="/log-opts",
        file=d.daemon_json_path,
        line=d.line("log-opts"),
        fix=DockerFix("log-opts", {"max-size": "10m", "max-file": "3"}),
    )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-077",
    title="Docker socket is open to other users",
    severity=Severity.HIGH,
    description="Access to the Docker socket is root on the host.",
    remediation="chown root:docker and chmod 660 the socket (systemd: SocketMode=0660); keep "
    "the docker group to administrators.",
    references=(_DOCKER_BENCH,),
    aliases=("docker-bench-3.15", "docker-bench-3.16"),
)
def docker_socket(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    d = facts.docker()
    owner = d.process.uid if d.process is not None and d.process.uid is not None else 0
    for path in d.sockets:
        problems = _socket_problems(facts.root.stat(path), owner)
        if problems:
            yield HostViolation(f"{path}: {'; '.join(problems)}", file=path)


# --- containerd ----------------------------------------------------------------------------


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-080",
    title="Pods without a seccomp profile run unconfined",
    severity=Severity.MEDIUM,
    description="containerd gives pods that name no seccomp profile no filter at all unless "
    "`unset_seccomp_profile` is set or the kubelet's seccompDefault is on.",
    remediation="Set the kubelet's `seccompDefault: true` (preferred), or "
    '`unset_seccomp_profile = "runtime/default"` in the CRI runtime section of config.toml.',
    references=(_CRI_DOC, "https://kubernetes.io/docs/tutorials/security/seccomp/"),
)
def containerd_seccomp(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    c = facts.containerd()
    if c.table("runtime").get("unset_seccomp_profile"):
        return
    try:
        if facts.kubelet().get("seccompDefault").value is True:
            return
    except HostFactError:
        pass  # no kubelet (or none readable): containerd's own setting decides
    yield HostViolation(
        "unset_seccomp_profile is empty and the kubelet's seccompDefault is not on: pods "
        "without a profile run Unconfined",
        pointer="unset_seccomp_profile",
        file=c.config_path,
        line=c.line_of("unset_seccomp_profile"),
    )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-081",
    title="containerd disables AppArmor for containers",
    severity=Severity.MEDIUM,
    description="With disable_apparmor, containers run without the runtime's AppArmor "
    "profile on hosts that have AppArmor.",
    remediation="Remove `disable_apparmor = true` from config.toml.",
    references=(_CRI_DOC,),
)
def containerd_apparmor(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    c = facts.containerd()
    if c.table("runtime").get("disable_apparmor") is True:
        yield HostViolation(
            "disable_apparmor = true",
            pointer="disable_apparmor",
            file=c.config_path,
            line=c.line_of("disable_apparmor"),
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-082",
    title="CRI streaming connections never time out",
    severity=Severity.LOW,
    description="exec/attach/port-forward streams stay open forever when stream_idle_timeout "
    "is 0; this replaced the kubelet's streamingConnectionIdleTimeout (CIS 4.2.5).",
    remediation='Set `stream_idle_timeout = "4h"` (the default) or shorter in config.toml.',
    references=(_CRI_DOC,),
    aliases=("CIS-4.2.5",),
)
def containerd_stream_timeout(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    c = facts.containerd()
    value = c.table("grpc").get("stream_idle_timeout")
    if isinstance(value, str) and value.strip() in ("0", "0s", "0m", "0h"):
        yield HostViolation(
            f'stream_idle_timeout = "{value}" (no timeout)',
            pointer="stream_idle_timeout",
            file=c.config_path,
            line=c.line_of("stream_idle_timeout"),
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-083",
    title="Pods may bind privileged ports and send ICMP without capabilities",
    severity=Severity.INFO,
    description="enable_unprivileged_ports/icmp set net.ipv4.ip_unprivileged_port_start=0 "
    "and ping_group_range in every pod's network namespace; the default in containerd 2.x "
    "config version 3. Fine for most clusters; know it when you rely on port < 1024 as a "
    "privilege boundary inside pods.",
    remediation="Set `enable_unprivileged_ports = false` and `enable_unprivileged_icmp = "
    "false` if pods must not bind low ports without NET_BIND_SERVICE.",
    references=(_CRI_DOC,),
)
def containerd_unprivileged(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    c = facts.containerd()
    runtime = c.table("runtime")
    default = c.version >= 3
    on = [
        key
        for key in ("enable_unprivileged_ports", "enable_unprivileged_icmp")
        if runtime.get(key, default) is True
    ]
    if on:
        set_in_file = [k for k in on if k in runtime]
        how = "set" if set_in_file else f"the config version {c.version} default"
        yield HostViolation(
            f"{' and '.join(on)} on ({how})",
            pointer=on[0],
            file=c.config_path,
            line=c.line_of(on[0]),
        )


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-084",
    title="containerd pulls from insecure registries",
    severity=Severity.HIGH,
    description="Plain-HTTP endpoints and skip_verify let anyone on the path substitute images.",
    remediation="Remove http:// mirrors, `insecure_skip_verify` and `skip_verify = true`; "
    "trust the registry's CA with `ca = ...` in hosts.toml instead.",
    references=(_HOSTS_DOC, _CRI_DOC),
)
def containerd_insecure(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    c = facts.containerd()
    registry = c.table("images").get("registry", {})
    if not isinstance(registry, Mapping):
        registry = {}
    mirrors = registry.get("mirrors", {})
    if isinstance(mirrors, Mapping):
        for name, mirror in mirrors.items():
            endpoints = mirror.get("endpoint", []) if isinstance(mirror, Mapping) else []
            for endpoint in endpoints if isinstance(endpoints, list) else []:
                if isinstance(endpoint, str) and endpoint.startswith("http://"):
                    yield HostViolation(
                        f"mirror for {name} is plain HTTP: {endpoint}",
                        pointer="endpoint",
                        file=c.config_path,
                        line=c.line_of("endpoint"),
                    )
    configs = registry.get("configs", {})
    if isinstance(configs, Mapping):
        for name, cfg in configs.items():
            tls = cfg.get("tls", {}) if isinstance(cfg, Mapping) else {}
            if isinstance(tls, Mapping) and tls.get("insecure_skip_verify") is True:
                yield HostViolation(
                    f"TLS verification is off for {name}",
                    pointer="insecure_skip_verify",
                    file=c.config_path,
                    line=c.line_of("insecure_skip_verify"),
                )
    for path, text in c.hosts_files.items():
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip().replace(" ", "")
            if line == "skip_verify=true":
                yield HostViolation(
                    "skip_verify = true: TLS is not verified", file=path, line=number
                )
            elif line.startswith(('[host."http://', "[host.'http://")):
                yield HostViolation(f"plain-HTTP host {raw.strip()}", file=path, line=number)


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-085",
    title="containerd socket is open to other users",
    severity=Severity.HIGH,
    description="Access to the containerd socket is root on the host (it can start "
    "privileged containers and read every image and snapshot).",
    remediation="chown root:root and chmod 660 (or stricter) /run/containerd/containerd.sock; "
    "set `[grpc] uid/gid` in config.toml if a group needs access.",
    references=(_DOCKER_BENCH,),
)
def containerd_socket(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    c = facts.containerd()
    for path in c.sockets:
        problems = _socket_problems(facts.root.stat(path))
        if problems:
            yield HostViolation(f"{path}: {'; '.join(problems)}", file=path)


@host_check(
    RUNTIME_CHECKS,
    id="SKN-HOST-086",
    title="containerd API listens on TCP",
    severity=Severity.CRITICAL,
    description="containerd's gRPC API has no authentication: on TCP, whoever reaches the "
    "port controls every container on the node.",
    remediation="Remove `tcp_address` from the `[grpc]` section of config.toml.",
    references=(
        "https://github.com/containerd/containerd/blob/main/docs/man/containerd-config.toml.5.md",
    ),
)
def containerd_tcp(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    c = facts.containerd()
    grpc = c.config.get("grpc", {})
    address = grpc.get("tcp_address") if isinstance(grpc, Mapping) else None
    if isinstance(address, str) and address.strip():
        yield HostViolation(
            f"the containerd API listens on TCP {address}",
            pointer="tcp_address",
            file=c.config_path,
            line=c.line_of("tcp_address"),
        )
