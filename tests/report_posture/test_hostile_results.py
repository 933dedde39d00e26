"""Results files from elsewhere are input, not trusted: markup in them stays text on the
page, and a file whose values have the wrong shape is refused by name, never a traceback."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from skanse.errors import ReportInputError
from skanse.report.posture import documents
from skanse.report.posture.build import build_posture
from skanse.report.posture.documents import ResultDocument, alerts_document, load_result_file
from skanse.report.posture.html import render_html
from tests._fifo import fed_fifo

# The reviewer's payload: hide every section, claim a clean result, post wherever
MARKUP = (
    "<style>section{display:none}section.pagebreak{display:block}"
    "h1::after{content:' - all controls met, no findings'}</style>"
    "<form action=https://evil.example><button>x</button></form>"
)


def _scan_with_check_id(check_id: str) -> ResultDocument:
    return ResultDocument(
        "skanse.scan",
        "scan.json",
        {
            "schema_version": 1,
            "kind": "skanse.scan",
            "checks": [
                {
                    "id": check_id,
                    "layer": "kubernetes",
                    "title": "t",
                    "controls": [{"framework": "gdpr", "control": "32(1)(b)"}],
                }
            ],
            "findings": [],
        },
    )


def _assert_inert(html: str) -> None:
    assert html.count("<style") == 1  # the page's own, in <head>
    assert "<form" not in html and "<button" not in html
    assert "&lt;form action=https://evil.example&gt;" in html


def test_markup_in_a_check_id_is_text_on_the_page() -> None:
    posture = build_posture([_scan_with_check_id(MARKUP)], tool_version="test")
    _assert_inert(render_html(posture))


def test_markup_in_any_value_of_the_posture_document_is_text_on_the_page() -> None:
    posture = build_posture([_scan_with_check_id("SKN-X-1")], tool_version="test")
    hostile: dict[str, Any] = copy.deepcopy(posture)
    hostile["images"] = [
        {
            "image": "reg.example/app:1",
            "digest": None,
            "sbom": {"packages": MARKUP, "checked": 1, "by_type": {}, "distro": None},
            "vulnerabilities": None,
            "signature": {"status": "not-checked", "reason": None},
            "attestation": {"status": "not-checked", "what": None, "reason": None},
            "workloads": [],
        }
    ]
    hostile["summary"]["findings"] = MARKUP
    _assert_inert(render_html(hostile))


def test_the_page_may_not_post_a_form_or_rebase_its_links() -> None:
    html = render_html(build_posture([_scan_with_check_id("SKN-X-1")], tool_version="test"))
    policy = html.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert "default-src 'none'" in policy
    assert "form-action 'none'" in policy and "base-uri 'none'" in policy


_SCAN = '{"kind": "skanse.scan", "schema_version": 1, '
_VULN = '{"kind": "skanse.vuln", "schema_version": 1, "target": "img", '


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_SCAN + '"findings": [{}]}', "/findings/0/check_id: expected a string, got nothing"),
        (_SCAN + '"findings": "abc"}', "/findings: expected an array, got a string"),
        (
            _SCAN + '"findings": [{"check_id": "X", "severity": "HIGH", "resource": {}, '
            '"location": {"line": "abc"}}]}',
            "/findings/0/location/line: expected an integer or null, got a string",
        ),
        (
            _VULN + '"matches": [{"id": "CVE-1", "package": "x"}]}',
            "/matches/0/package: expected an object, got a string",
        ),
        (_VULN + '"matches": "x"}', "/matches: expected an array, got a string"),
        (
            _VULN + '"matches": [], "summary": {"packages": "<style>"}}',
            "/summary/packages: expected an integer or null, got a string",
        ),
        (
            '{"kind": "skanse.netpol-list", "schema_version": 1, "connections": [1]}',
            "/connections/0: expected an object, got a number",
        ),
        (
            '{"kind": "skanse.netpol-list", "schema_version": 1, "connections": [{"src": "a", '
            '"dst": "b", "ports": {"TCP": [[1]]}}]}',
            "/connections/0/ports/TCP/0: expected a [low, high] pair of integers",
        ),
        (
            '{"kind": "skanse.verification", "schema_version": 1, "images": [1]}',
            "/images/0: expected an object, got a number",
        ),
        (_VULN + '"matches": [], "summary": {"packages": NaN}}', "NaN is not a JSON number"),
        (_VULN + '"matches": [], "summary": {"checked": 1e999}}', "1e999 is out of range"),
        (
            '{"kind": "skanse.vuln", "schema_version": 1, "target": "\\ud800", "matches": []}',
            "/target: a string with a lone UTF-16 surrogate",
        ),
    ],
)
def test_a_result_of_the_wrong_shape_is_refused_by_file_and_field(
    cli, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(ReportInputError, match=re.escape(f"{path}: ")) as caught:
        load_result_file(path)
    assert expected in str(caught.value)
    result = cli("report", str(path), "-f", "json")
    assert result.code == 2 and "internal error" not in result.stderr
    assert expected in result.stderr and result.stdout == ""


def test_a_baseline_of_the_wrong_shape_is_refused(cli, tmp_path: Path) -> None:
    scan = tmp_path / "scan.json"
    scan.write_text(_SCAN + '"findings": []}')
    baseline = tmp_path / "baseline.json"
    baseline.write_text(
        '{"kind": "skanse.posture", "schema_version": 1, "layers": {"kubernetes": '
        '{"status": "assessed", "findings": "x"}}}'
    )
    result = cli("report", str(scan), "--baseline", str(baseline), "-f", "json")
    assert result.code == 2 and "internal error" not in result.stderr
    assert f"{baseline}: /layers/kubernetes/findings: expected an integer" in result.stderr


def test_alerts_with_fields_of_the_wrong_type_are_named_and_skipped(tmp_path: Path) -> None:
    good = {"rule": "r", "priority": "Warning", "output": "o", "time": "2026-01-01T00:00:00Z"}
    path = tmp_path / "alerts.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(a)
            for a in (good, {**good, "time": 5}, {**good, "rule": 7}, {**good, "output_fields": 1})
        )
    )
    doc = load_result_file(path)
    assert len(doc.data["alerts"]) == 1
    assert [p.split(": ", 1)[1] for p in doc.problems] == [
        "line 2: not a Falco alert (time must be a string (ISO 8601))",
        "line 3: not a Falco alert (rule must be a string)",
        "line 4: not a Falco alert (output_fields must be an object)",
    ]
    posture = build_posture([doc], tool_version="test")
    assert posture["runtime"]["rules"][0]["first"] == "2026-01-01T00:00:00Z"


def test_a_title_that_is_not_utf8_is_a_usage_error(cli, tmp_path: Path) -> None:
    scan = tmp_path / "scan.json"
    scan.write_text(_SCAN + '"findings": []}')
    result = cli("report", str(scan), "--title", "T\udcff", "-f", "html")
    assert result.code == 2 and "--title must be UTF-8 text" in result.stderr


def test_a_results_file_without_a_size_is_read_only_up_to_the_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A FIFO (or /dev/zero) has no size to check first: it is refused once the limit has
    been read, not read until memory runs out."""
    monkeypatch.setattr(documents, "MAX_RESULT_BYTES", 1024 * 1024)
    with (
        fed_fifo(tmp_path / "results.fifo", b" " * (4 * 1024 * 1024)) as fifo,
        pytest.raises(ReportInputError, match="more than a results file may be"),
    ):
        load_result_file(fifo)


def test_the_runtime_table_is_capped_like_the_findings_and_says_how_many_more() -> None:
    """Thousands of distinct rules (a noisy or hostile alert log) would make a page too long
    to print; the worst are shown and the rest counted, as the findings are."""
    lines = [
        json.dumps({"rule": f"rule {n}", "priority": "Warning", "output": "o"}) for n in range(2500)
    ]
    lines.append(json.dumps({"rule": "worst", "priority": "Critical", "output": "o"}))
    posture = build_posture([alerts_document(lines, "alerts.jsonl")], tool_version="test")
    assert len(posture["runtime"]["rules"]) == 2501  # the JSON keeps every rule
    html = render_html(posture)
    section = html[html.index("<h2>Runtime alerts</h2>") :].split("</section>", 1)[0]
    assert section.count("<tr>") == 1 + 2000  # the heading and the first 2,000 rules
    assert "<td>worst</td>" in section  # worst first
    assert "501 more rule(s) in the JSON report." in section
