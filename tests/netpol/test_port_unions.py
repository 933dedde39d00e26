"""Unions of many port sets cost one sort, not one sort per set: a rule with thousands of
ports, thousands of rules, or thousands of policies selecting one pod (all attacker-written
manifests in a pull request) once took tens of seconds and gigabytes in `netpol list` and
`explain`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import skanse.netpol.ports as ports_module
from skanse.netpol.engine import analyse
from skanse.netpol.explain import explain, parse_target
from skanse.netpol.model import NetworkModel
from skanse.netpol.ports import ConnSet, Protocol, Ranges
from tests.netpol.helpers import model_from, pod, policy


def _pods() -> list[dict[str, Any]]:
    return [pod("a", "web", {"app": "web"}), pod("a", "cli", {"app": "cli"})]


def one_rule(n: int) -> NetworkModel:
    rule = {"ports": [{"port": 2 * i + 1} for i in range(n)]}
    return model_from([*_pods(), policy("a", "p", {"podSelector": {}, "ingress": [rule]})])


def many_rules(n: int) -> NetworkModel:
    rules = [{"ports": [{"port": 2 * i + 1}]} for i in range(n)]
    return model_from([*_pods(), policy("a", "p", {"podSelector": {}, "ingress": rules})])


def many_policies(n: int) -> NetworkModel:
    docs = [
        policy("a", f"p{i}", {"podSelector": {}, "ingress": [{"ports": [{"port": 2 * i + 1}]}]})
        for i in range(n)
    ]
    return model_from([*_pods(), *docs])


def _sorted_ranges(monkeypatch: pytest.MonkeyPatch, work: Callable[[], object]) -> int:
    """How many port ranges were put through the normalising sort while `work` ran."""
    original = ports_module._normalise
    count = 0

    def counting(ranges: Any) -> Ranges:
        nonlocal count
        ranges = list(ranges)
        count += len(ranges)
        return original(ranges)

    monkeypatch.setattr(ports_module, "_normalise", counting)
    try:
        work()
    finally:
        monkeypatch.setattr(ports_module, "_normalise", original)
    return count


def _list_and_explain(model: NetworkModel) -> None:
    connections = analyse(model).connections()
    assert any(c.src.label == "a/cli[Pod]" and c.dst.label == "a/web[Pod]" for c in connections)
    src, _ = parse_target(model, "a/cli")
    dst, query = parse_target(model, "a/web:81", allow_port=True)
    assert [e.allows for e in explain(model, src, dst, query)] == [True]


@pytest.mark.parametrize("build", [one_rule, many_rules, many_policies])
def test_port_unions_grow_linearly(
    monkeypatch: pytest.MonkeyPatch, build: Callable[[int], NetworkModel]
) -> None:
    small_model, large_model = build(250), build(1000)
    small = _sorted_ranges(monkeypatch, lambda: _list_and_explain(small_model))
    large = _sorted_ranges(monkeypatch, lambda: _list_and_explain(large_model))
    # four times the ports: about four times the work (folding `|` made it sixteen)
    assert large / small < 6, (small, large)


def test_the_union_is_what_the_rules_allow() -> None:
    model = many_policies(300)
    conns = analyse(model).workload_pair(0, 1)  # a/cli -> a/web
    expected = ConnSet.of({Protocol.TCP: [(2 * i + 1, 2 * i + 1) for i in range(300)]})
    assert conns == expected
    assert str(conns).startswith("TCP 1,3,5,")
