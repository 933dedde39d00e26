"""ci/skanse.gitlab-ci.yml: its script runs here as a GitLab runner's shell would (variables
in the environment, one command after another, the job failing on the first that fails),
with this checkout's skanse instead of the pip install of before_script."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from tests.conftest import ROOT

TEMPLATE = yaml.safe_load((ROOT / "ci" / "skanse.gitlab-ci.yml").read_text())[".skanse"]
BAD_POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
    "  - name: a\n    image: a:1\n"
)


def _job(workspace: Path, **variables: str) -> int:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.update(TEMPLATE["variables"])
    env.update(variables)
    script = "set -e\n" + "\n".join(TEMPLATE["script"])
    done = subprocess.run(
        ["sh", "-c", script], cwd=workspace, env=env, capture_output=True, timeout=120, check=False
    )
    return done.returncode


def test_the_job_reports_junit_keeps_sarif_and_fails_on_findings(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "pod.yaml").write_text(BAD_POD)
    assert _job(tmp_path, SKANSE_PATHS="deploy") == 1
    report = TEMPLATE["artifacts"]["reports"]["junit"]
    root = ET.parse(tmp_path / report).getroot()  # noqa: S314 - our own output
    assert int(root.get("failures", "0")) > 0
    for kept in TEMPLATE["artifacts"]["paths"]:
        assert (tmp_path / kept).is_file()
    assert "pip install" in TEMPLATE["before_script"][0]


def test_the_job_passes_below_the_threshold(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(BAD_POD)
    assert _job(tmp_path, SKANSE_PATHS="pod.yaml", SKANSE_FAIL_ON="critical") == 0
