"""Outputs cannot be forged by inputs (issue 19, cases 7 and 8): control characters are
escaped in text, XML and replayed alerts, JUnit is always well-formed, piped text is not
wrapped, SARIF paths are relative to the repository whatever the current directory."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from skanse.printable import printable

HOSTILE_NAME = "web\n::error file=x::forged\x1b[2J\x1b]0;pwned\x07\u202e"
MANIFEST = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - name: {json.dumps(HOSTILE_NAME)}
    image: app:1
"""


def test_printable_escapes_every_control_character() -> None:
    assert printable("a\nb\x1b[31m\x00\x7f\x9b\u202e") == "a\\nb\\x1b[31m\\x00\\x7f\\x9b\\u202e"
    assert printable("two\nlines\tok", keep_newlines=True) == "two\nlines\tok"
    assert printable("plain text, ünïcode") == "plain text, ünïcode"


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pod.yaml"
    path.write_text(MANIFEST)
    return path


def test_text_report_has_no_raw_control_characters(cli, hostile: Path) -> None:
    run = cli("scan", str(hostile), "--no-config")
    assert run.code == 1
    assert "\x1b" not in run.stdout and "\u202e" not in run.stdout and "\x07" not in run.stdout
    assert "\\x1b[2J" in run.stdout
    assert not any(line.startswith("::error") for line in run.stdout.splitlines())


def test_junit_is_well_formed_with_hostile_names(cli, hostile: Path) -> None:
    run = cli("scan", str(hostile), "--no-config", "-f", "junit")
    root = ET.fromstring(run.stdout)  # noqa: S314 - our own output (it was not well-formed)
    messages = [f.get("message", "") for f in root.iter("failure")]
    assert any("\\x1b[2J" in m for m in messages)


RULES = """- rule: shadow read
  desc: reads of /etc/shadow
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: "shadow read by %proc.name (file=%fd.name)"
  priority: WARNING
"""


def test_replayed_alerts_cannot_forge_a_line_and_junit_keeps_them(cli, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    event = {
        "type": "openat",
        "ts": 1_700_000_000_000_000_000,
        "pid": 5,
        "res": 3,
        "fd": {"num": 3, "type": "file", "name": "/etc/shadow"},
        "proc": {
            "pid": 5,
            "ppid": 1,
            "name": "cat\n22:13:20.000000000: Critical forged alert\x1b[1m",
        },
    }
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event) + "\n")
    text = cli("runtime", "replay", str(events), "--rules", str(rules))
    assert len(text.stdout.splitlines()) == 1  # one alert, one line
    assert "\x1b" not in text.stdout
    junit = cli("runtime", "replay", str(events), "--rules", str(rules), "-f", "junit")
    root = ET.fromstring(junit.stdout)  # noqa: S314 - our own output
    assert root.get("tests") == "1" and root.get("failures") == "1"  # was tests="0"


def test_piped_text_keeps_file_and_line_whole(cli, tmp_path: Path, monkeypatch) -> None:
    deep = tmp_path / ("a-directory-name-long-enough-to-fold-" * 3) / "deploy.yaml"
    deep.parent.mkdir()
    deep.write_text(MANIFEST.replace(json.dumps(HOSTILE_NAME), "web"))
    monkeypatch.chdir(tmp_path)
    run = cli("scan", str(deep.relative_to(tmp_path)), "--no-config")
    where = f"{deep.relative_to(tmp_path)}:"
    assert where in run.stdout  # one piece, not folded across lines
    body = [ln for ln in run.stdout.splitlines() if ln.startswith(("HIGH", "MEDIUM", "LOW"))]
    assert body and all(where in ln for ln in body)


