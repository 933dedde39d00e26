"""The API server's decision rules (tests/policy/conformance/validator.yaml) on real policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.policy.engine import Attributes, evaluate
from skanse.policy.load import policy_set
from skanse.sources.kubernetes import K8sObject
from skanse.sources.yamlpos import YamlDocument

CASES = yaml.safe_load(
    (Path(__file__).parent / "conformance" / "validator.yaml").read_text(encoding="utf-8")
)
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "foo", "namespace": "default"}}


def policy_object(spec: dict[str, Any]) -> K8sObject:
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["*"]}]
    data: dict[str, object] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "p"},
        "spec": {"matchConstraints": {"resourceRules": rules}, **spec},
    }
    return K8sObject(data, "policy.yaml", YamlDocument(0, data, 1, 1))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_upstream_decision(case: dict[str, Any]) -> None:
    spec = {k: v for k, v in case.items() if k not in ("name", "expect", "audit", "unsupported")}
    problems: list[str] = []
    policies = policy_set([policy_object(spec)], problems)
    if "unsupported" in case:
        assert problems, "an unsupported case must be refused at load, not answered differently"
        return
    assert problems == []
    result = evaluate(policies, Attributes.for_object(POD))
    denials = [(d.reason, d.message) for d in result.decisions]
    assert len(denials) == len(case["expect"]), denials
    for (reason, message), expected in zip(denials, case["expect"], strict=True):
        assert expected["message"] in message
        assert reason == expected.get("reason", "Invalid")
    audit = {k.partition("/")[2]: v for k, v in result.audit_annotations.items()}
    assert audit == case.get("audit", {})
