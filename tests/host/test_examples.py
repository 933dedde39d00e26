"""Every host check runs its own good and bad example trees; a check without examples fails."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.checks._registry import Check, Registry
from skanse.errors import RegistryError
from skanse.host.checks._all import HOST_REGISTRY
from skanse.host.facts import HostFacts
from skanse.host.root import HostRoot

from .trees import materialize

CHECKS = HOST_REGISTRY.all()


def _run(check: Check[Any, Any], text: str, root: Path) -> list[str]:
    spec = yaml.safe_load(text)
    ctx = materialize(spec, root)
    facts = HostFacts(HostRoot(root))
    return [v.message for v in check.run(facts, ctx)]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_good_examples_pass(check: Check[Any, Any], tmp_path: Path) -> None:
    for n, text in enumerate(HOST_REGISTRY.examples(check).good):
        # any exception (could not check, not applicable) fails the test: a good example
        # must be a real pass
        assert _run(check, text, tmp_path / f"good{n}") == [], text


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_bad_examples_fail(check: Check[Any, Any], tmp_path: Path) -> None:
    for n, text in enumerate(HOST_REGISTRY.examples(check).bad):
        assert _run(check, text, tmp_path / f"bad{n}"), f"{check.id} found nothing in:\n{text}"


def test_every_host_check_has_examples_metadata_and_a_wellformed_id() -> None:
    assert len(CHECKS) >= 60
    for check in CHECKS:
        meta = check.meta
        assert re.fullmatch(r"SKN-HOST-\d{3}", meta.id), meta.id
        assert meta.layer.value == "host"
        assert meta.title and meta.description and meta.remediation, meta.id
        assert meta.references, f"{meta.id} has no references"
        HOST_REGISTRY.examples(check)  # raises RegistryError when missing or malformed


def test_a_host_check_without_examples_fails_the_catalogue() -> None:
    real = CHECKS[0]
    fields = {name: getattr(real.meta, name) for name in real.meta.__dataclass_fields__}
    orphan = Check(
        meta=real.meta.__class__(**{**fields, "id": "SKN-HOST-999"}),
        run=real.run,
        kinds=None,
        package=real.package,
    )
    with pytest.raises(RegistryError, match="no examples"):
        Registry([orphan]).examples(orphan)


def test_host_ids_do_not_collide_with_the_manifest_registry() -> None:
    from skanse.checks._all import REGISTRY

    assert not {c.id for c in CHECKS} & {c.id for c in REGISTRY.all()}
