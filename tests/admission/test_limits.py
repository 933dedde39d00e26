"""Hostile sizes: the cost of a review grows linearly with the object and has hard caps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skanse.admission import handler as handler_module
from skanse.admission.handler import ReviewLimits, Webhook
from skanse.admission.policy import Mode
from skanse.model import Finding
from tests.admission.conftest import answer, hardened_pod, pod_request, policy, review


def bare_pod(containers: int, namespace: str = "shop") -> dict[str, Any]:
    """The pod of the report: N containers `{"name": "cN", "image": "a"}`, each failing
    about ten checks."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "many", "namespace": namespace},
        "spec": {"containers": [{"name": f"c{i}", "image": "a"} for i in range(containers)]},
    }


class _CountingJson:
    """Stands in for the handler's `json` module, counting what `dumps` encodes."""

    def __init__(self, dumps: Any) -> None:
        self.dumps = dumps
        self.loads = json.loads


def _work(monkeypatch: pytest.MonkeyPatch, webhook: Webhook, body: bytes) -> tuple[int, int]:
    """(Finding comparisons, bytes JSON-encoded by the handler) while answering `body`."""
    compared = 0
    encoded = 0
    real_eq = Finding.__eq__
    real_dumps = json.dumps

    def counting_eq(self: Finding, other: object) -> bool:
        nonlocal compared
        compared += 1
        return real_eq(self, other)

    def counting_dumps(value: Any, **kwargs: Any) -> str:
        nonlocal encoded
        text = real_dumps(value, **kwargs)
        encoded += len(text)
        return text

    with monkeypatch.context() as patch:
        patch.setattr(Finding, "__eq__", counting_eq)
        patch.setattr(handler_module, "json", _CountingJson(counting_dumps))
        outcome = webhook.validate(body)
    assert answer(outcome.body)["allowed"] is False
    return compared, encoded


@pytest.mark.parametrize("dry_run", [False, True])
def test_work_grows_linearly_with_violating_containers(
    monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    """Reported: 400 such containers took 26 s (a list membership test per finding, and the
    annotation re-encoded once per dropped item). Doubling the containers must at most
    double the work, counted in comparisons and encoded bytes (not in seconds)."""
    webhook = Webhook(policy())
    small = _work(monkeypatch, webhook, review(pod_request(bare_pod(200), dryRun=dry_run)))
    large = _work(monkeypatch, webhook, review(pod_request(bare_pod(400), dryRun=dry_run)))
    for before, after in zip(small, large, strict=True):
        assert after <= 2.2 * before + 10_000, (small, large)


@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.WARN, Mode.AUDIT])
def test_too_many_containers_is_answered_at_once(mode: Mode) -> None:
    webhook = Webhook(policy(default_mode=mode), limits=ReviewLimits(containers=50))
    outcome = webhook.validate(review(pod_request(bare_pod(51), dryRun=True)))
    response = answer(outcome.body)
    assert outcome.decision == "error" and outcome.results == (("internal", "error"),)
    assert "51 containers, more than the 50" in outcome.reason
    assert response["allowed"] is (mode is not Mode.ENFORCE)
    if mode is Mode.ENFORCE:
        assert "51 containers" in response["status"]["message"]
    # exactly at the cap, the pod is checked as usual
    checked = webhook.validate(review(pod_request(bare_pod(50))))
    assert checked.decision == ("deny" if mode is Mode.ENFORCE else mode.value)
    assert "SKN-K8S-026" in checked.failed


def test_too_many_findings_is_a_clear_denial() -> None:
    webhook = Webhook(policy(), limits=ReviewLimits(findings=100))
    outcome = webhook.validate(review(pod_request(bare_pod(20))))
    response = answer(outcome.body)
    assert response["allowed"] is False
    assert "more than the 100 one answer lists" in response["status"]["message"]


def test_the_old_object_counts_too() -> None:
    webhook = Webhook(policy(), limits=ReviewLimits(containers=10))
    request = pod_request(hardened_pod(), operation="UPDATE", old=bare_pod(11))
    outcome = webhook.validate(review(request))
    assert answer(outcome.body)["allowed"] is False
    assert "the old object has 11 containers" in outcome.reason


def test_mutate_is_bounded_the_same_way() -> None:
    webhook = Webhook(policy(), limits=ReviewLimits(containers=10))
    outcome = webhook.mutate(review(pod_request(bare_pod(11))))
    assert answer(outcome.body)["allowed"] is False and "11 containers" in outcome.reason


def test_annotations_stay_bounded_json() -> None:
    outcome = Webhook(policy()).validate(review(pod_request(bare_pod(300))))
    annotations = answer(outcome.body)["auditAnnotations"]
    items = json.loads(annotations["findings"])
    assert len(annotations["findings"]) <= 4000
    assert "more" in items[-1] and int(items[-1]["more"]) + len(items) - 1 >= 3000
    assert len(answer(outcome.body)["status"]["message"]) <= 8192


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
@pytest.mark.parametrize("endpoint", ["validate", "mutate"])
def test_an_answered_review_leaves_no_garbage_cycles(operation: str, endpoint: str) -> None:
    """Everything parsed for a review is freed by reference counting once it is answered:
    a cycle (the pod view refers back to its object) left the whole parsed object for the
    collector to walk and free, review after review."""
    import gc

    webhook = Webhook(policy())
    old = hardened_pod() if operation == "UPDATE" else None
    body = review(pod_request(bare_pod(3), operation=operation, old=old))
    decide = webhook.validate if endpoint == "validate" else webhook.mutate
    decide(body)  # first use fills caches that live as long as the webhook
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(5):
            outcome = decide(body)
        assert outcome.status == 200
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()


def test_a_denied_pod_runs_each_pod_security_control_once() -> None:
    """The PSA-worded denial needs the failing controls' results: it takes those their
    checks computed, not a second run over every container (a tenth of the answer at 1,000
    containers)."""
    from skanse.checks.kubernetes import pss

    runs: dict[str, int] = {}
    originals = [(impl, impl.fn) for control in pss.CONTROLS for impl in control.versions]
    for control in pss.CONTROLS:
        for impl in control.versions:

            def counted(pod: Any, fn: Any = impl.fn, control_id: str = control.id) -> Any:
                runs[control_id] = runs.get(control_id, 0) + 1
                return fn(pod)

            object.__setattr__(impl, "fn", counted)  # frozen: patched and restored by hand
    try:
        outcome = Webhook(policy()).validate(review(pod_request(bare_pod(20))))
    finally:
        for impl, fn in originals:
            object.__setattr__(impl, "fn", fn)
    response = answer(outcome.body)
    assert response["allowed"] is False
    assert 'violates PodSecurity "restricted:latest"' in response["status"]["message"]
    assert runs and max(runs.values()) == 1, runs
