"""One policy, one object: `skanse scan`, the admission webhook and `skanse report` agree.

The policy is the registry allow-list of the ready library; the objects are a Pod that
passes every built-in check the webhook runs, once with an image from the allowed registry
and once from Docker Hub, so the policy's verdict is the only thing that differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.admission.handler import Webhook
from skanse.admission.vap import PolicyEnforcer
from skanse.policy.load import load_policies
from tests.admission.conftest import answer, hardened_pod, policy, review
from tests.conftest import ROOT

REGISTRY_POLICY = ROOT / "policies" / "registry-allow-list"
CHECK = "VAP:registry-allow-list/0"
ALLOWED = "registry.example.com/shop/web:1.4.2@sha256:" + "a" * 64
FOREIGN = "docker.io/library/nginx:1.27@sha256:" + "b" * 64


def _pod(image: str) -> dict[str, Any]:
    pod = hardened_pod()
    pod["spec"]["containers"][0]["image"] = image
    return pod


def _scan(cli: Any, manifest: Path) -> bool:
    result = cli(
        "scan", "--no-config", "--policy", str(REGISTRY_POLICY), "-f", "json", str(manifest)
    )
    assert result.code in (0, 1), result.stderr
    return any(f["check_id"] == CHECK for f in json.loads(result.stdout)["findings"])


def _webhook(pod: dict[str, Any]) -> bool:
    webhook = Webhook(policy(), policies=PolicyEnforcer(load_policies([REGISTRY_POLICY])))
    request = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": pod,
    }
    response = answer(webhook.validate(review(request)).body)
    denied = not response["allowed"]
    if denied:
        assert "ValidatingAdmissionPolicy 'registry-allow-list'" in response["status"]["message"]
    return denied


def _report(cli: Any, manifest: Path, out: Path) -> bool:
    result = cli(
        "report", "--no-config", "-f", "json", "-q", "-o", str(out),
        "--manifests", str(manifest), "--policy", str(REGISTRY_POLICY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return CHECK in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(("image", "violates"), [(ALLOWED, False), (FOREIGN, True)])
def test_scan_webhook_and_report_give_the_same_verdict(
    cli: Any, tmp_path: Path, image: str, violates: bool
) -> None:
    pod = _pod(image)
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod), encoding="utf-8")
    verdicts = {
        "scan": _scan(cli, manifest),
        "webhook": _webhook(pod),
        "report": _report(cli, manifest, tmp_path / "report.json"),
    }
    assert verdicts == dict.fromkeys(verdicts, violates)
