"""The Dockerfile corpus (459 files): everything parses; peers' fixtures get their verdicts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from skanse.model import ProblemKind
from skanse.scan import ScanOptions, scan
from tests.conftest import corpus_path


@pytest.mark.corpus
def test_whole_corpus_parses_with_no_internal_error() -> None:
    root = corpus_path("dockerfiles")
    result = scan([str(root)])
    index = [line.split("\t")[0] for line in (root / "index.tsv").read_text().splitlines()[1:]]
    assert result.files_scanned == len(index) == 459
    assert [p for p in result.problems if p.kind is ProblemKind.INTERNAL] == []
    # One checkov fixture holds a stray "~" line (a vim artefact BuildKit rejects too): it is
    # reported with its line and the rest of that file is still checked.
    (problem,) = result.problems
    assert problem.file.endswith("example_UpdateNotAlone/failure/Dockerfile")
    assert (problem.line, problem.message) == (12, "unknown instruction '~'; line skipped")
    # The jq template of the redis image is not a Dockerfile until rendered.
    (skipped,) = result.skipped
    assert skipped.file.endswith("docker-library__redis/Dockerfile.template")
    assert result.objects_scanned == 458
    heredocs = [p for p in root.rglob("*") if p.is_file() and "<<" in p.read_text(errors="replace")]
    assert heredocs, "the corpus has BuildKit heredoc files"
    checked = {e.location.file for e in result.evaluations}
    assert {str(p) for p in heredocs} <= checked | {skipped.file}


@pytest.mark.corpus
def test_gpg_key_fingerprints_are_not_secrets() -> None:
    """Trivy's DS-0031 flags `ENV GPG_KEY <fingerprint>` in all 24 python images; skanse none."""
    root = corpus_path("dockerfiles", "docker-library__python")
    result = scan([str(root)])
    gpg = [p for p in root.rglob("Dockerfile") if "GPG_KEY" in p.read_text()]
    assert len(gpg) >= 20
    assert [f for f in result.findings if f.check_id == "SKN-DF-009"] == []


# checkov's fixture directories: (directory, our check, expected to fire)
CHECKOV_ORACLE = [
    ("example_RootUser/failure", "SKN-DF-001", True),
    ("example_RootUser/success", "SKN-DF-001", False),
    ("example_UserExists/failure", "SKN-DF-001", True),
    ("example_UserExists/success", "SKN-DF-001", False),
    ("example_ReferenceLatestTag/failure_default_version_tag", "SKN-DF-002", True),
    ("example_ReferenceLatestTag/failure_latest_version_tag", "SKN-DF-002", True),
    ("example_ReferenceLatestTag/success", "SKN-DF-002", False),
    ("example_ReferenceLatestTag/success_multi_stage", "SKN-DF-002", False),
    ("example_ReferenceLatestTag/success_multi_stage_capital", "SKN-DF-002", False),
    ("example_ReferenceLatestTag/success_multi_stage_platform", "SKN-DF-002", False),
    ("example_ReferenceLatestTag/success_multi_stage_scratch", "SKN-DF-002", False),
    ("example_ReferenceLatestTag/success_scratch", "SKN-DF-002", False),
    ("example_ExposePort22/failure", "SKN-DF-016", True),
    ("example_ExposePort22/failure_tcp", "SKN-DF-016", True),
    ("example_ExposePort22/success", "SKN-DF-016", False),
    ("example_AddExists/failure", "SKN-DF-004", True),
    ("example_HealthcheckExists/failure", "SKN-DF-015", True),
    ("example_HealthcheckExists/success", "SKN-DF-015", False),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("directory", "check", "fires"), CHECKOV_ORACLE)
def test_checkov_fixture_verdicts(directory: str, check: str, fires: bool) -> None:
    path = corpus_path(
        "dockerfiles", "bridgecrewio__checkov", "tests", "dockerfile", "checks", directory
    )
    result = scan([str(path)], ScanOptions(enable=frozenset({"SKN-DF-015"})))
    found = Counter(str(f.check_id) for f in result.findings)
    assert (found[check] > 0) == fires, (directory, dict(found))


def test_dockerfile_on_stdin_is_detected(cli, tmp_path: Path) -> None:
    run = cli("scan", "-", "--no-config", stdin=b"# comment\nFROM node:latest\n")
    assert run.code == 1
    assert "SKN-DF-002" in run.stdout and "<stdin>" in run.stdout
