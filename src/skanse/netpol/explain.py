"""Why one connection is allowed or denied: the policies and rules on each side.

This is a direct evaluator of the v1 semantics for one pair of peers, written independently
of the class-based engine (the tests compare the two on random clusters). Egress is decided
by the policies of the source's namespace that select the source, ingress by those of the
destination's namespace that select the destination; a side that no policy isolates allows
everything, and an external address is not policed on its own side. A side with a hostNetwork
pod at either end is not decided by NetworkPolicy at all (see `skanse.netpol.engine`): it
allows everything, and says why.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from dataclasses import dataclass

from skanse.errors import UsageError
from skanse.netpol.addresses import IpRange, atoms
from skanse.netpol.engine import Endpoint
from skanse.netpol.model import (
    Direction,
    IpBlockPeer,
    NetworkModel,
    Peer,
    Pod,
    Policy,
    Rule,
    SelectorPeer,
    Workload,
)
from skanse.netpol.ports import ALL, ConnSet, Protocol

__all__ = [
    "Explanation",
    "PortQuery",
    "RuleMatch",
    "SideVerdict",
    "Target",
    "explain",
    "host_network_reason",
    "parse_target",
    "peer_matches",
    "side_verdict",
]


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule of a selecting policy whose peers match, and what it allows for this pair."""

    policy: Policy
    rule: Rule
    conns: ConnSet


@dataclass(frozen=True, slots=True)
class SideVerdict:
    direction: Direction
    selecting: tuple[Policy, ...]  # policies that select the subject in this direction
    matches: tuple[RuleMatch, ...]
    allowed: ConnSet
    # why no NetworkPolicy decides this side (a hostNetwork pod at either end); "" if one does
    unpoliced: str = ""

    @property
    def isolated(self) -> bool:
        return bool(self.selecting) and not self.unpoliced


@dataclass(frozen=True, slots=True)
class PortQuery:
    protocol: Protocol
    port: int | str  # a name resolves on the destination pod


@dataclass(frozen=True, slots=True)
class Explanation:
    src: Endpoint
    dst: Endpoint
    egress: SideVerdict | None  # None: the source is outside the cluster (or a node)
    ingress: SideVerdict | None  # None: the destination is outside the cluster
    allowed: ConnSet
    notes: tuple[str, ...] = ()
    query: PortQuery | None = None
    # the query's port resolved: its number, or every port of its name on the destination
    ports: tuple[int, ...] = ()

    def _open(self) -> list[bool]:
        assert self.query is not None
        return [self.allowed.contains(self.query.protocol, p) for p in self.ports]

    @property
    def verdict(self) -> bool | None:
        """For a port query: allowed on every port it resolves to, or not; None without a
        query or for a name the destination does not have."""
        if self.query is None or not self.ports:
            return None
        return all(self._open())

    @property
    def allows(self) -> bool:
        """Whether the connection is allowed: on every port the query resolves to (a name the
        destination does not have allows nothing), or, without a port, on anything at all."""
        if self.query is not None:
            return self.verdict is True
        return bool(self.allowed)

    @property
    def unpoliced(self) -> tuple[str, ...]:
        """Why NetworkPolicy cannot decide this pair (each side's reason, once)."""
        reasons = (side.unpoliced for side in (self.egress, self.ingress) if side is not None)
        return tuple(dict.fromkeys(r for r in reasons if r))

    @property
    def may_allow(self) -> bool:
        """Whether anything of it may get through: one of the ports the query resolves to
        (a named port can be several), or, without a port, anything. What a deny must rule
        out, where `allows` is what an allow must prove."""
        if self.query is not None:
            return any(self._open()) if self.ports else False
        return bool(self.allowed)


@dataclass(frozen=True, slots=True)
class Target:
    """A peer named on the command line: a workload, external addresses, or a node."""

    workload: Workload | None = None
    addresses: IpRange | None = None
    node: bool = False

    @property
    def label(self) -> str:
        if self.workload is not None:
            return self.workload.ident
        if self.addresses is not None:
            return f"{self.addresses}[External]"
        return "node"


_PORT = re.compile(r"^(?P<target>.+?):(?P<port>[0-9]+|[a-z][-a-z0-9]*)(?:/(?P<proto>[A-Za-z]+))?$")


