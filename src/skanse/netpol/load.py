"""Read manifests into a `NetworkModel`, validating NetworkPolicies as the API server does.

Inputs are files, directories, `-` (standard input) and `kubectl get ... -A -o json` dumps,
read through `skanse.sources.manifests`. Workloads come from pod templates (`pod_spec()`) or
from live Pods, which are grouped under their owner (`ownerReferences`) the way np-guard's
netpol-analyzer names them (`ns/owner[ReplicaSet]`). A workload object that owns other
objects of the input (a Deployment whose ReplicaSet and Pods are in a dump) is represented
by those instead, so nothing is counted twice.

A NetworkPolicy the API server would reject (invalid CIDR, port out of range, unknown
protocol, bad selector operator, ...) is reported as a `PolicyProblem` with its file and line
and left out of the analysis, as it would be left out of the cluster. A duplicate name is
reported too; like `kubectl apply`, the last one read is kept.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from skanse.model import InputProblem
from skanse.netpol.addresses import IpNetwork, block_ranges
from skanse.netpol.model import (
    METADATA_NAME,
    Direction,
    IpBlockPeer,
    Namespace,
    NetworkModel,
    Peer,
    Pod,
    Policy,
    PolicyProblem,
    PortSpec,
    Rule,
    SelectorPeer,
    Service,
    ServicePort,
    Workload,
)
from skanse.netpol.ports import MAX_PORT, Protocol
from skanse.netpol.selectors import parse_selector
from skanse.sources.files import STDIN, InputType, discover
from skanse.sources.kubernetes import K8sObject, as_dict, as_list, pod_spec
from skanse.sources.manifests import ReadLimits, read_bytes, read_path
from skanse.sources.yamlpos import join_pointer

__all__ = ["build_model", "load_model", "parse_policy", "read_objects"]

POLICY_API = "networking.k8s.io/v1"
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
# Template kinds that describe pods which are not running workloads of their own.
_NOT_WORKLOADS = frozenset({"PodTemplate"})
_DEFAULT_LIMITS = ReadLimits()


@dataclass(frozen=True, slots=True)
class ReadResult:
    objects: list[K8sObject]
    problems: list[InputProblem]
    warnings: list[str]


def read_objects(
    targets: Sequence[str], *, stdin: bytes | None = None, limits: ReadLimits = _DEFAULT_LIMITS
) -> ReadResult:
    """Every Kubernetes object of the inputs, and every input that could not be read."""
    objects: list[K8sObject] = []
    problems: list[InputProblem] = []
    warnings: list[str] = []
    for item in discover(targets, InputType.KUBERNETES):
        if isinstance(item, InputProblem):
            problems.append(item)
            continue
        if item.path == STDIN:
            mf = read_bytes("<stdin>", stdin or b"", limits)
        else:
            mf = read_path(item.path, limits)
        objects.extend(mf.objects)
        problems.extend(mf.problems)
        warnings.extend(mf.warnings)
    return ReadResult(objects, problems, warnings)


def load_model(
    targets: Sequence[str],
    *,
    stdin: bytes | None = None,
    default_namespace: str = "default",
    limits: ReadLimits = _DEFAULT_LIMITS,
) -> NetworkModel:
    """Read the inputs and build the model; nothing here raises for a bad input."""
    read = read_objects(targets, stdin=stdin, limits=limits)
    model = build_model(read.objects, default_namespace)
    return NetworkModel(
        namespaces=model.namespaces,
        workloads=model.workloads,
        policies=model.policies,
        services=model.services,
        problems=model.problems,
        default_namespace=default_namespace,
        input_problems=tuple(read.problems),
        warnings=(*read.warnings, *model.warnings),
    )


def _labels(value: object) -> dict[str, str]:
    """Labels as the API stores them: string keys and values; anything else is dropped."""
    return {k: v for k, v in as_dict(value).items() if isinstance(v, str)}


def _owner(obj: K8sObject) -> tuple[str, str] | None:
    """(kind, name) of the controlling owner, else the first owner; kind may be empty."""
    refs = [r for r in as_list(obj.metadata.get("ownerReferences")) if isinstance(r, dict)]
    if not refs:
        return None
    chosen = next((r for r in refs if r.get("controller") is True), refs[0])
    name = chosen.get("name")
    if not isinstance(name, str) or not name:
        return None
    kind = chosen.get("kind")
    return (kind if isinstance(kind, str) else "", name)


def _protocol(port: dict[str, object]) -> Protocol | None:
    """The protocol a port entry names (TCP when it names none); None for an unknown one."""
    try:
        return Protocol(str(port.get("protocol") or "TCP").upper())
    except ValueError:
        return None


def _add_ports(
    ports: object,
    number_key: str,
    named: dict[str, tuple[tuple[Protocol, int], ...]],
    exposed: list[tuple[Protocol, int]],
) -> None:
    """Add the ports of a container (`containerPort`) or a VM interface (`port`) to `exposed`
    and the named ones to `named`: every port of a name, in order (a policy's named port
    resolves to each container port of that name and protocol, not to the first one read)."""
    for entry in as_list(ports):
        port = as_dict(entry)
        number = port.get(number_key)
        if isinstance(number, bool) or not isinstance(number, int):
            continue
        protocol = _protocol(port)
        if protocol is None:
            continue
        exposed.append((protocol, number))
        name = port.get("name")
        if isinstance(name, str) and (protocol, number) not in named.get(name, ()):
            named[name] = (*named.get(name, ()), (protocol, number))


def _pod_from_spec(
    namespace: str, name: str, metadata: dict[str, object], spec: dict[str, object], obj: K8sObject
) -> Pod:
    named: dict[str, tuple[tuple[Protocol, int], ...]] = {}
    exposed: list[tuple[Protocol, int]] = []
    for kind in ("initContainers", "containers"):
        for container in as_list(spec.get(kind)):
            _add_ports(as_dict(container).get("ports"), "containerPort", named, exposed)
    ips: list[tuple[int, int]] = []
    status = as_dict(obj.data.get("status")) if obj.kind == "Pod" else {}
    addresses = [as_dict(i).get("ip") for i in as_list(status.get("podIPs"))]
    addresses.append(status.get("podIP"))
    for text in addresses:
        if not isinstance(text, str):
            continue
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if (address.version, int(address)) not in ips:
            ips.append((address.version, int(address)))
    return Pod(
        namespace=namespace,
        name=name,
        labels=_labels(metadata.get("labels")),
        named_ports=named,
        ips=tuple(ips),
        host_network=spec.get("hostNetwork") is True,
        container_ports=tuple(dict.fromkeys(exposed)),
    )


def build_model(objects: Iterable[K8sObject], default_namespace: str = "default") -> NetworkModel:
    """The model of a set of objects (all from one scan or one directory)."""
    objects = list(objects)
    problems: list[PolicyProblem] = []
    warnings: list[str] = []
    namespaces: dict[str, Namespace] = {}
    owned: set[tuple[str, str, str]] = set()  # (namespace, kind, name) owning something here
    owned_by_name: set[tuple[str, str]] = set()  # owners named without a kind
    for obj in objects:
        owner = _owner(obj)
        if owner is not None:
            ns = obj.namespace or default_namespace
            owned.add((ns, owner[0], owner[1]))
            owned_by_name.add((ns, owner[1]))

    live: dict[tuple[str, str, str], list[tuple[Pod, K8sObject]]] = {}
    workloads: list[Workload] = []
    policies: dict[tuple[str, str], Policy] = {}
    seen_policy: dict[tuple[str, str], K8sObject] = {}
    services: list[Service] = []
    for obj in objects:
        kind = obj.kind
        ns = obj.namespace or default_namespace
        if kind == "Namespace":
            labels = _labels(obj.metadata.get("labels"))
            # The API server overwrites this label with the namespace's name (namespace
            # strategy Canonicalize): a manifest cannot claim another namespace's name.
            labels[METADATA_NAME] = obj.name
            namespaces[obj.name] = Namespace(obj.name, labels, obj)
        elif kind == "NetworkPolicy":
            if obj.api_version != POLICY_API:
                problems.append(
                    PolicyProblem(
                        f"apiVersion {obj.api_version} is not served by Kubernetes (use "
                        f"{POLICY_API}); the policy is left out of the analysis",
                        obj,
                        "/apiVersion",
                    )
                )
                continue
            key = (ns, obj.name)
            if key in seen_policy:
                first = seen_policy[key].location()
                problems.append(
                    PolicyProblem(
                        f"duplicate NetworkPolicy {ns}/{obj.name} (also at {first.file}:"
                        f"{first.line}); like kubectl apply, the last one read is analysed",
                        obj,
                        "/metadata/name",
                    )
                )
            seen_policy[key] = obj
            found: list[PolicyProblem] = []
            policy = parse_policy(obj, default_namespace, found)
            problems.extend(found)
            if policy is not None:  # an invalid one would be refused, leaving the old one
                policies[key] = policy
        elif kind == "Service":
            service = _parse_service(obj, ns)
            if service is not None:
                services.append(service)
        elif kind == "Pod":
            spec = as_dict(obj.data.get("spec"))
            pod = _pod_from_spec(ns, obj.name, obj.metadata, spec, obj)
            owner = _owner(obj)
            if owner is None or owner[0] == "Node":  # static pods keep their own name
                group = (ns, "Pod", obj.name)
            else:
                group = (ns, owner[0] or "Pod", owner[1])
            live.setdefault(group, []).append((pod, obj))
        elif kind == "VirtualMachine" and obj.api_version.startswith("kubevirt.io/"):
            workloads.append(_virtual_machine(obj, ns))
        elif kind not in _NOT_WORKLOADS:
            view = pod_spec(obj)
            if view is None:
                continue
            if (ns, kind, obj.name) in owned or (ns, obj.name) in owned_by_name:
                continue  # its ReplicaSets or Pods are in the input and stand for it
            replicas = as_dict(obj.data.get("spec")).get("replicas")
            if kind == "ReplicaSet" and replicas == 0 and _owner(obj) is not None:
                continue  # an old revision of a Deployment, scaled to zero
            pod = _pod_from_spec(ns, obj.name, view.metadata, view.spec, obj)
            workloads.append(
                Workload(ns, obj.name, kind, (pod,), obj, template_pointer=view.metadata_pointer)
            )
    for (ns, kind, name), members in live.items():
        pods = tuple(p for p, _ in members)
        workloads.append(Workload(ns, name, kind, pods, members[0][1]))
    for w in workloads:
        if w.namespace not in namespaces:
            namespaces[w.namespace] = Namespace(w.namespace, {METADATA_NAME: w.namespace})
    for p in policies.values():
        if p.namespace not in namespaces:
            namespaces[p.namespace] = Namespace(p.namespace, {METADATA_NAME: p.namespace})
    workloads.sort(key=lambda w: w.ident)
    warnings.extend(
        f"{w.ident} runs on the host network (hostNetwork: true): NetworkPolicy does not "
        "isolate it, so every connection to and from it is counted as allowed"
        for w in workloads
        if any(pod.host_network for pod in w.pods)
    )
    ordered = sorted(policies.values(), key=lambda p: (p.namespace, p.name))
    return NetworkModel(
        namespaces=dict(sorted(namespaces.items())),
        workloads=tuple(workloads),
        policies=tuple(ordered),
        services=tuple(services),
        problems=tuple(problems),
        default_namespace=default_namespace,
        warnings=tuple(warnings),
    )


def _virtual_machine(obj: K8sObject, namespace: str) -> Workload:
    """A KubeVirt VirtualMachine: its virt-launcher pod carries the template's labels."""
    template = as_dict(as_dict(obj.data.get("spec")).get("template"))
    metadata = as_dict(template.get("metadata"))
    named: dict[str, tuple[tuple[Protocol, int], ...]] = {}
    exposed: list[tuple[Protocol, int]] = []
    devices = as_dict(as_dict(as_dict(template.get("spec")).get("domain")).get("devices"))
    for interface in as_list(devices.get("interfaces")):
        _add_ports(as_dict(interface).get("ports"), "port", named, exposed)
    pod = Pod(
        namespace,
        obj.name,
        _labels(metadata.get("labels")),
        named,
        container_ports=tuple(dict.fromkeys(exposed)),
    )
    return Workload(namespace, obj.name, obj.kind, (pod,), obj, "/spec/template/metadata")


