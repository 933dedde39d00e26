"""The four output formats on the bundled examples: golden files, schema validity, content."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import ROOT, SCHEMAS


@pytest.fixture(autouse=True)
def _from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CI", raising=False)
    for key in list(__import__("os").environ):
        if key.startswith("SKANSE_"):
            monkeypatch.delenv(key)


def _normalise(text: str) -> str:
    text = re.sub(r'"(started|finished)": "[^"]+"', r'"\1": "<time>"', text)
    text = text.replace(ROOT.as_uri(), "file://<root>")
    return re.sub(r'"(version|semanticVersion)": "\d+\.\d+\.\d+[^"]*"', r'"\1": "<version>"', text)


def sarif_schema() -> dict:
    """The SARIF 2.1.0 schema that every SARIF document the tests write must satisfy."""
    path = SCHEMAS / "sarif-schema-2.1.0.json"
    if not path.exists():
        pytest.skip(f"{path} is not present (CI always has ../shared/schemas)")
    return json.loads(path.read_text())


def test_sarif_golden_and_valid(cli, golden) -> None:
    run = cli("scan", "examples", "--format", "sarif", "--no-config")
    assert run.code == 1
    document = json.loads(run.stdout)
    jsonschema.validate(document, sarif_schema())
    golden("examples.sarif", _normalise(run.stdout))
    (sarif_run,) = document["runs"]
    rules = {r["id"]: r for r in sarif_run["tool"]["driver"]["rules"]}
    assert rules["SKN-K8S-002"]["properties"]["security-severity"] == "9.5"
    assert "security" in rules["SKN-K8S-002"]["properties"]["tags"]
    results = sarif_run["results"]
    privileged = next(r for r in results if r["ruleId"] == "SKN-K8S-002")
    location = privileged["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "examples/insecure/legacy-app.yaml",
        "uriBaseId": "%SRCROOT%",
    }
    source = (ROOT / "examples/insecure/legacy-app.yaml").read_text().splitlines()
    assert source[location["region"]["startLine"] - 1].strip() == "privileged: true"
    suppressed = [r for r in results if "suppressions" in r]
    assert [s["suppressions"][0]["justification"] for s in suppressed] == [
        "tag is immutable in our registry (expires 2027-06-30)"
    ]
    fingerprints = [r["partialFingerprints"]["skanse/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)


def test_sarif_fingerprints_survive_line_shifts(cli, tmp_path: Path) -> None:
    source = (ROOT / "examples/insecure/legacy-app.yaml").read_text()
    target = tmp_path / "app.yaml"
    target.write_text(source)
    before = json.loads(cli("scan", str(target), "-f", "sarif", "--no-config").stdout)
    target.write_text("# a new comment line\n\n" + source)
    after = json.loads(cli("scan", str(target), "-f", "sarif", "--no-config").stdout)
    for document in (before, after):  # a file outside the source root: an absolute URI
        jsonschema.validate(document, sarif_schema())

    def prints(doc: dict) -> list[tuple[str, int]]:
        return [
            (
                r["partialFingerprints"]["skanse/v1"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
            )
            for r in doc["runs"][0]["results"]
        ]

    assert [p for p, _ in prints(before)] == [p for p, _ in prints(after)]
    assert [line + 2 for _, line in prints(before)] == [line for _, line in prints(after)]


def test_json_golden_and_shape(cli, golden) -> None:
    run = cli("scan", "examples", "--format", "json", "--no-config")
    document = json.loads(run.stdout)
    golden("examples.json", _normalise(run.stdout))
    assert document["schema_version"] == 1
    summary = document["summary"]
    assert summary["findings"] == len([f for f in document["findings"] if not f["suppressed"]])
    assert summary["suppressed"] == 1
    assert summary["exit_code"] == 1
    schema = json.loads((ROOT / "docs/schemas/scan-result-v1.schema.json").read_text())
    jsonschema.validate(document, schema)


def test_junit_golden_has_a_testcase_per_check_and_resource(cli, golden) -> None:
    run = cli("scan", "examples", "--format", "junit", "--no-config")
    golden("examples.junit.xml", run.stdout)
    root = ET.fromstring(run.stdout)  # noqa: S314 - our own output
    cases = root.findall(".//testcase")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert len(names) == len(cases)
    passed = [c for c in cases if not list(c)]
    failed = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    # the hardened web Deployment passes every check of the profile
    web = [c for c in cases if "Deployment/shop/web" in (c.get("classname") or "")]
    assert web and all(not list(c) for c in web)
    assert len(skipped) == 1
    marker = skipped[0].find("skipped")
    assert marker is not None and "tag is immutable" in (marker.get("message") or "")
    assert root.get("tests") == str(len(passed) + len(failed) + len(skipped))
    assert root.get("failures") == str(len(failed))


def test_text_golden(cli, golden) -> None:
    run = cli("scan", "examples", "--no-config")
    golden("examples.txt", run.stdout)
    # SKN-K8S-030 once for namespace billing, not once per each of its two workloads
    assert "28 findings (2 critical, 10 high, 10 medium, 6 low)" in run.stdout
    assert run.stdout.count("SKN-K8S-030") == 1
    assert "Suppressed (1):" in run.stdout
