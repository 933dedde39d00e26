"""Pod authors cannot exempt themselves; exceptions live in the policy, scoped and expiring."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from skanse.admission.evaluate import Evaluator
from skanse.admission.handler import Webhook
from skanse.admission.policy import Policy, load_policy
from skanse.errors import PolicyError
from tests.admission.conftest import answer, hardened_pod, pod_request, repo_root, review

SHIPPED = repo_root() / "deploy" / "admission" / "policy.yaml"


def host_pod(namespace: str = "shop", name: str = "db-0", path: str = "/") -> dict[str, Any]:
    """The reported pod: privileged, hostPID, hostNetwork and the host's / mounted."""
    pod = hardened_pod(name=name, namespace=namespace)
    spec = pod["spec"]
    spec["hostPID"] = True
    spec["hostNetwork"] = True
    spec["volumes"] = [{"name": "root", "hostPath": {"path": path}}]
    container = spec["containers"][0]
    container["securityContext"]["privileged"] = True
    del container["securityContext"]["allowPrivilegeEscalation"]
    container["volumeMounts"] = [{"name": "root", "mountPath": "/host"}]
    return pod


SELF_EXEMPTION = {
    "ignore.skanse.io/SKN-K8S-002": "needed",  # privileged
    "ignore.skanse.io/SKN-K8S-001": "needed",  # host namespaces
    "ignore.skanse.io/SKN-K8S-013": "needed",  # hostPath (restricted volume types)
    "ignore.skanse.io/SKN-K8S-014": "needed",  # allowPrivilegeEscalation
}


def _validate(webhook: Webhook, pod: dict[str, Any]) -> dict[str, Any]:
    return answer(webhook.validate(review(pod_request(pod))).body)


def test_the_shipped_policy_ignores_annotations_that_exempt_the_pod() -> None:
    webhook = Webhook(load_policy(SHIPPED))
    assert _validate(webhook, host_pod())["allowed"] is False
    annotated = host_pod()
    annotated["metadata"]["annotations"] = dict(SELF_EXEMPTION)
    response = _validate(webhook, annotated)
    assert response["allowed"] is False
    failed = set(response["auditAnnotations"]["failed"].split(","))
    assert {"SKN-K8S-001", "SKN-K8S-002", "SKN-K8S-013", "SKN-K8S-014"} <= failed
    refused = [w for w in response["warnings"] if "is not honoured" in w]
    assert len(refused) >= 3


def test_all_is_refused_in_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("annotation-suppressions: all\n")
    with pytest.raises(PolicyError, match="list the check ids"):
        load_policy(path)


def _policy_with(tmp_path: Path, exceptions: str) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text("mode: enforce\nexceptions:\n" + exceptions)
    return load_policy(path)


EXCEPTION = """\
  - name: db-needs-the-host
    reason: "the 2019 database reads the host disk until TICKET-123 moves it"
    checks: [SKN-K8S-001, KSV-0017, SKN-K8S-013, SKN-K8S-014]
    namespaces: ["leg*"]
    workloads: ["Pod/db-*", StatefulSet/db]
    expires: 2027-01-31
"""


def _webhook(policy: Policy, today: dt.date) -> Webhook:
    return Webhook(policy, Evaluator(policy, today=lambda: today))


def db_pod(namespace: str = "legacy", name: str = "db-0") -> dict[str, Any]:
    return host_pod(namespace, name, path="/srv/db")


def test_an_exception_admits_only_its_scope_until_it_expires(tmp_path: Path) -> None:
    policy = _policy_with(tmp_path, EXCEPTION)
    before = _webhook(policy, dt.date(2027, 1, 31))
    admitted = _validate(before, db_pod())
    assert admitted["allowed"] is True, admitted
    suppressed = json.loads(admitted["auditAnnotations"]["suppressed"])
    assert {s["origin"] for s in suppressed} == {"admission policy exception db-needs-the-host"}
    assert all(s["expires"] == "2027-01-31" for s in suppressed)
    # another namespace, another workload: not covered
    assert _validate(before, db_pod("shop"))["allowed"] is False
    assert _validate(before, db_pod(name="web-0"))["allowed"] is False
    # a check the exception does not name still denies: the host's / holds the runtime
    # socket (SKN-K8S-033), which an exception for hostPath volumes does not cover
    socket = _validate(before, host_pod("legacy"))
    assert socket["allowed"] is False and socket["auditAnnotations"]["failed"] == "SKN-K8S-033"
    tagged = db_pod()
    tagged["spec"]["containers"][0]["image"] = "registry.example.com/db:latest"
    still = _validate(before, tagged)
    assert still["allowed"] is False and "SKN-K8S-026" in still["auditAnnotations"]["failed"]
    # the day after the expiry it stops applying, and says so
    after = _validate(_webhook(policy, dt.date(2027, 2, 1)), db_pod())
    assert after["allowed"] is False
    assert any("expired on 2027-01-31" in w for w in after["warnings"])


@pytest.mark.parametrize(
    "path",
    [
        "/proc",
        "/proc/1",
        "/proc/1/root",
        "/proc/1/root/run/containerd/containerd.sock",
        "/proc/self/root/var/run/",
        "/proc/1/task/1/root/run/crio",
        "//proc/1/root/../../run/docker.sock",
    ],
)
def test_an_exception_for_host_paths_never_admits_the_runtime_socket_through_proc(
    path: str, tmp_path: Path
) -> None:
    """Reported: /proc/1/root is the node's root as pid 1 sees it, so these paths reach the
    runtime socket, yet SKN-K8S-033 missed them and the hostPath exception admitted them."""
    policy = _policy_with(tmp_path, EXCEPTION)
    response = _validate(_webhook(policy, dt.date(2027, 1, 1)), host_pod("legacy", path=path))
    assert response["allowed"] is False
    assert response["auditAnnotations"]["failed"] == "SKN-K8S-033"


def test_a_workload_template_is_matched_by_its_kind_and_name(tmp_path: Path) -> None:
    policy = _policy_with(tmp_path, EXCEPTION)
    pod = db_pod()
    statefulset: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "legacy"},
        "spec": {
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": copy.deepcopy(pod["spec"])},
        },
    }
    assert _validate(_webhook(policy, dt.date(2027, 1, 1)), statefulset)["allowed"] is True
    statefulset["metadata"]["name"] = "cache"
    assert _validate(_webhook(policy, dt.date(2027, 1, 1)), statefulset)["allowed"] is False


@pytest.mark.parametrize(
    ("entry", "phrase"),
    [
        (EXCEPTION.replace('    reason: "the 2019', '    reason: " "\n    x: "'), "Extra"),
        (EXCEPTION.replace("    expires: 2027-01-31\n", ""), "expires"),
        (EXCEPTION.replace('["leg*"]', "[]"), "namespaces"),
        (EXCEPTION.replace("SKN-K8S-001, KSV-0017", "'*'"), "wildcard"),
        (EXCEPTION.replace("SKN-K8S-001,", "SKN-NOPE-1,"), "unknown check SKN-NOPE-1"),
        (EXCEPTION.replace("StatefulSet/db", "db"), "Kind/name"),
    ],
)
def test_bad_exceptions_name_the_problem(tmp_path: Path, entry: str, phrase: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _policy_with(tmp_path, entry)
    assert phrase.lower() in caught.value.diagnostics().lower()