def _parse_service(obj: K8sObject, namespace: str) -> Service | None:
    spec = as_dict(obj.data.get("spec"))
    selector = spec.get("selector")
    ports: list[ServicePort] = []
    for item in as_list(spec.get("ports")):
        item = as_dict(item)
        port = item.get("port")
        if isinstance(port, bool) or not isinstance(port, int):
            continue
        target = item.get("targetPort", port)
        if not isinstance(target, (int, str)) or isinstance(target, bool):
            target = port
        protocol = _protocol(item)
        if protocol is None:
            continue
        name = item.get("name")
        ports.append(ServicePort(name if isinstance(name, str) else "", port, target, protocol))
    return Service(
        namespace,
        obj.name,
        _labels(selector) if isinstance(selector, dict) else None,
        tuple(ports),
        obj,
    )


class _Collector:
    def __init__(self, obj: K8sObject, out: list[PolicyProblem]) -> None:
        self.obj, self.out, self.count = obj, out, 0

    def __call__(self, message: str, pointer: str) -> None:
        self.count += 1
        self.out.append(PolicyProblem(message, self.obj, pointer))


def parse_policy(
    obj: K8sObject, default_namespace: str, problems: list[PolicyProblem]
) -> Policy | None:
    """A NetworkPolicy with defaults applied, or None after reporting why it is invalid."""
    report = _Collector(obj, problems)
    # A bad name or namespace is reported, but does not change what the rules mean: the
    # policy is still analysed (np-guard's test corpus relies on names with underscores).
    name = obj.metadata.get("name")
    if not isinstance(name, str) or not name:
        problems.append(PolicyProblem("a NetworkPolicy needs metadata.name", obj, "/metadata"))
    elif len(name) > 253 or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z", name):
        problems.append(
            PolicyProblem(
                f"name {name!r} is not a valid DNS subdomain (lower-case letters, digits, '-' "
                "and '.'); the API server would refuse it",
                obj,
                "/metadata/name",
            )
        )
    namespace = obj.namespace or default_namespace
    if not _DNS1123_LABEL.match(namespace) or len(namespace) > 63:
        problems.append(
            PolicyProblem(
                f"namespace {namespace!r} is not a valid DNS label", obj, "/metadata/namespace"
            )
        )
    spec_value = obj.data.get("spec")
    if not isinstance(spec_value, dict):
        report("a NetworkPolicy needs a spec mapping", "/spec")
        return None
    spec: dict[str, object] = spec_value
    pod_selector = parse_selector(spec.get("podSelector"), "/spec/podSelector", report)

    types_value = spec.get("policyTypes")
    types: set[Direction] = set()
    explicit = isinstance(types_value, list) and bool(types_value)
    if types_value is not None and not isinstance(types_value, list):
        report("policyTypes must be a list of Ingress and/or Egress", "/spec/policyTypes")
    for i, item in enumerate(as_list(types_value)):
        try:
            types.add(Direction(str(item)))
        except ValueError:
            report(
                f"invalid policyType {item!r} (expected Ingress or Egress)",
                join_pointer("/spec/policyTypes", i),
            )
    rules: dict[Direction, list[Rule]] = {Direction.INGRESS: [], Direction.EGRESS: []}
    for direction, key, peers_key in (
        (Direction.INGRESS, "ingress", "from"),
        (Direction.EGRESS, "egress", "to"),
    ):
        value = spec.get(key)
        if value is not None and not isinstance(value, list):
            report(f"{key} must be a list of rules", f"/spec/{key}")
            continue
        for i, item in enumerate(as_list(value)):
            pointer = join_pointer("/spec", key, i)
            rule = _parse_rule(item, direction, i, pointer, peers_key, report)
            if rule is not None:
                rules[direction].append(rule)
    if not explicit:
        # The API's defaulting: Ingress always; Egress only when egress rules exist.
        types = {Direction.INGRESS}
        if as_list(spec.get("egress")):
            types.add(Direction.EGRESS)
    if report.count or pod_selector is None:
        return None
    return Policy(
        namespace=namespace,
        name=str(name),
        pod_selector=pod_selector,
        types=frozenset(types),
        ingress=tuple(rules[Direction.INGRESS]),
        egress=tuple(rules[Direction.EGRESS]),
        obj=obj,
        types_explicit=explicit,
    )


