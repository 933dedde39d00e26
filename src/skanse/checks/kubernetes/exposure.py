"""Zero-trust checks for what a pod exposes to its containers: other processes, secrets
written into the spec, and the container runtime's control socket.

Kubewarden and kube-linter have the first two; the runtime socket is the classic escape
(whoever talks to it starts a privileged container on the node), named on its own because
Pod Security's hostPath control says only "hostPath", and an exception for a harmless
hostPath must never cover it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from skanse.checks._registry import Violation
from skanse.checks.kubernetes.base import ZERO_TRUST, CheckContext, K8sCheckSet
from skanse.checks.secrets import GPG_FINGERPRINT, SECRET_NAME, TOKEN_FORMATS
from skanse.controls import GDPR_SECURITY, NSA_HARDENING, NSA_POD_SECURITY, NSA_SECRETS, cis, nsa
from skanse.model import Severity
from skanse.sources.kubernetes import PodSpecView, as_dict, as_list

__all__ = ["EXPOSURE_CHECKS", "RUNTIME_SOCKETS"]

EXPOSURE_CHECKS = K8sCheckSet(__name__)

# Control sockets of the container runtimes kubelets use, under /run and its /var/run alias.
_SOCKETS = (
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/cri-dockerd.sock",
    "/run/dockershim.sock",
    "/run/podman/podman.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/crun/crun.sock",
)
RUNTIME_SOCKETS = frozenset(_SOCKETS) | frozenset("/var" + s for s in _SOCKETS)
_SORTED_SOCKETS = tuple(sorted(RUNTIME_SOCKETS))


@EXPOSURE_CHECKS.pod_check(
    id="SKN-K8S-031",
    controls=(nsa(NSA_HARDENING, approximate=True), GDPR_SECURITY),
    title="Pod shares one process namespace between its containers",
    severity=Severity.MEDIUM,
    remediation="Remove spec.shareProcessNamespace (or set it to false); debug with "
    "`kubectl debug --target` instead, which shares one container's namespace only while "
    "debugging.",
    references=(
        "https://kubernetes.io/docs/tasks/configure-pod-container/share-process-namespace/",
    ),
    profiles=(ZERO_TRUST,),
    description=(
        "With a shared process namespace every container sees, signals and ptraces the others' "
        "processes and reads their environment and files through /proc/<pid>/root: a compromised "
        "sidecar reaches the main container's secrets."
    ),
)
def share_process_namespace(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    if pod.spec.get("shareProcessNamespace") is True:
        yield Violation(
            "pod sets shareProcessNamespace: true; every container sees and can signal the "
            "processes of the others, and read their files through /proc",
            pod.pointer("shareProcessNamespace"),
        )


@EXPOSURE_CHECKS.pod_check(
    id="SKN-K8S-032",
    controls=(
        nsa(NSA_SECRETS),
        cis("5.4.1", approximate=True, note="a literal value is worse than a Secret as env"),
        GDPR_SECURITY,
    ),
    title="Secret written as a literal env value",
    severity=Severity.HIGH,
    remediation="Put the value in a Secret and reference it with env[].valueFrom.secretKeyRef "
    "(better: mount it as a file); then rotate it, since everyone who could read the "
    "manifest, the object or its history has seen it.",
    references=(
        "https://kubernetes.io/docs/concepts/configuration/secret/"
        "#using-secrets-as-environment-variables",
    ),
    profiles=(ZERO_TRUST,),
    description=(
        "Judged as SKN-DF-009 judges a Dockerfile's ENV: a known token format (AWS, GitHub, "
        "GitLab, Slack, Stripe, Google, npm, PyPI, private keys, credentials in URLs) is a secret"
        " whatever its name; a secret-like name (PASSWORD, TOKEN, API_KEY...) with a literal "
        "value is one. A value taken from a Secret (`valueFrom`), a `$(VAR)` reference, a path "
        "and a GPG key fingerprint are not. The message never repeats the value."
    ),
)
def secret_in_env_value(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    for c in pod.containers():
        env = c.data.get("env")
        if not isinstance(env, list):
            continue
        for index, entry in enumerate(env):
            # most entries have no literal value (valueFrom) or a harmless one: skip fast
            value = entry.get("value") if isinstance(entry, dict) else None
            name = entry.get("name") if value else None
            if not isinstance(value, str) or not isinstance(name, str):
                continue
            verdict = _literal_secret(name, value)
            if verdict is not None:
                yield Violation(
                    f'container "{c.name}" env {name} {verdict}', f"{c.pointer}/env/{index}/value"
                )


@functools.lru_cache(maxsize=4096)
def _literal_secret(name: str, value: str) -> str | None:
    """How the pair gives a secret away, or None. Cached: the same settings come back in
    every review of a workload, and the webhook judges thousands a second."""
    if TOKEN_FORMATS.search(value):
        return "holds a credential in a known token format"
    if (
        SECRET_NAME.search(name)
        and not value.startswith(("$(", "/"))
        and not GPG_FINGERPRINT.match(value)
    ):
        return "sets a literal secret value"
    return None


def _process(token: str) -> bool:
    """A /proc entry that is a process: a pid, or the kubelet's own (self, thread-self)."""
    return token.isdigit() or token in ("self", "thread-self")


