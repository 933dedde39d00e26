"""hostNetwork pods are outside NetworkPolicy: Kubernetes leaves their behaviour undefined and
most CNIs neither isolate them nor tell their traffic from their node's. `netpol` treated
them like any pod, so `explain --expect deny` passed for a host-network destination in a
default-deny namespace: a gate that passed for a connection nothing blocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skanse.netpol.engine import analyse
from skanse.netpol.explain import explain, parse_target
from tests.netpol.helpers import model_from, pod, policy, write_manifests

DENY_ALL = policy("mon", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


def _exporter() -> dict[str, Any]:
    """A node-exporter DaemonSet on the host network, in a namespace that denies everything."""
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-exporter", "namespace": "mon"},
        "spec": {
            "selector": {"matchLabels": {"app": "node-exporter"}},
            "template": {
                "metadata": {"labels": {"app": "node-exporter"}},
                "spec": {
                    "hostNetwork": True,
                    "containers": [
                        {"name": "ne", "image": "x", "ports": [{"containerPort": 9100}]}
                    ],
                },
            },
        },
    }


CLIENT = pod("shop", "client", {"app": "client"})
# the client's egress is isolated too, and allows nothing either
SHOP_DENY = policy("shop", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
# an ordinary pod next to the exporter, which the same policy does isolate
GRAFANA = pod("mon", "grafana", {"app": "grafana"})
CLUSTER = [DENY_ALL, _exporter(), CLIENT, SHOP_DENY, GRAFANA]
EXPORTER = "mon/node-exporter[DaemonSet]"


def test_expect_deny_fails_for_a_host_network_destination_and_says_why(
    cli: Any, tmp_path: Path
) -> None:
    path = write_manifests(tmp_path, CLUSTER)
    result = cli(
        "netpol", "explain", path, "shop/client", "mon/node-exporter:9100", "--expect", "deny"
    )
    assert result.code == 1, result.stdout
    assert "cannot be guaranteed" in result.stderr and "hostNetwork: true" in result.stderr
    assert "Ingress of mon/node-exporter[DaemonSet]: not decided by NetworkPolicy" in result.stdout
    assert "mon/deny-all" in result.stdout and "to no effect" in result.stdout
    # the same pair with an ordinary destination is still denied, and the gate passes
    ordinary = cli("netpol", "explain", path, "shop/client", "mon/grafana:3000", "--expect", "deny")
    assert ordinary.code == 0, ordinary.stderr


def test_expect_deny_fails_for_a_host_network_source(cli: Any, tmp_path: Path) -> None:
    path = write_manifests(tmp_path, CLUSTER)
    result = cli(
        "netpol", "explain", path, "mon/node-exporter", "mon/grafana:3000", "--expect", "deny"
    )
    assert result.code == 1, result.stdout
    assert "hostNetwork: true" in result.stderr


def test_a_host_network_pod_is_never_reported_as_isolated() -> None:
    model = model_from(CLUSTER)
    src, _ = parse_target(model, "shop/client")
    dst, query = parse_target(model, "mon/node-exporter:9100", allow_port=True)
    (found,) = explain(model, src, dst, query)
    assert found.ingress is not None and not found.ingress.isolated
    assert found.allows and found.unpoliced


def test_list_counts_every_connection_with_a_host_network_pod_as_allowed(
    cli: Any, tmp_path: Path
) -> None:
    model = model_from(CLUSTER)
    pairs = {(c.src.label, c.dst.label): str(c.conns) for c in analyse(model).connections()}
    for other in ("shop/client[Pod]", "mon/grafana[Pod]"):
        assert pairs[(other, EXPORTER)] == "All Connections"
        assert pairs[(EXPORTER, other)] == "All Connections"
    assert ("shop/client[Pod]", "mon/grafana[Pod]") not in pairs  # policies still decide these
    ext = [c for c in analyse(model).connections() if EXPORTER in (c.src.label, c.dst.label)]
    assert sum(c.src.is_external or c.dst.is_external for c in ext) == 4  # v4 and v6, both ways

    path = write_manifests(tmp_path, CLUSTER)
    listed = cli("netpol", "list", path, "-f", "json")
    assert "mon/node-exporter[DaemonSet] runs on the host network" in listed.stderr
    ends = {
        e["name"]: e["host_network"]
        for c in json.loads(listed.stdout)["connections"]
        for e in (c["source"], c["destination"])
        if "workload" in e
    }
    assert ends == {EXPORTER: True, "shop/client[Pod]": False, "mon/grafana[Pod]": False}
    assert (
        "node-exporter[DaemonSet] (hostNetwork)" in cli("netpol", "list", path, "-f", "dot").stdout
    )


def test_a_live_workload_with_some_pods_on_the_host_network_is_explained_per_kind() -> None:
    pods = []
    for name, host in (("web-a", False), ("web-b", True)):
        doc = pod("shop", name, {"app": "web"})
        doc["spec"]["hostNetwork"] = host
        doc["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "controller": True}
        ]
        pods.append(doc)
    model = model_from([*pods, pod("ops", "probe", {"app": "probe"}), SHOP_DENY])
    src, _ = parse_target(model, "ops/probe")
    dst, query = parse_target(model, "shop/web-rs:80", allow_port=True)
    assert [e.may_allow for e in explain(model, src, dst, query)] == [False, True]


def test_network_checks_do_not_count_a_host_network_pod_as_isolated(tmp_path: Path) -> None:
    from skanse.scan import scan_manifests

    db = _exporter()
    db["metadata"]["name"] = "db"
    db["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 5432}]
    path = Path(write_manifests(tmp_path, [DENY_ALL, _exporter(), db]))
    found = {
        (str(f.check_id), f.resource.name): f.message for f in scan_manifests([str(path)]).findings
    }
    assert "hostNetwork: true" in found[("SKN-NET-001", "node-exporter")]
    assert "5432 (PostgreSQL)" in found[("SKN-NET-002", "db")]
    assert "hostNetwork: true" in found[("SKN-NET-002", "db")]
    assert ("SKN-NET-005", "node-exporter") not in found  # the deny-all does not reach it
