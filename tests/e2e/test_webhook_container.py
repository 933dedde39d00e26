"""The admission webhook in skanse's own image, run under podman as deploy/admission/ runs it:
UID 10001, read-only root file system, every capability dropped, no privilege escalation,
the TLS secret and the policy mounted read-only, a small /tmp. It answers AdmissionReviews
over HTTPS with the mounted certificate."""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from skanse.admission.certs import issue
from tests._registry import free_port
from tests.admission.conftest import hardened_pod, pod_request, privileged, review
from tests.e2e.conftest import PROJECT, Images, podman, podman_run

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Webhook:
    container: str
    url: str
    ca: ssl.SSLContext

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ca, timeout=10)


@pytest.fixture(scope="module")
def webhook(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    work = tmp_path_factory.mktemp("webhook-container")
    tls, policy = work / "tls", work / "policy"
    issue(tls, service="skanse-admission", namespace="skanse-system", extra_names=("127.0.0.1",))
    # a Secret volume with fsGroup 10001: the key readable by the pod's group, not others
    for name in ("tls.crt", "tls.key"):
        os.chown(tls / name, 0, 10001)
        (tls / name).chmod(0o640)
    policy.mkdir()
    shutil.copy(PROJECT / "deploy" / "admission" / "policy.yaml", policy / "policy.yaml")
    port = free_port()
    name = f"skanse-webhook-{secrets.token_hex(4)}"
    podman_run(
        "-d", "--name", name, "--network", "host",
        "--user", "10001:10001", "--group-add", "10001",
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", "/tmp:size=16m",
        "-v", f"{tls}:/etc/skanse/tls:ro", "-v", f"{policy}:/etc/skanse/policy:ro",
        "-e", "POD_NAMESPACE=skanse-system",
        images.cli.name,
        "admission", "serve", "--policy=/etc/skanse/policy/policy.yaml",
        "--cert=/etc/skanse/tls/tls.crt", "--key=/etc/skanse/tls/tls.key",
        "--host=127.0.0.1", f"--port={port}",
    )  # fmt: skip
    running = Webhook(
        name, f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(tls / "ca.crt"))
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with running.client() as client:
                    if client.get("/readyz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            state = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            if state != "true" or time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                pytest.fail(f"the webhook container did not get ready: {logs.stderr[-3000:]}")
            time.sleep(0.2)
        yield running
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def test_runs_unprivileged_on_a_read_only_root(webhook: Webhook) -> None:
    status = podman("exec", webhook.container, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[:2] == ["10001", "10001"]
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    write = podman("exec", webhook.container, "touch", "/opt/skanse/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_answers_admission_reviews_over_https(webhook: Webhook) -> None:
    with webhook.client() as client:
        assert client.get("/healthz").text == "ok\n"
        headers = {"content-type": "application/json"}
        denied = client.post(
            "/validate", content=review(pod_request(privileged(hardened_pod()))), headers=headers
        ).json()["response"]
        allowed = client.post(
            "/validate", content=review(pod_request(hardened_pod())), headers=headers
        ).json()["response"]
    assert denied["allowed"] is False
    assert "SKN-K8S-002" in denied["status"]["message"]
    assert allowed["allowed"] is True, allowed


def test_plain_http_is_refused(webhook: Webhook) -> None:
    plain = webhook.url.replace("https://", "http://")
    with httpx.Client(timeout=5) as client:
        response = client.get(plain + "/healthz")
    assert response.status_code == 400
