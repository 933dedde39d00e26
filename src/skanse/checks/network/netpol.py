"""Network checks (SKN-NET-*): what the NetworkPolicies of a scan leave open.

They look across objects through the scan's network model (`ctx.cluster.network`, built
once on first use), with the exact v1 semantics of `skanse.netpol`: a policy selects pods of
its own namespace only, policyTypes are defaulted, and a rule without peers allows every
address. "Namespace has no default-deny" is SKN-K8S-030 of the zero-trust profile and is not
repeated here.
"""

from __future__ import annotations

from collections.abc import Iterator

from skanse.checks._registry import Violation
from skanse.checks.kubernetes.base import ZERO_TRUST, CheckContext, K8sCheckSet
from skanse.controls import GDPR_SECURITY, NSA_NETWORK_POLICIES, cis, gdpr, nsa
from skanse.model import Layer, Severity
from skanse.netpol.addresses import IpRange, parse_range
from skanse.netpol.explain import side_verdict
from skanse.netpol.facts import LazyNetwork
from skanse.netpol.model import (
    NODE_LOCAL_DNS,
    Direction,
    IpBlockPeer,
    NetworkModel,
    Pod,
    Policy,
    Rule,
    SelectorPeer,
    Workload,
)
from skanse.netpol.ports import ConnSet, Protocol
from skanse.sources.kubernetes import POD_TEMPLATE_PATHS, K8sObject

__all__ = ["DATABASE_PORTS", "NETWORK_CHECKS"]

NETWORK_CHECKS = K8sCheckSet(__name__, layer=Layer.NETWORK)

# Well-known database and data-store ports; ingress to them should come from named workloads.
DATABASE_PORTS: dict[int, str] = {
    1433: "SQL Server",
    1521: "Oracle",
    2379: "etcd",
    3306: "MySQL",
    5432: "PostgreSQL",
    5984: "CouchDB",
    6379: "Redis",
    7000: "Cassandra (inter-node)",
    8086: "InfluxDB",
    9042: "Cassandra",
    9200: "Elasticsearch",
    9300: "Elasticsearch (transport)",
    11211: "memcached",
    26257: "CockroachDB",
    27017: "MongoDB",
}
_WORKLOAD_KINDS = frozenset({*POD_TEMPLATE_PATHS, "VirtualMachine"}) - {"PodTemplate"}
_KUBE_DNS = Pod(
    namespace="kube-system",
    name="kube-dns",
    labels={"k8s-app": "kube-dns"},
    named_ports={"dns": ((Protocol.UDP, 53),), "dns-tcp": ((Protocol.TCP, 53),)},
)


def _network(ctx: CheckContext) -> NetworkModel | None:
    return ctx.cluster.network.model if ctx.cluster.network is not None else None


def _labels_pointer(workload: Workload) -> str:
    return (
        f"{workload.template_pointer}/labels" if workload.template_pointer else "/metadata/labels"
    )


def _selecting(model: NetworkModel, pod: Pod, direction: Direction | None = None) -> list[Policy]:
    return list(model.policies_selecting(pod, direction))


def _selected_pods(model: NetworkModel, policy: Policy) -> list[Pod]:
    return model.pods_selected_by(policy)


