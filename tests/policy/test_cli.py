"""`skanse policy validate` and `skanse policy test` as a user runs them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.policy.test_engine import write_policy


def test_validate_reports_a_field_no_matched_kind_has_with_its_position(
    cli: Any, tmp_path: Path
) -> None:
    write_policy(
        tmp_path,
        "    - expression: |\n"
        "        object.spec.containers.all(c, has(c.image)) &&\n"
        "        object.spec.hostNetwrk != true\n",
    )
    result = cli("policy", "validate", str(tmp_path))
    assert result.code == 1
    assert (
        "spec.validations[0].expression (expression 2:13): no field 'hostNetwrk' in V1PodSpec"
        in result.stdout
    )
    assert "matched kinds: Pod, ConfigMap" in result.stdout


def test_validate_accepts_a_path_that_one_matched_kind_has(cli: Any, tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "    - expression: >-\n"
        "        object.kind == 'Pod' ? has(object.spec.nodeName) : has(object.data)\n",
    )
    result = cli("policy", "validate", str(tmp_path))
    assert (result.code, result.stdout.strip()) == (0, "1 policy, 0 errors")


def test_a_failing_policy_test_shows_what_was_expected_and_what_came(
    cli: Any, tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "policies" / "registry-allow-list", tmp_path / "p")
    test_file = tmp_path / "p" / "tests" / "skanse-test.yaml"
    text = test_file.read_text(encoding="utf-8").replace(
        "resources: [Pod/shop/allowed, ", "resources: [Pod/shop/docker-hub, ", 1
    )
    test_file.write_text(text, encoding="utf-8")
    result = cli("policy", "test", str(tmp_path))
    assert result.code == 1
    assert (
        "FAIL registry-allow-list on Pod/shop/docker-hub: expected pass, got fail" in result.stdout
    )
    assert "+ message:          images must come from registry.example.com" in result.stdout
    assert result.stdout.rstrip().endswith("7 passed, 1 failed")


def test_ready_policies_validate_and_pass_their_tests(cli: Any) -> None:
    assert cli("policy", "validate", str(ROOT / "policies")).code == 0
    assert cli("policy", "test", str(ROOT / "policies")).code == 0


def test_validate_reports_a_variable_read_before_it_is_declared(cli: Any, tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        '    - expression: "variables.first && variables.secnd"\n',
        extra="  variables:\n"
        '    - {name: first, expression: "variables.second"}\n'
        '    - {name: second, expression: "true"}\n',
    )
    result = cli("policy", "validate", str(tmp_path))
    assert result.code == 1
    assert (
        "spec.variables[0].expression (expression 1:1): no variable 'second' is declared "
        "before this expression" in result.stdout
    )
    assert "spec.validations[0].expression (expression 1:20): no variable 'secnd'" in result.stdout
