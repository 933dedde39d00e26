"""Signed tag, unsigned content: /mutate pins the verified digest, /validate requires it.

Against the real local registry (Debian's docker-registry) and skanse's own signatures.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from skanse.admission.handler import Webhook
from skanse.admission.images import SigningVerifier
from skanse.admission.policy import load_policy
from skanse.oci.reference import parse_reference
from tests.admission.conftest import answer, image_pod, pod_request, review
from tests.signing.helpers import push_test_image

pytestmark = pytest.mark.registry


def _webhook(directory: Path, client: Any, extra: str = "") -> Webhook:
    (directory / "admission.yaml").write_text("image-policy: images.yaml\n" + extra)
    loaded = load_policy(directory / "admission.yaml")
    assert loaded.image_policy is not None
    return Webhook(loaded, verifier=SigningVerifier(loaded.image_policy, client))


def _mutated(webhook: Webhook, pod: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    response = answer(webhook.mutate(review(pod_request(pod))).body)
    assert response["allowed"] is True
    ops = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    return jsonpatch.apply_patch(pod, ops), response


def test_a_signed_tag_is_pinned_and_a_re_push_changes_nothing(signed_world) -> None:
    """Reported: a pod using signed :1.0 was admitted keeping the tag, and unsigned content
    pushed to :1.0 afterwards is what the kubelet pulled."""
    client, signed, _, directory = signed_world
    tag, signed_digest = signed.split("@")
    # as reported: a policy under which a tag is no finding that denies on its own (the
    # profile's digest check, SKN-K8S-027, is LOW and only warns at fail-on: medium)
    webhook = _webhook(directory, client, "fail-on: medium\n")
    pod = image_pod(tag)

    # /validate alone denies the tag: the signature holds for today's digest only
    denied = answer(webhook.validate(review(pod_request(pod))).body)
    assert denied["allowed"] is False
    assert denied["auditAnnotations"]["failed"] == "image-signature"
    assert f"image {tag} is signed but not pinned" in denied["status"]["message"]
    assert f"{tag}@{signed_digest}" in denied["status"]["message"]

    # /mutate rewrites it to the digest it verified, and that passes /validate
    patched, response = _mutated(webhook, pod)
    assert patched["spec"]["containers"][0]["image"] == f"{tag}@{signed_digest}"
    assert response["auditAnnotations"]["pinned"] == f"{tag}@{signed_digest}"
    assert answer(webhook.validate(review(pod_request(patched))).body)["allowed"] is True

    # unsigned content pushed to the same tag: the pinned pod still names the signed bytes
    evil = push_test_image(client, parse_reference(tag), b"unsigned content")
    assert evil != signed_digest
    assert answer(webhook.validate(review(pod_request(patched))).body)["allowed"] is True
    # and the tag, resolved again, is no longer signed: neither pinned nor admitted
    again, _ = _mutated(webhook, pod)
    assert again["spec"]["containers"][0]["image"] == tag
    rejected = answer(webhook.validate(review(pod_request(pod))).body)
    assert rejected["allowed"] is False and "rejected" in rejected["status"]["message"]


def test_pinning_can_be_turned_off(signed_world) -> None:
    client, signed, _, directory = signed_world
    tag = signed.split("@")[0]
    webhook = _webhook(directory, client, "pin-digests: false\nrequire-digests: false\n")
    patched, _ = _mutated(webhook, image_pod(tag))
    assert patched["spec"]["containers"][0]["image"] == tag
    response = answer(webhook.validate(review(pod_request(image_pod(tag)))).body)
    # only the profile's own digest check (LOW) remains; no image-signature denial
    assert response["auditAnnotations"]["failed"] == "SKN-K8S-027"


def test_images_no_signature_rule_covers_are_not_pinned(signed_world) -> None:
    """Only a verified signature names a digest worth pinning; the default allow does not."""
    client, _, _, directory = signed_world
    webhook = _webhook(directory, client)
    other = "docker.io/library/nginx:1.27"
    patched, _ = _mutated(webhook, image_pod(other))
    assert patched["spec"]["containers"][0]["image"] == other


def test_a_signed_tag_is_pinned_where_defaults_are_not_added(signed_world) -> None:
    """`mutation.modes` says where secure defaults are added; pinning is `pin-digests`' own.
    With no defaults wanted, an enforce namespace still gets the pin that /validate requires,
    and nothing else."""
    client, signed, _, directory = signed_world
    tag, signed_digest = signed.split("@")
    webhook = _webhook(directory, client, "fail-on: medium\nmutation:\n  modes: []\n")
    pod = image_pod(tag)
    patched, response = _mutated(webhook, pod)
    assert patched["spec"]["containers"][0]["image"] == f"{tag}@{signed_digest}"
    assert response["auditAnnotations"]["added"] == ""
    expected = image_pod(f"{tag}@{signed_digest}")
    assert patched == expected
    assert answer(webhook.validate(review(pod_request(patched))).body)["allowed"] is True
