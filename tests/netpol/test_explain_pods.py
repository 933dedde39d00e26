"""`netpol explain` decides every kind of pod of a workload, not only the first one read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skanse.netpol.explain import explain, parse_target
from tests.netpol.helpers import model_from, pod, policy, write_manifests


def _owned(ns: str, name: str, labels: dict[str, str], owner: str) -> dict[str, Any]:
    doc = pod(ns, name, labels)
    doc["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "controller": True}
    ]
    return doc


def _cluster() -> list[dict[str, Any]]:
    """Two replicas of shop/web-rs; the second carries a label a policy opens up."""
    return [
        _owned("shop", "web-aaa", {"app": "web"}, "web-rs"),
        _owned("shop", "web-bbb", {"app": "web", "debug": "on"}, "web-rs"),
        pod("shop", "client", {"app": "client"}),
        pod("ops", "probe", {"app": "probe"}),
        policy("shop", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy(
            "shop",
            "debug",
            {"podSelector": {"matchLabels": {"debug": "on"}}, "ingress": [{}], "egress": [{}]},
        ),
    ]


def test_expect_deny_fails_when_a_later_replica_accepts_the_connection(
    cli: Any, tmp_path: Path
) -> None:
    path = write_manifests(tmp_path, _cluster())
    # `list` shows the connection (web-bbb accepts everything); explain must not deny it.
    listed = cli("netpol", "list", path, "-f", "txt").stdout
    assert "ops/probe[Pod] => shop/web-rs[ReplicaSet] : All Connections" in listed
    result = cli("netpol", "explain", path, "ops/probe", "shop/web-rs:80", "--expect", "deny")
    assert result.code == 1, result.stdout
    assert "allowed for some of the pods" in result.stderr
    assert "explained for pod web-bbb (2 of 2 kinds)" in result.stdout


def test_each_kind_of_source_and_destination_pod_is_explained() -> None:
    model = model_from(_cluster())
    src, _ = parse_target(model, "shop/web-rs")
    dst, query = parse_target(model, "shop/client:80", allow_port=True)
    # web-bbb may open anything (its egress is open), the client accepts nothing: denied for
    # both kinds; towards web-rs itself, only the pair of debug pods is open.
    assert [e.allows for e in explain(model, src, dst, query)] == [False, False]
    dst, query = parse_target(model, "shop/web-rs:80", allow_port=True)
    verdicts = [e.allows for e in explain(model, src, dst, query)]
    assert verdicts == [False, False, False, True]


def test_labels_no_policy_mentions_do_not_split_a_workload() -> None:
    docs = _cluster()
    for i in range(3):  # StatefulSet-like replicas: each has its own pod-name label
        docs.append(_owned("shop", f"db-{i}", {"app": "db", "pod-name": f"db-{i}"}, "db-set"))
    model = model_from(docs)
    src, _ = parse_target(model, "shop/client")
    dst, query = parse_target(model, "shop/db-set:5432", allow_port=True)
    found = explain(model, src, dst, query)
    assert len(found) == 1
    assert not any("differ" in note for note in found[0].notes)