def parse_target(
    model: NetworkModel, text: str, *, allow_port: bool = False
) -> tuple[Target, PortQuery | None]:
    """`ns/name[Kind]`, `name`, an address or CIDR (`[v6]:port` for IPv6), or `node`."""
    query = None
    raw = text.strip()
    if allow_port:
        bracket = re.match(r"^\[(?P<addr>[^\]]+)\](?::(?P<rest>.+))?$", raw)
        if bracket:
            raw = bracket.group("addr")
            if bracket.group("rest"):
                query = _port_query(bracket.group("rest"))
        else:
            match = _PORT.match(raw)
            if match and not _is_address(raw):
                raw = match.group("target")
                rest = match.group("port") + (
                    f"/{match.group('proto')}" if match.group("proto") else ""
                )
                query = _port_query(rest)
    if raw == "node":
        return Target(node=True), query
    if _is_address(raw):
        network = ipaddress.ip_network(raw, strict=False)
        return Target(addresses=IpRange.of(network)), query
    found = model.find_workload(raw)
    if not found:
        raise UsageError(f"no workload {raw!r} in the inputs (use ns/name or ns/name[Kind])")
    if len(found) > 1:
        names = ", ".join(w.ident for w in found)
        raise UsageError(f"{raw!r} names several workloads ({names}): use ns/name[Kind]")
    return Target(workload=found[0]), query


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _port_query(text: str) -> PortQuery:
    port_text, _, proto_text = text.partition("/")
    try:
        protocol = Protocol(proto_text.upper()) if proto_text else Protocol.TCP
    except ValueError:
        raise UsageError(f"unknown protocol {proto_text!r} (TCP, UDP or SCTP)") from None
    if port_text.isdigit():
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise UsageError(f"port {port} is out of range (1-65535)")
        return PortQuery(protocol, port)
    return PortQuery(protocol, port_text)


def peer_matches(
    model: NetworkModel, peer: Peer, policy_namespace: str, other: Pod | IpRange
) -> bool:
    """Whether one peer of a rule of a policy in `policy_namespace` matches `other`."""
    if isinstance(peer, IpBlockPeer):
        if isinstance(other, IpRange):
            return any(r.contains(other) for r in peer.ranges)
        return any(peer.contains(version, value) for version, value in other.ips)
    assert isinstance(peer, SelectorPeer)
    if isinstance(other, IpRange):
        return False
    if peer.namespace_selector is None:
        if other.namespace != policy_namespace:
            return False
    elif not peer.namespace_selector.matches(model.namespace_labels(other.namespace)):
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(other.labels)


def side_verdict(
    model: NetworkModel,
    direction: Direction,
    subject: Pod,
    other: Pod | IpRange,
    destination: Pod | None,
) -> SideVerdict:
    """What the policies selecting `subject` allow in `direction` with `other`.

    `destination` is the pod named ports resolve on (None when it is an external address).
    """
    reason = host_network_reason(subject, other)
    if reason:
        found = model.policies_selecting(subject, direction)
        return SideVerdict(direction, found, (), ALL, reason)
    selecting = []
    matches = []
    for policy in model.policies_selecting(subject, direction):
        selecting.append(policy)
        for rule in policy.rules(direction):
            if rule.peers is not None and not any(
                peer_matches(model, p, policy.namespace, other) for p in rule.peers
            ):
                continue
            conns = rule.conns(destination)
            matches.append(RuleMatch(policy, rule, conns))
    allowed = ConnSet.union_of(m.conns for m in matches) if selecting else ALL
    return SideVerdict(direction, tuple(selecting), tuple(matches), allowed)


def host_network_reason(subject: Pod, other: Pod | IpRange) -> str:
    """Why NetworkPolicy decides nothing between `subject` and `other` ("" when it does).

    Kubernetes leaves NetworkPolicy for hostNetwork pods undefined; most CNIs do not isolate
    them and cannot tell their traffic from their node's, which a pod on that node always
    exchanges, and Calico or Cilium police it only through host-endpoint policy, when that is
    set up. So nothing can be guaranteed about such a pair, in either direction."""
    for pod in (subject, other):
        if isinstance(pod, Pod) and pod.host_network:
            return (
                f"pod {pod.namespace}/{pod.name} runs on the host network (hostNetwork: true), "
                "which NetworkPolicy does not police"
            )
    return ""


def explain(
    model: NetworkModel, src: Target, dst: Target, query: PortQuery | None = None
) -> list[Explanation]:
    """One explanation per part of the pair that policies treat alike (usually one).

    External addresses are split where ipBlocks cut them, so each part is decided alike.
    """
    if dst.node:
        raise UsageError("a node can only be a source (traffic from a pod's node)")
    if src.addresses is not None and dst.addresses is not None:
        raise UsageError(
            "one side must be a workload: traffic between two external addresses "
            "never crosses a NetworkPolicy"
        )
    notes: list[str] = []
    tells = _Tells.of(model, query)
    if src.node:
        assert dst.workload is not None
        return [
            Explanation(
                Endpoint("node"),
                Endpoint.of_workload(dst.workload),
                None,
                None,
                ALL,
                (
                    "traffic from a pod's own node is always allowed (kubelet probes); from other "
                    "nodes it is treated like any address outside the cluster",
                    *_variant_note(dst.workload, pod, variants),
                ),
                query,
                _resolve_port(query, pod),
            )
            for variants in [_variants(dst.workload, tells)]
            for pod in variants
        ]
    if src.workload is not None and src.workload is dst.workload:
        notes.append(
            "a pod can always reach itself; other replicas of the workload are "
            "subject to the policies below"
        )
    kinds = {id(t): _variants(t.workload, tells) for t in (src, dst) if t.workload is not None}
    out = []
    for src_part, dst_part in _parts(src, dst, tells.cuts, kinds):
        src_end = _endpoint(src, src_part)
        dst_end = _endpoint(dst, dst_part)
        egress = ingress = None
        dst_pod = dst_part if isinstance(dst_part, Pod) else None
        if isinstance(src_part, Pod):
            egress = side_verdict(model, Direction.EGRESS, src_part, dst_part, dst_pod)
        if isinstance(dst_part, Pod):
            ingress = side_verdict(model, Direction.INGRESS, dst_part, src_part, dst_part)
        allowed = (egress.allowed if egress else ALL) & (ingress.allowed if ingress else ALL)
        ports = _resolve_port(query, dst_pod)
        part_notes = list(notes)
        for target, part in ((src, src_part), (dst, dst_part)):
            if target.workload is not None and isinstance(part, Pod):
                part_notes.extend(_variant_note(target.workload, part, kinds[id(target)]))
        if query is not None and isinstance(query.port, str) and not ports:
            part_notes.append(
                f"port name {query.port!r} is not a {query.protocol} port of the destination"
            )
        out.append(
            Explanation(src_end, dst_end, egress, ingress, allowed, tuple(part_notes), query, ports)
        )
    return out


