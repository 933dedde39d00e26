"""The webhook's decisions: modes, exemptions, suppressions, updates, bad input, images."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from skanse.admission.evaluate import Evaluator, admission_object
from skanse.admission.handler import Webhook
from skanse.admission.images import DEADLINE, ImageOutcome, ImageVerdict, SigningVerifier
from skanse.admission.policy import Mode, Policy
from skanse.admission.vap import PolicyEnforcer
from skanse.checks.kubernetes.pss import evaluate
from skanse.checks.kubernetes.pss_policy import parse_policy
from skanse.config import load_config
from skanse.sources.kubernetes import pod_spec
from tests.admission.conftest import (
    answer,
    hardened_pod,
    image_pod,
    pod_request,
    policy,
    privileged,
    review,
)


def validate(webhook: Webhook, request: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    outcome = webhook.validate(review(request))
    assert outcome.status == 200
    response = answer(outcome.body)
    assert response["uid"] == request["uid"]
    return outcome, response


# -- modes ------------------------------------------------------------------------------------


def test_hardened_pod_is_allowed_without_warnings(zero_trust: Webhook) -> None:
    outcome, response = validate(zero_trust, pod_request(hardened_pod()))
    assert response["allowed"] is True
    assert "warnings" not in response
    assert outcome.decision == "allow"
    assert all(result == "pass" for _, result in outcome.results)
    assert len(outcome.results) == len(zero_trust.evaluator.checks_for("Pod"))


def test_enforce_denies_with_the_check_ids_and_psa_message(zero_trust: Webhook) -> None:
    pod = privileged(hardened_pod())
    _, response = validate(zero_trust, pod_request(pod))
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert "SKN-K8S-002" in status["message"] and "SKN-K8S-014" in status["message"]
    # Pod Security Admission's own words, so the denial can be diffed against PSA
    view = pod_spec(admission_object(pod, "x", "v1", "Pod"))
    assert view is not None
    psa = evaluate(view, parse_policy("restricted"))
    assert psa.message in status["message"]
    assert response["auditAnnotations"]["failed"] == "SKN-K8S-002,SKN-K8S-014"


def _share_process_namespace(spec: dict[str, Any]) -> None:
    spec["shareProcessNamespace"] = True


def _literal_password(spec: dict[str, Any]) -> None:
    spec["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": "hunter2-Xy7q"}]


def _runtime_socket(spec: dict[str, Any]) -> None:
    spec["volumes"] = [{"name": "run", "hostPath": {"path": "/run/containerd/"}}]


@pytest.mark.parametrize(
    ("change", "check_id"),
    [
        (_share_process_namespace, "SKN-K8S-031"),
        (_literal_password, "SKN-K8S-032"),
        (_runtime_socket, "SKN-K8S-033"),
    ],
)
def test_peer_checks_deny_at_admission(change: Any, check_id: str, zero_trust: Webhook) -> None:
    """Reported: nothing flagged shareProcessNamespace or a literal secret in env (the
    pod was otherwise hardened and admitted); a runtime socket is the third such gap."""
    pod = hardened_pod()
    change(pod["spec"])
    response = answer(zero_trust.validate(review(pod_request(pod))).body)
    assert response["allowed"] is False
    assert check_id in response["auditAnnotations"]["failed"].split(",")
    assert check_id in response["status"]["message"]
    assert "hunter2" not in json.dumps(response)  # the value is never repeated


def test_a_secret_value_built_to_backtrack_is_judged_at_once(zero_trust: Webhook) -> None:
    """Reported: the GPG fingerprint pattern split a run of spaces between its groups in
    exponentially many ways; a 16-digit hex head and 150 spaces took seconds and froze the
    webhook's event loop. With 5,000 spaces the old pattern would never finish."""
    pod = hardened_pod()
    value = "0123456789ABCDEF" + " " * 5_000 + "!"
    pod["spec"]["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": value}]
    response = answer(zero_trust.validate(review(pod_request(pod))).body)
    assert response["allowed"] is False
    assert "SKN-K8S-032" in response["auditAnnotations"]["failed"].split(",")


