"""action.yml, the composite GitHub Action: its shell steps run here as a runner would run
them (inputs and step outputs substituted, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files), with
this checkout's skanse on PATH instead of the install step (which needs an index). The upload
step is GitHub's own action; the test checks it is handed a valid SARIF file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.conftest import ROOT
from tests.report.test_outputs import sarif_schema

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
BAD_POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
    "  - name: a\n    image: a:1\n"
)
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class Runner:
    def __init__(self, workspace: Path, inputs: dict[str, str]) -> None:
        self.workspace = workspace
        self.inputs = {k: str(v.get("default", "")) for k, v in ACTION["inputs"].items()}
        self.inputs.update(inputs)
        self.outputs: dict[str, dict[str, str]] = {}
        self.summary = workspace.parent / "summary.md"

    def value(self, expression: str) -> str:
        if m := re.fullmatch(r"inputs\.([\w-]+)", expression):
            return self.inputs[m.group(1)]
        if expression == "github.action_path":
            return str(ROOT)
        if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression):
            return self.outputs.get(m.group(1), {}).get(m.group(2), "")
        raise AssertionError(f"expression the test runner does not know: {expression}")

    def expand(self, text: str) -> str:
        return _EXPRESSION.sub(lambda m: self.value(m.group(1)), text)

    def condition(self, text: str) -> bool:
        m = re.fullmatch(r"([\w.-]+) != '([^']*)'", text.strip())
        assert m, f"condition the test runner does not know: {text}"
        return self.value(m.group(1)) != m.group(2)

    def run(self, step: dict[str, Any]) -> int:
        out = self.workspace.parent / f"{step['id']}.out"
        out.write_text("")
        env = dict(os.environ)
        env.update({k: self.expand(str(v)) for k, v in step.get("env", {}).items()})
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            GITHUB_OUTPUT=str(out),
            GITHUB_STEP_SUMMARY=str(self.summary),
        )
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.outputs[step["id"]] = dict(
            line.split("=", 1) for line in out.read_text().splitlines() if "=" in line
        )
        return done.returncode


def _steps() -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in ACTION["runs"]["steps"]}


def test_action_is_composite_and_its_inputs_mirror_the_flags() -> None:
    assert ACTION["runs"]["using"] == "composite"
    steps = _steps()
    assert list(steps) == ["install", "scan", "upload", "verdict"]
    assert steps["upload"]["uses"].startswith("github/codeql-action/upload-sarif@")
    assert "pip install" in steps["install"]["run"]
    for name in ("fail-on", "severity", "profile", "pss", "format", "output"):
        variable = "SKANSE_" + name.upper().replace("-", "_")
        assert steps["scan"]["env"][variable] == f"${{{{ inputs.{name} }}}}"


def test_the_steps_scan_write_sarif_for_upload_and_fail_after_it(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    (workspace / "deploy").mkdir(parents=True)
    (workspace / "deploy" / "pod.yaml").write_text(BAD_POD)
    runner = Runner(workspace, {"paths": "deploy"})
    steps = _steps()
    assert runner.run(steps["scan"]) == 0  # the verdict waits until the upload is done
    assert runner.outputs["scan"] == {"exit-code": "1"}
    upload = steps["upload"]["with"]
    sarif = workspace / runner.expand(upload["sarif_file"])
    doc = json.loads(sarif.read_text())
    jsonschema.validate(doc, sarif_schema())
    assert doc["runs"][0]["results"]
    assert runner.expand(upload["category"]) == "skanse"
    assert "findings fail the run" in runner.summary.read_text()
    assert runner.condition(steps["verdict"]["if"])
    assert runner.run(steps["verdict"]) == 1


def test_a_clean_tree_passes_and_inputs_reach_skanse(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    workspace.mkdir()
    (workspace / "web.yaml").write_text((ROOT / "examples" / "hardened" / "web.yaml").read_text())
    (workspace / "pod.yaml").write_text(BAD_POD)
    runner = Runner(workspace, {"paths": "web.yaml", "format": "json", "output": "out.json"})
    steps = _steps()
    assert runner.run(steps["scan"]) == 0
    assert runner.outputs["scan"] == {"exit-code": "0"}
    assert json.loads((workspace / "out.json").read_text())["summary"]["objects"] >= 1
    assert not runner.condition(steps["verdict"]["if"])
    strict = Runner(workspace, {"paths": "pod.yaml", "fail-on": "critical", "output": "o.sarif"})
    strict.run(steps["scan"])
    assert strict.outputs["scan"] == {"exit-code": "0"}  # no CRITICAL finding in pod.yaml
