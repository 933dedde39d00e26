"""Hardened pods with random subtrees replaced by hostile shapes, and the webhook's answers
to them: what `tests/test_compiled.py` compares between the sources and the compiled build.

Deterministic (a seeded generator), so two processes, one per build, review the same pods.
"""

from __future__ import annotations

import json
import random
from typing import Any

from skanse.admission.handler import Webhook
from tests.admission.conftest import hardened_pod, pod_request, policy

_SCALARS: tuple[Any, ...] = (
    None, True, False, 0, -1, 10000, 2**70, 1.5, "", "x", "ALL", "/", "RuntimeDefault",
    "Localhost", "/var/run/docker.sock", "AKIAIOSFODNN7EXAMPLE",
)  # fmt: skip
_KEYS = (
    "securityContext", "containers", "initContainers", "ephemeralContainers", "volumes",
    "hostPath", "path", "capabilities", "add", "drop", "runAsUser", "runAsGroup", "runAsNonRoot",
    "privileged", "seccompProfile", "type", "name", "image", "env", "value", "valueFrom",
    "ports", "hostPort", "hostNetwork", "hostPID", "shareProcessNamespace", "os",
    "readOnlyRootFilesystem", "allowPrivilegeEscalation", "procMount", "appArmorProfile",
    "sysctls", "windowsOptions", "hostProcess",
)  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(_SCALARS)
    if roll < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def answers(count: int, seed: int = 7) -> list[tuple[int, str, str]]:
    """(status, decision, denial message) for `count` mutated pods."""
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible by design)
    webhook = Webhook(policy())
    out = []
    for _ in range(count):
        pod = hardened_pod()
        spec = pod["spec"]
        container = spec["containers"][0]
        places = [
            spec,
            container,
            container.setdefault("securityContext", {}),
            spec.setdefault("securityContext", {}),
        ]
        for _ in range(rng.randint(1, 3)):
            place = rng.choice(places)
            place[rng.choice([*place, *_KEYS])] = _value(rng)
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
             "request": pod_request(pod)}
        ).encode()  # fmt: skip
        outcome = webhook.validate(body)
        message = json.loads(outcome.body)["response"].get("status", {}).get("message", "")
        out.append((outcome.status, str(outcome.decision), message))
    return out
