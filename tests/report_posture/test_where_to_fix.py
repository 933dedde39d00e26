"""Every finding in the report with its file and line, check, severity and fix command."""

from __future__ import annotations

import json
import shlex

from skanse.config import LoadedConfig
from skanse.report.posture.build import build_posture
from skanse.report.posture.collect import run_scan
from skanse.report.posture.html import render_html
from tests.conftest import ROOT


def test_every_finding_is_listed_with_its_location_and_fix() -> None:
    examples = str(ROOT / "examples")
    scan = run_scan([examples], LoadedConfig.empty())
    posture = build_posture([scan], tool_version="test")
    scanned = scan.data["findings"]
    listed = posture["findings"]
    # complete in JSON: one entry per finding of the scan, suppressed ones marked
    assert len(listed) == len(scanned)
    assert sum(f["suppressed"] for f in listed) == sum(bool(f["suppressed"]) for f in scanned)
    by_place = {(f["check_id"], f["file"], f["line"]) for f in listed}
    for f in scanned:
        assert (f["check_id"], f["location"]["file"], f["location"]["line"]) in by_place
    privileged = next(f for f in listed if f["check_id"] == "SKN-K8S-002")
    assert privileged["file"].endswith("examples/insecure/legacy-app.yaml")
    assert isinstance(privileged["line"], int) and privileged["line"] > 1
    assert privileged["fix"] == f"skanse fix -- {shlex.quote(privileged['file'])}"
    deny = next(f for f in listed if f["check_id"] == "SKN-K8S-030")
    assert deny["fix"].startswith("skanse fix --network-policies -- ")
    not_fixable = next(f for f in listed if f["check_id"] == "SKN-NET-001")
    assert not_fixable["fix"] is None and not_fixable["remediation"]
    json.dumps(posture)

    html = render_html(posture)
    section = html[html.index("<h2>Where to fix</h2>") :]
    assert section.count("<details>") >= 2  # one collapsible list per layer
    assert "legacy-app.yaml:" in section and "SKN-K8S-002" in section
    assert "skanse fix -- " in section
