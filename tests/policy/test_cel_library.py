"""The Kubernetes CEL library vectors of tests/policy/conformance/cel_library.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.policy.celenv import CelCompileError, new_env

VECTORS = yaml.safe_load(
    (Path(__file__).parent / "conformance" / "cel_library.yaml").read_text(encoding="utf-8")
)
CASES = [
    pytest.param(case, id=f"{library}/{case['name']}")
    for library, cases in VECTORS.items()
    for case in cases
]


def _run(expr: str) -> Any:
    value = new_env(("object",)).compile(expr).program.eval(data={"object": None})
    return value.type().name(), value.plain_value()


@pytest.mark.parametrize("case", CASES)
def test_upstream_vector(case: dict[str, Any]) -> None:
    expr = case["expr"]
    if "compile_error" in case:
        with pytest.raises(CelCompileError) as caught:
            _run(expr)
        assert re.search(case["compile_error"], str(caught.value))
        return
    if "unsupported" in case:
        # Documented gaps must fail loudly, never evaluate to something else.
        with pytest.raises(CelCompileError):
            _run(expr)
        return
    kind, value = _run(expr)
    if "error" in case:
        assert kind == "ERROR", value
        assert re.search(case["error"], str(value)), value
    elif "same_as" in case:
        assert kind != "ERROR", value
        assert value == _run(case["same_as"])[1]
    elif "approx" in case:
        assert value == pytest.approx(case["approx"], abs=1e-4)
    else:
        assert kind != "ERROR", value
        assert value == case["value"] and type(value) is type(case["value"])


# The examples of the Kubernetes CEL reference (kubernetes.io, "Common Expression Language in
# Kubernetes": lists, regex and URL libraries), with the results printed there.
DOCUMENTED = [
    ("[1, 2, 3].isSorted()", True),
    ("[3, 1].isSorted()", False),
    ("[1, 2, 3].sum() == 6", True),
    ("[1, 2, 3].max() == 3", True),
    ("['b', 'a'].min() == 'a'", True),
    ("'abc 123'.find('[0-9]+') == '123'", True),
    ("'123 abc 456'.findAll('[0-9]+') == ['123', '456']", True),
    ("'123 abc 456'.findAll('[0-9]+', 1) == ['123']", True),
    ("'abc'.find('[0-9]+') == ''", True),
    ("isURL('https://example.com/path')", True),
    ("isURL('../relative-path')", False),
    ("url('https://example.com:80/').getHost() == 'example.com:80'", True),
    ("url('https://[::1]:80/').getHostname() == '::1'", True),
    ("url('https://example.com:80/').getPort() == '80'", True),
    ("url('https://example.com/').getPort() == ''", True),
    ("url('/absolute-path').getScheme() == ''", True),
    ("url('https://example.com/path').getEscapedPath() == '/path'", True),
    (
        "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == "
        "{'k1': ['a'], 'k2': ['b', 'c']}",
        True,
    ),
]


@pytest.mark.parametrize(("expr", "value"), DOCUMENTED, ids=[e for e, _ in DOCUMENTED])
def test_documented_example(expr: str, value: bool) -> None:
    assert _run(expr) == ("BOOL", value)
