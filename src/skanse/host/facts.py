"""Everything host checks look at, gathered once per audit through one `HostRoot`.

Checks never read files: they ask `HostFacts`, which reads lazily and remembers the answer
(a value, or the `HostFactError` that explains why there is none), so a kubelet found by one
check is not searched for again by the next ten.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from skanse.errors import HostFactError
from skanse.host.cis import DEFAULT_BENCHMARK
from skanse.host.containers_conf import ContainersConf, find_containers_conf
from skanse.host.isolation import Isolation, detect_isolation
from skanse.host.kubelet import KubeletConfig, find_kubelet
from skanse.host.root import HostRoot
from skanse.host.runtime import ContainerdFacts, DockerFacts, find_containerd, find_docker
from skanse.host.sysctl import Sysctls

__all__ = ["AuditContext", "HostFacts", "HostProfile"]

T = TypeVar("T")


class HostProfile(enum.StrEnum):
    """What the host is for: expectations differ where a container host needs them to.

    `container-node` is a host that runs containers without Kubernetes (Docker, Podman,
    containerd): it keeps unprivileged user namespaces (rootless runtimes, user-namespaced
    containers) and IP forwarding (bridge networking), which the generic profile turns off.
    """

    GENERIC = "generic"
    K8S_NODE = "k8s-node"
    CONTAINER_NODE = "container-node"


@dataclass(frozen=True, slots=True)
class AuditContext:
    profile: HostProfile = HostProfile.GENERIC
    benchmark: str = DEFAULT_BENCHMARK  # the CIS Kubernetes Benchmark whose ids findings name


class HostFacts:
    def __init__(self, root: HostRoot) -> None:
        self.root = root
        self.sysctls = Sysctls(root)
        self._memo: dict[str, object] = {}

    def _once(self, name: str, compute: Callable[[], T]) -> T:
        if name not in self._memo:
            try:
                self._memo[name] = compute()
            except HostFactError as exc:
                self._memo[name] = exc
        value = self._memo[name]
        if isinstance(value, HostFactError):
            raise value
        return value  # type: ignore[return-value]

    def kubelet(self) -> KubeletConfig:
        return self._once("kubelet", lambda: find_kubelet(self.root))

    def docker(self) -> DockerFacts:
        return self._once("docker", lambda: find_docker(self.root))

    def containerd(self) -> ContainerdFacts:
        return self._once("containerd", lambda: find_containerd(self.root))

    def containers_conf(self) -> ContainersConf:
        return self._once("containers_conf", lambda: find_containers_conf(self.root))

    def isolation(self) -> Isolation:
        return self._once("isolation", lambda: detect_isolation(self.root))
