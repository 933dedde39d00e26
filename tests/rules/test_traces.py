"""Falco's legacy detection fixtures on real .scap captures, exit events only.

The captures are decoded by Debian's sysdig (tests/rules/scap.py) into skanse events. For every
detection case of falco_tests.yaml and falco_tests_exceptions.yaml whose capture is in the
corpus, three things are checked:

1. skanse's count per rule equals libsinsp's own count (sysdig evaluating the same resolved
   condition, `evt.dir='<'`, with first-match order applied), so skanse agrees with libsinsp
   on exit events;
2. the fixture's `detect` (alerts or none) holds for skanse;
3. the fixture's `detect_counts`, which Falco <= 0.34 produced by evaluating enter *and* exit
   events, are reproduced by the same oracle without the `evt.dir` filter. The difference is
   the drop of enter events in Falco >= 0.42: `open_from_cat` is 8 in the fixture (4 enter +
   4 exit) and 4 in skanse, as in today's Falco.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from skanse.rules.engine import Engine
from skanse.rules.loader import Priority, Rule, RulesFile, load_rules
from skanse.sources.yamlpos import load_documents
from tests.conftest import CORPORA
from tests.rules.scap import SYSDIG, exit_events, matching, unparse

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(SYSDIG is None, reason="sysdig (Debian package) is not installed"),
]

LEGACY = CORPORA / "falco" / "legacy_tests"
SUPPORTED = {
    "detect",
    "detect_level",
    "rules_file",
    "trace_file",
    "detect_counts",
    "priority",
    "disable_tags",
    "run_tags",
    "all_events",
    "rules_warning",
    "disabled_rules",
    "stdout_contains",
}


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in ("falco_tests.yaml", "falco_tests_exceptions.yaml"):
        path = LEGACY / name
        if not path.exists():
            return []
        (doc,) = list(load_documents(path.read_bytes()))
        assert not isinstance(doc, Exception)
        for case, spec in doc.data["trace_files"].items():  # type: ignore[index]
            trace = LEGACY / str(spec.get("trace_file", ""))
            if "rules_file" not in spec or not trace.is_file():
                continue
            if set(spec) - SUPPORTED:
                continue
            if not all((LEGACY / f).exists() for f in spec["rules_file"]):
                continue
            out.append((f"{name}:{case}", spec))
    return out


CASES = _cases()
_EVENTS: dict[Path, list[dict[str, Any]]] = {}


def _rules_files(spec: dict[str, Any]) -> list[Path]:
    paths: list[Path] = []
    for name in spec["rules_file"]:
        path = LEGACY / name
        paths.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return paths


def _select(rules: tuple[Rule, ...], spec: dict[str, Any]) -> list[Rule]:
    selected = []
    minimum = Priority.parse(str(spec.get("priority", "debug")))
    assert minimum is not None
    for rule in rules:
        if rule.priority > minimum:
            continue
        if any(t in rule.tags for t in spec.get("disable_tags", [])):
            continue
        run_tags = spec.get("run_tags")
        if run_tags and not any(t in rule.tags for t in run_tags):
            continue
        if any(re.search(p, rule.name) for p in spec.get("disabled_rules", [])):
            continue
        selected.append(rule)
    return selected


def _first_match(per_rule: dict[str, list[int]], order: list[str]) -> dict[str, int]:
    """Counts per rule when each event goes to the first rule (in load order) it matches."""
    owner: dict[int, str] = {}
    for name in order:
        for num in per_rule[name]:
            owner.setdefault(num, name)
    counts = dict.fromkeys(order, 0)
    for name in owner.values():
        counts[name] += 1
    return counts


def test_cases_were_found() -> None:
    if not LEGACY.exists():
        pytest.skip("corpus not present")
    assert len(CASES) >= 40


@pytest.mark.parametrize(("case", "spec"), CASES, ids=[c for c, _ in CASES])
def test_trace_case(case: str, spec: dict[str, Any]) -> None:
    paths = _rules_files(spec)
    result = load_rules([RulesFile(p.name, p.read_bytes()) for p in paths])
    assert result.errors == (), [str(d) for d in result.errors]
    assert result.ruleset is not None
    rules = _select(result.ruleset.enabled("syscall"), spec)
    trace = LEGACY / spec["trace_file"]
    if trace not in _EVENTS:
        _EVENTS[trace] = exit_events(trace)
    engine = Engine(result.ruleset, rules=rules, rule_matching="first")
    ours = dict.fromkeys((r.name for r in rules), 0)
    outputs = []
    for recorded_event in _EVENTS[trace]:
        event = dict(recorded_event)
        for ancestor in event.pop("_ancestors"):
            if ancestor["pid"] not in engine.table.processes:
                engine.table.upsert(ancestor)
        for alert in engine.process(event):
            ours[alert.rule] += 1
            outputs.append(alert.line())
    assert engine.stats.eval_errors == 0

    order = [r.name for r in rules]
    exit_only = {r.name: matching(trace, f"({unparse(r.ast)}) and evt.dir='<'") for r in rules}
    assert ours == _first_match(exit_only, order)  # 1. agrees with libsinsp, exit events

    detected = sum(ours.values()) > 0
    if "detect" in spec:
        assert detected == bool(spec["detect"])  # 2. the fixture's detect holds
    expected = {k: v for item in spec.get("detect_counts", []) for k, v in item.items()}
    if expected:  # 3. the oracle reproduces Falco's recorded enter+exit counts
        both = {r.name: matching(trace, unparse(r.ast)) for r in rules}
        recorded = _first_match(both, order)
        for rule, count in expected.items():
            assert recorded.get(rule, 0) == count, (rule, recorded)
    if "stdout_contains" in spec and detected:
        pattern = spec["stdout_contains"]
        assert any(re.search(pattern, line) for line in outputs), outputs[:3]