def _parse_rule(
    item: object,
    direction: Direction,
    index: int,
    pointer: str,
    peers_key: str,
    report: _Collector,
) -> Rule | None:
    if item is None:
        item = {}
    if not isinstance(item, dict):
        report("a rule must be a mapping (with from/to and ports)", pointer)
        return None
    ok = True
    peers: list[Peer] | None = None
    raw_peers = item.get(peers_key)
    if raw_peers is not None and not isinstance(raw_peers, list):
        report(f"{peers_key} must be a list of peers", f"{pointer}/{peers_key}")
        ok = False
    elif raw_peers:
        peers = []
        for j, raw in enumerate(raw_peers):
            peer = _parse_peer(raw, join_pointer(pointer, peers_key, j), report)
            if peer is None:
                ok = False
            else:
                peers.append(peer)
    ports: list[PortSpec] | None = None
    raw_ports = item.get("ports")
    if raw_ports is not None and not isinstance(raw_ports, list):
        report("ports must be a list", f"{pointer}/ports")
        ok = False
    elif raw_ports:
        ports = []
        for j, raw in enumerate(raw_ports):
            spec = _parse_port(raw, join_pointer(pointer, "ports", j), report)
            if spec is None:
                ok = False
            else:
                ports.append(spec)
    if not ok:
        return None
    return Rule(
        direction,
        index,
        tuple(peers) if peers is not None else None,
        tuple(ports) if ports is not None else None,
        pointer,
    )


