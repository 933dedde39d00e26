"""Build network models from plain data in tests: manifests as JSON, read like files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from skanse.netpol.load import build_model
from skanse.netpol.model import NetworkModel
from skanse.sources.manifests import ReadLimits, read_bytes


def objects_from(documents: Iterable[Mapping[str, Any]], name: str = "test.yaml") -> list[Any]:
    text = "\n---\n".join(json.dumps(d, indent=1) for d in documents)
    mf = read_bytes(name, text.encode(), ReadLimits())
    assert not mf.problems, mf.problems
    return mf.objects


def write_manifests(directory: Path, documents: Iterable[Mapping[str, Any]]) -> str:
    """The documents as one multi-document manifest file in `directory`; its path, for the CLI."""
    path = directory / "cluster.yaml"
    path.write_text("\n---\n".join(json.dumps(d) for d in documents), encoding="utf-8")
    return str(path)


def model_from(documents: Iterable[Mapping[str, Any]], name: str = "test.yaml") -> NetworkModel:
    return build_model(objects_from(documents, name))


def namespace(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(labels or {})},
    }


def pod(
    ns: str,
    name: str,
    labels: Mapping[str, str],
    ports: Iterable[tuple[str, int, str]] = (),
    ip: str | None = None,
) -> dict[str, Any]:
    """A bare Pod; ports are (name, number, protocol), one container each."""
    containers = [
        {
            "name": f"c{i}",
            "image": "x",
            "ports": [{"name": n, "containerPort": p, "protocol": proto}],
        }
        for i, (n, p, proto) in enumerate(ports)
    ] or [{"name": "c", "image": "x"}]
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {"containers": containers},
    }
    if ip:
        doc["status"] = {"podIP": ip}
    return doc


def deployment(
    ns: str, name: str, labels: Mapping[str, str], ports: Iterable[int] = ()
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {"name": name, "image": "x", "ports": [{"containerPort": p} for p in ports]}
                    ]
                },
            },
        },
    }


def policy(ns: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": dict(spec),
    }
