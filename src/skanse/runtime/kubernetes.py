"""Kubernetes quarantine behind a narrow interface: label a pod, deny all its traffic.

`Quarantine` needs only `KubernetesApi`, three calls:
    patch_pod_labels(namespace, name, labels)   JSON merge patch of metadata.labels
    apply_network_policy(namespace, body)       create (or keep) a NetworkPolicy
    get_pod(namespace, name)                    read a pod (to confirm the label)
`HttpKubernetesApi` implements them over HTTPS with a bearer token (the DaemonSet's service
account: /var/run/secrets/kubernetes.io/serviceaccount). Nothing else of the API is used,
so the RBAC is two verbs on two resources (deploy/sensor/rbac.yaml).

The quarantine policy selects `skanse.io/quarantine: "true"` in the pod's namespace and
allows nothing in either direction (a NetworkPolicy with both policy types and no rules).
Releasing removes the label; the policy stays, selecting nothing, for the next time.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from skanse.errors import ResponseError

__all__ = [
    "HttpKubernetesApi",
    "KubernetesApi",
    "Quarantine",
    "quarantine_policy",
]

LABEL = "skanse.io/quarantine"
POLICY_NAME = "skanse-quarantine"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubernetesApi(Protocol):
    def get_pod(self, namespace: str, name: str) -> Mapping[str, Any]: ...

    def patch_pod_labels(
        self, namespace: str, name: str, labels: Mapping[str, str | None]
    ) -> Mapping[str, Any]: ...

    def apply_network_policy(
        self, namespace: str, body: Mapping[str, Any]
    ) -> Mapping[str, Any]: ...


def quarantine_policy(namespace: str) -> dict[str, Any]:
    """A deny-all NetworkPolicy for the quarantine label in one namespace."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": POLICY_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "skanse"},
        },
        "spec": {
            "podSelector": {"matchLabels": {LABEL: "true"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


class Quarantine:
    def __init__(self, api: KubernetesApi) -> None:
        self.api = api

    def quarantine(self, namespace: str, pod: str) -> str:
        self.api.apply_network_policy(namespace, quarantine_policy(namespace))
        patched = self.api.patch_pod_labels(namespace, pod, {LABEL: "true"})
        labels = (patched.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL) != "true":
            raise ResponseError(f"pod {namespace}/{pod} did not keep the label {LABEL}")
        return (
            f"labelled pod {namespace}/{pod} {LABEL}=true; "
            f"NetworkPolicy {namespace}/{POLICY_NAME} denies all its traffic"
        )

    def release(self, namespace: str, pod: str) -> str:
        patched = self.api.patch_pod_labels(namespace, pod, {LABEL: None})
        labels = (patched.get("metadata") or {}).get("labels") or {}
        if LABEL in labels:
            raise ResponseError(f"pod {namespace}/{pod} still has the label {LABEL}")
        return f"removed the label {LABEL} from pod {namespace}/{pod}"


class HttpKubernetesApi:
    """The three calls over HTTPS, JSON in and out."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(server)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ResponseError(f"Kubernetes API must be an https:// URL, not {server!r}")
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = (
            ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        )

    @classmethod
    def in_cluster(cls, server: str | None = None) -> HttpKubernetesApi:
        """The service account's token and CA; the API server from the environment."""
        import os

        base = Path(SERVICE_ACCOUNT)
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if server is None:
            if not host:
                raise ResponseError(
                    "not in a cluster: KUBERNETES_SERVICE_HOST is not set; give --kube-api"
                )
            server = f"https://{host}:{port}"
        try:
            token = (base / "token").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ResponseError(f"cannot read the service account token: {exc}") from None
        return cls(server, token=token, ca_file=str(base / "ca.crt"))

    def _request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.server + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - scheme checked in __init__
                request, timeout=self.timeout, context=self.context
            ) as response:
                payload = response.read(16 * 1024 * 1024)
        except urllib.error.HTTPError as exc:
            detail = exc.read(4096).decode("utf-8", "replace")
            raise _ApiError(
                exc.code, f"{method} {path}: HTTP {exc.code}: {_status_message(detail)}"
            ) from None
        except (OSError, urllib.error.URLError) as exc:
            raise ResponseError(f"{method} {path}: {exc}") from None
        try:
            value = json.loads(payload or b"{}")
        except (ValueError, RecursionError):
            raise ResponseError(
                f"{method} {path}: the API answered with something that is not JSON"
            ) from None
        if not isinstance(value, dict):
            raise ResponseError(f"{method} {path}: unexpected answer")
        return value

    def get_pod(self, namespace: str, name: str) -> Mapping[str, Any]:
        return self._request("GET", f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}")

    def patch_pod_labels(
        self, namespace: str, name: str, labels: Mapping[str, str | None]
    ) -> Mapping[str, Any]:
        return self._request(
            "PATCH",
            f"/api/v1/namespaces/{_q(namespace)}/pods/{_q(name)}",
            {"metadata": {"labels": dict(labels)}},
            "application/merge-patch+json",
        )

    def apply_network_policy(self, namespace: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        path = f"/apis/networking.k8s.io/v1/namespaces/{_q(namespace)}/networkpolicies"
        try:
            return self._request("POST", path, body)
        except _ApiError as exc:
            if exc.code != 409:  # AlreadyExists: the policy is there from an earlier quarantine
                raise
            name = str((body.get("metadata") or {}).get("name", ""))
            return self._request("GET", f"{path}/{_q(name)}")


class _ApiError(ResponseError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _status_message(text: str) -> str:
    try:
        status = json.loads(text)
    except (ValueError, RecursionError):
        return text[:200]
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return str(status["message"])
    return text[:200]
