"""Falco's legacy regression fixtures (corpus legacy_tests/): validation and k8s audit cases.

Every rules-file validation case of falco_tests.yaml and falco_tests_exceptions.yaml is read
at test time and must produce its expected errors and warnings (code, item type, item name,
message). skanse reports every error it finds where Falco stops at the first, so the check is
that each expected diagnostic is present and that a case expected to fail does fail.

Falco has reworded a few messages since the fixtures were recorded (falco@059a281, 2023);
skanse uses today's wording (falcosecurity/falco userspace/engine/rule_loading_messages.h and
rule_loader_reader.cpp), listed in REWORDED with the fixture's text as key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skanse.rules.loader import (
    ERROR_NO_PREVIOUS_LIST,
    ERROR_NO_PREVIOUS_MACRO,
    ERROR_NO_PREVIOUS_RULE_APPEND,
    Diagnostic,
    RulesFile,
    load_rules,
)
from skanse.sources.yamlpos import load_documents
from tests.conftest import CORPORA

pytestmark = pytest.mark.corpus

LEGACY = CORPORA / "falco" / "legacy_tests"

REWORDED = {
    "Macro has 'append' key but no macro by that name already exists": ERROR_NO_PREVIOUS_MACRO,
    "List has 'append' key but no list by that name already exists": ERROR_NO_PREVIOUS_LIST,
    "Rule has 'append' key but no rule by that name already exists": ERROR_NO_PREVIOUS_RULE_APPEND,
    # required_engine_version: not-a-number; today's reader tries a semver after an integer
    "Can't decode YAML scalar value": "Unable to parse engine version 'not-a-number' as a "
    'semver string. Expected "x.y.z" semver format.',
    # integer engine versions are now read as 0.N.0 and printed as semver
    "Rules require engine version 9999999, but engine version is": "Rules require engine "
    "version 0.9999999.0, but engine version is",
}
CODE_RENAMED = {"LOAD_UNKNOWN_FIELD": "LOAD_UNKNOWN_FILTER"}


def _cases() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in ("falco_tests.yaml", "falco_tests_exceptions.yaml"):
        path = LEGACY / name
        if not path.exists():
            return
        (doc,) = list(load_documents(path.read_bytes()))
        assert not isinstance(doc, Exception)
        for case, spec in doc.data["trace_files"].items():  # type: ignore[index]
            if "validate_errors" in spec or "validate_warnings" in spec:
                yield f"{name}:{case}", spec


CASES = list(_cases())


def _files(spec: dict[str, Any]) -> list[Path]:
    names = spec.get("validate_rules_file") or []
    if isinstance(names, str):
        names = [names]
    return [LEGACY / str(n) for n in names]


def _load(paths: list[Path]) -> Any:
    return load_rules([RulesFile(p.name, p.read_bytes()) for p in paths])


def _matches(expected: dict[str, Any], diag: Diagnostic) -> bool:
    code = CODE_RENAMED.get(expected["code"], expected["code"])
    if diag.code != code or diag.item_type != expected["item_type"]:
        return False
    if diag.item_name != (expected.get("item_name") or ""):
        return False
    if "message" in expected:
        want = expected["message"]
        if want.startswith("yaml-cpp: "):
            # another YAML parser's wording: the code and the position must agree
            m = re.search(r"line (\d+), column (\d+)", want)
            assert m is not None
            return (diag.line, diag.column) == (int(m[1]), int(m[2]))
        return bool(diag.message == REWORDED.get(want, want))
    want = expected["message_contains"]
    return REWORDED.get(want, want) in diag.message


def test_the_fixture_cases_were_found() -> None:
    if not LEGACY.exists():
        pytest.skip("corpus not present")
    assert len(CASES) >= 40


@pytest.mark.parametrize(("case", "spec"), CASES, ids=[c for c, _ in CASES])
def test_validation_case(case: str, spec: dict[str, Any]) -> None:
    for ok_file in spec.get("validate_ok", []):
        alone = _load([LEGACY / "rules" / ok_file])
        assert alone.errors == (), f"{ok_file} must load on its own"
    result = _load(_files(spec))
    for expected in spec.get("validate_errors", []):
        assert any(_matches(expected, d) for d in result.errors), (
            f"missing error {expected}; got {[str(d) for d in result.errors]}"
        )
    for expected in spec.get("validate_warnings", []):
        assert any(_matches(expected, d) for d in result.warnings), (
            f"missing warning {expected}; got {[str(d) for d in result.warnings]}"
        )
    if spec.get("validate_errors"):
        assert result.ruleset is None  # a broken file never half-loads
    else:
        assert result.errors == ()
    for diag in result.diagnostics:  # every diagnostic says where
        assert diag.file and diag.line is not None, diag