def _parse_peer(raw: object, pointer: str, report: _Collector) -> Peer | None:
    if not isinstance(raw, dict):
        report("a peer must be a mapping", pointer)
        return None
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if raw.get(k) is not None]
    if not present:
        report("must specify a peer (podSelector, namespaceSelector or ipBlock)", pointer)
        return None
    if "ipBlock" in present and len(present) > 1:
        report("ipBlock may not be combined with podSelector or namespaceSelector", pointer)
        return None
    if "ipBlock" in present:
        return _parse_ip_block(raw["ipBlock"], pointer + "/ipBlock", report)
    pod_sel = ns_sel = None
    if "podSelector" in present:
        pod_sel = parse_selector(raw["podSelector"], pointer + "/podSelector", report)
        if pod_sel is None:
            return None
    if "namespaceSelector" in present:
        ns_sel = parse_selector(raw["namespaceSelector"], pointer + "/namespaceSelector", report)
        if ns_sel is None:
            return None
    return SelectorPeer(pod_sel, ns_sel, pointer)


def _network(text: object, pointer: str, report: _Collector) -> IpNetwork | None:
    if not isinstance(text, str) or "/" not in text:
        report(f"invalid CIDR {text!r} (expected an address and a prefix length)", pointer)
        return None
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        report(f"invalid CIDR {text!r}: {exc}", pointer)
        return None


