"""Every recorded AdmissionRequest (captured from real API servers) gets a well-formed answer,
and the privileged, host-namespace, capability and volume cases the verdict their file
names describe."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skanse.admission.handler import Webhook
from skanse.admission.review import MAX_WARNING_CHARS, MAX_WARNINGS_BYTES
from tests.admission.conftest import answer, policy, recorded, recorded_requests, review

pytestmark = pytest.mark.corpus


def _well_formed(request: dict[str, Any], status: int, body: bytes) -> dict[str, Any]:
    assert status == 200
    response = answer(body)
    assert response["uid"] == request["uid"]
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert response["status"]["code"] in (400, 403)
        assert response["status"]["message"]
    warnings = response.get("warnings", [])
    assert all(isinstance(w, str) and len(w) <= MAX_WARNING_CHARS for w in warnings)
    assert sum(len(w.encode()) for w in warnings) <= MAX_WARNINGS_BYTES
    assert all(isinstance(v, str) for v in response.get("auditAnnotations", {}).values())
    if "patch" in response:
        assert response["patchType"] == "JSONPatch" and response["allowed"] is True
    return response


def test_every_recorded_request_gets_a_well_formed_answer() -> None:
    requests = list(recorded_requests())
    # SOURCES.md counts 189 bare requests; the 3 full reviews and 2 requests without an
    # operation (hand-edited upstream) are here too
    assert len(requests) >= 189
    webhooks = [Webhook(policy("zero-trust")), Webhook(policy("pss-baseline"))]
    decisions: dict[str, int] = {}
    for name, request in requests:
        for webhook in webhooks:
            for outcome in (webhook.validate(review(request)), webhook.mutate(review(request))):
                response = _well_formed(request, outcome.status, outcome.body)
                decisions[outcome.decision] = decisions.get(outcome.decision, 0) + 1
                if outcome.decision == "invalid":
                    # only the two requests recorded without an operation are malformed
                    assert "operation" not in request, name
                    assert response["status"]["code"] == 400
    assert decisions["deny"] > 100 and decisions["skip"] > 40 and decisions["patch"] > 50


# (file, profile, expected allowed, check ids that must be in the denial, ids that must not)
CASES = [
    # privileged: every container kind, every workload kind
    ("pod-privileged-policy/test_data/privileged_container.json", False, {"SKN-K8S-002"}),
    ("pod-privileged-policy/test_data/privileged_init_container.json", False, {"SKN-K8S-002"}),
    ("pod-privileged-policy/test_data/privileged_ephemeral_container.json", False, {"SKN-K8S-002"}),
    (
        "pod-privileged-policy/test_data/deployment_with_privileged_containers.json",
        False,
        {"SKN-K8S-002"},
    ),
    (
        "pod-privileged-policy/test_data/statefulset_with_privileged_container.json",
        False,
        {"SKN-K8S-002"},
    ),
    ("pod-privileged-policy/test_data/no_privileged_containers.json", True, set()),
    # host namespaces (hostNetwork, hostPID, hostIPC; the recorded pods also bind host ports)
    ("host-namespaces-psp-policy/test_data/pod_request.json", False, {"SKN-K8S-001"}),
    ("host-namespaces-psp-policy/test_data/deployment_request.json", False, {"SKN-K8S-001"}),
    # capabilities beyond the runtime's default set are denied at baseline; CHOWN and KILL
    # are in the default set (PSA's capabilities_baseline allow-list)
    (
        "capabilities-psp-policy/test_data/req_pod_with_allowed_capabilities_reject.json",
        False,
        {"SKN-K8S-003"},
    ),
    (
        "capabilities-psp-policy/test_data/req_pod_with_container_with_capabilities_added.json",
        False,
        {"SKN-K8S-003"},
    ),
    (
        "capabilities-psp-policy/test_data/"
        "req_pod_with_container_with_capabilities_added_for_deployment.json",
        False,
        {"SKN-K8S-003"},
    ),
    (
        "capabilities-psp-policy/test_data/req_pod_with_allowed_capabilities_accept.json",
        True,
        set(),
    ),
    ("capabilities-psp-policy/test_data/req_pod_with_mutate_capabilities.json", True, set()),
    ("capabilities-psp-policy/test_data/req_pod_without_security_context.json", True, set()),
    # volumes: hostPath is denied, the projected token volume is fine
    ("hostpaths-psp-policy/test_data/request-pod-hostpaths.json", False, {"SKN-K8S-004"}),
    ("hostpaths-psp-policy/test_data/request-pod-multiple-containers.json", False, {"SKN-K8S-004"}),
    ("hostpaths-psp-policy/test_data/request-pod-no-hostpaths.json", True, set()),
    ("volumes-psp-policy/test_data/request-pod-volumes.json", False, {"SKN-K8S-004"}),
    ("volumes-psp-policy/test_data/request-pod-no-volumes.json", True, set()),
    ("volumeMounts-policy/test_data/pod_creation_volume_mounts.json", False, {"SKN-K8S-004"}),
    ("flexvolume-drivers-psp-policy/test_data/pod_without_flexvolume.json", True, set()),
]


@pytest.mark.parametrize(("name", "allowed", "failing"), CASES, ids=[c[0] for c in CASES])
def test_baseline_verdict_matches_the_file_name(name: str, allowed: bool, failing: set[str]):
    request = recorded(name)
    outcome = Webhook(policy("pss-baseline")).validate(review(request))
    response = _well_formed(request, outcome.status, outcome.body)
    assert response["allowed"] is allowed, response.get("status")
    assert failing <= set(outcome.failed)
    if not allowed:
        message = response["status"]["message"]
        assert all(check in message for check in failing)
        assert 'violates PodSecurity "baseline:latest"' in message


def test_restricted_denies_flexvolume_and_capabilities_outside_drop_all() -> None:
    webhook = Webhook(policy("pss-restricted"))
    flex = webhook.validate(
        review(recorded("flexvolume-drivers-psp-policy/test_data/pod_with_flexvolume.json"))
    )
    assert "SKN-K8S-013" in flex.failed  # flexVolume is outside the restricted volume types
    kill = webhook.validate(
        review(recorded("capabilities-psp-policy/test_data/req_pod_with_mutate_capabilities.json"))
    )
    assert "SKN-K8S-018" in kill.failed  # restricted allows adding NET_BIND_SERVICE only


def test_zero_trust_denies_any_added_capability() -> None:
    outcome = Webhook(policy("zero-trust")).validate(
        review(
            recorded(
                "capabilities-psp-policy/test_data/req_pod_with_allowed_capabilities_accept.json"
            )
        )
    )
    assert "SKN-K8S-024" in outcome.failed and "SKN-K8S-003" not in outcome.failed


GOLDEN = [
    ("pod-privileged-policy/test_data/privileged_ephemeral_container.json", "pss-baseline"),
    ("host-namespaces-psp-policy/test_data/deployment_request.json", "pss-baseline"),
    (
        "capabilities-psp-policy/test_data/req_pod_with_allowed_capabilities_reject.json",
        "pss-restricted",
    ),
    ("hostpaths-psp-policy/test_data/request-pod-hostpaths.json", "zero-trust"),
    ("apparmor-psp-policy/test_data/pod_invalid.json", "pss-baseline"),
    ("echo/test_data/delete_accept.json", "zero-trust"),
    ("ingress-policy/test_data/ingress-wildcard.json", "zero-trust"),
]


@pytest.mark.parametrize(("name", "profile"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_answers(name: str, profile: str, golden) -> None:
    outcome = Webhook(policy(profile)).validate(review(recorded(name)))
    text = json.dumps(json.loads(outcome.body), indent=2, sort_keys=True) + "\n"
    stem = name.split("/")[0] + "--" + name.rsplit("/", 1)[1].removesuffix(".json")
    golden(f"admission/{stem}.{profile}.json", text)
