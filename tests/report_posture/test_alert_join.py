"""Runtime alerts, as Falco's JSON output prints them with `append_output` fields, join the
workloads they came from, and their term reaches the top-risk score."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skanse.config import LoadedConfig
from skanse.report.posture.build import build_posture
from skanse.report.posture.collect import run_scan
from skanse.report.posture.documents import alerts_document

MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: payments}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "reg.example/payments/api:1.4"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-gateway, namespace: payments}
spec:
  selector: {matchLabels: {app: gw}}
  template:
    metadata: {labels: {app: gw}}
    spec:
      containers: [{name: gw, image: "reg.example/payments/gateway:2"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ledger, namespace: payments}
spec:
  selector: {matchLabels: {app: ledger}}
  serviceName: ledger
  template:
    metadata: {labels: {app: ledger}}
    spec:
      containers: [{name: ledger, image: "reg.example/payments/ledger@sha256:%s"}]
""" % ("b" * 64)

# A live Pod as `kubectl get pod -o json` prints it: its container id is what Falco shows.
LIVE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "batch-7f9c", "namespace": "jobs"},
    "spec": {"containers": [{"name": "run", "image": "reg.example/jobs/batch:3"}]},
    "status": {
        "containerStatuses": [
            {
                "name": "run",
                "containerID": "containerd://" + "c0ffee12345678" + "9" * 50,
                "image": "reg.example/jobs/batch:3",
            }
        ]
    },
}


def falco_alert(rule: str, priority: str, fields: dict[str, Any]) -> str:
    """One line of Falco's JSON output: the rule's own fields, then the appended ones."""
    appended = {
        "container.id": None,
        "container.name": None,
        "container.image.repository": None,
        "container.image.tag": None,
        "container.image.digest": None,
        "k8s.ns.name": None,
        "k8s.pod.name": None,
    }
    appended.update(fields)
    return json.dumps(
        {
            "hostname": "node-1",
            "output": f"12:00:00.000000000: {priority} {rule} (user=root)",
            "output_fields": {
                "evt.time": 1_764_300_000_123_456_789,
                "user.name": "root",
                **appended,
            },
            "priority": priority,
            "rule": rule,
            "source": "syscall",
            "tags": ["container"],
            "time": "2025-11-28T03:20:00.123456789Z",
        }
    )


def _posture(tmp_path: Path, lines: list[str]) -> dict[str, Any]:
    (tmp_path / "estate.yaml").write_text(MANIFESTS)
    (tmp_path / "pod.json").write_text(json.dumps(LIVE_POD))
    docs = [
        run_scan([str(tmp_path)], LoadedConfig.empty()),
        alerts_document(lines, "alerts.jsonl"),
    ]
    return build_posture(docs, tool_version="test")


def _rule(posture: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in posture["runtime"]["rules"] if r["rule"] == name)


def test_alerts_join_by_pod_name_by_container_id_and_by_image(tmp_path: Path) -> None:
    lines = [
        falco_alert(
            "Terminal shell in container",
            "Notice",
            {
                "container.id": "0123456789ab",
                "k8s.ns.name": "payments",
                "k8s.pod.name": "api-gateway-6b7d9c-x2x4z",  # not `api`: the longest owner
                "container.image.repository": "reg.example/payments/gateway",
            },
        ),
        falco_alert(
            "Read sensitive file untrusted",
            "Warning",
            {"container.id": "c0ffee123456", "container.image.repository": "reg.example/x"},
        ),
        falco_alert(
            "Drop and execute new binary in container",
            "Critical",
            {
                "container.id": "feedfacecafe",
                "container.image.repository": "reg.example/payments/ledger",
                "container.image.digest": "sha256:" + "b" * 64,
            },
        ),
        falco_alert("Clear log activities", "Warning", {"container.id": "host"}),
    ]
    posture = _posture(tmp_path, lines)
    shell = _rule(posture, "Terminal shell in container")
    assert shell["workloads"] == ["payments/api-gateway[Deployment]"]
    assert _rule(posture, "Read sensitive file untrusted")["workloads"] == ["jobs/batch-7f9c[Pod]"]
    dropped = _rule(posture, "Drop and execute new binary in container")
    assert dropped["workloads"] == ["payments/ledger[StatefulSet]"]
    assert _rule(posture, "Clear log activities")["workloads"] == []
    assert posture["runtime"]["joined_by"] == {
        "pod name": 1,
        "container id": 1,
        "image": 1,
        "host": 1,
    }
    assert shell["first"] == "2025-11-28T03:20:00.123456789Z"
    # the runtime term is in the score of the workload the alert joined
    risks = {r["subject"]["name"]: r for r in posture["top_risks"]}
    kinds = {c["kind"]: c["points"] for c in risks["ledger"]["contributions"]}
    assert kinds["runtime"] == 40
    assert "runtime" not in {c["kind"] for c in risks["api"]["contributions"]}


def test_an_image_run_by_several_workloads_joins_none_of_them(tmp_path: Path) -> None:
    shared = MANIFESTS.replace("reg.example/payments/gateway:2", "reg.example/payments/api:1.4")
    (tmp_path / "estate.yaml").write_text(shared)
    docs = [
        run_scan([str(tmp_path)], LoadedConfig.empty()),
        alerts_document(
            [
                falco_alert(
                    "Terminal shell in container",
                    "Notice",
                    {
                        "container.image.repository": "reg.example/payments/api",
                        "container.image.tag": "1.4",
                    },
                )
            ],
            "alerts.jsonl",
        ),
    ]
    posture = build_posture(docs, tool_version="test")
    assert _rule(posture, "Terminal shell in container")["workloads"] == []
    assert posture["runtime"]["joined_by"] == {"image run by several workloads": 1}


def test_alerts_without_a_time_string_take_evt_time(tmp_path: Path) -> None:
    line = json.loads(falco_alert("Terminal shell in container", "Notice", {}))
    del line["time"]
    posture = _posture(tmp_path, [json.dumps(line)])
    assert _rule(posture, "Terminal shell in container")["first"].startswith("2025-11-28T03:20:00")
