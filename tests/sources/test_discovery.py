"""Which files are inputs (issue 19, cases 3 and 4): Dockerfile names as BuildKit and Trivy
recognise them, and kustomize patches and kustomizations that are not objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.scan import scan
from skanse.sources.files import is_dockerfile_name
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "name",
    ["Dockerfile", "dockerfile", "Containerfile", "Dockerfile.prod", "Dockerfile.run.basic",
     "Dockerfile.template", "prod.dockerfile", "api.Dockerfile", "Containerfile.arm64",
     ".Dockerfile"],
)  # fmt: skip
def test_dockerfile_names(name: str) -> None:
    assert is_dockerfile_name(name)


@pytest.mark.parametrize(
    "name",
    ["dockerfile.py", "Dockerfile.md", "Dockerfile.dockerignore", "api.Dockerfile.dockerignore",
     "Dockerfile.yaml", "Dockerfile.sh", "Dockerfilebuild", "buildDockerfile",
     "dockerfile_test.go"],
)  # fmt: skip
def test_names_that_are_not_dockerfiles(name: str) -> None:
    assert not is_dockerfile_name(name)


def test_scanning_skanse_sources_finds_no_dockerfile_in_python_modules() -> None:
    result = scan([str(ROOT / "src")])
    assert not [f for f in result.findings if f.location.file.endswith(".py")]
    assert not [p for p in result.problems if p.file.endswith(".py")]


KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deploy.yaml
patches:
- path: patch.yaml
patchesStrategicMerge:
- legacy-patch.yaml
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - {name: app, image: app:1}
"""
PATCH = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    spec:
      containers:
      - name: app
        securityContext: {privileged: true}
"""


def test_kustomize_patches_and_the_kustomization_are_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "kustomization.yaml").write_text(KUSTOMIZATION)
    (tmp_path / "deploy.yaml").write_text(DEPLOYMENT)
    (tmp_path / "patch.yaml").write_text(PATCH)
    (tmp_path / "legacy-patch.yaml").write_text(PATCH)
    result = scan([str(tmp_path)])
    assert {f.location.file for f in result.findings} == {str(tmp_path / "deploy.yaml")}
    assert not any(f.check_id == "SKN-K8S-002" for f in result.findings)  # privileged: patch
    skipped = {Path(s.file).name: s.reason for s in result.skipped}
    assert set(skipped) == {"kustomization.yaml", "patch.yaml", "legacy-patch.yaml"}
    assert "kustomize patch" in skipped["patch.yaml"]
    assert "kubectl kustomize" in skipped["kustomization.yaml"]
    assert not result.unknown_kinds  # the kustomization is not a custom resource
    # named alone, a patch is still known as one by the kustomization next to it
    alone = scan([str(tmp_path / "patch.yaml")])
    assert alone.findings == () and [Path(s.file).name for s in alone.skipped] == ["patch.yaml"]


def test_render_builds_the_overlay_with_kubectl_and_covers_its_files(tmp_path: Path) -> None:
    import shutil

    from skanse.scan import ScanOptions

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH (--render needs it)")
    base, overlay = tmp_path / "base", tmp_path / "overlay"
    base.mkdir()
    overlay.mkdir()
    (base / "deploy.yaml").write_text(DEPLOYMENT)
    (base / "kustomization.yaml").write_text("resources:\n- deploy.yaml\n")
    (overlay / "kustomization.yaml").write_text(
        "resources:\n- ../base\npatches:\n- path: patch.yaml\n"
    )
    (overlay / "patch.yaml").write_text(PATCH)
    result = scan([str(tmp_path)], ScanOptions(render=True))
    rendered = {f.location.file for f in result.findings}
    assert rendered == {f"<kubectl kustomize {overlay}>"} or all(
        name.startswith("<kubectl kustomize") for name in rendered
    )
    # the patch is merged: the one Deployment that exists is privileged
    assert [f.resource.name for f in result.findings if f.check_id == "SKN-K8S-002"] == ["app"]
    assert result.objects_scanned == 1
    assert len(result.skipped) == 4 and all(
        "built by kubectl kustomize" in s.reason for s in result.skipped
    )
