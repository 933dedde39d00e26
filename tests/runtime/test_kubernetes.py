"""Kubernetes quarantine through its narrow interface, against recorded pod payloads.

No API server runs here, so a local HTTPS server plays one: it holds a Pod recorded from a
real API server (the AdmissionRequest fixtures in ../shared/corpora/admission), applies the
JSON merge patches the client sends (RFC 7386: null deletes a key) and answers as the API
does. What the client sends is checked against the API's conventions: paths, verbs,
content types, bearer token. The deny-all policy is checked with skanse's own network
policy engine (`skanse netpol explain`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.errors import ResponseError
from skanse.runtime.kubernetes import (
    LABEL,
    POLICY_NAME,
    HttpKubernetesApi,
    Quarantine,
    quarantine_policy,
)
from tests.conftest import corpus_path
from tests.runtime.tlsserver import Request, https_server


def _recorded_pod() -> dict[str, Any]:
    path = corpus_path(
        "admission",
        "kubewarden",
        "pod-privileged-policy",
        "test_data",
        "no_privileged_containers.json",
    )
    request = json.loads(path.read_text())
    pod = request["object"]
    assert pod["kind"] == "Pod"
    return pod


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class FakeApi:
    def __init__(self, pod: dict[str, Any]) -> None:
        self.pod = copy.deepcopy(pod)
        self.policies: dict[tuple[str, str], dict[str, Any]] = {}

    def __call__(self, request: Request) -> tuple[int, Any]:
        ns, name = self.pod["metadata"]["namespace"], self.pod["metadata"]["name"]
        pod_path = f"/api/v1/namespaces/{ns}/pods/{name}"
        policies = "/apis/networking.k8s.io/v1/namespaces/"
        if request.path == pod_path and request.method == "GET":
            return 200, self.pod
        if request.path == pod_path and request.method == "PATCH":
            if request.headers.get("Content-Type") != "application/merge-patch+json":
                return 415, {"kind": "Status", "code": 415, "message": "unsupported media type"}
            self.pod = _merge_patch(self.pod, request.json())
            return 200, self.pod
        if request.path.startswith(policies) and request.method == "POST":
            body = request.json()
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            if key in self.policies:
                return 409, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "AlreadyExists",
                    "message": f'networkpolicies.networking.k8s.io "{key[1]}" already exists',
                    "code": 409,
                }
            self.policies[key] = body
            return 201, body
        if request.path.startswith(policies) and request.method == "GET":
            ns_part, _, rest = request.path[len(policies) :].partition("/networkpolicies/")
            found = self.policies.get((ns_part, rest))
            return (
                (200, found)
                if found
                else (404, {"kind": "Status", "code": 404, "message": "not found"})
            )
        return 404, {
            "kind": "Status",
            "code": 404,
            "message": f"no route {request.method} {request.path}",
        }


def test_quarantine_labels_the_pod_and_applies_a_deny_all_policy(tmp_path: Path) -> None:
    pod = _recorded_pod()
    fake = FakeApi(pod)
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    with https_server(tmp_path, fake) as server:
        token = "sekret"  # noqa: S105 - a test token
        api = HttpKubernetesApi(server.url, token=token, ca_file=server.ca_file)
        detail = Quarantine(api).quarantine(ns, name)
        again = Quarantine(api).quarantine(ns, name)  # the policy exists already: fine
        released = Quarantine(api).release(ns, name)
    assert "denies all its traffic" in detail and again == detail
    methods = [(r.method, r.path) for r in server.requests]
    assert methods[:2] == [
        ("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
        ("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}"),
    ]
    assert all(r.headers["Authorization"] == "Bearer sekret" for r in server.requests)
    assert server.requests[1].json() == {"metadata": {"labels": {LABEL: "true"}}}
    assert server.requests[-1].json() == {"metadata": {"labels": {LABEL: None}}}
    # the recorded pod kept its own labels throughout, and lost only ours at release
    assert fake.pod["metadata"]["labels"] == pod["metadata"]["labels"]
    assert "removed the label" in released
    assert fake.policies[(ns, POLICY_NAME)]["spec"]["podSelector"] == {
        "matchLabels": {LABEL: "true"}
    }


def test_the_quarantine_policy_denies_everything_to_and_from_the_labelled_pod(
    tmp_path: Path, cli
) -> None:
    pod = _recorded_pod()
    ns = pod["metadata"]["namespace"]
    quarantined = copy.deepcopy(pod)
    quarantined["metadata"]["labels"] = {**quarantined["metadata"].get("labels", {}), LABEL: "true"}
    other = copy.deepcopy(pod)
    other["metadata"]["name"] = "neighbour"
    docs = [quarantined, other, quarantine_policy(ns)]
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(docs))
    name = pod["metadata"]["name"]
    for source, destination in (
        (f"{ns}/neighbour", f"{ns}/{name}:80"),
        (f"{ns}/{name}", f"{ns}/neighbour:80"),
        (f"{ns}/{name}", "8.8.8.8:53/UDP"),
    ):
        result = cli("netpol", "explain", str(tmp_path), source, destination, "--json", "-q")
        explanation = json.loads(result.stdout)["explanations"][0]
        assert explanation["verdict"] is False, (source, destination, explanation)
        assert any(
            p["name"] == f"{ns}/{POLICY_NAME}"
            for side in ("egress", "ingress")
            for p in explanation[side]["policies"]
        )
    result = cli(
        "netpol", "explain", str(tmp_path), f"{ns}/neighbour", "8.8.8.8:53/UDP", "--json", "-q"
    )
    assert (
        json.loads(result.stdout)["explanations"][0]["verdict"] is True
    )  # unlabelled pods: untouched


def test_api_errors_are_response_errors_with_the_api_message(tmp_path: Path) -> None:
    def forbidden(request: Request) -> tuple[int, Any]:
        return 403, {
            "kind": "Status",
            "code": 403,
            "message": 'pods "web" is forbidden: User cannot patch',
        }

    with https_server(tmp_path, forbidden) as server:
        api = HttpKubernetesApi(server.url, ca_file=server.ca_file)
        with pytest.raises(ResponseError, match="forbidden: User cannot patch"):
            Quarantine(api).quarantine("default", "web")


def test_hostile_api_answers_do_not_crash(tmp_path: Path) -> None:
    with https_server(tmp_path, lambda request: (200, b"[" * 200_000)) as server:
        api = HttpKubernetesApi(server.url, ca_file=server.ca_file)
        with pytest.raises(ResponseError):
            api.get_pod("default", "web")


def test_the_responder_quarantines_the_alerting_pod_and_release_undoes_it(tmp_path: Path) -> None:
    from skanse.rules.engine import Alert
    from skanse.rules.loader import Priority
    from skanse.runtime.responses import Action, Policy, Responder, ResponseJournal, release

    pod = _recorded_pod()
    fake = FakeApi(pod)
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    journal = ResponseJournal(tmp_path / "state")
    alert = Alert(1, "Terminal shell in container", Priority.NOTICE, "syscall", "node", "x", {}, ())
    with https_server(tmp_path, fake) as server:
        quarantine = Quarantine(HttpKubernetesApi(server.url, ca_file=server.ca_file))
        responder = Responder(
            Policy({"Terminal shell in container": frozenset({Action.QUARANTINE})}),
            journal,
            kubernetes=quarantine,
        )
        context = {"pid": 4242, "container_id": "3f2a9c1b7d4e", "k8s_ns": ns, "k8s_pod": name}
        (entry,) = responder.handle(alert, context)
        assert entry.status == "done", entry.detail
        assert entry.pod == f"{ns}/{name}"
        assert fake.pod["metadata"]["labels"][LABEL] == "true"
        (result,) = release("3f2a9c1b7d4e", journal, kubernetes=quarantine)
    assert result.ok, result.message
    assert LABEL not in fake.pod["metadata"]["labels"]
    assert journal.load()[0].status == "released"