def test_warn_mode_allows_with_warnings_naming_the_checks() -> None:
    webhook = Webhook(policy(namespace_modes=(("legacy", Mode.WARN),)))
    pod = privileged(hardened_pod(namespace="legacy"))
    outcome, response = validate(webhook, pod_request(pod))
    assert response["allowed"] is True and outcome.decision == "warn"
    assert any(w.startswith("SKN-K8S-002 ") for w in response["warnings"])
    assert response["auditAnnotations"]["decision"] == "warn"


def test_audit_mode_allows_silently_with_audit_annotations() -> None:
    webhook = Webhook(policy(namespace_modes=(("sandbox-*", Mode.AUDIT),)))
    pod = privileged(hardened_pod(namespace="sandbox-7"))
    outcome, response = validate(webhook, pod_request(pod))
    assert response["allowed"] is True and outcome.decision == "audit"
    assert "warnings" not in response
    findings = json.loads(response["auditAnnotations"]["findings"])
    assert {f["check"] for f in findings} == {"SKN-K8S-002", "SKN-K8S-014"}


def test_fail_on_turns_lower_findings_into_warnings() -> None:
    from skanse.model import Severity

    pod = hardened_pod()
    pod["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.2"  # LOW 027
    strict = Webhook(policy())
    _, denied = validate(strict, pod_request(pod))
    assert denied["allowed"] is False and "SKN-K8S-027" in denied["status"]["message"]
    lenient = Webhook(policy(fail_on=Severity.MEDIUM))
    _, allowed = validate(lenient, pod_request(pod))
    assert allowed["allowed"] is True
    assert any(w.startswith("SKN-K8S-027") for w in allowed["warnings"])


# -- what is not checked ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"operation": "DELETE", "object": None}, "operation DELETE"),
        ({"operation": "CONNECT"}, "operation CONNECT"),
        ({"subResource": "status"}, "subresource status"),
        ({"subResource": "exec"}, "subresource exec"),
        ({"kind": {"group": "", "version": "v1", "kind": "ConfigMap"}}, "kind ConfigMap"),
    ],
)
def test_not_checked_is_an_explicit_allow_with_a_reason(change, reason, zero_trust) -> None:
    request = pod_request(privileged(hardened_pod()))
    request.update(change)
    if change.get("kind", {}).get("kind") == "ConfigMap":
        request["object"] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    outcome, response = validate(zero_trust, request)
    assert response["allowed"] is True and outcome.decision == "skip"
    assert reason in response["auditAnnotations"]["reason"]


def test_ephemeral_containers_subresource_is_checked(zero_trust: Webhook) -> None:
    pod = hardened_pod()
    debug = copy.deepcopy(pod["spec"]["containers"][0])
    debug["name"] = "debugger"
    debug["securityContext"]["privileged"] = True
    pod["spec"]["ephemeralContainers"] = [debug]
    request = pod_request(
        pod, operation="UPDATE", old=hardened_pod(), subResource="ephemeralcontainers"
    )
    _, response = validate(zero_trust, request)
    assert response["allowed"] is False and "SKN-K8S-002" in response["status"]["message"]


# -- exemptions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "user", "exempt"),
    [
        ("kube-system", "alice", True),  # always
        ("skanse-system", "alice", True),  # the webhook's own namespace
        ("monitoring", "alice", True),  # configured
        ("shop", "system:serviceaccount:ci:deployer", True),  # a service account
        ("shop", "admin", True),  # a user
        ("shop", "alice", False),
    ],
)
def test_exemptions(namespace: str, user: str, exempt: bool) -> None:
    base = policy(
        exempt_namespaces=frozenset({"kube-system", "monitoring"}),
        exempt_users=frozenset({"admin", "system:serviceaccount:ci:deployer"}),
    ).with_own_namespace("skanse-system")
    pod = privileged(hardened_pod(namespace=namespace))
    outcome, response = validate(Webhook(base), pod_request(pod, user=user))
    assert response["allowed"] is exempt
    assert (outcome.decision == "exempt") is exempt


def test_service_account_exemption_from_the_policy_file(tmp_path: Path) -> None:
    from skanse.admission.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text("exempt:\n  service-accounts: [ci/deployer]\n")
    loaded = load_policy(path)
    assert loaded.exemption("shop", "system:serviceaccount:ci:deployer", ()) is not None
    assert loaded.exemption("kube-system", "x", ()) is not None
    assert loaded.exemption("shop", "system:serviceaccount:ci:other", ()) is None