@dataclass(frozen=True, slots=True)
class _Tells:
    """What policies can tell pods apart by: ipBlock cuts, label keys and port names."""

    cuts: list[IpRange]
    keys: frozenset[str]
    names: frozenset[str]

    @classmethod
    def of(cls, model: NetworkModel, query: PortQuery | None) -> _Tells:
        keys: set[str] = set()
        names: set[str] = set()
        blocks: list[IpRange] = []
        for policy in model.policies:
            keys |= policy.pod_selector.keys
            for rule in (*policy.ingress, *policy.egress):
                for peer in rule.peers or ():
                    if isinstance(peer, IpBlockPeer):
                        blocks.extend(peer.ranges)
                    elif peer.pod_selector is not None:
                        keys |= peer.pod_selector.keys
                names.update(s.port for s in rule.ports or () if isinstance(s.port, str))
        if query is not None and isinstance(query.port, str):
            names.add(query.port)
        return cls(atoms(blocks), frozenset(keys), frozenset(names))


def _variants(workload: Workload, tells: _Tells) -> list[Pod]:
    """One pod of each kind the policies may tell apart: the pods of a workload read from a
    dump can differ in labels, named ports, or the ipBlock ranges their IPs fall in, and each
    kind is decided on its own (explaining only the first pod would call a connection denied
    that a relabelled replica accepts). Labels and port names no policy mentions (a
    StatefulSet's pod-name label) do not make a kind."""
    starts = [(a.version, a.lo) for a in tells.cuts]
    seen: dict[tuple[object, ...], Pod] = {}
    for pod in workload.pods:
        key = (
            pod.host_network,
            tuple(sorted((k, v) for k, v in pod.labels.items() if k in tells.keys)),
            tuple(sorted((n, p) for n, p in pod.named_ports.items() if n in tells.names)),
            tuple(sorted({bisect.bisect_right(starts, ip) for ip in pod.ips})),
        )
        seen.setdefault(key, pod)
    return list(seen.values())


def _variant_note(workload: Workload, pod: Pod, variants: list[Pod]) -> tuple[str, ...]:
    if len(variants) < 2:
        return ()
    return (
        f"the pods of {workload.ident} differ in labels, ports or addresses; "
        f"explained for pod {pod.name} ({variants.index(pod) + 1} of {len(variants)} kinds)",
    )


def _resolve_port(query: PortQuery | None, destination: Pod | None) -> tuple[int, ...]:
    """The numbers a queried port stands for: itself, or each port of that name and protocol
    on the destination (none for an external address or a name it does not have)."""
    if query is None:
        return ()
    if isinstance(query.port, int):
        return (query.port,)
    if destination is None:
        return ()
    found = destination.named_ports.get(query.port, ())
    return tuple(sorted({n for protocol, n in found if protocol is query.protocol}))


def _endpoint(target: Target, part: Pod | IpRange) -> Endpoint:
    if target.workload is not None:
        return Endpoint.of_workload(target.workload)
    assert isinstance(part, IpRange)
    return Endpoint.of_range(part)


def _parts(
    src: Target, dst: Target, cuts: list[IpRange], kinds: dict[int, list[Pod]]
) -> list[tuple[Pod | IpRange, Pod | IpRange]]:
    def split(t: Target) -> list[Pod | IpRange]:
        if t.workload is not None:
            return list(kinds[id(t)])
        assert t.addresses is not None
        r = t.addresses
        pieces: list[Pod | IpRange] = []
        for atom in cuts:
            if atom.version != r.version or atom.hi < r.lo or atom.lo > r.hi:
                continue
            pieces.append(IpRange(r.version, max(atom.lo, r.lo), min(atom.hi, r.hi)))
        return pieces

    return [(s, d) for s in split(src) for d in split(dst)]
