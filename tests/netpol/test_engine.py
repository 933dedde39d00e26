"""The class-based engine against the direct evaluator of explain, on random clusters, and
the semantics the issue names, one by one."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skanse.netpol.addresses import IpRange, block_ranges
from skanse.netpol.engine import analyse
from skanse.netpol.explain import side_verdict
from skanse.netpol.model import Direction
from skanse.netpol.ports import ALL, ConnSet, Protocol
from tests.netpol.helpers import deployment, model_from, namespace, pod, policy

NAMESPACES = ("a", "b", "c")
KEYS = ("app", "tier")
VALUES = ("x", "y")


def selector() -> st.SearchStrategy[dict[str, Any]]:
    labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)
    expression = st.one_of(
        st.builds(
            lambda k, op, vs: {"key": k, "operator": op, "values": vs},
            st.sampled_from(KEYS),
            st.sampled_from(["In", "NotIn"]),
            st.lists(st.sampled_from(VALUES), min_size=1, max_size=2),
        ),
        st.builds(
            lambda k, op: {"key": k, "operator": op},
            st.sampled_from(KEYS),
            st.sampled_from(["Exists", "DoesNotExist"]),
        ),
    )
    return st.builds(
        lambda m, e: {"matchLabels": m, "matchExpressions": e},
        labels,
        st.lists(expression, max_size=2),
    )


def ns_selector() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.just({}),
        st.builds(
            lambda n: {"matchLabels": {"kubernetes.io/metadata.name": n}},
            st.sampled_from(NAMESPACES),
        ),
        st.builds(lambda v: {"matchLabels": {"team": v}}, st.sampled_from(VALUES)),
    )


CIDRS = ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "0.0.0.0/0", "192.168.0.0/16", "fd00::/8")


def peer() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda s: {"podSelector": s}, selector()),
        st.builds(lambda s: {"namespaceSelector": s}, ns_selector()),
        st.builds(
            lambda p, n: {"podSelector": p, "namespaceSelector": n}, selector(), ns_selector()
        ),
        st.builds(
            lambda c, ex: {"ipBlock": {"cidr": c, **({"except": ex} if ex else {})}},
            st.sampled_from(CIDRS[:3]),
            st.sampled_from([[], ["10.1.2.0/24"]]),
        ).filter(lambda p: p["ipBlock"].get("except", [""])[0] != p["ipBlock"]["cidr"]),
        st.builds(lambda c: {"ipBlock": {"cidr": c}}, st.sampled_from(CIDRS)),
    )


def port() -> st.SearchStrategy[dict[str, Any]]:
    protocol = st.sampled_from(["TCP", "UDP", "SCTP"])
    return st.one_of(
        st.builds(
            lambda p, n: {"protocol": p, "port": n}, protocol, st.sampled_from([53, 80, 8080])
        ),
        st.builds(lambda p: {"protocol": p, "port": 8000, "endPort": 8100}, protocol),
        st.builds(
            lambda p, n: {"protocol": p, "port": n}, protocol, st.sampled_from(["http", "dns"])
        ),
        st.builds(lambda p: {"protocol": p}, protocol),
    )


def rule(peers_key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda peers, ports: {
            **({peers_key: peers} if peers is not None else {}),
            **({"ports": ports} if ports is not None else {}),
        },
        st.one_of(st.none(), st.lists(peer(), min_size=1, max_size=2)),
        st.one_of(st.none(), st.lists(port(), min_size=1, max_size=2)),
    )


def a_policy(i: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda ns, sel, ingress, egress, types: policy(
            ns,
            f"p{i}",
            {
                "podSelector": sel,
                **({"ingress": ingress} if ingress is not None else {}),
                **({"egress": egress} if egress is not None else {}),
                **({"policyTypes": types} if types else {}),
            },
        ),
        st.sampled_from(NAMESPACES),
        st.one_of(st.just({}), selector()),
        st.one_of(st.none(), st.lists(rule("from"), max_size=2)),
        st.one_of(st.none(), st.lists(rule("to"), max_size=2)),
        st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
    )


def a_pod(i: int) -> st.SearchStrategy[dict[str, Any]]:
    named = st.lists(
        st.sampled_from(
            [("http", 80, "TCP"), ("http", 8080, "TCP"), ("dns", 53, "UDP"), ("dns", 53, "TCP")]
        ),
        max_size=2,
        unique_by=lambda p: p[0],
    )
    return st.builds(
        lambda ns, labels, ports, ip: pod(ns, f"pod{i}", labels, ports, ip),
        st.sampled_from(NAMESPACES),
        st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2),
        named,
        st.sampled_from([None, f"10.1.2.{i + 1}", f"10.9.0.{i + 1}", f"192.168.1.{i + 1}"]),
    )


@st.composite
def clusters(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = [namespace(n, {"team": draw(st.sampled_from(VALUES))}) for n in NAMESPACES]
    docs += [draw(a_pod(i)) for i in range(draw(st.integers(1, 5)))]
    docs += [draw(a_policy(i)) for i in range(draw(st.integers(0, 4)))]
    return docs


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_engine_agrees_with_the_direct_evaluator(docs: list[dict[str, Any]]) -> None:
    model = model_from(docs)
    analysis = analyse(model)
    pods = [w.pods[0] for w in model.workloads]
    for i, src in enumerate(pods):
        for j, dst in enumerate(pods):
            egress = side_verdict(model, Direction.EGRESS, src, dst, dst).allowed
            ingress = side_verdict(model, Direction.INGRESS, dst, src, dst).allowed
            assert analysis.workload_pair(i, j) == egress & ingress, (src.name, dst.name)
    listed = {(c.src.label, c.dst.label): c.conns for c in analysis.connections()}
    for c in analysis.connections():
        # a listed range joins neighbouring ranges that ipBlocks treat alike: check each part
        addresses = c.src.addresses or c.dst.addresses
        if addresses is None:
            continue
        for atom in analysis.atoms:
            if not addresses.contains(atom):
                continue
            if c.src.addresses is not None:
                assert c.dst.workload is not None
                dst = c.dst.workload.pods[0]
                expected = side_verdict(model, Direction.INGRESS, dst, atom, dst).allowed
            else:
                assert c.src.workload is not None
                src = c.src.workload.pods[0]
                expected = side_verdict(model, Direction.EGRESS, src, atom, None).allowed
            assert c.conns == expected, (str(c), str(atom))
    for i, w in enumerate(model.workloads):
        for j, v in enumerate(model.workloads):
            if i != j:
                assert listed.get((w.ident, v.ident), ConnSet()) == analysis.workload_pair(i, j)


def _conns(docs: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {
        (c.src.label, c.dst.label): str(c.conns) for c in analyse(model_from(docs)).connections()
    }


WEB = deployment("shop", "web", {"app": "web"}, [8080])
DB = deployment("shop", "db", {"app": "db"}, [5432])
W, D = "shop/web[Deployment]", "shop/db[Deployment]"


def test_egress_rules_without_policy_types_also_isolate_ingress() -> None:
    only_egress = policy(
        "shop",
        "egress",
        {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]},
    )
    got = _conns([WEB, DB, only_egress])
    assert (W, D) not in got  # web's egress allows only UDP 53, db's ingress is isolated too
    assert not any(dst == D for _, dst in got)


def test_deny_egress_without_policy_types_is_an_ingress_deny() -> None:
    meant_egress = policy("shop", "deny", {"podSelector": {}, "egress": []})
    got = _conns([WEB, DB, meant_egress])
    assert got[(W, "0.0.0.0-255.255.255.255[External]")] == "All Connections"
    assert (W, D) not in got


def test_selectors_in_one_peer_are_anded_in_two_peers_ored() -> None:
    other = deployment("ops", "tool", {"app": "web"})
    ops = namespace("ops", {"team": "ops"})
    anded = {
        "namespaceSelector": {"matchLabels": {"team": "ops"}},
        "podSelector": {"matchLabels": {"app": "db"}},
    }
    ored = [
        {"namespaceSelector": {"matchLabels": {"team": "ops"}}},
        {"podSelector": {"matchLabels": {"app": "web"}}},
    ]
    one = policy(
        "shop",
        "one",
        {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [anded]}]},
    )
    got = _conns([WEB, DB, other, ops, one])
    assert ("ops/tool[Deployment]", D) not in got and (W, D) not in got
    two = policy(
        "shop", "one", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": ored}]}
    )
    got = _conns([WEB, DB, other, ops, two])
    assert (
        got[("ops/tool[Deployment]", D)] == "All Connections" and got[(W, D)] == "All Connections"
    )


def test_ipblock_except_and_ports_with_end_port() -> None:
    rule = {
        "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        "ports": [{"port": 8000, "endPort": 8100, "protocol": "TCP"}],
    }
    egress = policy(
        "shop",
        "out",
        {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [rule],
        },
    )
    got = _conns([WEB, egress])
    assert got == {
        (W, "10.0.0.0-10.0.255.255[External]"): "TCP 8000-8100",
        (W, "10.2.0.0-10.255.255.255[External]"): "TCP 8000-8100",
        # ingress is not isolated: the cut ranges carry the same value and are joined again
        ("0.0.0.0-255.255.255.255[External]", W): "All Connections",
        ("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff[External]", W): "All Connections",
    }


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(24, 32)), max_size=8))
def test_ipblock_ranges_are_exactly_the_cidr_minus_its_excepts(
    cuts: list[tuple[int, int]],
) -> None:
    cidr = ipaddress.ip_network("10.0.0.0/24")
    excepts = [ipaddress.ip_network(f"10.0.0.{a}/{p}", strict=False) for a, p in cuts]
    excepts.append(ipaddress.ip_network("::/0"))  # another family: ignored
    got = block_ranges(cidr, excepts)
    kept = {int(a) for a in cidr} - {int(a) for ex in excepts[:-1] for a in ex}
    assert sorted(v for r in got for v in range(r.lo, r.hi + 1)) == sorted(kept)
    assert all(a.hi + 1 < b.lo for a, b in itertools.pairwise(got))  # disjoint, apart


def test_many_excepts_are_subtracted_in_one_pass() -> None:
    # Splitting every remaining range per except took minutes for these 50,000 excepts.
    n = 50_000
    excepts = [ipaddress.IPv4Network((i << 9, 24)) for i in range(n)]
    got = block_ranges(ipaddress.ip_network("0.0.0.0/0"), excepts)
    assert len(got) == n
    assert got[0] == IpRange(4, 256, 511) and got[-1].hi == (1 << 32) - 1


def test_named_ports_resolve_on_the_destination_pod_with_their_protocol() -> None:
    a = pod("x", "a", {"app": "a"}, [("http", 80, "TCP")])
    b = pod("x", "b", {"app": "b"}, [("http", 8080, "TCP")])
    c = pod("x", "c", {"app": "c"}, [("http", 9090, "UDP")])
    ingress = policy("x", "named", {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]})
    got = _conns([a, b, c, ingress])
    assert got[("x/b[Pod]", "x/a[Pod]")] == "TCP 80"
    assert got[("x/a[Pod]", "x/b[Pod]")] == "TCP 8080"
    assert ("x/a[Pod]", "x/c[Pod]") not in got  # its "http" is UDP; the rule asks for TCP


def test_a_kubevirt_vm_is_a_workload_whose_interface_ports_are_named_ports() -> None:
    vm = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "legacy", "namespace": "x"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "vm"}},
                "spec": {
                    "domain": {
                        "devices": {
                            "interfaces": [
                                {
                                    "name": "default",
                                    "ports": [
                                        {"name": "http", "port": 8080},
                                        {"name": "http", "port": 9090},  # both are "http"
                                        {"name": "dns", "port": 53, "protocol": "udp"},
                                        {"port": 8080},  # declared twice: listed once
                                        {"port": 22, "protocol": "ICMP"},  # unknown: left out
                                    ],
                                }
                            ]
                        }
                    }
                },
            }
        },
    }
    client = pod("x", "client", {"app": "client"})
    named = policy(
        "x",
        "named",
        {
            "podSelector": {"matchLabels": {"app": "vm"}},
            "ingress": [{"ports": [{"port": "http"}, {"port": "dns", "protocol": "UDP"}]}],
        },
    )
    model = model_from([vm, client, named])
    (workload,) = [w for w in model.workloads if w.kind == "VirtualMachine"]
    (launcher,) = workload.pods
    assert launcher.labels == {"app": "vm"}
    assert launcher.named_ports == {
        "http": ((Protocol.TCP, 8080), (Protocol.TCP, 9090)),
        "dns": ((Protocol.UDP, 53),),
    }
    assert launcher.container_ports == (
        (Protocol.TCP, 8080),
        (Protocol.TCP, 9090),
        (Protocol.UDP, 53),
    )
    got = _conns([vm, client, named])
    assert got[("x/client[Pod]", "x/legacy[VirtualMachine]")] == "TCP 8080,9090,UDP 53"


def test_allow_all_rule_admits_external_addresses_and_cannot_be_narrowed() -> None:
    deny = policy("shop", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    allow = policy("shop", "all", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{}]})
    got = _conns([WEB, DB, deny, allow])
    assert got[("0.0.0.0-255.255.255.255[External]", D)] == "All Connections"
    assert got[(W, D)] == "All Connections"
    assert (D, W) not in got


def test_pods_of_one_owner_are_one_workload_and_self_pairs_are_omitted() -> None:
    pods = []
    for i in range(3):
        p = pod("x", f"api-{i}", {"app": "api"})
        p["metadata"]["ownerReferences"] = [
            {"kind": "ReplicaSet", "name": "api-5d8", "controller": True}
        ]
        pods.append(p)
    model = model_from(pods)
    assert [w.ident for w in model.workloads] == ["x/api-5d8[ReplicaSet]"]
    labels = {(c.src.label, c.dst.label) for c in analyse(model).connections()}
    assert ("x/api-5d8[ReplicaSet]", "x/api-5d8[ReplicaSet]") not in labels


def test_a_deployment_is_represented_by_its_live_pods_when_both_are_given() -> None:
    live = pod("shop", "web-7c9-abc", {"app": "web"})
    live["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "web-7c9", "controller": True}
    ]
    rs = deployment("shop", "web-7c9", {"app": "web"})
    rs["kind"] = "ReplicaSet"
    rs["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "web", "controller": True}]
    model = model_from([WEB, rs, live])
    assert [w.ident for w in model.workloads] == ["shop/web-7c9[ReplicaSet]"]


def test_external_peer_cuts_are_merged_per_pair() -> None:
    model = model_from([WEB])
    text = {str(c) for c in analyse(model).connections()}
    v4, v6 = (
        "0.0.0.0-255.255.255.255[External]",
        "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff[External]",
    )
    assert text == {
        f"{v4} => shop/web[Deployment] : All Connections",
        f"{v6} => shop/web[Deployment] : All Connections",
        f"shop/web[Deployment] => {v4} : All Connections",
        f"shop/web[Deployment] => {v6} : All Connections",
    }


def test_many_classes_are_combined_in_blocks(monkeypatch: Any) -> None:
    import skanse.netpol.engine as engine

    monkeypatch.setattr(engine, "_BLOCK_CELLS", 3)  # force one destination per block
    docs = [deployment("x", f"w{i}", {"app": f"w{i}"}) for i in range(5)]
    docs.append(
        policy(
            "x",
            "p",
            {
                "podSelector": {"matchLabels": {"app": "w0"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "w1"}}}]}],
            },
        )
    )
    got = _conns(docs)
    assert got[("x/w1[Deployment]", "x/w0[Deployment]")] == "All Connections"
    assert ("x/w2[Deployment]", "x/w0[Deployment]") not in got
    assert got[("x/w0[Deployment]", "x/w4[Deployment]")] == "All Connections"


def test_all_constant_is_everything() -> None:
    assert ALL.is_all and str(ALL) == "All Connections"
    assert (
        str(ConnSet.ports(Protocol.TCP, 80) | ConnSet.ports(Protocol.UDP, 53, 53))
        == "TCP 80-65535,UDP 53"
    )
    assert IpRange(4, 0, 255).cidrs()[0].prefixlen == 24
