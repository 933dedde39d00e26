"""Kyverno's published ValidatingAdmissionPolicy CLI tests, and the ready policies' tests.

tests/policy/conformance/kyverno holds kyverno/kyverno test/cli/test-validating-admission-policy
reduced to skanse-test.yaml files (SOURCES.md): the policies, resources and namespaces as
published, the expected result of each policy on each resource as upstream states it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.errors import PolicyLoadError
from skanse.policy.testing import find_test_files, run_test_file
from tests.conftest import ROOT

KYVERNO = Path(__file__).parent / "conformance" / "kyverno"
# Cases skanse does not run as upstream expects, and why.
UNSUPPORTED = {
    "match-namespaces": (
        "its resourceRules have no operations: the API server rejects such a policy "
        "(ValidateRuleWithOperations: operations is required), Kyverno's CLI matches all"
    ),
}


def _cases(root: Path) -> list[str]:
    return find_test_files([str(root)])


@pytest.mark.parametrize("path", _cases(KYVERNO), ids=lambda p: Path(p).parent.name)
def test_kyverno_vap_case(path: str) -> None:
    case = Path(path).parent.name
    if case in UNSUPPORTED:
        with pytest.raises(PolicyLoadError, match="operations: Required value"):
            run_test_file(path)
        return
    outcome = run_test_file(path)
    assert outcome.cases
    assert [c for c in outcome.cases if not c.passed] == []


def test_every_kyverno_case_with_expected_results_is_here() -> None:
    names = {Path(p).parent.name for p in _cases(KYVERNO)}
    assert len(names) == 10 and set(UNSUPPORTED) <= names


@pytest.mark.parametrize("path", _cases(ROOT / "policies"), ids=lambda p: Path(p).parts[-3])
def test_ready_policy(path: str) -> None:
    outcome = run_test_file(path)
    assert len(outcome.cases) >= 4
    assert [c for c in outcome.cases if not c.passed] == []
