"""The mutating endpoint: RFC 6902 patches that add defaults and never override values."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest

from skanse.admission.handler import Webhook
from skanse.admission.policy import Mode, MutationSettings
from tests.admission.conftest import answer, hardened_pod, pod_request, policy, recorded, review


def mutated(webhook: Webhook, request: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    outcome = webhook.mutate(review(request))
    response = answer(outcome.body)
    assert response["uid"] == request["uid"] and response["allowed"] is True
    if "patch" not in response:
        return request["object"], []
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(request["object"], patch), patch


def bare_pod(run_as_user: int | None = 1000) -> dict[str, Any]:
    """Restricted fails only on what the mutation adds (seccomp, drop ALL, no escalation,
    runAsNonRoot with a known user)."""
    pod = hardened_pod()
    context = pod["spec"]["securityContext"]
    for name in ("seccompProfile", "runAsNonRoot"):
        del context[name]
    if run_as_user is None:
        del context["runAsUser"]
    else:
        context["runAsUser"] = run_as_user
    pod["spec"]["containers"][0]["securityContext"] = {"readOnlyRootFilesystem": True}
    pod["spec"]["initContainers"] = [
        {
            "name": "init",
            "image": pod["spec"]["containers"][0]["image"],
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
            "securityContext": {"readOnlyRootFilesystem": True},
        }
    ]
    return pod


def test_patched_pod_passes_restricted() -> None:
    webhook = Webhook(policy("pss-restricted"))
    request = pod_request(bare_pod())
    before = webhook.validate(review(request))
    assert answer(before.body)["allowed"] is False
    patched, patch = mutated(webhook, request)
    assert patch
    after = webhook.validate(review(pod_request(patched)))
    assert answer(after.body)["allowed"] is True, answer(after.body).get("status")


def test_patched_pod_passes_zero_trust_when_the_rest_is_in_place() -> None:
    webhook = Webhook(policy("zero-trust"))
    request = pod_request(bare_pod(run_as_user=10001))
    patched, _ = mutated(webhook, request)
    after = answer(webhook.validate(review(pod_request(patched))).body)
    assert after["allowed"] is True, after.get("status")


def test_no_non_root_guess_without_a_known_user() -> None:
    patched, _ = mutated(Webhook(policy()), pod_request(bare_pod(run_as_user=None)))
    assert "runAsNonRoot" not in patched["spec"]["securityContext"]
    assert patched["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_set_user_adds_10001_where_unset() -> None:
    webhook = Webhook(policy(mutation=MutationSettings(set_user=True)))
    pod = bare_pod(run_as_user=None)
    del pod["spec"]["securityContext"]["runAsGroup"]
    patched, _ = mutated(webhook, pod_request(pod))
    context = patched["spec"]["securityContext"]
    assert context["runAsUser"] == 10001 and context["runAsGroup"] == 10001
    assert context["fsGroup"] == 10001  # was set already; unchanged
    assert context["runAsNonRoot"] is True


@pytest.mark.parametrize("set_user", [False, True])
def test_a_root_container_gets_no_pod_level_run_as_non_root(set_user: bool) -> None:
    """Reported: a pod-level runAsNonRoot: true next to a container's runAsUser: 0 makes the
    kubelet refuse to start that container. The root container is left alone; the others,
    which run as the pod's user, get runAsNonRoot one by one."""
    pod = bare_pod(run_as_user=None if set_user else 1000)
    pod["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    webhook = Webhook(policy("pss-baseline", mutation=MutationSettings(set_user=set_user)))
    patched, _ = mutated(webhook, pod_request(pod))
    spec = patched["spec"]
    assert "runAsNonRoot" not in spec["securityContext"]
    assert spec["securityContext"]["runAsUser"] == (10001 if set_user else 1000)
    assert "runAsNonRoot" not in spec["containers"][0]["securityContext"]
    assert spec["containers"][0]["securityContext"]["runAsUser"] == 0
    assert spec["initContainers"][0]["securityContext"]["runAsNonRoot"] is True
    after = answer(webhook.validate(review(pod_request(patched))).body)
    assert after["allowed"] is True, after.get("status")


def test_a_root_container_that_opts_out_itself_keeps_the_pod_default() -> None:
    pod = bare_pod()
    pod["spec"]["containers"][0]["securityContext"].update(runAsUser=0, runAsNonRoot=False)
    patched, _ = mutated(Webhook(policy()), pod_request(pod))
    assert patched["spec"]["securityContext"]["runAsNonRoot"] is True
    assert patched["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] is False


def test_explicit_values_are_never_overridden() -> None:
    pod = bare_pod()
    container = pod["spec"]["containers"][0]
    container["securityContext"].update(
        {
            "allowPrivilegeEscalation": True,
            "capabilities": {"drop": ["NET_RAW"]},
            "seccompProfile": {"type": "Unconfined"},
            "runAsNonRoot": False,
        }
    )
    pod["spec"]["securityContext"]["seccompProfile"] = {
        "type": "Localhost",
        "localhostProfile": "p.json",
    }
    patched, patch = mutated(Webhook(policy()), pod_request(pod))
    out = patched["spec"]["containers"][0]["securityContext"]
    assert out["allowPrivilegeEscalation"] is True
    assert out["seccompProfile"] == {"type": "Unconfined"}
    assert out["runAsNonRoot"] is False
    assert out["capabilities"]["drop"] == ["NET_RAW", "ALL"]  # ALL is added, NET_RAW kept
    assert patched["spec"]["securityContext"]["seccompProfile"]["type"] == "Localhost"
    assert all(op["op"] == "add" for op in patch)


def test_privileged_container_gets_no_escalation_default() -> None:
    # allowPrivilegeEscalation: false next to privileged: true is rejected by the API server
    pod = bare_pod()
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = True
    pod["spec"]["initContainers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    patched, _ = mutated(Webhook(policy()), pod_request(pod))
    assert "allowPrivilegeEscalation" not in patched["spec"]["containers"][0]["securityContext"]
    assert (
        "allowPrivilegeEscalation" not in (patched["spec"]["initContainers"][0]["securityContext"])
    )


def test_missing_security_contexts_are_added_whole() -> None:
    pod = bare_pod()
    del pod["spec"]["securityContext"]
    del pod["spec"]["containers"][0]["securityContext"]
    pod["spec"]["initContainers"][0]["securityContext"] = None
    patched, patch = mutated(Webhook(policy()), pod_request(pod))
    paths = [op["path"] for op in patch]
    assert "/spec/securityContext" in paths and "/spec/containers/0/securityContext" in paths
    assert patched["spec"]["initContainers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"]
    }


def test_windows_pods_get_nothing() -> None:
    pod = bare_pod()
    pod["spec"]["os"] = {"name": "windows"}
    _, patch = mutated(Webhook(policy()), pod_request(pod))
    assert patch == []


def test_workload_templates_are_patched_under_their_template() -> None:
    request = recorded("user-group-psp-policy/test_data/cronjob_with_no_securitycontext.json")
    patched, patch = mutated(Webhook(policy()), request)
    assert all(op["path"].startswith("/spec/jobTemplate/spec/template/spec/") for op in patch)
    spec = patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"operation": "DELETE", "object": None}, "operation DELETE"),
        ({"subResource": "ephemeralcontainers"}, "not mutated"),
        ({"namespace": "kube-system"}, "exempt"),
    ],
)
def test_not_mutated(change: dict[str, Any], reason: str) -> None:
    request = pod_request(bare_pod())
    request.update(change)
    response = answer(Webhook(policy()).mutate(review(request)).body)
    assert response["allowed"] is True and "patch" not in response
    assert reason in response["auditAnnotations"]["reason"]


