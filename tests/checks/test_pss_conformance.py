"""Pod Security Standards against the upstream Pod Security Admission fixtures.

Every file under corpora/pss/<level>/<version>/<pass|fail>/ must get exactly the directory's
verdict at its level and version, both through `pss.evaluate` (what the admission webhook
will use) and through `scan_manifests` with the matching profile (what `skanse scan` does).
Fail fixtures must be denied by the control their file name names, or by the restricted
control that overrides it at that version.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from skanse.checks.kubernetes.pss import CONTROLS, evaluate
from skanse.checks.kubernetes.pss_policy import parse_policy
from skanse.checks.profiles import Profile
from skanse.scan import ScanOptions, scan_manifests
from skanse.sources.kubernetes import pod_spec
from skanse.sources.manifests import ReadLimits, read_bytes
from tests.conftest import corpus_path

_OVERRIDDEN_BY = {
    overridden: control.id
    for control in CONTROLS
    for impl in control.versions
    for overridden in impl.overrides
}


def _fixtures() -> list[Path]:
    root = corpus_path("pss")
    return sorted(root.glob("*/v1.*/*/*.yaml"))


def _pod(path: Path):
    parsed = read_bytes(str(path), path.read_bytes(), ReadLimits())
    assert not parsed.problems and len(parsed.objects) == 1
    pod = pod_spec(parsed.objects[0])
    assert pod is not None
    return pod


@pytest.mark.corpus
def test_every_fixture_gets_the_upstream_verdict() -> None:
    files = _fixtures()
    assert len(files) == 4537, "the corpus should hold 4,537 fixtures (see its SOURCES.md)"
    wrong = []
    for path in files:
        level, version, verdict = path.parts[-4], path.parts[-3], path.parts[-2]
        policy = parse_policy(f"{level}@{version}")
        denial = evaluate(_pod(path), policy)
        expected_allowed = verdict == "pass"
        if denial.allowed != expected_allowed:
            wrong.append(f"{path}: expected {verdict}, got {denial.message or 'allowed'}")
            continue
        if not expected_allowed:
            named = path.stem.rstrip("0123456789")
            failing = {cid.lower() for cid, _ in denial.failures}
            acceptable = {named, _OVERRIDDEN_BY.get(_control_id(named), "").lower()}
            if not failing & acceptable:
                wrong.append(f"{path}: denied by {sorted(failing)}, not by {named}")
    assert wrong == [], "\n".join(wrong[:20])


def _control_id(lowered: str) -> str:
    return next((c.id for c in CONTROLS if c.id.lower() == lowered), lowered)


@pytest.mark.corpus
@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_scan_profiles_agree_with_the_fixtures(level: str) -> None:
    """The same verdicts through the scanner: profile pss-<level> at each fixture's version."""
    files = [p for p in _fixtures() if p.parts[-4] == level]
    wrong = []
    for path in files:
        version, verdict = path.parts[-3], path.parts[-2]
        options = ScanOptions(
            profile=Profile(f"pss-{level}"), pss=parse_policy(f"{level}@{version}")
        )
        result = scan_manifests([str(path)], options)
        assert not result.problems
        if bool(result.findings) != (verdict == "fail"):
            ids = sorted({f.check_id for f in result.findings})
            wrong.append(f"{path}: expected {verdict}, findings {ids}")
    assert wrong == [], "\n".join(wrong[:20])


@pytest.mark.corpus
def test_ephemeral_containers_are_checked_like_the_others() -> None:
    """The corpus has no ephemeral containers; PSA visits them (policy/visitor.go). Move the
    offending container of every restricted v1.37 fail fixture into ephemeralContainers: the
    verdict and the control must not change, and findings must point into the ephemeral list."""
    root = corpus_path("pss", "restricted", "v1.37")
    base = _pod(root / "pass" / "base.yaml").spec
    moved = 0
    for path in sorted((root / "fail").glob("*.yaml")):
        original = _pod(path)
        policy = parse_policy("restricted@v1.37")
        before = {cid for cid, _ in evaluate(original, policy).failures}
        if not any(
            "/spec/containers/" in site.pointer
            for control_id, result in evaluate(original, policy).failures
            for site in result.sites
        ):
            continue  # a pod-level violation; nothing to move
        document = copy.deepcopy(original.obj.data)
        spec = document["spec"]
        spec["ephemeralContainers"] = spec["containers"]
        spec["containers"] = copy.deepcopy(base["containers"])
        parsed = read_bytes("moved.json", json.dumps(document).encode(), ReadLimits())
        pod = pod_spec(parsed.objects[0])
        assert pod is not None
        denial = evaluate(pod, policy)
        after = {cid for cid, _ in denial.failures}
        assert after == before, f"{path.name}: {before} -> {after}"
        pointers = [s.pointer for _, r in denial.failures for s in r.sites]
        assert any(p.startswith("/spec/ephemeralContainers/") for p in pointers), path.name
        moved += 1
    assert moved >= 25  # 29 of the 75 fail fixtures are container-level at v1.37


@pytest.mark.corpus
def test_recorded_privileged_ephemeral_container_is_found() -> None:
    """A Pod captured from a real API server with a privileged ephemeral container."""
    path = corpus_path(
        "admission", "kubewarden", "pod-privileged-policy", "test_data",
        "privileged_ephemeral_container.json",
    )  # fmt: skip
    request = json.loads(path.read_text())
    parsed = read_bytes("request.json", json.dumps(request["object"]).encode(), ReadLimits())
    pod = pod_spec(parsed.objects[0])
    assert pod is not None
    denial = evaluate(pod, parse_policy("baseline"))
    assert [cid for cid, _ in denial.failures] == ["privileged"]
    (site,) = denial.failures[0][1].sites
    assert site.pointer == "/spec/ephemeralContainers/0/securityContext/privileged"
    assert denial.message == (
        'violates PodSecurity "baseline:latest": privileged '
        '(container "nginx" must not set securityContext.privileged=true)'
    )
