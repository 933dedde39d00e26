"""SKN-NET-* checks in the catalogue, and `skanse scan` running them (their good and bad
examples run with every other check's in tests/checks/test_catalogue.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skanse.checks._all import REGISTRY
from skanse.model import Layer

NETWORK = [c for c in REGISTRY.all() if c.meta.layer is Layer.NETWORK]


def test_there_are_network_checks_and_they_are_numbered() -> None:
    assert [c.id for c in NETWORK] == [f"SKN-NET-00{i}" for i in range(1, 8)]
    assert "SKN-K8S-030" in REGISTRY  # the default-deny item is the zero-trust check


SHOP = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - ipBlock: {cidr: 0.0.0.0/0}
    ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: shop}
spec:
  podSelector: {}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/33}}]
"""


def test_scan_reports_network_findings_with_file_and_line(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP)
    result = cli("scan", str(path), "--format", "json", "--no-config")
    assert result.code == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    net = {
        (f["check_id"], f["location"]["line"])
        for f in findings
        if f["check_id"].startswith("SKN-NET")
    }
    assert ("SKN-NET-002", 14) in net  # the rule admitting 0.0.0.0/0 to 5432
    assert ("SKN-NET-003", 15) in net  # the ipBlock itself
    assert ("SKN-NET-004", 24) in net  # db is ingress-isolated only (template labels line)
    assert ("SKN-NET-006", 34) in net  # the invalid CIDR (flow style: same line as `to`)
    assert any(f["check_id"] == "SKN-K8S-030" for f in findings)


def test_network_model_is_built_once_per_scan(monkeypatch: Any, tmp_path: Path) -> None:
    import skanse.netpol.load as load
    from skanse.scan import scan_manifests

    calls = []
    original = load.build_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(load, "build_model", counting)
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP)
    result = scan_manifests([str(path)])
    assert any(f.check_id.startswith("SKN-NET") for f in result.findings)
    assert len(calls) == 1


def test_a_namespace_without_default_deny_is_reported_once_not_per_workload(
    cli: Any, tmp_path: Path
) -> None:
    from tests.netpol.helpers import deployment

    docs = [deployment("shop", f"app{i}", {"app": f"app{i}"}) for i in range(5)]
    docs.append(deployment("data", "db", {"app": "db"}))
    path = tmp_path / "apps.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    result = json.loads(cli("scan", str(path), "-f", "json", "--no-config").stdout)
    found = [f for f in result["findings"] if f["check_id"] == "SKN-K8S-030"]
    assert sorted((f["resource"]["namespace"], f["resource"]["name"]) for f in found) == [
        ("data", "db"),
        ("shop", "app0"),
    ]
    shop = next(f for f in found if f["resource"]["namespace"] == "shop")
    assert "5 workloads" in shop["message"]


def test_policy_types_lint_says_what_the_default_isolates(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: egress-only, namespace: shop}\n"
        "spec:\n  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 192.0.2.0/24}}]\n",
        encoding="utf-8",
    )
    result = json.loads(cli("scan", str(path), "-f", "json", "--no-config").stdout)
    (found,) = [f for f in result["findings"] if f["check_id"] == "SKN-NET-007"]
    assert "[Egress, Ingress]" in found["message"]
    assert "also denies all ingress" in found["message"]
    assert found["location"]["line"] == 4


def test_network_checks_look_policies_up_by_label_not_one_by_one(
    monkeypatch: Any, tmp_path: Path
) -> None:
    # 4,000 workloads with one policy each took minutes when every check tried every policy
    # of the namespace on every pod: count the selector matches instead of timing them.
    from skanse.netpol.selectors import LabelSelector
    from skanse.scan import scan_manifests
    from tests.netpol.helpers import deployment, policy

    n = 200
    docs: list[dict[str, Any]] = []
    for i in range(n):
        docs.append(deployment("shop", f"app{i}", {"app": f"app{i}"}, ports=[5432]))
        rule = {"from": [{"podSelector": {"matchLabels": {"app": f"app{(i + 1) % n}"}}}]}
        spec = {
            "podSelector": {"matchLabels": {"app": f"app{i}"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{**rule, "ports": [{"port": 5432}]}],
            "egress": [{"to": rule["from"]}],
        }
        docs.append(policy("shop", f"p{i}", spec))
    path = tmp_path / "apps.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    calls = []
    original = LabelSelector.matches

    def counting(self: LabelSelector, labels: Any) -> bool:
        calls.append(1)
        return original(self, labels)

    monkeypatch.setattr(LabelSelector, "matches", counting)
    result = scan_manifests([str(path)])
    found = {f.check_id for f in result.findings}
    assert "SKN-NET-005" in found and "SKN-NET-001" not in found  # DNS is blocked, all selected
    assert len(calls) < 20 * n  # n * n before: each of n pods against each of n policies


def _replica(name: str, labels: dict[str, str]) -> dict[str, Any]:
    from tests.netpol.helpers import pod

    doc = pod("shop", name, labels)
    doc["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "controller": True}
    ]
    return doc


def test_dns_check_judges_every_pod_of_a_workload_not_the_first_one_read(
    tmp_path: Path,
) -> None:
    # A live ReplicaSet whose second replica is a canary: a policy isolates the canary's
    # egress and allows no DNS. The first pod read is not selected; only pods[0] was judged.
    from skanse.scan import scan_manifests
    from tests.netpol.helpers import policy, write_manifests

    docs = [
        policy(
            "shop",
            "lock-egress",
            {"podSelector": {"matchLabels": {"canary": "true"}}, "policyTypes": ["Egress"]},
        ),
        *(_replica(f"web-{i}", {"app": "web"}) for i in range(3)),
        _replica("web-canary", {"app": "web", "canary": "true"}),
    ]
    path = write_manifests(tmp_path, docs)
    found = [f for f in scan_manifests([path]).findings if f.check_id == "SKN-NET-005"]
    assert len(found) == 1
    assert "web-canary" in found[0].message and "UDP 53 to kube-dns" in found[0].message
    assert "web-0" not in found[0].message  # the replicas that resolve are not blamed