def _on_host(path: str) -> str:
    """The host path that a hostPath of `path` reaches, normalised (`..`, `//`, trailing
    slashes). /proc/<pid>/root and /proc/<pid>/task/<tid>/root are that process's view of
    the root: pid 1's is the node's, so /proc/1/root/run/... is /run/..., and `..` there
    stays at the root (resolved part by part, not as text). /proc itself, a process's
    directory and its task directories hold such a root and count as "/"."""
    parts: list[str] = []
    for step in path.strip().split("/"):
        if step in ("", "."):
            continue
        if step == "..":
            if parts:
                parts.pop()
            continue
        parts.append(step)
        if _process_root(parts):
            parts = []
    if _holds_process_root(parts):
        return "/"
    return "/" + "/".join(parts)


def _process_root(parts: list[str]) -> bool:
    """`parts` name /proc/<pid>/root or /proc/<pid>/task/<tid>/root."""
    if len(parts) < 3 or parts[0] != "proc" or not _process(parts[1]):
        return False
    return parts[2:] == ["root"] or (len(parts) == 5 and parts[2] == "task" and parts[4] == "root")


def _holds_process_root(parts: list[str]) -> bool:
    """`parts` name /proc, /proc/<pid>, /proc/<pid>/task or /proc/<pid>/task/<tid>."""
    if parts[:1] != ["proc"]:
        return False
    if len(parts) == 1:
        return True
    return _process(parts[1]) and (len(parts) == 2 or (parts[2] == "task" and len(parts) <= 4))


def _exposes_socket(path: str) -> tuple[str, bool] | None:
    """The runtime socket that a hostPath of `path` makes reachable, and whether the path
    is the socket itself (rather than a directory above it); None when it reaches none."""
    normal = _on_host(path)
    for socket_path in _SORTED_SOCKETS:
        if normal == socket_path or socket_path.startswith(normal.rstrip("/") + "/"):
            return socket_path, normal == socket_path
    return None


@EXPOSURE_CHECKS.pod_check(
    id="SKN-K8S-033",
    controls=(nsa(NSA_POD_SECURITY), cis("5.2.12", approximate=True), GDPR_SECURITY),
    title="Pod mounts the container runtime socket",
    severity=Severity.CRITICAL,
    remediation="Remove the hostPath volume. A workload that must build images uses a "
    "rootless builder (BuildKit rootless, kaniko) instead of the node's runtime; one that "
    "must watch containers reads the API server or a read-only runtime API proxy.",
    references=(
        "https://kubernetes.io/docs/concepts/storage/volumes/#hostpath",
        "https://docs.docker.com/engine/security/#docker-daemon-attack-surface",
    ),
    aliases=("KSV-0006",),
    profiles=(ZERO_TRUST,),
    description=(
        "A hostPath volume holding the Docker, containerd, CRI-O or Podman socket (the socket "
        "itself or a directory above it, /var/run and /run alike, also reached through a "
        "process's root under /proc, as /proc/1/root/run/containerd) hands the pod the node: "
        "through the socket it starts a privileged container with the host's root filesystem."
    ),
)
def runtime_socket(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    for index, item in enumerate(as_list(pod.spec.get("volumes"))):
        volume = as_dict(item)
        path = as_dict(volume.get("hostPath")).get("path")
        if not isinstance(path, str):
            continue
        exposed = _exposes_socket(path)
        if exposed is not None:
            socket_path, itself = exposed
            what = "is" if itself else "holds"
            yield Violation(
                f'volume "{volume.get("name", index)}" hostPath {path} {what} the container '
                f"runtime socket {socket_path}",
                pod.pointer("volumes", index, "hostPath", "path"),
            )