def test_pod_updates_are_not_mutated_and_workloads_only_on_template_change() -> None:
    webhook = Webhook(policy())
    pod = bare_pod()
    response = answer(webhook.mutate(review(pod_request(pod, operation="UPDATE", old=pod))).body)
    assert "patch" not in response  # a Pod's security context is immutable
    deployment = recorded("user-group-psp-policy/test_data/deployment_with_no_securitycontext.json")
    old = copy.deepcopy(deployment["object"])
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    same = dict(deployment, operation="UPDATE", object=scaled, oldObject=old)
    assert "patch" not in answer(webhook.mutate(review(same)).body)
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    rollout = dict(deployment, operation="UPDATE", object=changed, oldObject=old)
    assert "patch" in answer(webhook.mutate(review(rollout)).body)


def test_warn_and_audit_namespaces_are_observed_not_mutated() -> None:
    webhook = Webhook(policy(namespace_modes=(("legacy", Mode.WARN),)))
    pod = bare_pod()
    pod["metadata"]["namespace"] = "legacy"
    response = answer(webhook.mutate(review(pod_request(pod))).body)
    assert "patch" not in response
    assert "mode warn is not mutated" in response["auditAnnotations"]["reason"]


def test_a_crash_while_mutating_denies_in_enforce_and_warns_otherwise(monkeypatch) -> None:
    def explode(obj, settings):
        raise RuntimeError("boom")

    monkeypatch.setattr("skanse.admission.handler.defaults_patch", explode)
    webhook = Webhook(
        policy(
            namespace_modes=(("legacy", Mode.WARN),),
            mutation=MutationSettings(frozenset({Mode.ENFORCE, Mode.WARN})),
        )
    )
    outcome = webhook.mutate(review(pod_request(bare_pod())))
    response = answer(outcome.body)
    assert response["allowed"] is False and "patch" not in response
    assert outcome.decision == "error"
    assert "internal error: RuntimeError: boom" in response["status"]["message"]
    pod = bare_pod()
    pod["metadata"]["namespace"] = "legacy"
    warned = answer(webhook.mutate(review(pod_request(pod))).body)
    assert warned["allowed"] is True and "patch" not in warned
    assert "internal error" in warned["warnings"][0]
