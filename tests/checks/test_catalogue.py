"""Every check runs its own good and bad examples; the catalogue itself is consistent."""

from __future__ import annotations

import re
from typing import Any

import pytest

from skanse.checks._all import REGISTRY
from skanse.checks._registry import Check, Registry
from skanse.checks.dockerfile.base import DockerfileContext
from skanse.checks.kubernetes.base import CheckContext
from skanse.checks.kubernetes.cluster import build_cluster_index
from skanse.errors import RegistryError
from skanse.model import Layer
from skanse.sources.dockerfile import parse_dockerfile
from skanse.sources.manifests import ReadLimits, read_bytes

CHECKS = REGISTRY.all()


def _violations(check: Check[Any, Any], text: str) -> list[str]:
    if check.meta.layer is Layer.DOCKERFILE:
        dockerfile = parse_dockerfile("Dockerfile", text)
        assert not dockerfile.problems, dockerfile.problems
        return [v.message for v in check.run(dockerfile, DockerfileContext())]
    parsed = read_bytes("example.yaml", text.encode(), ReadLimits())
    assert not parsed.problems, parsed.problems
    assert parsed.objects, "an example must contain at least one Kubernetes object"
    ctx = CheckContext(cluster=build_cluster_index(parsed.objects, "default"))
    found: list[str] = []
    for obj in parsed.objects:
        if check.kinds is None or obj.kind in check.kinds:
            found.extend(v.message for v in check.run(obj, ctx))
    return found


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_good_examples_pass(check: Check[Any, Any]) -> None:
    for text in REGISTRY.examples(check).good:
        assert _violations(check, text) == [], text


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_bad_examples_fail(check: Check[Any, Any]) -> None:
    for text in REGISTRY.examples(check).bad:
        assert _violations(check, text), f"{check.id} found nothing in:\n{text}"


def test_every_check_has_examples_metadata_and_a_wellformed_id() -> None:
    for check in CHECKS:
        meta = check.meta
        assert re.fullmatch(r"SKN-(K8S|DF|NET|HOST|IMG)-\d{3}", meta.id), meta.id
        assert meta.title and meta.description and meta.remediation, meta.id
        assert meta.references, f"{meta.id} has no references"
        REGISTRY.examples(check)  # raises RegistryError when missing or malformed


def test_a_check_without_examples_fails_the_catalogue() -> None:
    real = CHECKS[0]
    orphan = Check(
        meta=real.meta.__class__(**{**_fields(real.meta), "id": "SKN-K8S-999"}),
        run=real.run,
        kinds=real.kinds,
        package=real.package,
    )
    with pytest.raises(RegistryError, match="no examples"):
        Registry([orphan]).examples(orphan)


def test_duplicate_ids_fail_at_construction() -> None:
    with pytest.raises(RegistryError, match="registered twice"):
        Registry([CHECKS[0]], [CHECKS[0]])


def test_aliases_resolve_to_check_ids_in_any_case() -> None:
    assert REGISTRY.resolve("ksv-0017") == ["SKN-K8S-002"]
    assert REGISTRY.resolve("CKV_K8S_20") == ["SKN-K8S-014"]
    assert REGISTRY.resolve("skn-k8s-001") == ["SKN-K8S-001"]
    assert REGISTRY.resolve("NOPE-1") == []


def _fields(meta: Any) -> dict[str, Any]:
    return {name: getattr(meta, name) for name in meta.__dataclass_fields__}
