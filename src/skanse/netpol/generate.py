"""Write default-deny plus minimal allow policies from a declared service graph, and prove
them with the engine before anything is written.

The declaration (YAML, read with pydantic at this edge):

    connections:
      - {from: shop/web, to: shop/api, ports: [8080]}
      - {from: shop/api, to: shop/db, ports: ["5432/TCP"]}
      - {from: shop/api, to: {cidrs: [203.0.113.0/24]}, ports: [443]}
      - {from: {countries: [NO, SE]}, to: shop/web, ports: [443]}   # needs --rir FILE
      - {from: {cidr-file: ixp-peers.txt}, to: shop/web, ports: [443]}

Every namespace that holds a declared workload is managed: it gets `default-deny` (both
directions), `allow-dns` (UDP and TCP 53 to kube-dns, and NodeLocal DNSCache when asked),
and per workload one ingress and one egress policy with exactly the declared peers and
ports. `generate()` then runs the analysis on the manifests plus the new policies and
compares it with the declaration plus DNS; any difference is a `ProofError`.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skanse.errors import GraphError, ProofError
from skanse.netpol.addresses import IpNetwork, IpRange, aggregate, merge_segments
from skanse.netpol.engine import Connection, analyse
from skanse.netpol.load import build_model
from skanse.netpol.model import METADATA_NAME, NODE_LOCAL_DNS, Workload
from skanse.netpol.ports import ALL, ConnSet, Protocol
from skanse.netpol.rir import strict_network
from skanse.netpol.selectors import LabelSelector, Operator, Requirement, parse_selector
from skanse.sources.kubernetes import K8sObject, as_dict, as_list
from skanse.sources.manifests import ReadLimits, read_bytes
from skanse.sources.yamlpos import load_documents

__all__ = ["DEFAULT_MAX_IP_BLOCKS", "Generated", "ServiceGraph", "generate", "parse_graph"]

_NODE_LOCAL_DNS_CIDR = f"{NODE_LOCAL_DNS}/32"
# libyaml's emitter when present (the pure-Python one takes seconds for 20,000 ipBlocks);
# both are the safe dumper.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Above this many ipBlock peers in one policy, generate warns (--max-ip-blocks).
DEFAULT_MAX_IP_BLOCKS = 1000
# Labels that differ between replicas or revisions: never part of a generated selector.
_VOLATILE = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "controller-uid",
        "job-name",
        "batch.kubernetes.io/controller-uid",
        "batch.kubernetes.io/job-name",
    }
)
# Kinds whose `spec.selector` is not a stable choice of the user's: a Job's is generated
# from its uid (controller-uid), a Pod has none.
_OWN_SELECTOR = frozenset({"Pod", "Job", "CronJob"})
# Labels that a chart or a release pipeline changes on every upgrade.
_REVISION_LABELS = frozenset({"app.kubernetes.io/version", "helm.sh/chart", "version"})


class _External(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    cidrs: list[str] = Field(default_factory=list)
    countries: list[str] | None = None
    cidr_file: str | None = Field(default=None, alias="cidr-file")

    @field_validator("countries", mode="before")
    @classmethod
    def _norway(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted NO (Norway) as false: take it back
        if isinstance(value, list):
            return ["NO" if item is False else item for item in value]
        return value


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str | _External = Field(alias="from")
    target: str | _External = Field(alias="to")
    ports: list[int | str] = Field(default_factory=list)


class ServiceGraph(BaseModel):
    """The declared intent: who talks to whom on which ports (pydantic: an input format)."""

    model_config = ConfigDict(extra="forbid")
    connections: list[_Edge]
    node_local_dns: bool = Field(default=False, alias="nodeLocalDNS")


def parse_graph(text: str, source: str = "<graph>") -> ServiceGraph:
    """Read a declaration; YAML is parsed with skanse's bounded loader."""
    try:
        documents = list(load_documents(text.encode("utf-8")))
    except Exception as exc:  # YamlError and friends: the message says where
        raise GraphError(f"{source}: {exc}") from None
    if len(documents) != 1 or isinstance(documents[0], Exception):
        raise GraphError(f"{source}: expected one YAML document with `connections`")
    try:
        return ServiceGraph.model_validate(documents[0].data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise GraphError(f"{source}: {problems}") from None


def _ports(values: Sequence[int | str], where: str) -> ConnSet:
    """`[80, "53/UDP", "8000-8100/TCP"]`; empty means every port."""
    if not values:
        return ALL
    parts: dict[Protocol, list[tuple[int, int]]] = {}
    for value in values:
        text = str(value)
        number, _, proto = text.partition("/")
        try:
            protocol = Protocol(proto.upper()) if proto else Protocol.TCP
            lo_text, _, hi_text = number.partition("-")
            lo, hi = int(lo_text), int(hi_text or lo_text)
        except ValueError:
            raise GraphError(f"{where}: port {text!r} is not PORT[-END][/TCP|UDP|SCTP]") from None
        if not 1 <= lo <= hi <= 65535:
            raise GraphError(f"{where}: port {text!r} is out of range (1-65535)")
        parts.setdefault(protocol, []).append((lo, hi))
    return ConnSet.of(parts)


@dataclass(slots=True)
class _Plan:
    # (source workload ident or None for external, destination ident or None) -> ...
    pairs: dict[tuple[str, str], ConnSet] = field(default_factory=dict)
    # workload ident -> list of (networks, ports) allowed to / from outside
    egress_ext: dict[str, list[tuple[list[IpNetwork], ConnSet]]] = field(default_factory=dict)
    ingress_ext: dict[str, list[tuple[list[IpNetwork], ConnSet]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Generated:
    """The policies (one YAML stream) and what the proof compared."""

    text: str
    policies: int
    namespaces: tuple[str, ...]
    connections: tuple[Connection, ...]
    warnings: tuple[str, ...] = ()


def _selector(workload: Workload, workloads: Sequence[Workload]) -> dict[str, object]:
    """The podSelector of a workload's policies: its own `spec.selector` when it has one.

    The controller's selector is immutable and matches every revision of the pods, so the
    policies keep selecting them when a Helm upgrade bumps `app.kubernetes.io/version` or
    `helm.sh/chart` in the template. A bare Pod (or a Job, whose selector the API server
    makes up) is selected by its labels less those that change with every revision.
    """
    spec = as_dict(workload.obj.data.get("spec")) if workload.kind not in _OWN_SELECTOR else {}
    raw = spec.get("selector")
    selector: dict[str, object] = {}
    matcher = LabelSelector()
    if isinstance(raw, dict) and (raw.get("matchLabels") or raw.get("matchExpressions")):
        parsed = parse_selector(raw, "/spec/selector", lambda _message, _pointer: None)
        if parsed is not None and not parsed.is_everything:
            labels = as_dict(raw.get("matchLabels"))
            if labels:
                selector["matchLabels"] = {str(k): str(v) for k, v in labels.items()}
            if raw.get("matchExpressions"):
                selector["matchExpressions"] = as_list(raw.get("matchExpressions"))
            matcher = parsed
    if not selector:
        pod_labels = {
            k: v
            for k, v in workload.pods[0].labels.items()
            if k not in _VOLATILE and k not in _REVISION_LABELS
        }
        if not pod_labels:
            raise GraphError(f"{workload.ident} has no pod labels to select it by")
        selector = {"matchLabels": pod_labels}
        matcher = LabelSelector(
            tuple(sorted(Requirement(k, Operator.IN, (v,)) for k, v in pod_labels.items()))
        )
    for other in workloads:
        if other is workload or other.namespace != workload.namespace:
            continue
        if any(matcher.matches(p.labels) for p in other.pods):
            raise GraphError(
                f"the selector of {workload.ident} ({matcher}) also selects {other.ident}: "
                "give them selectors that tell them apart"
            )
    return selector


def _port_entries(conns: ConnSet) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for protocol, ranges in conns.items():
        if ranges == ((1, 65535),):
            entries.append({"protocol": protocol.value})
            continue
        for lo, hi in ranges:
            entry: dict[str, object] = {"protocol": protocol.value, "port": lo}
            if hi != lo:
                entry["endPort"] = hi
            entries.append(entry)
    return entries


def _rule(peers: list[dict[str, object]], conns: ConnSet, key: str) -> dict[str, object]:
    rule: dict[str, object] = {key: peers}
    if not conns.is_all:
        rule["ports"] = _port_entries(conns)
    return rule


def _doc(namespace: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "skanse"},
        },
        "spec": spec,
    }


def generate(
    graph: ServiceGraph,
    objects: Sequence[K8sObject],
    *,
    default_namespace: str = "default",
    countries: Callable[[Sequence[str]], list[IpNetwork]] | None = None,
    read_cidr_file: Callable[[str], list[IpNetwork]] | None = None,
    node_local_dns: bool = False,
    max_ip_blocks: int = DEFAULT_MAX_IP_BLOCKS,
) -> Generated:
    """The policies for `graph` over the workloads of `objects`, proven by the engine."""
    model = build_model(objects, default_namespace)
    workloads = model.workloads
    plan = _Plan()

    def workload(name: str, where: str) -> Workload:
        found = model.find_workload(name)
        if len(found) != 1:
            what = "no workload" if not found else "several workloads"
            raise GraphError(f"{where}: {what} named {name!r} in the manifests (use ns/name)")
        return found[0]

    def networks(ext: _External, where: str) -> list[IpNetwork]:
        nets: list[IpNetwork] = []
        for text in ext.cidrs:
            try:
                nets.append(strict_network(text))
            except ValueError as exc:
                raise GraphError(f"{where}: {exc}") from None
        if ext.countries is not None:
            if countries is None:
                raise GraphError(f"{where}: countries need an RIR delegated file (--rir FILE)")
            nets += countries(ext.countries)
        if ext.cidr_file is not None:
            if read_cidr_file is None:
                raise GraphError(f"{where}: cidr-file is not available here")
            nets += read_cidr_file(ext.cidr_file)
        if not nets:
            raise GraphError(f"{where}: the external peer selects no addresses")
        return aggregate(nets)

    managed: dict[str, Workload] = {}
    # the ports of every edge of a pair, joined once at the end (folding `|` is quadratic)
    pair_ports: dict[tuple[str, str], list[ConnSet]] = {}
    for i, edge in enumerate(graph.connections):
        where = f"connections[{i}]"
        conns = _ports(edge.ports, where)
        if isinstance(edge.source, str) and isinstance(edge.target, str):
            src, dst = workload(edge.source, where), workload(edge.target, where)
            managed[src.ident], managed[dst.ident] = src, dst
            key = (src.ident, dst.ident)
            pair_ports.setdefault(key, []).append(conns)
        elif isinstance(edge.source, str) and isinstance(edge.target, _External):
            src = workload(edge.source, where)
            managed[src.ident] = src
            plan.egress_ext.setdefault(src.ident, []).append((networks(edge.target, where), conns))
        elif isinstance(edge.source, _External) and isinstance(edge.target, str):
            dst = workload(edge.target, where)
            managed[dst.ident] = dst
            plan.ingress_ext.setdefault(dst.ident, []).append((networks(edge.source, where), conns))
        else:
            raise GraphError(f"{where}: one side must be a workload")
    plan.pairs.update((key, ConnSet.union_of(sets)) for key, sets in pair_ports.items())
    namespaces = sorted({w.namespace for w in managed.values()})
    # every workload of a managed namespace is isolated, declared or not
    for w in workloads:
        if w.namespace in namespaces:
            managed.setdefault(w.ident, w)
    selectors = {ident: _selector(w, workloads) for ident, w in managed.items()}

    def peer(ident: str, from_namespace: str) -> dict[str, object]:
        w = managed[ident]
        entry: dict[str, object] = {"podSelector": selectors[ident]}
        if w.namespace != from_namespace:
            entry["namespaceSelector"] = {"matchLabels": {METADATA_NAME: w.namespace}}
        return entry

    docs: list[dict[str, object]] = []
    local_dns = node_local_dns or graph.node_local_dns
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    for ns in namespaces:
        docs.append(
            _doc(ns, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        )
        dns_peers: list[dict[str, object]] = [
            {
                "namespaceSelector": {"matchLabels": {METADATA_NAME: "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ]
        dns_rules: list[dict[str, object]] = [{"to": dns_peers, "ports": dns_ports}]
        if local_dns:
            dns_rules.append(
                {"to": [{"ipBlock": {"cidr": _NODE_LOCAL_DNS_CIDR}}], "ports": dns_ports}
            )
        docs.append(
            _doc(
                ns, "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": dns_rules}
            )
        )
    for ident in sorted(managed):
        w = managed[ident]
        ingress: list[dict[str, object]] = []
        egress: list[dict[str, object]] = []
        for (src_ident, dst_ident), conns in sorted(plan.pairs.items()):
            if dst_ident == ident:
                ingress.append(_rule([peer(src_ident, w.namespace)], conns, "from"))
            if src_ident == ident:
                egress.append(_rule([peer(dst_ident, w.namespace)], conns, "to"))
        for nets, conns in plan.ingress_ext.get(ident, []):
            ingress.append(_rule([{"ipBlock": {"cidr": str(n)}} for n in nets], conns, "from"))
        for nets, conns in plan.egress_ext.get(ident, []):
            egress.append(_rule([{"ipBlock": {"cidr": str(n)}} for n in nets], conns, "to"))
        base = {"podSelector": selectors[ident]}
        if ingress:
            docs.append(
                _doc(
                    w.namespace,
                    f"allow-ingress-{w.name}",
                    {**base, "policyTypes": ["Ingress"], "ingress": ingress},
                )
            )
        if egress:
            docs.append(
                _doc(
                    w.namespace,
                    f"allow-egress-{w.name}",
                    {**base, "policyTypes": ["Egress"], "egress": egress},
                )
            )

    text = yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False, default_flow_style=False)
    connections = _prove(graph, objects, text, default_namespace, plan, managed, local_dns)
    warnings = [_too_many_blocks(doc, max_ip_blocks) for doc in docs]
    return Generated(
        text, len(docs), tuple(namespaces), tuple(connections), tuple(w for w in warnings if w)
    )


def _too_many_blocks(doc: Mapping[str, Any], limit: int) -> str:
    """A warning for a policy with more ipBlock peers than `limit` (after aggregation)."""
    spec = doc["spec"]
    count = sum(
        1
        for key, side in (("ingress", "from"), ("egress", "to"))
        for rule in spec.get(key, [])
        for peer in rule.get(side, [])
        if "ipBlock" in peer
    )
    if count <= limit:
        return ""
    meta = doc["metadata"]
    return (
        f"{meta['namespace']}/{meta['name']} has {count} ipBlocks (more than {limit}, already "
        "aggregated): many CNIs program one rule per block and slow down or refuse such a "
        "policy. Alternatives: aggregate further (a shorter list of wider prefixes, e.g. the "
        "country's allocations rounded up), a Cilium CiliumCIDRGroup referenced by "
        "`cidrGroupRef`, or a Calico GlobalNetworkSet selected by labels"
    )


_DNS_WORKLOAD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
    "spec": {"containers": [{"name": "coredns", "image": "coredns"}]},
}


def _prove(
    graph: ServiceGraph,
    objects: Sequence[K8sObject],
    text: str,
    default_namespace: str,
    plan: _Plan,
    managed: Mapping[str, Workload],
    local_dns: bool,
) -> list[Connection]:
    """Run the analysis on the manifests plus `text`; raise unless it equals the plan + DNS."""
    generated = read_bytes("<generated>", text.encode("utf-8"), ReadLimits())
    extra: list[K8sObject] = []
    model = build_model(objects, default_namespace)
    dns_ident = "kube-system/kube-dns[Pod]"
    has_dns = any(
        w.namespace == "kube-system" and any(p.labels.get("k8s-app") == "kube-dns" for p in w.pods)
        for w in model.workloads
    )
    if not has_dns:
        extra = read_bytes(
            "<kube-dns>", yaml.safe_dump(_DNS_WORKLOAD).encode(), ReadLimits()
        ).objects
    proven = build_model([*objects, *generated.objects, *extra], default_namespace)
    if proven.problems:
        raise ProofError("the generated policies are invalid", [str(p) for p in proven.problems])
    dns_targets = [
        w.ident
        for w in proven.workloads
        if w.namespace == "kube-system"
        and any(p.labels.get("k8s-app") == "kube-dns" for p in w.pods)
    ] or [dns_ident]
    connections = analyse(proven).connections()

    expected_pairs: dict[tuple[str, str], ConnSet] = dict(plan.pairs)
    dns = ConnSet.of({Protocol.UDP: [(53, 53)], Protocol.TCP: [(53, 53)]})
    for ident in managed:
        for target in dns_targets:
            if target != ident:
                key = (ident, target)
                expected_pairs[key] = expected_pairs.get(key, ConnSet()) | dns
    expected_ext: dict[tuple[str, str], list[tuple[IpRange, ConnSet]]] = {}

    def add_ext(key: tuple[str, str], nets: Sequence[IpNetwork], conns: ConnSet) -> None:
        segments = expected_ext.setdefault(key, [])
        for net in nets:
            segments.append((IpRange.of(net), conns))

    for ident, items in plan.egress_ext.items():
        for nets, conns in items:
            add_ext(("out", ident), nets, conns)
    for ident, items in plan.ingress_ext.items():
        for nets, conns in items:
            add_ext(("in", ident), nets, conns)
    if local_dns:
        for ident in managed:
            add_ext(("out", ident), [ipaddress.ip_network(_NODE_LOCAL_DNS_CIDR)], dns)

    actual_pairs: dict[tuple[str, str], ConnSet] = {}
    actual_ext: dict[tuple[str, str], list[tuple[IpRange, ConnSet]]] = {}
    for c in connections:
        if c.src.addresses is not None and c.dst.label in managed:
            actual_ext.setdefault(("in", c.dst.label), []).append((c.src.addresses, c.conns))
        elif c.dst.addresses is not None and c.src.label in managed:
            actual_ext.setdefault(("out", c.src.label), []).append((c.dst.addresses, c.conns))
        elif c.src.label in managed or c.dst.label in managed:
            actual_pairs[(c.src.label, c.dst.label)] = c.conns

    differences = []
    for key in sorted(expected_pairs.keys() | actual_pairs.keys()):
        want, got = expected_pairs.get(key, ConnSet()), actual_pairs.get(key, ConnSet())
        if want != got:
            differences.append(f"{key[0]} => {key[1]}: declared {want}, policies allow {got}")
    for key in sorted(expected_ext.keys() | actual_ext.keys()):
        want_segments = _flatten(expected_ext.get(key, []))
        got_segments = merge_segments(actual_ext.get(key, []))
        if want_segments != got_segments:
            side = "from outside to" if key[0] == "in" else "to outside from"
            differences.append(
                f"{side} {key[1]}: declared {_text(want_segments)}, policies "
                f"allow {_text(got_segments)}"
            )
    if differences:
        raise ProofError(
            "the generated policies do not allow exactly the declared connections plus DNS; "
            "nothing was written",
            differences,
        )
    return [c for c in connections if c.src.label in managed or c.dst.label in managed]


def _flatten(segments: Sequence[tuple[IpRange, ConnSet]]) -> list[tuple[IpRange, ConnSet]]:
    """Overlapping declared ranges as disjoint ranges with the union of their ports.

    One sweep over the sorted range ends: the ports of each piece are the union of the
    distinct port sets open there, so the cost grows with the number of ranges (times the
    few distinct port sets a declaration has), not with its square.
    """
    events: list[tuple[int, int, int, ConnSet]] = []  # (version, address, +1/-1, ports)
    for r, conns in segments:
        events.append((r.version, r.lo, 1, conns))
        events.append((r.version, r.hi + 1, -1, conns))
    events.sort(key=lambda e: (e[0], e[1]))
    pieces: list[tuple[IpRange, ConnSet]] = []
    open_sets: Counter[ConnSet] = Counter()
    start: tuple[int, int] | None = None
    for version, address, step, conns in events:
        if start is not None and open_sets and (start[0], start[1]) < (version, address):
            union = ConnSet()
            for c in open_sets:
                union = union | c
            if union:
                pieces.append((IpRange(start[0], start[1], address - 1), union))
        open_sets[conns] += step
        if open_sets[conns] == 0:
            del open_sets[conns]
        start = (version, address)
    return merge_segments(pieces)


def _text(segments: Sequence[tuple[IpRange, ConnSet]]) -> str:
    if not segments:
        return "nothing"
    return "; ".join(f"{r}: {c}" for r, c in segments[:4]) + (" ..." if len(segments) > 4 else "")


def graph_from_data(data: Any) -> ServiceGraph:
    """A graph from already-parsed data (tests and callers that build it in code)."""
    return ServiceGraph.model_validate(data)