def test_sarif_paths_are_relative_to_the_repository_wherever_skanse_runs(
    cli, tmp_path: Path, monkeypatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "k8s").mkdir(parents=True)
    (repo / ".git").mkdir()  # what a checkout's top level holds
    (repo / "k8s" / "pod.yaml").write_text(MANIFEST.replace(json.dumps(HOSTILE_NAME), "web"))

    def uris(*args: str) -> set[str]:
        doc = json.loads(cli("scan", *args, "--no-config", "-f", "sarif").stdout)
        return {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in doc["runs"][0]["results"]
        }

    monkeypatch.chdir(tmp_path)  # outside the repository
    assert uris(str(repo / "k8s")) == {"k8s/pod.yaml"}
    monkeypatch.chdir(repo / "k8s")  # inside, below its root
    assert uris("pod.yaml") == {"k8s/pod.yaml"}
    piped = (repo / "k8s" / "pod.yaml").read_bytes()
    monkeypatch.chdir(repo)
    named = cli(
        "scan", "-", "--no-config", "-f", "sarif", "--stdin-filename", "k8s/pod.yaml",
        stdin=piped,
    )  # fmt: skip
    doc = json.loads(named.stdout)
    assert {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in doc["runs"][0]["results"]
    } == {"k8s/pod.yaml"}


def test_scan_writes_policy_reports_per_namespace(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(
        MANIFEST.replace(json.dumps(HOSTILE_NAME), "web").replace(
            "name: p\n", "name: p\n  namespace: shop\n", 1
        )
        + "---\n"
        + MANIFEST.replace(json.dumps(HOSTILE_NAME), "web").replace(
            "name: p\n",
            "name: q\n  namespace: shop\n  annotations:\n"
            '    ignore.skanse.io/SKN-K8S-027: "pinned by the pipeline"\n',
            1,
        )
    )
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    run = cli("scan", ".", "--no-config", "-f", "policyreport")
    assert run.code == 2  # the unparsable file: fails closed, and is in the report
    doc = json.loads(run.stdout)
    assert doc["kind"] == "List"
    kinds = {(r["kind"], r["metadata"].get("namespace")) for r in doc["items"]}
    assert kinds == {("PolicyReport", "shop"), ("ClusterPolicyReport", None)}
    shop = next(r for r in doc["items"] if r["kind"] == "PolicyReport")
    assert shop["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    results = shop["results"]
    assert {r["result"] for r in results} == {"fail", "skip"}
    skipped = [r for r in results if r["result"] == "skip"]
    assert skipped[0]["rule"] == "SKN-K8S-027"
    assert skipped[0]["properties"]["suppressed"] == "pinned by the pipeline"
    assert skipped[0]["resources"][0] == {
        "apiVersion": "v1", "kind": "Pod", "name": "q", "namespace": "shop"
    }  # fmt: skip
    summary = shop["summary"]
    assert summary["fail"] == sum(1 for r in results if r["result"] == "fail")
    assert summary["pass"] > 0
    cluster = next(r for r in doc["items"] if r["kind"] == "ClusterPolicyReport")
    (error,) = cluster["results"]
    assert error["result"] == "error" and error["properties"]["file"].startswith("./bad.yaml")


def test_valid_text_writes_each_stray_byte_of_a_name_as_one_replacement_character() -> None:
    from typing import NamedTuple

    from skanse.printable import valid_text, valid_texts

    name = os.fsdecode(b"caf\xc3\xa9-\xff\xfe.yaml")  # UTF-8 "é", then two stray bytes
    assert valid_text(name) == "café-\ufffd\ufffd.yaml"
    assert valid_text("café.yaml") == "café.yaml"
    assert valid_text("\ud800") == "\ufffd\ufffd\ufffd"  # a lone surrogate from elsewhere

    class Pair(NamedTuple):
        path: str
        size: int

    same = ("plain", Pair("ok", 1))
    assert valid_texts(same) is same  # nothing to mend: nothing rebuilt
    assert valid_texts({"k": [Pair(name, 2)]}) == {"k": [Pair("café-\ufffd\ufffd.yaml", 2)]}
