"""The four upstream rulesets load unchanged, with the counts the corpus SOURCES.md records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from skanse.rules.fields import resolve_field
from skanse.rules.loader import LoadResult, RulesFile, load_rules
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus

SYSCALL_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def _load(*names: str) -> LoadResult:
    return load_rules([RulesFile(n, corpus_path("falco", n).read_bytes()) for n in names])


def _expected_counts() -> dict[str, dict[str, int]]:
    """The counts table of SOURCES.md: | file | rules (enabled) | macros | lists | ..."""
    text = corpus_path("falco", "SOURCES.md").read_text()
    table: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        m = re.match(
            r"\|\s*(\S+\.yaml)\s*\|\s*(\d+) \((\d+)\)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", line
        )
        if m:
            table[m[1]] = {
                "rule": int(m[2]),
                "rule_enabled": int(m[3]),
                "macro": int(m[4]),
                "list": int(m[5]),
            }
    assert len(table) == 4, "SOURCES.md counts table not found"
    return table


def test_syscall_rulesets_load_in_order_with_zero_errors() -> None:
    result = _load(*SYSCALL_FILES)
    assert result.errors == ()
    assert result.ruleset is not None
    expected = _expected_counts()
    for name in SYSCALL_FILES:
        counts = result.item_counts[name]
        for kind, value in expected[name].items():
            assert counts.get(kind, 0) == value, (name, kind)
    assert len(result.ruleset.rules) == 25 + 31 + 37
    assert len(result.ruleset.enabled()) == 25 + 31 + 25


def test_k8s_audit_rules_load_on_their_own() -> None:
    result = _load("k8s_audit_rules.yaml")
    assert result.errors == ()
    assert result.ruleset is not None
    expected = _expected_counts()["k8s_audit_rules.yaml"]
    assert {k: result.item_counts["k8s_audit_rules.yaml"].get(k, 0) for k in expected} == expected
    assert {r.source for r in result.ruleset.rules} == {"k8s_audit"}
    assert all(r.evttypes is None for r in result.ruleset.rules)  # plugin events: one type


def test_stable_ruleset_loads_alone_without_warnings() -> None:
    result = _load("falco_rules.yaml")
    assert result.diagnostics == ()
    assert result.ruleset is not None
    priorities: dict[str, int] = {}
    for rule in result.ruleset.rules:
        priorities[rule.priority.name] = priorities.get(rule.priority.name, 0) + 1
    # SOURCES.md / notes: 14 WARNING, 7 NOTICE, 3 CRITICAL, 1 INFO
    assert priorities == {"WARNING": 14, "NOTICE": 7, "CRITICAL": 3, "INFORMATIONAL": 1}


def test_every_syscall_rule_is_indexed_by_event_type() -> None:
    result = _load(*SYSCALL_FILES)
    assert result.ruleset is not None
    unindexed = [r.name for r in result.ruleset.rules if r.evttypes is None]
    assert unindexed == []
    stable = [r for r in result.ruleset.rules if r.file == "falco_rules.yaml"]
    per_type: dict[str, int] = {}
    for rule in stable:
        assert rule.evttypes is not None
        for t in rule.evttypes:
            per_type[t] = per_type.get(t, 0) + 1
    # notes: execve/execveat 11, open/openat/openat2 5, connect 2, ptrace 2
    assert per_type["execve"] == per_type["execveat"] == 11
    assert per_type["open"] == per_type["openat"] == per_type["openat2"] == 5
    assert per_type["connect"] == 2
    assert per_type["ptrace"] == 2


def _stats_fields(name: str) -> set[str]:
    data = json.loads(corpus_path("falco", name).read_text())
    fields: set[str] = set()
    for stats in data.values():
        for key in ("fields_condition", "fields_output"):
            fields.update(f for f, _ in stats.get(key, []))
    return fields


@pytest.mark.parametrize(
    ("stats", "source"),
    [("stats_syscall_rulesets.json", "syscall"), ("stats_k8s_audit_rules.json", "k8s_audit")],
)
def test_every_field_the_rulesets_use_is_registered(stats: str, source: str) -> None:
    fields = _stats_fields(stats)
    assert fields
    for text in sorted(fields):
        name = text.removesuffix("[]")
        arg = "1" if text.endswith("[]") else None
        if name == "jevt.value":
            arg = "/stage"
        if name in ("container.mount.dest", "ka.uri.param", "evt.arg"):
            arg = "x"
        resolve_field(name, arg, source)  # raises for an unknown field


def test_rulesets_compile_fast_enough_to_reload() -> None:
    # not a timing test: loading twice gives identical rules (no state leaks between loads)
    first = _load(*SYSCALL_FILES)
    second = _load(*SYSCALL_FILES)
    assert first.ruleset is not None and second.ruleset is not None
    assert [r.condition for r in first.ruleset.rules] == [r.condition for r in second.ruleset.rules]
    assert Path(first.ruleset.rules[0].file).name == "falco_rules.yaml"
