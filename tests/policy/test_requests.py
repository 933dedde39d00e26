"""Which requests a policy matches and what its expressions see: matchPolicy, UPDATE with
the old object and DELETE (no object), through the webhook as the API server sends them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skanse.admission.handler import Webhook
from skanse.admission.vap import PolicyEnforcer
from skanse.policy.engine import Attributes, evaluate
from skanse.policy.load import load_policies
from tests.admission.conftest import answer, hardened_pod, policy, review


def _write(tmp_path: Path, rules: str, expression: str, match_policy: str = "") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"""\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: p}}
spec:
  matchConstraints:
{match_policy}    resourceRules:
{rules}  validations:
    - expression: "{expression}"
      message: refused
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: p-binding}}
spec:
  policyName: p
  validationActions: [Deny]
""",
        encoding="utf-8",
    )
    return path


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 1},
    }


@pytest.mark.parametrize(("match_policy", "matched"), [("Equivalent", True), ("Exact", False)])
def test_match_policy_decides_whether_another_version_of_the_resource_matches(
    tmp_path: Path, match_policy: str, matched: bool
) -> None:
    # The rule names apps/v1beta1 only; the request is for apps/v1.
    rules = (
        "      - apiGroups: [apps]\n"
        "        apiVersions: [v1beta1]\n"
        "        operations: [CREATE]\n"
        "        resources: [deployments]\n"
    )
    path = _write(tmp_path, rules, "false", f"    matchPolicy: {match_policy}\n")
    decisions = evaluate(load_policies([path]), Attributes.for_object(_deployment())).decisions
    assert bool(decisions) is matched


def _request(operation: str, obj: Any, old: Any) -> dict[str, Any]:
    return {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "web",
        "namespace": "shop",
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": obj,
        "oldObject": old,
    }


def _labelled(team: str, **labels: str) -> dict[str, Any]:
    pod = hardened_pod()
    pod["metadata"]["labels"] = {"team": team, **labels}
    return pod


POD_RULES = (
    "      - apiGroups: ['']\n"
    "        apiVersions: [v1]\n"
    "        operations: [CREATE, UPDATE, DELETE]\n"
    "        resources: [pods]\n"
)


@pytest.mark.parametrize(("new_team", "allowed"), [("shop", True), ("billing", False)])
def test_an_update_is_judged_against_the_old_object(
    tmp_path: Path, new_team: str, allowed: bool
) -> None:
    path = _write(
        tmp_path,
        POD_RULES,
        "request.operation != 'UPDATE' || "
        "object.metadata.labels.team == oldObject.metadata.labels.team",
    )
    webhook = Webhook(policy(), policies=PolicyEnforcer(load_policies([path])))
    request = _request("UPDATE", _labelled(new_team), _labelled("shop"))
    response = answer(webhook.validate(review(request)).body)
    assert response["allowed"] is allowed
    if not allowed:
        assert response["status"]["message"] == (
            "ValidatingAdmissionPolicy 'p' with binding 'p-binding' denied request: refused"
        )


@pytest.mark.parametrize(("protected", "allowed"), [("false", True), ("true", False)])
def test_a_delete_sees_only_the_old_object(tmp_path: Path, protected: str, allowed: bool) -> None:
    path = _write(
        tmp_path,
        POD_RULES,
        "request.operation != 'DELETE' || (object == null && "
        "oldObject.metadata.labels.protected != 'true')",
    )
    webhook = Webhook(policy(), policies=PolicyEnforcer(load_policies([path])))
    request = _request("DELETE", None, _labelled("shop", protected=protected))
    response = answer(webhook.validate(review(request)).body)
    assert response["allowed"] is allowed
