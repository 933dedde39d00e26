"""The joined ranking differs from ranking by severity alone."""

from __future__ import annotations

import json
from pathlib import Path

from skanse.config import LoadedConfig
from skanse.model import Severity
from skanse.report.posture.build import build_posture
from skanse.report.posture.collect import run_netpol, run_scan
from skanse.report.posture.documents import ResultDocument

# `admin` is privileged (CRITICAL) but isolated by a default-deny policy and runs an image
# nobody scanned. `shop` only misses runAsNonRoot and friends (HIGH at worst), but runs an
# image with a fixable HIGH vulnerability and can reach the PostgreSQL pod of its namespace.
MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: admin, namespace: ops}
spec:
  selector: {matchLabels: {app: admin}}
  template:
    metadata: {labels: {app: admin}}
    spec:
      containers: [{name: a, image: "reg.example/ops/admin:1", securityContext: {privileged: true}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ops}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: web}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: s, image: "reg.example/web/shop:2"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: web}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: "postgres:16", ports: [{containerPort: 5432}]}]
"""

VULN = {
    "schema_version": 1,
    "kind": "skanse.vuln",
    "tool": {"name": "skanse", "version": "test"},
    "target": "reg.example/web/shop:2",
    "subject": {"manifest_digest": None},
    "summary": {"packages": 1, "checked": 1, "by_severity": {"HIGH": 1}, "suppressed": 0},
    "matches": [
        {
            "id": "GHSA-test-0001",
            "aliases": [],
            "related": [],
            "severity": "HIGH",
            "fixed_version": "1.2.4",
            "package": {"name": "lib", "version": "1.2.3"},
            "suppressed": False,
        }
    ],
}


def test_joined_ranking_puts_the_reachable_vulnerable_workload_first(tmp_path: Path) -> None:
    (tmp_path / "estate.yaml").write_text(MANIFESTS)
    docs = [
        run_scan([str(tmp_path)], LoadedConfig.empty()),
        run_netpol([str(tmp_path)]),
        ResultDocument("skanse.vuln", "vuln.json", json.loads(json.dumps(VULN))),
    ]
    posture = build_posture(docs, tool_version="test")
    risks = {r["subject"]["name"]: r for r in posture["top_risks"]}
    admin, shop = risks["admin"], risks["shop"]

    # by severity alone, admin (CRITICAL) comes first
    assert Severity(admin["worst"]) > Severity(shop["worst"]) == Severity.HIGH
    # joined: shop's HIGH finding + HIGH fixable vulnerability, times 1.5 for the database
    # and 1.5 for the internet, outranks admin's isolated CRITICAL
    assert admin["score"] == 40 and admin["reach"] == []
    assert {c["kind"]: c["points"] for c in shop["contributions"]} == {
        "config": 25,
        "vulnerability": 25,
    }
    assert shop["reach"] == [
        "can reach a database port (x1.5)",
        "accepts connections from outside the cluster (x1.5)",
    ]
    assert shop["score"] == (25 + 25) * 1.5 * 1.5
    assert shop["rank"] < admin["rank"]


def test_without_a_network_result_reach_is_not_assessed_and_not_multiplied(tmp_path) -> None:
    (tmp_path / "estate.yaml").write_text(MANIFESTS)
    docs = [
        run_scan([str(tmp_path)], LoadedConfig.empty()),
        ResultDocument("skanse.vuln", "vuln.json", VULN),
    ]
    posture = build_posture(docs, tool_version="test")
    shop = next(r for r in posture["top_risks"] if r["subject"]["name"] == "shop")
    assert shop["score"] == 50 and shop["reach"] == ["network reach not assessed"]
    assert posture["layers"]["network"]["status"] == "assessed"  # SKN-NET checks still ran
    assert posture["network"]["status"] == "not-assessed"


def test_the_document_follows_its_published_schema(tmp_path: Path) -> None:
    import jsonschema

    from tests.conftest import ROOT

    (tmp_path / "estate.yaml").write_text(MANIFESTS)
    docs = [
        run_scan([str(tmp_path)], LoadedConfig.empty()),
        run_netpol([str(tmp_path)]),
        ResultDocument("skanse.vuln", "vuln.json", VULN),
    ]
    posture = build_posture(docs, tool_version="test")
    schema = json.loads((ROOT / "docs/schemas/posture-report-v1.schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(posture)), schema)
