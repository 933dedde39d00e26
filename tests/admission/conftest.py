"""Fixtures for the admission tests: recorded requests, reviews, pods, a webhook."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skanse.admission.handler import Webhook
from skanse.admission.policy import Policy
from skanse.checks.kubernetes.pss_policy import parse_policy
from skanse.checks.profiles import Profile
from skanse.signing.sign import sign_image
from tests.conftest import corpus_path
from tests.signing.helpers import new_key, push_test_image

API = "admission.k8s.io/v1"


def review(request: dict[str, Any]) -> bytes:
    return json.dumps({"apiVersion": API, "kind": "AdmissionReview", "request": request}).encode()


def recorded_requests() -> Iterator[tuple[str, dict[str, Any]]]:
    """(relative path, AdmissionRequest) for every recorded request in the corpus: bare
    requests (an object with uid and operation or object) and full AdmissionReviews."""
    root = corpus_path("admission", "kubewarden")
    for path in sorted(root.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            continue
        if data.get("kind") == "AdmissionReview" and isinstance(data.get("request"), dict):
            yield str(path.relative_to(root)), data["request"]
        elif "uid" in data and ("operation" in data or "object" in data):
            yield str(path.relative_to(root)), data


def recorded(relative: str) -> dict[str, Any]:
    path = corpus_path("admission", "kubewarden", *relative.split("/"))
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["request"] if data.get("kind") == "AdmissionReview" else data


def answer(body: bytes) -> dict[str, Any]:
    document = json.loads(body)
    assert document["apiVersion"] == API and document["kind"] == "AdmissionReview"
    return document["response"]


def policy(profile: str = "zero-trust", **changes: Any) -> Policy:
    level = "baseline" if profile == "pss-baseline" else "restricted"
    return Policy(profile=Profile(profile), pss=parse_policy(level), **changes)


def hardened_pod(name: str = "web", namespace: str = "shop") -> dict[str, Any]:
    """A Pod that passes every check the webhook runs with the zero-trust profile."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example.com/shop/web:1.4.2@sha256:" + "a" * 64,
                    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def pod_request(
    pod: dict[str, Any],
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    uid: str = "0f0e0d0c-0000-4000-8000-000000000001",
    user: str = "alice",
    **extra: Any,
) -> dict[str, Any]:
    kind = pod.get("kind", "Pod")
    group, _, version = pod.get("apiVersion", "v1").rpartition("/")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "name": pod["metadata"].get("name", ""),
        "namespace": pod["metadata"].get("namespace", "default"),
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": pod,
        "oldObject": old,
        "dryRun": False,
    }
    request.update(extra)
    return request


def image_pod(image: str) -> dict[str, Any]:
    pod = hardened_pod()
    pod["spec"]["containers"][0]["image"] = image
    return pod


@pytest.fixture
def signed_world(registry, tmp_path: Path):
    """A signed and an unsigned image in the registry fixture, and an image policy file
    requiring the key for that registry's `signed/**` and `unsigned/**` repositories."""
    client = registry.client(tmp_path / "cache")
    key = new_key()
    (tmp_path / "release.pub").write_bytes(key.public_key().pem())
    signed, unsigned = registry.ref("signed/web:1.0"), registry.ref("unsigned/web:1.0")
    signed_digest = push_test_image(client, signed, b"signed")
    unsigned_digest = push_test_image(client, unsigned, b"unsigned")
    sign_image(client, signed, key)
    (tmp_path / "images.yaml").write_text(
        "apiVersion: skanse.io/v1alpha1\nkind: ImagePolicy\n"
        "keys: {release: release.pub}\n"
        f'images:\n  - glob: "{registry.host}/*/web"\n    keys: [release]\n'
        "default: allow\n"
    )
    (tmp_path / "admission.yaml").write_text("image-policy: images.yaml\n")
    # pods reference images by digest, as the zero-trust profile requires
    return client, f"{signed}@{signed_digest}", f"{unsigned}@{unsigned_digest}", tmp_path


def privileged(pod: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = True
    del pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
    return pod


@pytest.fixture
def zero_trust() -> Webhook:
    return Webhook(policy())


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
