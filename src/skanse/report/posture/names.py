"""Names the posture document uses for layers, workloads and images, shared by the modules
that join layer results to one another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LAYERS", "image_key", "workload_label"]

LAYERS: dict[str, str] = {
    "kubernetes": "Kubernetes manifests",
    "dockerfile": "Dockerfiles",
    "network": "Network policies",
    "images": "Images: SBOM, vulnerabilities, signatures",
    "runtime": "Runtime alerts",
    "host": "Host and kernel",
}


def image_key(reference: str) -> tuple[str, str]:
    """(repository, tag or digest) with Docker's defaults: `nginx` is
    `docker.io/library/nginx:latest`."""
    from skanse.oci.reference import parse_reference

    try:
        ref = parse_reference(reference)
    except Exception:  # a malformed image name in a manifest is compared as written
        return (reference, "")
    return (ref.repository, ref.digest or ref.tag or "latest")


def workload_label(resource: Mapping[str, Any]) -> str:
    """netpol's name for a workload: ns/name[Kind]."""
    namespace = resource.get("namespace") or "default"
    return f"{namespace}/{resource.get('name')}[{resource.get('kind')}]"
