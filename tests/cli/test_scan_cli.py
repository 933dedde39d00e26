"""`skanse scan` end to end, in-process: exit codes, streams, settings and their precedence."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from skanse.model import CheckID
from tests.conftest import ROOT
from tests.report.test_outputs import sarif_schema

INSECURE = str(ROOT / "examples" / "insecure" / "legacy-app.yaml")
HARDENED = str(ROOT / "examples" / "hardened")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("SKANSE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .skanse.yaml found by accident


def test_findings_exit_one_and_clean_input_exits_zero(cli) -> None:
    assert cli("scan", INSECURE).code == 1
    clean = cli("scan", HARDENED)
    assert clean.code == 0, clean.stdout
    assert "0 findings" in clean.stdout


def test_missing_path_alone_exits_two_and_says_why(cli) -> None:
    run = cli("scan", "does/not/exist.yaml")
    assert run.code == 2
    assert "does/not/exist.yaml: missing: no such file or directory" in run.stdout
    assert "nothing could be scanned" in run.stderr


def test_a_bad_file_fails_closed_unless_allowed_and_the_others_are_scanned(
    cli, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "ok.yaml").write_text(Path(INSECURE).read_text())
    run = cli("scan", str(tmp_path), "-f", "json")
    assert run.code == 2
    assert "1 input(s) could not be checked" in run.stderr
    document = json.loads(run.stdout)
    assert document["summary"]["objects"] == 1
    assert [p["kind"] for p in document["problems"]] == ["parse"]
    allowed = cli("scan", str(tmp_path), "--allow-unchecked")
    assert allowed.code == 1
    assert "could not be checked" in allowed.stderr  # said, not hidden


def _check_ids(run) -> set[str]:
    return {f["check_id"] for f in json.loads(run.stdout)["findings"]}


def test_enable_and_disable_take_ids_or_aliases_and_disable_wins(cli, tmp_path: Path) -> None:
    everything = _check_ids(cli("scan", INSECURE, "-f", "json"))
    assert {"SKN-K8S-002", "SKN-K8S-001"} <= everything
    # KSV-0017 is Trivy's id for SKN-K8S-002; names are matched in any case, comma lists too
    by_alias = cli("scan", INSECURE, "-f", "json", "--disable", "ksv-0017")
    assert _check_ids(by_alias) == everything - {"SKN-K8S-002"}
    listed = cli("scan", INSECURE, "-f", "json", "--disable", "SKN-K8S-002,SKN-K8S-001")
    assert _check_ids(listed) == everything - {"SKN-K8S-002", "SKN-K8S-001"}

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM alpine:3.19@sha256:" + "a" * 64 + "\nUSER 10001\n")
    opt_in = "SKN-DF-015"  # no HEALTHCHECK: opt-in, alias CKV_DOCKER_2
    assert opt_in not in _check_ids(cli("scan", str(dockerfile), "-f", "json"))
    enabled = cli("scan", str(dockerfile), "-f", "json", "--enable", "ckv_docker_2")
    assert opt_in in _check_ids(enabled)
    both = cli("scan", str(dockerfile), "-f", "json", "--enable", opt_in, "--disable", opt_in)
    assert opt_in not in _check_ids(both)


def test_exit_zero_fail_on_and_severity_in_any_case(cli) -> None:
    assert cli("scan", INSECURE, "--exit-zero").code == 0
    assert cli("scan", INSECURE, "--fail-on", "Critical").code == 1
    only_low = cli("scan", INSECURE, "--severity", "low,INFO", "-f", "json")
    severities = {f["severity"] for f in json.loads(only_low.stdout)["findings"]}
    assert severities == {"LOW"}
    hidden = cli("scan", INSECURE, "--severity", "low,info", "--fail-on", "high")
    assert hidden.code == 1
    assert "below --severity fail the run" in hidden.stderr


def test_invalid_values_are_usage_errors(cli) -> None:
    run = cli("scan", INSECURE, "--fail-on", "hgh")
    assert run.code == 2 and "--fail-on: unknown severity 'hgh'" in run.stderr
    run = cli("scan", INSECURE, "--pss", "restricted@v2.0")
    assert run.code == 2 and "invalid Pod Security version" in run.stderr


def test_stdin_is_scanned(cli) -> None:
    run = cli("scan", "-", "-f", "json", stdin=Path(INSECURE).read_bytes())
    document = json.loads(run.stdout)
    assert run.code == 1
    assert {f["location"]["file"] for f in document["findings"]} == {"<stdin>"}


def test_output_file_is_written_and_stdout_stays_empty(cli, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.sarif"
    target.parent.mkdir()
    run = cli("scan", INSECURE, "-f", "sarif", "-o", str(target))
    assert run.stdout == ""
    document = json.loads(target.read_text())
    assert document["version"] == "2.1.0"
    jsonschema.validate(document, sarif_schema())
    assert [p.name for p in target.parent.iterdir()] == ["report.sarif"]  # no temp files left


def test_pss_alone_selects_that_level_and_version(cli) -> None:
    run = cli("scan", INSECURE, "--pss", "baseline@v1.29", "-f", "json")
    document = json.loads(run.stdout)
    assert document["scan"]["profile"] == "pss-baseline"
    assert document["scan"]["pss"] == "baseline@v1.29"
    assert {f["check_id"] for f in document["findings"]} == {
        "SKN-K8S-001",
        "SKN-K8S-002",
        "SKN-K8S-004",
    }


def test_flags_beat_environment_beat_config_file(cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / ".skanse.yaml").write_text("fail-on: critical\nseverity: high\n")
    target = tmp_path / "app.yaml"
    target.write_text(Path(INSECURE).read_text())
    from_file = json.loads(cli("scan", str(target), "-f", "json").stdout)
    assert {f["severity"] for f in from_file["findings"]} == {"CRITICAL", "HIGH"}
    monkeypatch.setenv("SKANSE_SEVERITY", "critical")
    from_env = json.loads(cli("scan", str(target), "-f", "json").stdout)
    assert {f["severity"] for f in from_env["findings"]} == {"CRITICAL"}
    from_flag = json.loads(cli("scan", str(target), "-f", "json", "--severity", "medium").stdout)
    assert {f["severity"] for f in from_flag["findings"]} == {"CRITICAL", "HIGH", "MEDIUM"}
    monkeypatch.setenv("SKANSE_FAIL_ON", "bogus")
    bad = cli("scan", str(target))
    assert bad.code == 2 and "SKANSE_FAIL_ON: unknown severity 'bogus'" in bad.stderr


def test_config_suppression_with_expiry(cli, tmp_path: Path) -> None:
    target = tmp_path / "app.yaml"
    target.write_text(Path(INSECURE).read_text())
    (tmp_path / ".skanse.yaml").write_text(
        "suppressions:\n"
        "  - {id: SKN-K8S-026, paths: ['*.yaml'], reason: 'mirrored tag', expires: 2099-01-01}\n"
        "  - {id: KSV-0017, reason: 'expired exception', expires: 2020-01-01}\n"
    )
    run = cli("scan", str(target), "-f", "json")
    findings = json.loads(run.stdout)["findings"]
    by_id = {f["check_id"]: f for f in findings}
    assert (
        by_id["SKN-K8S-026"]["suppressed"]
        and by_id["SKN-K8S-026"]["suppression"]["source"] == "config"
    )
    assert not by_id["SKN-K8S-002"]["suppressed"]
    assert "expired on 2020-01-01" in run.stderr


def test_annotation_suppression_needs_a_reason(cli, tmp_path: Path) -> None:
    text = (
        Path(INSECURE)
        .read_text()
        .replace(
            "  namespace: billing\n",
            "  namespace: billing\n  annotations:\n"
            '    ignore.skanse.io/SKN-K8S-001: "node-local DNS cache needs the host network"\n'
            '    ignore.skanse.io/SKN-K8S-002: ""\n',
        )
    )
    target = tmp_path / "app.yaml"
    target.write_text(text)
    run = cli("scan", str(target), "-f", "json")
    by_id = {f["check_id"]: f for f in json.loads(run.stdout)["findings"]}
    assert by_id["SKN-K8S-001"]["suppression"]["source"] == "annotation"
    assert not by_id["SKN-K8S-002"]["suppressed"]
    assert "ignore.skanse.io/SKN-K8S-002 has no reason and is not applied" in run.stderr


def test_checks_list_and_show(cli) -> None:
    listing = cli("checks", "list", "-f", "json")
    rows = json.loads(listing.stdout)
    assert len(rows) == 56 and rows[0]["id"] == "SKN-K8S-001"
    assert {r["id"] for r in rows if r["id"].startswith("SKN-DF-")} == {
        f"SKN-DF-{n:03d}" for n in range(1, 17)
    }
    baseline = json.loads(cli("checks", "list", "--profile", "pss-baseline", "-f", "json").stdout)
    assert {r["pss_control"] for r in baseline} == {
        "hostNamespaces", "privileged", "capabilities_baseline", "hostPathVolumes", "hostPorts",
        "appArmorProfile", "seLinuxOptions", "procMount", "seccompProfile_baseline", "sysctls",
        "windowsHostProcess", "hostProbesAndHostLifecycle",
    }  # fmt: skip
    shown = cli("checks", "show", "ksv-0017")
    assert (
        shown.code == 0 and "SKN-K8S-002" in shown.stdout and "Example that fails" in shown.stdout
    )
    assert cli("checks", "show", "NOPE").code == 2


def test_checks_show_prints_check_text_as_it_is(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from skanse.checks._all import REGISTRY

    check = REGISTRY.get(CheckID("SKN-NET-004"))
    meta = dataclasses.replace(
        check.meta, title="Egress [open] to all", remediation="Set policyTypes: [egress]."
    )
    monkeypatch.setitem(REGISTRY._by_id, check.id, dataclasses.replace(check, meta=meta))
    shown = cli("checks", "show", "SKN-NET-004")
    assert shown.code == 0
    assert "Egress [open] to all" in shown.stdout  # not read as rich markup
    assert "Set policyTypes: [egress]." in shown.stdout
    assert "[open]" in cli("checks", "list").stdout


def test_config_schema_is_json_schema(cli) -> None:
    schema = json.loads(cli("config", "schema").stdout)
    assert "suppressions" in schema["properties"] and "fail-on" in schema["properties"]


def test_python_dash_m_and_version() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "skanse", "--version"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0 and run.stdout.startswith("skanse ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("no_progress", "quiet", "ci", "tty", "shown"),
    [
        (False, False, None, True, True),
        (True, False, None, True, False),
        (False, True, None, True, False),
        (False, False, "true", True, False),
        (False, False, None, False, False),
    ],
)
def test_the_progress_line_appears_only_on_a_terminal_and_shows_paths_as_they_are(
    monkeypatch: pytest.MonkeyPatch, no_progress: bool, quiet: bool, ci: str | None, tty: bool,
    shown: bool,
) -> None:  # fmt: skip
    from skanse._cli._common import progress_line

    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    err = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    args = argparse.Namespace(no_progress=no_progress, quiet=quiet)
    with progress_line(args, "scanning") as show:
        assert (show is not None) == shown
        if show is not None:
            show("scanning [egress] deploy/[prod].yaml")  # brackets are not markup
    assert ("scanning [egress] deploy/[prod].yaml" in err.getvalue()) == shown


def test_strict_fails_when_nothing_was_checked(cli) -> None:
    """`false | skanse scan - --strict` exited 0."""
    assert cli("scan", "-", "--no-config", "--strict", stdin=b"").code == 2
    assert cli("scan", "-", "--no-config", stdin=b"").code == 0  # without --strict: a warning


def test_an_unrendered_helm_chart_is_named_with_the_recipe_and_fails_closed(
    cli, tmp_path: Path
) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 1.0.0\n")
    (chart / "values.yaml").write_text("replicas: 1\n")
    (chart / "templates" / "deploy.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
    )
    for extra in ((), ("--strict",)):
        run = cli("scan", str(chart), "--no-config", *extra)
        assert run.code == 2, extra
        assert f"helm template {chart} | skanse scan -" in run.stdout
    clean = tmp_path / "Dockerfile"
    clean.write_text("FROM scratch\nCOPY app /app\nUSER 10001\n")
    allowed = cli("scan", str(chart), str(clean), "--no-config", "--allow-unchecked", "-f", "json")
    assert allowed.code == 0, allowed.stdout
    assert [p["kind"] for p in json.loads(allowed.stdout)["problems"]] == ["unrendered"]


def test_a_malformed_file_with_braces_in_a_comment_fails_closed(cli, tmp_path: Path) -> None:
    """The `{{` in the comment made `scan --strict` call the file skipped and exit 0."""
    (tmp_path / "deploy.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: priv\n  annotations:\n"
        "    description: x   # see {{ docs }}\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - name: c\n        image: x\n        securityContext:\n"
        "\t  privileged: true\n"
    )
    (tmp_path / "ok.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n")
    for extra in ((), ("--strict",)):
        run = cli("scan", str(tmp_path), "--no-config", *extra)
        assert run.code == 2, (extra, run.stdout)
        assert "could not be checked" in run.stdout and "skipped" not in run.stdout


def test_a_duplicate_key_fails_closed_and_names_both_lines(cli, tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n"
        "  - name: a\n    image: a@sha256:" + "0" * 64 + "\n    securityContext:\n"
        "      privileged: false\n      privileged: true\n"
    )
    run = cli("scan", str(tmp_path), "--no-config")
    assert run.code == 2
    assert "pod.yaml:11" in run.stdout and "first defined on line 10" in run.stdout


def test_output_through_a_symlink_out_of_the_working_tree_is_refused(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    link = work / "report.json"
    link.symlink_to(victim)
    run = cli("scan", str(INSECURE), "--no-config", "-f", "json", "-o", str(link))
    assert run.code == 2 and "refused" in run.stderr
    assert victim.read_text() == "keep me"


def test_pss_typos_and_unknown_versions_are_usage_errors(cli) -> None:
    typo = cli("scan", HARDENED, "--no-config", "--pss", "restriced@v1.29")
    assert typo.code == 2 and "unknown Pod Security level 'restriced'" in typo.stderr
    assert "bug in skanse" not in typo.stderr
    future = cli("scan", HARDENED, "--no-config", "--pss", "restricted@v1.99")
    assert future.code == 2 and "unknown Pod Security version v1.99" in future.stderr


def test_reading_a_terminal_says_so(tmp_path: Path) -> None:
    """`skanse scan -` at a terminal waited silently; it now says what it waits for."""
    script = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m skanse scan - --no-config", "/dev/null"],
        input=b"\x04",
        capture_output=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    if script.returncode == 127 or b"script:" in script.stderr[:20]:
        pytest.skip("util-linux script(1) is needed for a terminal")
    assert b"reading manifests or a Dockerfile from standard input (a terminal)" in script.stdout


def _own_process(
    *args: str, stdout: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """skanse as its own process: scan and fix end there with os._exit after the report."""
    return subprocess.run(
        [sys.executable, "-m", "skanse", *args, "--no-config"],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def test_a_scan_of_its_own_keeps_every_output_and_its_exit_code(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    written = _own_process("scan", INSECURE, "-f", "json", "-o", str(target))
    assert written.returncode == 1 and written.stdout == ""
    assert json.loads(target.read_text())["findings"]

    missing = str(tmp_path / "gone.yaml")
    piped = _own_process("scan", INSECURE, missing, "-f", "sarif", "--allow-unchecked")
    assert piped.returncode == 1
    jsonschema.validate(json.loads(piped.stdout), sarif_schema())  # complete, not cut short
    assert "could not be checked" in piped.stderr

    clean = _own_process("scan", HARDENED)
    assert clean.returncode == 0, clean.stderr


def test_a_report_that_cannot_be_flushed_at_exit_is_exit_two_not_a_traceback() -> None:
    """What is still buffered when a scan's process ends is flushed first; a full disk then
    fails the run (2) with a line that says so, never a pass."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    code = "import sys; from skanse._cli import _exit_now; sys.stdout.write('{}'); _exit_now(0)"
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        run = subprocess.run(
            [sys.executable, "-c", code],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            env=buffered,
        )
    assert run.returncode == 2
    assert "standard output: No space left on device" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit", "policyreport"])
def test_a_file_name_that_is_not_utf8_is_reported_in_every_format(
    cli, tmp_path: Path, fmt: str
) -> None:
    # the name holds the byte 0xff (a lone surrogate once decoded): json and sarif failed
    # with an internal error ("surrogates not allowed"), which fails every gate run on the tree
    name = os.path.join(os.fsencode(tmp_path), b"p\xffod.yaml")
    with open(name, "w") as out:
        out.write("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n")
        out.write("  containers: [{name: c, image: nginx}]\n")
    run = cli("scan", str(tmp_path), "-f", fmt)
    assert run.code == 1, run.stderr
    assert "p\ufffdod.yaml" in run.stdout or "p%EF%BF%BDod.yaml" in run.stdout
    run.stdout.encode("utf-8")  # a document any reader can take
