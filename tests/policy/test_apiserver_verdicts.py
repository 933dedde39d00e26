"""The API server's verdicts, messages and reasons (conformance/apiserver.yaml) from the
webhook, on the same policies, bindings, params and requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.admission.handler import Webhook
from skanse.admission.vap import PolicyEnforcer
from skanse.policy.load import load_policies
from tests.admission.conftest import answer, policy, review

CASES = yaml.safe_load(
    (Path(__file__).parent / "conformance" / "apiserver.yaml").read_text(encoding="utf-8")
)
NAME = "validate-namespace-suffix"


def _objects(case: dict[str, Any]) -> list[dict[str, Any]]:
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
              "resources": ["namespaces"]}]  # fmt: skip
    spec: dict[str, Any] = {
        "failurePolicy": case.get("failurePolicy", "Fail"),
        "matchConstraints": {"resourceRules": rules},
        "validations": case["validations"],
    }
    if case.get("paramKind"):
        spec["paramKind"] = {"apiVersion": "v1", "kind": "ConfigMap"}
    binding: dict[str, Any] = {"policyName": NAME, "validationActions": ["Deny"]}
    if "paramRef" in case:
        binding["paramRef"] = {"name": case["paramRef"], "parameterNotFoundAction": "Deny"}
    group = "admissionregistration.k8s.io/v1"
    return [
        {"apiVersion": group, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": NAME},
         "spec": spec},
        {"apiVersion": group, "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": f"{NAME}-binding"}, "spec": binding},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"{NAME}-param", "namespace": "default"},
         "data": {"namespaceSuffix": "k8s"}},
    ]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_api_server_verdict(case: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump_all(_objects(case)), encoding="utf-8")
    webhook = Webhook(policy(), policies=PolicyEnforcer(load_policies([tmp_path])))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": case["namespace"]}}
    request = {
        "uid": "u",
        "kind": {"group": "", "version": "v1", "kind": "Namespace"},
        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
        "name": case["namespace"],
        "operation": "CREATE",
        "userInfo": {"username": "admin"},
        "object": namespace,
    }
    response = answer(webhook.validate(review(request)).body)
    if "denied" not in case and "denied_prefix" not in case:
        assert response["allowed"] is True, response
        return
    assert response["allowed"] is False
    status = response["status"]
    assert status["reason"] == case["reason"]
    if "denied" in case:
        assert status["message"] == case["denied"]
    else:
        assert status["message"].startswith(case["denied_prefix"])