@NETWORK_CHECKS.object_check(
    profiles=(ZERO_TRUST,),
    id="SKN-NET-001",
    controls=(
        nsa(NSA_NETWORK_POLICIES),
        cis("5.3.2", approximate=True, note="per workload, not per namespace"),
        GDPR_SECURITY,
    ),
    title="Workload is selected by no NetworkPolicy",
    severity=Severity.MEDIUM,
    kinds=_WORKLOAD_KINDS,
    remediation="Add a default-deny NetworkPolicy to the namespace (podSelector: {}, "
    "policyTypes [Ingress, Egress]) and allow policies for the connections the workload needs "
    "(skanse netpol generate writes both from a service graph).",
    references=("https://kubernetes.io/docs/concepts/services-networking/network-policies/",),
    aliases=("CKV2_K8S_6",),
)
def workload_not_selected(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    """Every workload is selected by at least one NetworkPolicy of its own namespace; a pod no
    policy selects is open in both directions: anything may reach it, and it may reach
    anything, outside the cluster included. A pod on the host network (hostNetwork: true) is
    open the same way whatever selects it: NetworkPolicy does not isolate it."""
    model = _network(ctx)
    workload = ctx.cluster.network.workload(obj) if ctx.cluster.network else None
    if model is None or workload is None:
        return
    if any(pod.host_network for pod in workload.pods):
        # Selected or not, NetworkPolicy does not isolate a pod on its node's network.
        yield Violation(
            f"{workload.ident} runs on the host network (hostNetwork: true): NetworkPolicy "
            "does not isolate it, whatever selects it, so all ingress and egress is allowed",
            _labels_pointer(workload),
        )
        return
    if any(_selecting(model, pod) for pod in workload.pods):
        return
    yield Violation(
        f"no NetworkPolicy of namespace {workload.namespace} selects {workload.ident}: all "
        "ingress and egress is allowed",
        _labels_pointer(workload),
    )


def _database_ports(conns: ConnSet) -> list[int]:
    return [p for p in DATABASE_PORTS if conns.contains(Protocol.TCP, p)]


def _broad_peer(rule: Rule) -> str | None:
    """Why a rule's sources are not named workloads (None when they all are)."""
    if rule.peers is None:
        return "every source, outside the cluster included"
    for peer in rule.peers:
        if isinstance(peer, IpBlockPeer):
            return f"addresses ({peer.cidr})"
        assert isinstance(peer, SelectorPeer)
        if peer.pod_selector is None or peer.pod_selector.is_everything:
            if peer.namespace_selector is None:
                return "every pod of the namespace"
            return f"every pod of the namespaces matching {peer.namespace_selector}"
    return None


@NETWORK_CHECKS.object_check(
    profiles=(ZERO_TRUST,),
    id="SKN-NET-002",
    controls=(
        nsa(NSA_NETWORK_POLICIES),
        GDPR_SECURITY,
        gdpr("32(2)", note="who can reach the data store"),
    ),
    title="Database port reachable from more than named workloads",
    severity=Severity.HIGH,
    kinds=(*_WORKLOAD_KINDS, "NetworkPolicy"),
    remediation="Allow ingress to the database port only from the workloads that use it: a "
    "podSelector naming them (with a namespaceSelector in the same peer for another "
    "namespace), and isolate the database with a default-deny policy.",
    references=("https://kubernetes.io/docs/concepts/services-networking/network-policies/",),
)
def database_ingress(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    """Ingress to a database port (PostgreSQL 5432, MySQL 3306, MongoDB 27017, Redis 6379,
    Cassandra 9042, Elasticsearch 9200, ...) comes only from named workloads: a database pod
    that no policy isolates, or a rule that admits a whole namespace, every pod, or
    addresses, lets anything that lands in the cluster talk to the data."""
    model = _network(ctx)
    network = ctx.cluster.network
    if model is None or network is None:
        return
    if obj.kind == "NetworkPolicy":
        policy = network.policy(obj)
        if policy is None or Direction.INGRESS not in policy.types:
            return
        pods = _selected_pods(model, policy)
        for rule in policy.ingress:
            exposed: set[int] = set()
            if rule.ports is not None:
                candidates: list[Pod | None] = [*pods] or [None]  # numbers count without pods
                for pod in candidates:
                    exposed.update(_database_ports(rule.conns(pod)))
            else:
                for pod in pods:
                    exposed.update(
                        p
                        for proto, p in pod.container_ports
                        if p in DATABASE_PORTS and proto is Protocol.TCP
                    )
            broad = _broad_peer(rule)
            if exposed and broad:
                names = ", ".join(f"{p} ({DATABASE_PORTS[p]})" for p in sorted(exposed))
                yield Violation(
                    f"ingress rule admits {broad} to database port {names}", rule.pointer
                )
        return
    workload = network.workload(obj)
    if workload is None:
        return
    for pod in workload.pods:
        ports = sorted(
            {p for proto, p in pod.container_ports if proto is Protocol.TCP and p in DATABASE_PORTS}
        )
        if ports and (pod.host_network or not _selecting(model, pod, Direction.INGRESS)):
            names = ", ".join(f"{p} ({DATABASE_PORTS[p]})" for p in ports)
            why = (
                "it runs on the host network (hostNetwork: true), which NetworkPolicy does "
                "not isolate"
                if pod.host_network
                else "no NetworkPolicy isolates its ingress"
            )
            yield Violation(
                f"{workload.ident} exposes database port {names} and {why}: every pod and "
                "address may connect",
                _labels_pointer(workload),
            )
            return


@NETWORK_CHECKS.object_check(
    profiles=(ZERO_TRUST,),
    id="SKN-NET-003",
    controls=(
        nsa(NSA_NETWORK_POLICIES),
        GDPR_SECURITY,
        gdpr("32(2)", note="exposure to unauthorised access"),
    ),
    title="Ingress allowed from the whole internet",
    severity=Severity.HIGH,
    kinds=("NetworkPolicy",),
    remediation="Name the sources: the ingress controller's pods (podSelector with "
    "namespaceSelector) or the address ranges that really connect, never 0.0.0.0/0 or ::/0.",
    references=(
        "https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource",
    ),
)
def ingress_from_anywhere(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    """No ingress rule admits 0.0.0.0/0 or ::/0 (with or without except), and no rule omits
    `from`, which admits every address just the same."""
    network = ctx.cluster.network
    policy = network.policy(obj) if network is not None else None
    if policy is None or Direction.INGRESS not in policy.types:
        return
    for rule in policy.ingress:
        if rule.peers is None:
            yield Violation(
                "ingress rule has no `from`: it admits every source, the internet included",
                rule.pointer,
            )
            continue
        for peer in rule.peers:
            if isinstance(peer, IpBlockPeer) and peer.cidr.prefixlen == 0:
                yield Violation(f"ingress rule admits {peer}: the whole internet", peer.pointer)


@NETWORK_CHECKS.object_check(
    profiles=(ZERO_TRUST,),
    id="SKN-NET-004",
    controls=(nsa(NSA_NETWORK_POLICIES), GDPR_SECURITY),
    title="Egress is unrestricted",
    severity=Severity.MEDIUM,
    kinds=(*_WORKLOAD_KINDS, "NetworkPolicy"),
    remediation="Isolate egress (policyTypes: [Egress]) and allow only the destinations and "
    "ports the workload needs, plus DNS to kube-dns.",
    references=(
        "https://kubernetes.io/docs/concepts/services-networking/network-policies/#default-deny-all-egress-traffic",
    ),
)
def unrestricted_egress(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    """A compromised pod should not be able to reach any address on any port: its egress is
    isolated, and no egress rule allows every destination on every port. (A workload that no
    policy selects at all is reported by SKN-NET-001.)"""
    model = _network(ctx)
    network = ctx.cluster.network
    if model is None or network is None:
        return
    if obj.kind == "NetworkPolicy":
        policy = network.policy(obj)
        if policy is None or Direction.EGRESS not in policy.types:
            return
        for rule in policy.egress:
            anywhere = rule.peers is None or any(
                isinstance(p, IpBlockPeer) and p.cidr.prefixlen == 0 for p in rule.peers
            )
            if anywhere and rule.ports is None:
                yield Violation("egress rule allows every destination on every port", rule.pointer)
        return
    workload = network.workload(obj)
    if workload is None:
        return
    for pod in workload.pods:
        if _selecting(model, pod) and not _selecting(model, pod, Direction.EGRESS):
            names = ", ".join(p.ident for p in _selecting(model, pod))
            yield Violation(
                f"{workload.ident} is selected by {names} but none isolates its egress: it may "
                "connect to any address",
                _labels_pointer(workload),
            )
            return


def _node_local_dns(model: NetworkModel) -> bool:
    """NodeLocal DNSCache is part of the scan (its DaemonSet, or policies that allow it)."""
    for w in model.workloads:
        if w.name == "node-local-dns" or any(
            p.labels.get("k8s-app") == "node-local-dns" for p in w.pods
        ):
            return True
    return False


def _kube_dns_pods(model: NetworkModel) -> list[Pod]:
    found = [
        pod
        for w in model.workloads
        if w.namespace == "kube-system"
        for pod in w.pods
        if pod.labels.get("k8s-app") == "kube-dns"
    ]
    return found or [_KUBE_DNS]


@NETWORK_CHECKS.object_check(
    profiles=(ZERO_TRUST,),
    id="SKN-NET-005",
    controls=(
        nsa(NSA_NETWORK_POLICIES, approximate=True, note="a policy that breaks the workload"),
        gdpr("32(1)(b)", note="availability"),
    ),
    title="Egress is denied without allowing DNS",
    severity=Severity.HIGH,
    kinds=_WORKLOAD_KINDS,
    remediation="Allow egress to kube-dns on UDP and TCP 53 in one peer: namespaceSelector "
    "kubernetes.io/metadata.name: kube-system AND podSelector k8s-app: kube-dns; with NodeLocal "
    f"DNSCache also an ipBlock {NODE_LOCAL_DNS}/32 on UDP and TCP 53.",
    references=(
        "https://kubernetes.io/docs/concepts/services-networking/network-policies/",
        "https://kubernetes.io/docs/tasks/administer-cluster/nodelocaldns/",
    ),
)
def egress_without_dns(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    """A workload whose egress is isolated can still resolve names: its policies allow UDP and
    TCP 53 to the kube-dns pods (and to NodeLocal DNSCache's 169.254.20.10 when it is
    deployed). Without it every lookup times out, and teams then open egress wholesale."""
    model = _network(ctx)
    network = ctx.cluster.network
    if model is None or network is None:
        return
    workload = network.workload(obj)
    if workload is None:
        return
    # Every pod is judged, not the first one read: the pods of a live workload can differ in
    # labels (a canary, a relabelled replica), and a policy that isolates the egress of one of
    # them only breaks that one's DNS. Pods with the same labels are selected alike, so each
    # kind is looked at once, however many replicas there are.
    kinds: dict[tuple[tuple[str, str], ...], list[Pod]] = {}
    for pod in workload.pods:
        if pod.host_network:
            continue  # its egress is not isolated by any policy (SKN-NET-001 says so)
        kinds.setdefault(tuple(sorted(pod.labels.items())), []).append(pod)
    for pods in kinds.values():
        found = _dns_blocked(model, network, pods[0])
        if found is None:
            continue
        policies, missing = found
        which = ""
        if len(kinds) > 1:
            names = ", ".join(p.name for p in pods[:3]) + (" ..." if len(pods) > 3 else "")
            which = f" (pod{'s' if len(pods) > 1 else ''} {names})"
        yield Violation(
            f"{workload.ident}{which} has isolated egress ({policies}) but cannot reach DNS: "
            + "; ".join(missing)
            + " are blocked",
            _labels_pointer(workload),
        )


def _dns_blocked(
    model: NetworkModel, network: LazyNetwork, pod: Pod
) -> tuple[str, list[str]] | None:
    """The policies isolating a pod's egress and the DNS paths they block (None: none)."""
    if not _selecting(model, pod, Direction.EGRESS):
        return None
    allowed = ConnSet.union_of(
        side_verdict(model, Direction.EGRESS, pod, dns, dns).allowed
        for dns in network.memo("kube-dns-pods", lambda: _kube_dns_pods(model))
    )
    dns_protocols = (Protocol.UDP, Protocol.TCP)
    missing = [f"{p} 53 to kube-dns" for p in dns_protocols if not allowed.contains(p, 53)]
    if network.memo("node-local-dns", lambda: _node_local_dns(model)):
        local: IpRange = parse_range(NODE_LOCAL_DNS)
        to_local = side_verdict(model, Direction.EGRESS, pod, local, None).allowed
        missing.extend(
            f"{p} 53 to NodeLocal DNSCache {NODE_LOCAL_DNS}"
            for p in dns_protocols
            if not to_local.contains(p, 53)
        )
    if not missing:
        return None
    return ", ".join(p.ident for p in _selecting(model, pod, Direction.EGRESS)), missing


@NETWORK_CHECKS.object_check(
    profiles=(ZERO_TRUST,),
    id="SKN-NET-006",
    controls=(
        nsa(NSA_NETWORK_POLICIES),
        cis("5.3.2", approximate=True, note="an invalid policy is not a policy"),
    ),
    title="NetworkPolicy is invalid",
    severity=Severity.HIGH,
    kinds=("NetworkPolicy",),
    remediation="Fix the field named in the message; the API server refuses the policy as "
    "written, so the pods it was meant to protect stay as open as before.",
    references=(
        "https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/",
    ),
)
def invalid_policy(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    """A NetworkPolicy the API server would reject (an invalid CIDR, a port out of range, an
    unknown protocol, a selector operator that does not exist, a duplicate name) protects
    nothing; skanse leaves it out of the analysis and says why here."""
    network = ctx.cluster.network
    if network is None:
        return
    for problem in network.problems(obj):
        yield Violation(problem.message, problem.pointer)


@NETWORK_CHECKS.object_check(
    profiles=(ZERO_TRUST,),
    id="SKN-NET-007",
    controls=(nsa(NSA_NETWORK_POLICIES),),
    title="NetworkPolicy does not set policyTypes",
    severity=Severity.MEDIUM,
    kinds=("NetworkPolicy",),
    remediation="Write `policyTypes` out: [Ingress], [Egress] or [Ingress, Egress], as the "
    "policy is meant.",
    references=(
        "https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/",
    ),
    aliases=("CheckSourceMissingPolicyTypes",),
)
def missing_policy_types(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    """Without `policyTypes` the API server isolates Ingress always and Egress only when the
    policy has egress rules. An egress-only policy then also denies all ingress to its pods,
    and an intended egress deny-all (no rules) becomes an ingress deny-all that leaves egress
    open: say which directions the policy really isolates."""
    network = ctx.cluster.network
    if network is None:
        return
    policy = network.policy(obj)
    if policy is None or policy.types_explicit:
        return
    types = sorted(d.value for d in policy.types)
    consequence = ""
    if Direction.EGRESS in policy.types and not policy.ingress:
        consequence = (
            "; it has egress rules only, so it also denies all ingress to the pods it selects"
        )
    elif not policy.ingress and not policy.egress:
        consequence = "; with no rules it denies ingress only and leaves egress open"
    yield Violation(
        f"policyTypes is not set, so the API server makes it [{', '.join(types)}]{consequence}",
        "/spec",
    )
