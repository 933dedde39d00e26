"""The network model: namespaces, workloads and their pods, services and NetworkPolicies.

Everything here is plain frozen data with a reference to the Kubernetes object it was read
from, so any part of it (a policy, one rule, one peer) resolves to a file and line. The
semantics of networking.k8s.io/v1 live in the types: a rule with `peers=None` allows every
peer, `ports=None` every port; `Policy.types` is already defaulted (Ingress always, Egress
when egress rules exist).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from skanse.model import InputProblem, Location, ResourceRef
from skanse.netpol.addresses import IpNetwork, IpRange
from skanse.netpol.ports import ALL, EMPTY, ConnSet, Protocol
from skanse.netpol.selectors import LabelSelector, Operator
from skanse.sources.kubernetes import K8sObject

__all__ = [
    "METADATA_NAME",
    "NODE_LOCAL_DNS",
    "Direction",
    "IpBlockPeer",
    "Namespace",
    "NetworkModel",
    "Peer",
    "Pod",
    "Policy",
    "PolicyProblem",
    "PortSpec",
    "Rule",
    "SelectorPeer",
    "Service",
    "ServicePort",
    "Workload",
]

# The immutable label the control plane puts on every namespace (Kubernetes >= 1.21).
METADATA_NAME = "kubernetes.io/metadata.name"
# The link-local address NodeLocal DNSCache listens on in every node.
NODE_LOCAL_DNS = "169.254.20.10"


class Direction(enum.StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str]
    obj: K8sObject | None = None  # None when only referenced, never declared


@dataclass(frozen=True, slots=True)
class Pod:
    """One pod, or the pod template of a workload standing for all its replicas."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    # container port name -> every (protocol, number) of that name, for named ports in
    # policies: the API server refuses a name twice in one container, not in two containers
    # (an app and its sidecar both exposing "metrics"), and a policy's named port then means
    # each of them
    named_ports: Mapping[str, tuple[tuple[Protocol, int], ...]]
    # (4 or 6, integer address) for each known pod IP (status.podIPs of a live pod)
    ips: tuple[tuple[int, int], ...] = ()
    host_network: bool = False
    container_ports: tuple[tuple[Protocol, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Workload:
    """What the outputs name: a Deployment, a bare Pod, or the owner of live pods."""

    namespace: str
    name: str
    kind: str
    pods: tuple[Pod, ...]
    obj: K8sObject
    # JSON pointer of the pod template (or "" for a Pod) inside `obj`
    template_pointer: str = ""

    @property
    def ident(self) -> str:
        return f"{self.namespace}/{self.name}[{self.kind}]"

    @property
    def location(self) -> Location:
        return self.obj.location()

    @property
    def resource(self) -> ResourceRef:
        return ResourceRef(self.kind, self.name, self.namespace)


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One `ports` entry: protocol plus a number, a range, a name, or every port."""

    protocol: Protocol
    port: int | str | None = None
    end_port: int | None = None

    def numeric(self) -> ConnSet | None:
        """The ports this entry allows without looking at a pod; None for a named port."""
        if isinstance(self.port, str):
            return None
        if self.port is None:
            return ConnSet.ports(self.protocol)
        return ConnSet.ports(self.protocol, self.port, self.end_port or self.port)

    def resolve(self, pod: Pod) -> ConnSet:
        """The ports of this entry on a destination pod (named ports resolve there)."""
        numeric = self.numeric()
        if numeric is not None:
            return numeric
        assert isinstance(self.port, str)
        return ConnSet.union_of(
            ConnSet.ports(protocol, number, number)
            for protocol, number in pod.named_ports.get(self.port, ())
            if protocol is self.protocol
        )

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol.value} (all ports)"
        if self.end_port is not None:
            return f"{self.protocol.value} {self.port}-{self.end_port}"
        return f"{self.protocol.value} {self.port}"


@dataclass(frozen=True, slots=True)
class SelectorPeer:
    """`podSelector` and/or `namespaceSelector` in one peer: both must match (AND).

    `namespace_selector` None means the policy's own namespace.
    """

    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    pointer: str

    def __str__(self) -> str:
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaceSelector {self.namespace_selector}")
        if self.pod_selector is not None:
            parts.append(f"podSelector {self.pod_selector}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class IpBlockPeer:
    cidr: IpNetwork
    excepts: tuple[IpNetwork, ...]
    ranges: tuple[IpRange, ...]  # cidr minus excepts
    pointer: str

    def contains(self, version: int, value: int) -> bool:
        return any(r.contains_address(version, value) for r in self.ranges)

    def __str__(self) -> str:
        if self.excepts:
            return f"ipBlock {self.cidr} except {', '.join(str(e) for e in self.excepts)}"
        return f"ipBlock {self.cidr}"


Peer = SelectorPeer | IpBlockPeer


@dataclass(frozen=True, slots=True)
class Rule:
    """One ingress or egress rule: traffic matching any peer AND any port entry."""

    direction: Direction
    index: int
    peers: tuple[Peer, ...] | None  # None: every source/destination, external included
    ports: tuple[PortSpec, ...] | None  # None: every port of every protocol
    pointer: str

    def conns(self, destination: Pod | None) -> ConnSet:
        """The ports this rule allows towards `destination` (None: an external address)."""
        if self.ports is None:
            return ALL
        return ConnSet.union_of(
            spec.resolve(destination) if destination is not None else (spec.numeric() or EMPTY)
            for spec in self.ports
        )

    @property
    def named_ports(self) -> bool:
        return self.ports is not None and any(isinstance(p.port, str) for p in self.ports)


@dataclass(frozen=True, slots=True)
class Policy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    types: frozenset[Direction]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    obj: K8sObject
    types_explicit: bool = True

    @property
    def ident(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    def location(self, pointer: str = "") -> Location:
        return self.obj.location(pointer)


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    selector: Mapping[str, str] | None  # None: no selector (endpoints managed by hand)
    ports: tuple[ServicePort, ...]
    obj: K8sObject


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """Something the API server would reject or that cannot be analysed, with its place."""

    message: str
    obj: K8sObject
    pointer: str = ""

    @property
    def location(self) -> Location:
        return self.obj.location(self.pointer)

    def __str__(self) -> str:
        where = self.location
        return f"{where.file}:{where.line}: {self.obj.resource}: {self.message}"


@dataclass(frozen=True, slots=True)
class NetworkModel:
    namespaces: Mapping[str, Namespace]
    workloads: tuple[Workload, ...]
    policies: tuple[Policy, ...]
    services: tuple[Service, ...] = ()
    problems: tuple[PolicyProblem, ...] = ()
    default_namespace: str = "default"
    # problems of reading the inputs (missing file, malformed YAML), as skanse.model records
    input_problems: tuple[InputProblem, ...] = ()
    warnings: tuple[str, ...] = ()
    _by_namespace: dict[str, tuple[Policy, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _indexes: dict[str, _LabelIndex[Policy] | _LabelIndex[Pod]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def policies_in(self, namespace: str) -> tuple[Policy, ...]:
        if not self._by_namespace and self.policies:
            index: dict[str, list[Policy]] = {}
            for p in self.policies:
                index.setdefault(p.namespace, []).append(p)
            self._by_namespace.update({k: tuple(v) for k, v in index.items()})
        return self._by_namespace.get(namespace, ())

    def policies_selecting(
        self, pod: Pod, direction: Direction | None = None
    ) -> tuple[Policy, ...]:
        """The policies of the pod's namespace whose podSelector matches it (of one direction
        when given), in the order of `policies_in`; looked up by label, not by trying each."""
        index = self._indexes.get("policies")
        if index is None:
            index = _LabelIndex((p.namespace, p.pod_selector, p) for p in self.policies)
            self._indexes["policies"] = index
        found = cast("_LabelIndex[Policy]", index).candidates(pod.namespace, pod.labels)
        return tuple(
            p
            for p in found
            if (direction is None or direction in p.types) and p.pod_selector.matches(pod.labels)
        )

    def pods_selected_by(self, policy: Policy) -> list[Pod]:
        """The pods (of every workload, in order) that a policy's podSelector matches."""
        index = self._indexes.get("pods")
        if index is None:
            index = _LabelIndex(
                (w.namespace, pod.labels, pod) for w in self.workloads for pod in w.pods
            )
            self._indexes["pods"] = index
        found = cast("_LabelIndex[Pod]", index).matching(policy.namespace, policy.pod_selector)
        return [pod for pod in found if policy.pod_selector.matches(pod.labels)]

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        ns = self.namespaces.get(name)
        return ns.labels if ns is not None else {METADATA_NAME: name}

    def find_workload(self, text: str) -> list[Workload]:
        """Workloads named `ns/name`, `ns/name[Kind]` or `name` (any namespace)."""
        text = text.strip()
        kind = None
        if text.endswith("]") and "[" in text:
            text, _, kind = text[:-1].partition("[")
        namespace, slash, name = text.rpartition("/")
        found = []
        for w in self.workloads:
            if w.name != name or (slash and w.namespace != namespace):
                continue
            if kind is not None and w.kind.lower() != kind.lower():
                continue
            found.append(w)
        return found


T = TypeVar("T")


def _anchor(selector: LabelSelector) -> tuple[str, tuple[str, ...]] | None:
    """A requirement every match must meet with one of a few exact values: the first `In`
    (matchLabels are `In` with one value). None for a selector without one."""
    for r in selector.requirements:
        if r.operator is Operator.IN:
            return r.key, r.values
    return None


class _LabelIndex(Generic[T]):
    """Items of each namespace, by label: either selectors (policies), looked up with a
    pod's labels, or labelled pods, looked up with a selector.

    Only candidates come back, in their original order; the caller still matches each. A
    policy is filed under the key and values of its anchor (`_anchor`), or kept aside when it
    has none; a pod is filed under each of its labels. So the common case (a podSelector of
    matchLabels) costs the pod's labels, not every policy of the namespace.
    """

    __slots__ = ("_all", "_by_label", "_loose")

    def __init__(self, entries: Iterable[tuple[str, LabelSelector | Mapping[str, str], T]]) -> None:
        self._all: dict[str, list[tuple[int, T]]] = {}
        self._loose: dict[str, list[tuple[int, T]]] = {}
        self._by_label: dict[tuple[str, str, str], list[tuple[int, T]]] = {}
        for position, (namespace, labels, item) in enumerate(entries):
            entry = (position, item)
            self._all.setdefault(namespace, []).append(entry)
            if isinstance(labels, LabelSelector):
                anchor = _anchor(labels)
                if anchor is None:
                    self._loose.setdefault(namespace, []).append(entry)
                    continue
                key, values = anchor
                pairs: Iterable[tuple[str, str]] = ((key, v) for v in values)
            else:
                pairs = labels.items()
            for key, value in pairs:
                self._by_label.setdefault((namespace, key, value), []).append(entry)

    def candidates(self, namespace: str, labels: Mapping[str, str]) -> list[T]:
        """Selectors that may match `labels`: a label has one value, so none comes twice."""
        found = list(self._loose.get(namespace, ()))
        for key, value in labels.items():
            found += self._by_label.get((namespace, key, value), ())
        return [item for _, item in sorted(found, key=lambda e: e[0])]

    def matching(self, namespace: str, selector: LabelSelector) -> list[T]:
        """Labelled items that may match `selector`: those with its anchor's key and values."""
        anchor = _anchor(selector)
        if anchor is None:
            return [item for _, item in self._all.get(namespace, ())]
        key, values = anchor
        found = [e for v in values for e in self._by_label.get((namespace, key, v), ())]
        return [item for _, item in sorted(found, key=lambda e: e[0])]