def _parse_ip_block(raw: object, pointer: str, report: _Collector) -> IpBlockPeer | None:
    if not isinstance(raw, dict):
        report("ipBlock must be a mapping with cidr and except", pointer)
        return None
    cidr = _network(raw.get("cidr"), pointer + "/cidr", report)
    if cidr is None:
        return None
    excepts: list[IpNetwork] = []
    raw_except = raw.get("except")
    if raw_except is not None and not isinstance(raw_except, list):
        report("except must be a list of CIDRs", pointer + "/except")
        return None
    ok = True
    for i, item in enumerate(as_list(raw_except)):
        where = join_pointer(pointer, "except", i)
        net = _network(item, where, report)
        if net is None:
            ok = False
            continue
        if net.version != cidr.version or not net.subnet_of(cidr) or net == cidr:  # type: ignore[arg-type]
            report(f"except {item} must be a strict subset of cidr {cidr}", where)
            ok = False
            continue
        excepts.append(net)
    if not ok:
        return None
    return IpBlockPeer(cidr, tuple(excepts), tuple(block_ranges(cidr, excepts)), pointer)


def _parse_port(raw: object, pointer: str, report: _Collector) -> PortSpec | None:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        report("a ports entry must be a mapping with protocol, port and endPort", pointer)
        return None
    protocol_value = raw.get("protocol")
    if protocol_value is None:
        protocol = Protocol.TCP
    else:
        try:
            protocol = Protocol(protocol_value)
        except ValueError:
            report(
                f"unknown protocol {protocol_value!r} (expected TCP, UDP or SCTP, in upper case)",
                pointer + "/protocol",
            )
            return None
    port = raw.get("port")
    end = raw.get("endPort")
    if isinstance(port, bool) or (port is not None and not isinstance(port, (int, str))):
        report(f"invalid port {port!r}", pointer + "/port")
        return None
    if isinstance(port, int) and not 1 <= port <= MAX_PORT:
        report(f"port {port} is out of range (1-{MAX_PORT})", pointer + "/port")
        return None
    if isinstance(port, str):
        problem = _named_port_problem(port)
        if problem:
            report(problem, pointer + "/port")
            return None
    if end is not None:
        if isinstance(end, bool) or not isinstance(end, int):
            report(f"endPort {end!r} must be a number", pointer + "/endPort")
            return None
        if not isinstance(port, int):
            report("endPort needs a numeric port", pointer + "/endPort")
            return None
        if not port <= end <= MAX_PORT:
            report(
                f"endPort {end} must be between port {port} and {MAX_PORT}", pointer + "/endPort"
            )
            return None
    return PortSpec(protocol, port, end)


def _named_port_problem(name: str) -> str | None:
    if (
        len(name) > 15
        or not _IANA_SVC_NAME.match(name)
        or "--" in name
        or not any(c.isalpha() for c in name)
    ):
        return (
            f"port {name!r} is neither a number nor a valid port name (15 characters at most: "
            "lower-case letters, digits and '-', with at least one letter)"
        )
    return None