# -- suppressions, exactly as the CLI -----------------------------------------------------------


def test_annotation_with_reason_suppresses_and_is_audited() -> None:
    pod = hardened_pod()
    pod["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.2"
    pod["metadata"]["annotations"] = {"ignore.skanse.io/SKN-K8S-027": "pinned by the pipeline"}
    opted_in = Webhook(policy(annotation_suppressions=frozenset({"SKN-K8S-027"})))
    outcome, response = validate(opted_in, pod_request(pod))
    assert response["allowed"] is True
    suppressed = json.loads(response["auditAnnotations"]["suppressed"])
    assert suppressed == [
        {
            "check": "SKN-K8S-027",
            "reason": "pinned by the pipeline",
            "origin": "annotation ignore.skanse.io/SKN-K8S-027",
        }
    ]
    assert ("SKN-K8S-027", "suppressed") in outcome.results


def test_annotation_without_reason_does_not_suppress() -> None:
    pod = hardened_pod()
    pod["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.2"
    pod["metadata"]["annotations"] = {"ignore.skanse.io/SKN-K8S-027": " "}
    opted_in = Webhook(policy(annotation_suppressions=frozenset({"SKN-K8S-027"})))
    _, response = validate(opted_in, pod_request(pod))
    assert response["allowed"] is False
    assert any("has no reason and is not applied" in w for w in response["warnings"])


def test_config_suppression_expires(tmp_path: Path) -> None:
    config = tmp_path / ".skanse.yaml"
    config.write_text(
        "suppressions:\n"
        "  - id: SKN-K8S-027\n"
        "    resource: {namespace: shop}\n"
        "    reason: digests come with the next release\n"
        "    expires: 2026-06-30\n"
    )
    suppressions = load_config(config).suppressions
    pod = hardened_pod()
    pod["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.2"

    def webhook(today: dt.date) -> Webhook:
        return Webhook(
            policy(), Evaluator(policy(), suppressions=suppressions, today=lambda: today)
        )

    _, before = validate(webhook(dt.date(2026, 6, 30)), pod_request(pod))
    assert before["allowed"] is True
    _, after = validate(webhook(dt.date(2026, 7, 1)), pod_request(pod))
    assert after["allowed"] is False
    assert any("expired on 2026-06-30" in w for w in after["warnings"])


# -- UPDATE ------------------------------------------------------------------------------------


def test_update_that_adds_nothing_new_is_allowed_with_warnings(zero_trust: Webhook) -> None:
    old = hardened_pod()
    old["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.1"
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["tier"] = "front"
    outcome, response = validate(zero_trust, pod_request(new, operation="UPDATE", old=old))
    assert response["allowed"] is True and outcome.decision == "warn"
    assert "adds no finding" in response["warnings"][0]
    assert any(w.startswith("SKN-K8S-027") for w in response["warnings"])


def test_update_that_makes_things_worse_is_denied(zero_trust: Webhook) -> None:
    old = hardened_pod()
    old["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.1"
    new = privileged(old)
    _, response = validate(zero_trust, pod_request(new, operation="UPDATE", old=old))
    assert response["allowed"] is False
    assert "SKN-K8S-002" in response["status"]["message"]


def _daemonset(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "logs", "namespace": pod["metadata"]["namespace"]},
        "spec": {"selector": {}, "template": {"metadata": {}, "spec": pod["spec"]}},
    }


def _with_host_path(pod: dict[str, Any], path: str, port: int) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["spec"]["volumes"] = [{"name": "logs", "hostPath": {"path": path}}]
    container = pod["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "logs", "mountPath": "/host", "readOnly": True}]
    container["ports"] = [{"containerPort": port, "hostPort": port}]
    return pod


@pytest.mark.parametrize(
    ("path", "port", "admitted"),
    [
        ("/var/log", 9100, True),  # nothing changed but a label
        ("/etc", 9100, False),
        ("/proc/1/root", 9100, False),
        ("/var/log", 22, False),
    ],
)
def test_update_that_changes_what_a_finding_is_about_is_new(
    path: str, port: int, admitted: bool, zero_trust: Webhook
) -> None:
    """Reported: a finding was known by its check and message, and "volume logs uses
    hostPath" does not say which path, so a DaemonSet that already had hostPath /var/log
    was UPDATEd to /etc or /proc/1/root as "adding no finding it did not already have"."""
    base = hardened_pod()
    base["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.1"
    old = _daemonset(_with_host_path(base, "/var/log", 9100))
    new = _daemonset(_with_host_path(base, path, port))
    new["metadata"]["labels"] = {"tier": "node"}
    outcome, response = validate(zero_trust, pod_request(new, operation="UPDATE", old=old))
    assert response["allowed"] is admitted
    assert outcome.decision == ("warn" if admitted else "deny")


def test_dry_run_is_answered_like_the_real_request(zero_trust: Webhook) -> None:
    pod = privileged(hardened_pod())
    real = zero_trust.validate(review(pod_request(pod)))
    dry = zero_trust.validate(review(pod_request(pod, dryRun=True)))
    assert dry.body == real.body and dry.dry_run is True


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (b"", "empty body"),
        (b"not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "apiVersion"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}', "kind is 'Pod'"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "no request"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
            "uid is missing",
        ),
        (  # a duplicate key keeps its last value, as the API server's decoder does
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "kind": "X"}',
            "kind is 'X'",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": "\\ud800"}', "not valid JSON"),  # a lone surrogate: Go's encoder never writes one
    ],
)
def test_bodies_that_are_not_reviews_get_400(body: bytes, phrase: str, zero_trust) -> None:
    for outcome in (zero_trust.validate(body), zero_trust.mutate(body)):
        assert outcome.status == 400 and outcome.decision == "invalid"
        assert phrase in json.loads(outcome.body)["error"]


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"operation": "PATCH"}, "operation"),
        ({"kind": "Pod"}, "request.kind"),
        ({"object": None}, "object is missing"),
        ({"object": [1]}, "not a JSON object"),
        ({"dryRun": "yes"}, "dryRun"),
        (
            {"object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}},
            "but the object is a Deployment",
        ),
    ],
)
def test_malformed_requests_with_a_uid_get_a_well_formed_denial(change, phrase, zero_trust):
    request = pod_request(hardened_pod())
    request.update(change)
    outcome, response = validate(zero_trust, request)
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert phrase in response["status"]["message"] and outcome.decision == "invalid"


def test_a_pod_without_spec_cannot_be_checked_and_is_denied_in_enforce(zero_trust) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"}}
    outcome, response = validate(zero_trust, pod_request(pod))
    assert response["allowed"] is False and outcome.decision == "error"
    assert "could not check" in response["status"]["message"]


class _Exploding(PolicyEnforcer):
    """A decision that crashes (not a subclass of the evaluator: in the compiled build,
    `make test-compiled`, interpreted classes cannot inherit from compiled ones)."""

    def __init__(self) -> None:
        pass

    def decide(self, request, rest, exempt, size=None):
        raise RuntimeError("boom")


def test_internal_error_denies_in_enforce_and_warns_otherwise() -> None:
    enforce = policy(namespace_modes=(("legacy", Mode.WARN),))
    webhook = Webhook(enforce, policies=_Exploding())
    outcome, response = validate(webhook, pod_request(hardened_pod()))
    assert response["allowed"] is False and outcome.decision == "error"
    assert "internal error: RuntimeError: boom" in response["status"]["message"]
    assert "denied because mode is enforce" in response["status"]["message"]
    _, warned = validate(webhook, pod_request(hardened_pod(namespace="legacy")))
    assert warned["allowed"] is True and "internal error" in warned["warnings"][0]


def test_a_crashing_check_is_could_not_check_never_a_pass(monkeypatch) -> None:
    webhook = Webhook(policy())
    check = webhook.evaluator.checks_for("Pod")[0]

    def crash(obj, ctx):
        raise ValueError("bad shape")

    broken = type(check)(meta=check.meta, run=crash, kinds=check.kinds, package=check.package)
    webhook.evaluator._for_kind["Pod"] = (broken, *webhook.evaluator.checks_for("Pod")[1:])
    outcome, response = validate(webhook, pod_request(hardened_pod()))
    assert response["allowed"] is False
    assert f"check {check.id} failed" in response["status"]["message"]
    assert ("internal", "error") in outcome.results


# -- image signatures: the signing layer's image policy, against a real registry -------------


class _Recorder:
    """Wraps a real verifier and records which images it was asked about."""

    def __init__(self, inner: SigningVerifier) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def verify(self, image: str, *, deadline: float = DEADLINE) -> ImageVerdict:
        self.calls.append(image)
        return self.inner.verify(image, deadline=deadline)


@pytest.mark.registry
def test_unsigned_image_is_denied_and_signed_admitted(signed_world) -> None:
    from skanse.admission.policy import load_policy

    client, signed, unsigned, directory = signed_world
    loaded = load_policy(directory / "admission.yaml")
    assert loaded.image_policy is not None
    verifier = _Recorder(SigningVerifier(loaded.image_policy, client))
    webhook = Webhook(loaded, verifier=verifier)
    _, admitted = validate(webhook, pod_request(image_pod(signed)))
    assert admitted["allowed"] is True, admitted
    _, denied = validate(webhook, pod_request(image_pod(unsigned)))
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    assert "image-signature" in message and unsigned in message
    # images no glob selects follow the policy's default (allow here)
    nginx = "docker.io/library/nginx:1.27@sha256:" + "0" * 64
    _, other = validate(webhook, pod_request(image_pod(nginx)))
    assert other["allowed"] is True
    assert verifier.calls == [signed, unsigned, nginx]


@pytest.mark.registry
def test_an_unreachable_registry_is_could_not_check_and_denies(signed_world) -> None:
    from skanse.admission.policy import load_policy

    _, signed, _, directory = signed_world
    loaded = load_policy(directory / "admission.yaml")
    assert loaded.image_policy is not None
    host = signed.split("/")[0]
    unreachable = signed.replace(host, "127.0.0.1:9")  # nothing listens on the discard port
    (directory / "images.yaml").write_text(
        (directory / "images.yaml").read_text().replace(host, "127.0.0.1:9")
    )
    loaded = load_policy(directory / "admission.yaml")
    webhook = Webhook(loaded)  # the server's own verifier, built from the policy
    _, response = validate(webhook, pod_request(image_pod(unreachable)))
    assert response["allowed"] is False
    assert "could not check" in response["status"]["message"]


def _key_policy(tmp_path: Path, extra: str = "") -> Any:
    """An image policy requiring the key `ci` for every image."""
    from skanse.signing.policy import load_policy as load_image_policy
    from tests.signing.helpers import new_key

    (tmp_path / "ci.pub").write_bytes(new_key().public_key().pem())
    (tmp_path / "images.yaml").write_text(
        "apiVersion: skanse.io/v1alpha1\nkind: ImagePolicy\nkeys: {ci: ci.pub}\n"
        "images: [{glob: '**', keys: [ci]}]\n" + extra
    )
    return load_image_policy(tmp_path / "images.yaml")


def test_an_image_by_digest_on_an_unreachable_registry_is_could_not_check(
    tmp_path: Path,
) -> None:
    # reported: a digest needs no tag resolved, so the unreachable registry was first met
    # reading the signature places; that denial was labelled "rejected" (an image that
    # failed its check) although nothing could be read, unlike the same image by tag
    from skanse.oci.registry import RegistryClient, RegistryOptions
    from tests._registry import free_port

    images = _key_policy(tmp_path)
    verifier = SigningVerifier(images, RegistryClient(RegistryOptions(timeout=2)))
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    by_digest = f"{host}/team/app@sha256:" + "ab" * 32
    by_tag = f"{host}/team/app:1.0"
    verdicts = [verifier.verify(image) for image in (by_digest, by_tag)]
    assert [v.outcome for v in verdicts] == [ImageOutcome.COULD_NOT_CHECK] * 2
    assert verdicts[0].reason.startswith(f"could not check: referrers of sha256:{'ab' * 32}")
    assert f"cannot reach {host}" in verdicts[0].reason
    webhook = Webhook(policy(image_policy=images), verifier=verifier)
    _, response = validate(webhook, pod_request(image_pod(by_digest)))
    assert response["allowed"] is False
    assert (
        f"image-signature: image {by_digest} (could-not-check): could not check: referrers of"
    ) in response["status"]["message"]
    assert len(images.cache) == 0  # not final: the next review asks again


def _slow_registry_policy(tmp_path: Path, server: Any, *digests: str) -> Any:
    """An image policy requiring a key for everything, and `server` dribbling 30 signature
    payloads of each digest, each inside a 0.5 s request deadline (about 12 s in all)."""
    from skanse.signing.policy import load_policy as load_image_policy
    from tests.signing.helpers import dribbled_signatures, new_key

    for digest in digests:
        dribbled_signatures(server, digest, 30)
    (tmp_path / "ci.pub").write_bytes(new_key().public_key().pem())
    (tmp_path / "images.yaml").write_text(
        "apiVersion: skanse.io/v1alpha1\nkind: ImagePolicy\nkeys: {ci: ci.pub}\n"
        "images: [{glob: '**', keys: [ci]}]\n"
    )
    return load_image_policy(tmp_path / "images.yaml")


def test_a_registry_slower_than_the_review_deadline_is_could_not_check(tmp_path: Path) -> None:
    # reported: a registry answering each request just inside its deadline held a decision
    # thread for their sum (minutes per image), so a few such Pods filled the pool and every
    # review in the cluster timed out. The review's images share one deadline, below the API
    # server's timeoutSeconds; past it the image is "could not check", denied, not cached.
    import time

    from skanse.oci.registry import RegistryClient, RegistryOptions
    from tests.oci.test_registry_errors import Server

    digest = "sha256:" + "ab" * 32
    server = Server()
    try:
        images = _slow_registry_policy(tmp_path, server, digest)
        client = RegistryClient(RegistryOptions(timeout=5, request_deadline=0.5))
        webhook = Webhook(policy(image_policy=images), verifier=SigningVerifier(images, client))
        image = f"{server.host}/team/app@{digest}"
        start = time.monotonic()
        _, response = validate(webhook, pod_request(image_pod(image)))
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert response["allowed"] is False
    assert (
        f"image-signature: image {image} (could-not-check): could not check: the registry did "
        f"not answer within the {DEADLINE:g} s the whole verification may take"
    ) in response["status"]["message"]
    assert elapsed < 3 * DEADLINE  # a bound on a timeout, generous for a loaded machine
    assert len(images.cache) == 0  # not a final decision: the next review asks again


def test_the_images_of_one_review_share_its_deadline(tmp_path: Path) -> None:
    import time

    from skanse.admission.images import verify_images
    from skanse.oci.registry import RegistryClient, RegistryOptions
    from tests.oci.test_registry_errors import Server

    digests = ["sha256:" + "ab" * 32, "sha256:" + "cd" * 32]
    server = Server()
    try:
        images = _slow_registry_policy(tmp_path, server, *digests)
        client = RegistryClient(RegistryOptions(timeout=5, request_deadline=0.5))
        wanted = [f"{server.host}/team/app@{d}" for d in digests]
        start = time.monotonic()
        verdicts = list(verify_images(wanted, SigningVerifier(images, client), deadline=1.0))
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert [v.outcome for v in verdicts] == [ImageOutcome.COULD_NOT_CHECK] * 2
    assert elapsed < 3 * 1.0  # one deadline for both, not one each


def test_a_verifier_that_raises_denies() -> None:
    class Broken:
        def verify(self, image: str, *, deadline: float = DEADLINE) -> ImageVerdict:
            raise RuntimeError("boom")

    webhook = Webhook(policy(), verifier=Broken())
    image = "registry.example.com/a/web:1@sha256:" + "1" * 64
    _, response = validate(webhook, pod_request(image_pod(image)))
    assert response["allowed"] is False
    assert "the verifier failed: RuntimeError: boom" in response["status"]["message"]


def test_update_verifies_only_new_images() -> None:
    class Counting:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def verify(self, image: str, *, deadline: float = DEADLINE) -> ImageVerdict:
            self.calls.append(image)
            return ImageVerdict(image, ImageOutcome.VERIFIED, "ok")

    verifier = Counting()
    webhook = Webhook(policy(), verifier=verifier)
    old = image_pod("registry.example.com/a/web-signed:1")
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["x"] = "y"
    validate(webhook, pod_request(new, operation="UPDATE", old=old))
    assert verifier.calls == []
    changed = copy.deepcopy(old)
    changed["spec"]["containers"][0]["image"] = "registry.example.com/a/web-signed:2"
    validate(webhook, pod_request(changed, operation="UPDATE", old=old))
    assert verifier.calls == ["registry.example.com/a/web-signed:2"]


def test_policy_defaults_are_zero_trust_enforce() -> None:
    default = Policy()
    assert default.profile.value == "zero-trust" and default.default_mode is Mode.ENFORCE
    assert "kube-system" in default.exempt_namespaces


def test_policy_can_limit_which_checks_annotations_suppress(tmp_path: Path) -> None:
    from skanse.admission.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text("annotation-suppressions: [CKV_K8S_43]\n")  # alias of SKN-K8S-027
    limited = load_policy(path)
    pod = privileged(hardened_pod())
    pod["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.4.2"
    pod["metadata"]["annotations"] = {
        "ignore.skanse.io/SKN-K8S-027": "pinned by the pipeline",
        "ignore.skanse.io/SKN-K8S-002": "we really need it",
    }
    _, response = validate(Webhook(limited), pod_request(pod))
    assert response["allowed"] is False
    assert response["auditAnnotations"]["failed"] == "SKN-K8S-002,SKN-K8S-014"
    assert any("ignore.skanse.io/SKN-K8S-002 is not honoured" in w for w in response["warnings"])
    path.write_text("annotation-suppressions: none\n")
    _, none = validate(Webhook(load_policy(path)), pod_request(pod))
    assert "SKN-K8S-027" in none["auditAnnotations"]["failed"]
    _, default = validate(Webhook(policy()), pod_request(pod))
    assert "SKN-K8S-027" in default["auditAnnotations"]["failed"]  # none by default
    _, everything = validate(Webhook(policy(annotation_suppressions=None)), pod_request(pod))
    assert everything["auditAnnotations"]["failed"] == "SKN-K8S-014"  # as the CLI


def test_a_stalling_registry_cannot_hold_every_decision_thread(tmp_path: Path) -> None:
    # reported: about 8 Pods every 3 s whose images live on a registry that accepts and
    # never answers kept all 8 decision threads (AppSettings.decision_threads) waiting, so
    # a review for any other registry queued past the API server's timeout. The pool here is
    # the app's: 8 threads running Webhook.validate. One registry may hold 4 of them; the
    # rest answer at once ("busy"), and a review for a healthy registry is decided while the
    # stalled ones are still waiting.
    import concurrent.futures

    from tests.oci.test_registry_errors import Server
    from tests.signing.helpers import StallingRegistry

    images = _key_policy(tmp_path)  # default: 4 verifications per registry at once
    verifier = SigningVerifier(images)  # the server's: one registry client per thread
    webhook = Webhook(policy(image_policy=images), verifier=verifier, image_deadline=20.0)
    stalling, healthy = StallingRegistry(), Server()  # healthy: no signature anywhere (404)
    pool = concurrent.futures.ThreadPoolExecutor(8)
    try:
        stalled = [
            pool.submit(
                validate,
                webhook,
                pod_request(image_pod(f"{stalling.host}/team/app@sha256:{i:064x}")),
            )
            for i in range(8)
        ]
        other = pool.submit(
            validate, webhook, pod_request(image_pod(f"{healthy.host}/team/app@sha256:{1:064x}"))
        )
        # before this change `other` waited for a stalled review's 20 s deadline
        _, response = other.result(timeout=15)
        waiting = sum(not f.done() for f in stalled)
        connections = stalling.connections
    finally:
        stalling.close()  # the stalled reviews end now ("connection broke")
        healthy.close()
        pool.shutdown(wait=True)
    assert response["allowed"] is False
    assert f"no signature found for sha256:{1:064x}" in response["status"]["message"]
    assert waiting == 4 and connections == 4
    busy = [f.result()[1]["status"]["message"] for f in stalled if "busy" in str(f.result()[1])]
    assert len(busy) == 4
    assert all(f"registry {stalling.host} busy" in message for message in busy)
