"""A finding about a namespace as a whole (SKN-K8S-030) is reported once, on one workload:
a suppression of one workload (annotation, inline or .skanse.yaml) must not hide it for the
others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def _deployment(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations or {}},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": "x"}]},
            },
        },
    }


def _default_deny_findings(cli: Any, tmp_path: Path, docs: list[dict[str, Any]]) -> list[Any]:
    path = tmp_path / "apps.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    result = json.loads(cli("scan", str(path), "-f", "json", "--no-config").stdout)
    return [f for f in result["findings"] if f["check_id"] == "SKN-K8S-030"]


@pytest.mark.parametrize("name", ["SKN-K8S-030", "ckv2_k8s_6"])
def test_one_workloads_annotation_does_not_hide_the_namespace_finding(
    cli: Any, tmp_path: Path, name: str
) -> None:
    waived = _deployment("app0", {f"ignore.skanse.io/{name}": "this one is fine"})
    found = _default_deny_findings(
        cli, tmp_path, [waived, _deployment("app1"), _deployment("app2")]
    )
    open_ = [f for f in found if not f["suppressed"]]
    assert [f["resource"]["name"] for f in open_] == ["app1"]
    assert "3 workloads" in open_[0]["message"]


def test_the_annotation_on_every_workload_suppresses_it(cli: Any, tmp_path: Path) -> None:
    note = {"ignore.skanse.io/SKN-K8S-030": "the mesh isolates shop"}
    found = _default_deny_findings(cli, tmp_path, [_deployment(f"app{i}", note) for i in range(3)])
    assert [(f["resource"]["name"], f["suppressed"]) for f in found] == [("app0", True)]


def test_a_config_suppression_for_one_workload_does_not_hide_it_for_the_others(
    cli: Any, tmp_path: Path
) -> None:
    path = tmp_path / "apps.yaml"
    docs = [_deployment(f"app{i}") for i in range(3)]
    path.write_text("\n---\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    config = tmp_path / "skanse.yaml"
    config.write_text(
        "suppressions:\n"
        "  - id: SKN-K8S-030\n"
        "    resource: {kind: Deployment, namespace: shop, name: app0}\n"
        "    reason: app0 is fine\n",
        encoding="utf-8",
    )
    result = json.loads(cli("scan", str(path), "-f", "json", "--config", str(config)).stdout)
    found = [f for f in result["findings"] if f["check_id"] == "SKN-K8S-030"]
    assert [(f["resource"]["name"], f["suppressed"]) for f in found] == [("app1", False)]


def test_an_inline_ignore_on_one_workload_does_not_hide_it_for_the_others(
    cli: Any, tmp_path: Path
) -> None:
    def deployment(name: str, ignore: bool) -> str:
        comment = '    # skanse:ignore=SKN-K8S-030 reason="app0 is fine"\n' if ignore else ""
        return (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
            f"  name: {name}\n{comment}  namespace: shop\nspec:\n"
            f"  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec: {{containers: [{{name: c, image: x}}]}}\n"
        )

    path = tmp_path / "apps.yaml"
    path.write_text("---\n".join(deployment(f"app{i}", i == 0) for i in range(3)), encoding="utf-8")
    result = json.loads(cli("scan", str(path), "-f", "json", "--no-config").stdout)
    found = [f for f in result["findings"] if f["check_id"] == "SKN-K8S-030"]
    assert [(f["resource"]["name"], f["suppressed"]) for f in found] == [("app1", False)]
