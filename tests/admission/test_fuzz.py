"""Hypothesis against the handler: whatever the body, an answer, never a 5xx or a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skanse.admission.handler import Webhook
from tests.admission.conftest import hardened_pod, pod_request, policy

WEBHOOK = Webhook(policy())

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
_keys = st.sampled_from(
    [
        "securityContext",
        "containers",
        "initContainers",
        "volumes",
        "capabilities",
        "add",
        "drop",
        "privileged",
        "runAsUser",
        "hostPath",
        "image",
        "seccompProfile",
        "type",
        "metadata",
        "annotations",
        "spec",
        "template",
        "hostNetwork",
        "name",
    ]
)
# objects shaped like pods, with wrong types in the right places
_podlike = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=40,
)


def _check(body: bytes) -> None:
    for outcome in (WEBHOOK.validate(body), WEBHOOK.mutate(body)):
        assert outcome.status in (200, 400)
        # a check may fail to run on garbage ("could not check"), the handler itself never
        assert not outcome.reason.startswith("internal error"), outcome.reason
        document = json.loads(outcome.body)
        if outcome.status == 200:
            assert isinstance(document["response"]["allowed"], bool)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes(body: bytes) -> None:
    _check(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_random_json(value: Any) -> None:
    _check(json.dumps(value).encode())
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": value}
    _check(json.dumps(review).encode())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=_podlike,
    kind=st.sampled_from(["Pod", "Deployment", "CronJob", "Job", "StatefulSet", "Ingress"]),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE"]),
    old=_podlike,
)
def test_pod_shaped_garbage(spec: Any, kind: str, operation: str, old: Any) -> None:
    request = pod_request(hardened_pod())
    request["kind"]["kind"] = kind
    request["kind"]["group"] = "" if kind == "Pod" else "apps"
    request["operation"] = operation
    request["object"] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "f"}, "spec": spec}
    request["oldObject"] = {"kind": kind, "spec": old} if operation != "CREATE" else None
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    _check(json.dumps(review).encode())
