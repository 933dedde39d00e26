"""Variables bound inside expressions (skanse.policy.inline) change speed, never outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.policy.engine import Attributes, evaluate
from skanse.policy.inline import variables_read
from skanse.policy.load import load_policies
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
