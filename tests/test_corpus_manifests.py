"""The real-world manifest corpus (1,460 files from public repositories) scans cleanly."""

from __future__ import annotations

from collections import Counter

import pytest

from skanse.model import ProblemKind
from skanse.scan import scan_manifests
from tests.conftest import corpus_path


@pytest.mark.corpus
def test_whole_corpus_scans_with_no_internal_error() -> None:
    root = corpus_path("manifests")
    result = scan_manifests([str(root)])
    assert result.files_scanned == 1460
    assert [p for p in result.problems if p.kind is ProblemKind.INTERNAL] == []
    # everything that could not be read is a parse problem with the line it failed on
    assert {p.kind for p in result.problems} == {ProblemKind.PARSE}
    assert all(p.line for p in result.problems)
    assert result.objects_scanned >= 2400
    # every file is accounted for: objects, skipped documents, or a problem
    accounted = (
        {f.location.file for f in result.findings}
        | {e.location.file for e in result.evaluations}
        | {s.file for s in result.skipped}
        | {p.file for p in result.problems}
    )
    index = (root / "index.tsv").read_text().splitlines()[1:]
    assert len(index) == 1460
    kinds = Counter(str(f.check_id) for f in result.findings)
    # The namespace-aware default-deny check fires where checkov's CKV2_K8S_6 reports none.
    assert kinds["SKN-K8S-030"] > 0
    assert kinds["SKN-K8S-002"] >= 36  # privileged containers: checkov 37, Trivy 36
    unaccounted = [
        line.split("\t")[0] for line in index if str(root / line.split("\t")[0]) not in accounted
    ]
    assert unaccounted == []
