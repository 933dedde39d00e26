"""`skanse admission certs`, `skanse admission audit`, and the deployment manifests."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from skanse.admission.audit import audit, policy_reports
from skanse.admission.certs import dns_names, issue
from skanse.admission.evaluate import Evaluator, ReviewLimits
from skanse.errors import CertificateError
from tests.admission.conftest import hardened_pod, policy, privileged, recorded, repo_root

DEPLOY = repo_root() / "deploy" / "admission"


# -- certs -------------------------------------------------------------------------------------


def test_certs_chain_names_and_permissions(tmp_path: Path) -> None:
    issued = issue(tmp_path, service="hook", namespace="sec")
    cert = x509.load_pem_x509_certificate(issued.tls_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == dns_names("hook", "sec")
    ca = x509.load_pem_x509_certificate(issued.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert base64.b64decode(issued.ca_bundle) == issued.ca_cert.read_bytes()
    for key in (issued.tls_key, issued.ca_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # a TLS server context accepts the pair and a client trusting the bundle verifies it
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(issued.tls_cert, issued.tls_key)
    client = ssl.create_default_context(cadata=issued.ca_cert.read_text())
    assert client.verify_mode == ssl.CERT_REQUIRED


def test_certs_reuse_the_ca_so_the_bundle_stays(tmp_path: Path) -> None:
    first = issue(tmp_path, service="hook", namespace="sec")
    old_cert = first.tls_cert.read_bytes()
    second = issue(tmp_path, service="hook", namespace="sec")
    assert second.reused_ca and second.ca_bundle == first.ca_bundle
    assert second.tls_cert.read_bytes() != old_cert


def test_certs_cli_prints_the_bundle(tmp_path: Path, cli) -> None:
    result = cli("admission", "certs", "--out", str(tmp_path), "--name", "127.0.0.1")
    assert result.code == 0
    bundle = result.stdout.strip()
    assert base64.b64decode(bundle) == (tmp_path / "ca.crt").read_bytes()
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--days", "0"), "argument --days: '0' is not a whole number of days from 1 to 36500"),
        (("--days", "-3"), "argument --days: '-3' is not"),
        (("--days", "99999999999"), "argument --days: '99999999999' is not"),  # was internal
        (("--ca-days", "0"), "argument --ca-days: '0' is not"),
    ],
)
def test_certs_lifetimes_are_checked(
    args: tuple[str, ...], message: str, tmp_path: Path, cli, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        cli("admission", "certs", "--out", str(tmp_path / "tls"), *args)
    assert usage.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "tls").exists()
    # the library refuses them too
    with pytest.raises(CertificateError, match="lifetimes are 1 to 36500 days"):
        issue(tmp_path / "tls", service="hook", namespace="sec", days=0)
    assert not (tmp_path / "tls").exists()


def test_certs_refuse_half_a_ca_and_an_unwritable_directory(tmp_path: Path, cli) -> None:
    """Reported: a directory with ca.crt but no ca.key got a new CA over the old one, which
    silently changes the caBundle every cluster trusts; --out /proc/x was an internal error."""
    (tmp_path / "ca.crt").write_text("the CA the clusters trust\n")
    result = cli("admission", "certs", "--out", str(tmp_path))
    assert result.code == 2 and "refusing to replace the CA" in result.stderr
    assert (tmp_path / "ca.crt").read_text() == "the CA the clusters trust\n"
    assert not (tmp_path / "tls.crt").exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = cli("admission", "certs", "--out", str(blocked / "tls"))
    assert result.code == 2 and "cannot create" in result.stderr
    assert "internal error" not in result.stderr


# -- audit -------------------------------------------------------------------------------------


def _dump(*objects: dict[str, Any]) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}).encode()


def test_audit_says_what_the_webhook_would_deny() -> None:
    bad = privileged(hardened_pod(name="bad"))
    good = hardened_pod(name="good")
    system = privileged(hardened_pod(name="proxy", namespace="kube-system"))
    deployment = recorded("user-group-psp-policy/test_data/deployment_root_user.json")["object"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    evaluator = Evaluator(policy())
    result = audit("cluster.json", _dump(bad, good, system, deployment, service), evaluator)
    decisions = {o.resource.name: o.decision for o in result.objects}
    assert decisions == {"bad": "deny", "good": "allow", "proxy": "exempt", "nginx": "deny"}
    assert {f.check_id for f in result.result.findings if f.resource.name == "bad"} == {
        "SKN-K8S-002",
        "SKN-K8S-014",
    }
    # the same verdict as the webhook's for the same object
    from skanse.admission.handler import Webhook
    from tests.admission.conftest import pod_request, review

    outcome = Webhook(policy()).validate(review(pod_request(bad)))
    assert set(outcome.failed) == {"SKN-K8S-002", "SKN-K8S-014"}
    assert any("not check this kind" in s.reason for s in result.result.skipped)


def test_policy_reports_are_wgpolicyk8s_v1alpha2() -> None:
    bad = privileged(hardened_pod(name="bad"))
    bad["metadata"]["uid"] = "1234"
    evaluator = Evaluator(policy())
    reports = policy_reports(audit("c.json", _dump(bad, hardened_pod()), evaluator), evaluator)
    assert reports["kind"] == "List"
    (report,) = reports["items"]
    assert report["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and report["kind"] == "PolicyReport"
    assert report["metadata"]["namespace"] == "shop"
    checks = len(evaluator.checks_for("Pod"))
    assert report["summary"] == {
        "pass": 2 * checks - 2,
        "fail": 2,
        "warn": 0,
        "error": 0,
        "skip": 0,
    }
    for result in report["results"]:
        assert result["result"] in ("pass", "fail", "warn", "error", "skip")
        assert result["severity"] in ("critical", "high", "medium", "low", "info")
        assert result["source"] == "skanse" and result["policy"] == "skanse-zero-trust"
        assert result["resources"] == [
            {"apiVersion": "v1", "kind": "Pod", "name": "bad", "namespace": "shop", "uid": "1234"}
        ]
        assert set(result["timestamp"]) == {"seconds", "nanos"}
    assert {r["rule"] for r in report["results"]} == {"SKN-K8S-002", "SKN-K8S-014"}


def test_audit_cli_exit_codes_and_formats(tmp_path: Path, cli) -> None:
    dump = tmp_path / "pods.json"
    dump.write_bytes(_dump(privileged(hardened_pod(name="bad"))))
    result = cli("admission", "audit", str(dump))
    assert result.code == 1 and "would deny Pod/shop/bad: SKN-K8S-002, SKN-K8S-014" in (
        result.stderr
    )
    result = cli("admission", "audit", str(dump), "--format", "policyreport")
    assert json.loads(result.stdout)["items"][0]["summary"]["fail"] == 2
    sarif = cli("admission", "audit", str(dump), "--format", "sarif")
    assert json.loads(sarif.stdout)["version"] == "2.1.0"
    clean = tmp_path / "clean.json"
    clean.write_bytes(_dump(hardened_pod()))
    assert cli("admission", "audit", str(clean)).code == 0
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("namespaces:\n  shop: warn\n")
    warned = cli("admission", "audit", str(dump), "--policy", str(policy_file))
    assert warned.code == 0 and "1 allowed with warnings" in warned.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert cli("admission", "audit", str(broken)).code == 2


def test_audit_applies_the_webhooks_caps() -> None:
    """Reported: a hardened Pod with 1,001 containers was "pass" in the audit while the
    webhook refuses to check it (and so denies it in enforce mode)."""
    pod = hardened_pod(name="wide")
    container = pod["spec"]["containers"][0]
    pod["spec"]["containers"] = [dict(container, name=f"c{i}") for i in range(1001)]
    evaluator = Evaluator(policy())
    result = audit("c.json", _dump(pod, hardened_pod()), evaluator)
    decisions = {o.resource.name: (o.decision, o.reason) for o in result.objects}
    assert decisions["wide"][0] == "error" and "1001 containers" in decisions["wide"][1]
    assert decisions["web"] == ("allow", "")
    assert [p.kind.value for p in result.result.problems] == ["too-large"]
    from skanse.admission.handler import Webhook
    from tests.admission.conftest import pod_request, review

    assert Webhook(policy()).validate(review(pod_request(pod))).decision == "error"
    # the findings cap too
    bad = privileged(hardened_pod(name="bad"))
    capped = audit("c.json", _dump(bad), evaluator, review_limits=ReviewLimits(findings=1))
    (item,) = capped.objects
    assert item.decision == "error" and "more than the 1 one answer lists" in item.reason
    assert capped.result.findings == ()


def test_audit_cli_fails_closed_on_what_it_could_not_check(tmp_path: Path, cli) -> None:
    """Reported: a Pod without spec was "could not be checked" but the audit exited 0."""
    nospec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nospec", "namespace": "x"}}
    dump = tmp_path / "pods.json"
    dump.write_bytes(_dump(nospec, hardened_pod()))
    result = cli("admission", "audit", str(dump))
    assert result.code == 2
    assert "could not check Pod/x/nospec: no pod spec" in result.stderr
    allowed = cli("admission", "audit", str(dump), "--allow-unchecked")
    assert allowed.code == 0 and "allowed by --allow-unchecked" in allowed.stderr
    wide = hardened_pod(name="wide")
    container = wide["spec"]["containers"][0]
    wide["spec"]["containers"] = [dict(container, name=f"c{i}") for i in range(1001)]
    dump.write_bytes(_dump(wide))
    assert cli("admission", "audit", str(dump)).code == 2


def test_audit_cli_escapes_names_on_stderr(tmp_path: Path, cli) -> None:
    bad = privileged(hardened_pod(name="evil\x1b[2J\nFAKE: all clear"))
    dump = tmp_path / "pods.json"
    dump.write_bytes(_dump(bad))
    result = cli("admission", "audit", str(dump), "--format", "json")
    assert result.code == 1
    assert "\x1b" not in result.stderr and "\nFAKE" not in result.stderr
    assert "would deny Pod/shop/evil\\x1b[2J\\nFAKE: all clear: SKN-K8S-002" in result.stderr


# -- deployment --------------------------------------------------------------------------------


def _documents(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d and "kind" in d)
    return docs


def test_deployment_passes_zero_trust_with_no_findings(cli) -> None:
    # deploy/admission only: deploy/sensor is a node agent whose privileges are findings,
    # suppressed with their reasons (tests/runtime/test_deploy.py)
    result = cli("scan", "--profile", "zero-trust", "--format", "json", str(DEPLOY))
    assert result.code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["findings"] == []
    assert report["summary"]["objects"] >= 10 and report["problems"] == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) absent")
def test_rendered_kustomization_passes_zero_trust(cli, tmp_path: Path) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, check=True, text=True
    ).stdout
    result = cli("scan", "--profile", "zero-trust", "-", stdin=rendered.encode())
    assert result.code == 0, result.stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    assert {"Deployment", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    # the base never blocks pod creation: the webhook configurations come last, separately
    assert not {k for k in kinds if k.endswith("WebhookConfiguration")}
    # the webhook admits itself too (its namespace is exempt, but it would pass anyway)
    dump = tmp_path / "rendered.yaml"
    dump.write_text(rendered)
    assert cli("admission", "audit", str(dump)).code == 0


def test_webhook_configurations() -> None:
    docs = _documents()
    configs = _documents(DEPLOY / "webhooks")
    assert {c["kind"] for c in configs} == {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
    for config in configs:
        for hook in config["webhooks"]:
            assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 5
            # no empty caBundle to forget: it is patched in or injected by cert-manager
            assert "caBundle" not in hook["clientConfig"]
            assert hook["sideEffects"] == "None" and hook["matchPolicy"] == "Equivalent"
            assert hook["admissionReviewVersions"] == ["v1"]
            (expression,) = hook["namespaceSelector"]["matchExpressions"]
            assert expression["operator"] == "NotIn"
            assert set(expression["values"]) == {"kube-system", "skanse-system"}
            resources = {r for rule in hook["rules"] for r in rule["resources"]}
            assert {
                "pods",
                "deployments",
                "statefulsets",
                "daemonsets",
                "jobs",
                "cronjobs",
                "replicasets",
            } <= resources
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    policies = {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies == {"default-deny", "allow-dns", "allow-apiserver"}


def test_the_shipped_policy_loads_and_is_what_the_deployment_serves() -> None:
    """The ConfigMap's policy.yaml must load, or every replica exits at start."""
    from skanse.admission.policy import Mode, load_policy
    from skanse.checks.profiles import Profile

    shipped = load_policy(DEPLOY / "policy.yaml")
    assert shipped.profile is Profile.ZERO_TRUST and shipped.default_mode is Mode.ENFORCE
    assert shipped.mutation.modes == frozenset({Mode.ENFORCE})
    deployment = next(d for d in _documents() if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--policy=/etc/skanse/policy/policy.yaml" in container["args"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["policy"] == "/etc/skanse/policy"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "skanse-admission-policy"


def _render(directory: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, check=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(rendered) if d]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) absent")
def test_install_order_and_the_cert_manager_path() -> None:
    """Reported: applying the base as shipped blocked every pod creation until certificates
    were made by hand (empty caBundle, failurePolicy Fail, no TLS Secret yet). The base holds
    no webhook configuration; cert-manager's Certificate makes the Secret the Deployment
    mounts, for the Service's name, and the cainjector fills caBundle from it."""
    base = _render(DEPLOY)
    assert not [d for d in base if d["kind"].endswith("WebhookConfiguration")]
    deployment = next(d for d in base if d["kind"] == "Deployment")
    service = next(d for d in base if d["kind"] == "Service")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret = volumes["tls"]["secret"]["secretName"]

    issued = _render(DEPLOY / "cert-manager")
    certificates = {d["metadata"]["name"]: d for d in issued if d["kind"] == "Certificate"}
    serving = next(c for c in certificates.values() if c["spec"]["secretName"] == secret)
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert f"{name}.{namespace}.svc" in serving["spec"]["dnsNames"]
    issuer = serving["spec"]["issuerRef"]["name"]
    assert any(
        d["kind"] == "Issuer" and d["metadata"]["name"] == issuer and "ca" in d["spec"]
        for d in issued
    )

    injected = _render(DEPLOY / "webhooks-cert-manager")
    assert {d["kind"] for d in injected} == {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
    for config in injected:
        source = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert source == f"{serving['metadata']['namespace']}/{serving['metadata']['name']}"
        for hook in config["webhooks"]:
            assert hook["clientConfig"]["service"]["name"] == name
