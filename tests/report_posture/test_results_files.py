"""Saved layer results: compatible versions are read, others refused with a clear message,
hostile files are refused without a traceback, and a missing layer is "not assessed"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skanse.errors import ReportInputError
from skanse.report.posture.build import build_posture
from skanse.report.posture.documents import alerts_document, load_result_file
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def scan_json(tmp_path_factory) -> Path:
    from skanse._cli import main

    out = tmp_path_factory.mktemp("results") / "scan.json"
    assert main(["scan", str(EXAMPLES), "--no-config", "-f", "json", "-o", str(out)]) == 1
    return out


def test_a_saved_scan_is_read_and_missing_layers_are_not_assessed(scan_json: Path) -> None:
    doc = load_result_file(scan_json)
    assert doc.kind == "skanse.scan"
    posture = build_posture([doc], tool_version="test")
    layers = posture["layers"]
    assert layers["kubernetes"]["status"] == "assessed"
    for missing in ("images", "runtime", "host"):
        assert layers[missing]["status"] == "not-assessed"
        assert layers[missing]["checks_passed"] is None  # never a pass
    assert posture["summary"]["layers_not_assessed"] == ["images", "runtime", "host"]
    # a control evidenced only by host checks is not assessed, not met
    cis_412 = [c for c in posture["controls"] if c["control"] == "4.2.1"]
    assert cis_412 and cis_412[0]["status"] == "not-assessed"


def test_an_older_file_without_kind_is_recognised(scan_json: Path, tmp_path: Path) -> None:
    data = json.loads(scan_json.read_text())
    for added in ("kind", "evaluations", "workloads"):
        data.pop(added)
    for check in data["checks"]:
        check.pop("layer"), check.pop("controls")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    doc = load_result_file(old)
    assert doc.kind == "skanse.scan"
    posture = build_posture([doc], tool_version="test")
    assert posture["layers"]["kubernetes"]["status"] == "assessed"
    assert posture["layers"]["kubernetes"]["findings"] == data["summary"]["findings"] - sum(
        1
        for f in data["findings"]
        if f["check_id"].startswith(("SKN-DF", "SKN-NET")) and not f["suppressed"]
    )


def test_an_incompatible_schema_version_is_refused_by_name(scan_json: Path, tmp_path: Path) -> None:
    data = json.loads(scan_json.read_text())
    data["schema_version"] = 2
    data["tool"]["version"] = "9.0.0"
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(data))
    with pytest.raises(ReportInputError) as caught:
        load_result_file(newer)
    message = caught.value.diagnostics()
    assert "schema_version 2" in message and "skanse 9.0.0" in message
    assert "reads version 1" in message and str(newer) in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"hello": "world"}', "not a skanse result"),
        (b'{"kind": "skanse.scan"}', "without an integer schema_version"),
        (b"\xff\xfe garbage", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_files_that_are_not_results_are_refused(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ReportInputError, match=expected):
        load_result_file(path)


def test_cli_refuses_an_incompatible_file_with_exit_2(cli, scan_json: Path, tmp_path: Path) -> None:
    data = json.loads(scan_json.read_text())
    data["schema_version"] = 7
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = cli("report", str(bad), "-f", "json")
    assert result.code == 2
    assert "schema_version 7" in result.stderr and result.stdout == ""


def test_alert_lines_keep_good_alerts_and_name_bad_lines(tmp_path: Path) -> None:
    alert = {"time": "2026-01-01T00:00:00Z", "rule": "r", "priority": "Warning", "output": "x"}
    path = tmp_path / "alerts.jsonl"
    path.write_text(json.dumps(alert) + "\nnot json\n" + json.dumps({"a": 1}) + "\n")
    doc = load_result_file(path)
    assert doc.kind == "skanse.runtime-alerts" and len(doc.data["alerts"]) == 1
    assert [p.split(": ", 1)[1] for p in doc.problems] == [
        "line 2: invalid JSON: Expecting value: line 1 column 1 (char 0)",
        "line 3: not a Falco alert (needs rule, priority and output)",
    ]
    posture = build_posture([doc], tool_version="test")
    assert posture["layers"]["runtime"]["status"] == "partial"
    assert posture["runtime"]["rules"][0]["severity"] == "MEDIUM"  # Warning -> MEDIUM


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("Emergency", "CRITICAL"),  # Falco's most severe priority, the enum's zero
        ("Critical", "CRITICAL"),
        ("Error", "HIGH"),
        ("Notice", "LOW"),
        ("info", "INFO"),  # Falco's alias, any case
        ("Debug", "INFO"),
        ("Bogus", "INFO"),  # not a Falco priority: ranks lowest
    ],
)
def test_alert_priorities_map_to_severities_as_the_rules_engine_maps_them(
    priority: str, severity: str
) -> None:
    alert = {"time": "2026-01-01T00:00:00Z", "rule": "r", "priority": priority, "output": "x"}
    doc = alerts_document([json.dumps(alert)], "alerts.jsonl")
    rule = build_posture([doc], tool_version="test")["runtime"]["rules"][0]
    assert rule["priority"] == priority and rule["severity"] == severity


def test_a_baseline_gives_trends(cli, scan_json: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    assert cli("report", str(scan_json), "-f", "json", "-o", str(first), "-q").code == 0
    data = json.loads(scan_json.read_text())
    data["findings"] = [f for f in data["findings"] if f["check_id"] != "SKN-K8S-002"]
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(data))
    second = cli("report", str(fixed), "-f", "json", "--baseline", str(first), "-q")
    assert second.code == 0, second.stderr
    trend = json.loads(second.stdout)["trend"]["layers"]
    assert trend["kubernetes"]["delta_by_severity"]["CRITICAL"] == -1
    assert trend["images"] == {"compared": False}
    refused = cli("report", str(scan_json), "--baseline", str(scan_json), "-f", "json")
    assert refused.code == 2 and "baseline must be a skanse report" in refused.stderr
