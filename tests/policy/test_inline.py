"""Variables bound inside expressions (skanse.policy.inline) change speed, never outcomes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from skanse.policy import engine
from skanse.policy.engine import Attributes, evaluate
from skanse.policy.inline import variables_read
from skanse.policy.load import PolicySet, load_objects, load_policies
from tests.conftest import ROOT
from tests.policy.test_engine import pod, write_policy


@pytest.mark.parametrize(
    ("source", "read"),
    [
        ("object.x == 1", frozenset()),
        ("variables.a && variables.?b.orValue(true)", frozenset({"a", "b"})),
        ("variables[?'c'].hasValue() && variables['d']", frozenset({"c", "d"})),
        ("size(variables) > 0", None),  # the whole map: only the exact evaluation knows
        ("'variables.a' == variables.b", None),  # the name inside a string: not guessed
    ],
)
def test_which_variables_an_expression_reads(source: str, read: frozenset[str] | None) -> None:
    assert variables_read(source) == read


def test_a_failing_variable_that_is_not_read_does_not_fail_the_validation(
    tmp_path: Path,
) -> None:
    extra = (
        "  variables:\n"
        '    - {name: broken, expression: "1 / 0 == 1"}\n'
        '    - {name: name, expression: "object.metadata.name"}\n'
        "    - {name: isWeb, expression: \"variables.name == 'web'\"}\n"
    )
    path = write_policy(
        tmp_path,
        '    - expression: "!variables.isWeb"\n'
        "      messageExpression: \"'no pod may be called ' + variables.name\"\n"
        '    - expression: "variables.broken"\n',
        extra=extra,
    )
    policies = load_policies([path])
    assert policies.policies[0].validations[0].expression.inlined is not None
    decisions = evaluate(policies, Attributes.for_object(pod())).decisions
    first = decisions[0]
    assert (first.index, first.error, first.message) == (0, False, "no pod may be called web")
    assert decisions[1].index == 1 and decisions[1].error


def test_a_chain_too_deep_to_inline_is_evaluated_exactly(tmp_path: Path) -> None:
    chain = "".join(
        f'    - {{name: v{i}, expression: "variables.v{i - 1} + 1"}}\n' for i in range(1, 40)
    )
    extra = '  variables:\n    - {name: v0, expression: "0"}\n' + chain
    path = write_policy(tmp_path, '    - expression: "variables.v39 == 38"\n', extra=extra)
    policies = load_policies([path])
    assert policies.policies[0].validations[0].expression.inlined is None
    [decision] = evaluate(policies, Attributes.for_object(pod())).decisions
    assert decision.message == "failed expression: variables.v39 == 38"


def _decisions(policies: PolicySet, obj: dict[str, Any]) -> list[tuple[Any, ...]]:
    result = evaluate(policies, Attributes.for_object(obj))
    return [(d.policy, d.binding, d.index, d.message, d.reason, d.error) for d in result.decisions]


def _one_by_one(policies: PolicySet) -> PolicySet:
    alone = tuple(dataclasses.replace(p, all_validations=None) for p in policies.policies)
    return dataclasses.replace(policies, policies=alone)


def test_validations_judged_in_one_evaluation_decide_as_each_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ready policies on their test resources, a policy whose validations pass and fail
    without error (judged in one evaluation), and one with a failing validation between
    passing and failing ones (judged one by one after the combined evaluation errs): the same
    decisions whichever way they are run."""
    extra = '  variables:\n    - {name: name, expression: "object.metadata.name"}\n'
    checks = (
        "    - expression: \"variables.name != 'web'\"\n"
        "    - expression: \"variables.name.startsWith('w')\"\n"
        '    - expression: "size(variables.name) > 10"\n'
    )
    clean = write_policy(tmp_path, checks, extra=extra, name="clean")
    broken = write_policy(
        tmp_path,
        checks + '    - expression: "1 / 0 == 1"\n'
        '    - expression: "object.metadata.name"\n',  # not a bool
        extra=extra,
        name="broken",
    )
    ready = load_policies([ROOT / "policies"])
    resources = [
        o.data for o in load_objects([str(ROOT / "policies")], []) if o.kind != "Namespace"
    ]
    cases = [(ready, r) for r in resources]
    cases += [(load_policies([p]), pod()) for p in (clean, broken)]
    assert all(load_policies([p]).policies[0].all_validations is not None for p in (clean, broken))
    combined: list[list[Any] | None] = []
    real = engine._all_validations

    def spy(policy: Any, activation: Any) -> list[Any] | None:
        values = real(policy, activation)
        combined.append(values)
        return values

    monkeypatch.setattr(engine, "_all_validations", spy)
    judged = 0
    for policies, obj in cases:
        together = _decisions(policies, obj)
        assert together == _decisions(_one_by_one(policies), obj)
        judged += bool(together)
    assert judged >= 5
    # the combined evaluation did decide (else this compared the one-by-one path with itself)
    assert any(values is not None for values in combined)


def test_validations_that_together_pass_the_iteration_budget_are_judged_each_alone(
    tmp_path: Path,
) -> None:
    # Each comprehension runs 6,000 iterations: within the runtime's 10,000 on its own, past
    # it in one evaluation of both.
    path = write_policy(
        tmp_path,
        '    - expression: "object.data.items.all(x, x >= 0)"\n'
        '    - expression: "object.data.items.exists(x, x < 0)"\n',
    )
    policies = load_policies([path])
    assert policies.policies[0].all_validations is not None
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "shop"},
        "data": {"items": list(range(6000))},
    }
    [decision] = evaluate(policies, Attributes.for_object(config)).decisions
    assert (decision.index, decision.error) == (1, False)
