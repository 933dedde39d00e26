"""Loader semantics: overrides, appends, exceptions, lists and macros, and bad input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skanse.errors import InputError
from skanse.rules.engine import Engine
from skanse.rules.loader import (
    ERROR_NO_PREVIOUS_MACRO,
    ERROR_NO_PREVIOUS_RULE_REPLACE,
    ERROR_OVERRIDE_APPEND,
    MAX_RULES_FILE_BYTES,
    WARNING_APPEND,
    LoadResult,
    RulesFile,
    _Exception,
    _Item,
    _Loader,
    load_rules,
    read_rules_files,
)
from skanse.rules.parser import BinaryCheck, ListExpr, LogicalExpr
from tests._counting import count_reads
from tests._fifo import fed_fifo

BASE = """
- list: shells
  items: [bash, sh]
- macro: spawned
  condition: evt.type = execve
- rule: shell
  desc: a shell
  condition: spawned and proc.name in (shells)
  output: "shell %proc.name"
  priority: WARNING
  tags: [a]
"""


def _load(*texts: str) -> LoadResult:
    return load_rules([RulesFile(f"f{i}.yaml", t) for i, t in enumerate(texts)])


def _messages(result: LoadResult, level: str = "error") -> list[str]:
    return [d.message for d in result.diagnostics if d.level == level]


def test_override_append_and_replace_across_files() -> None:
    result = _load(
        BASE,
        """
- list: shells
  items: [zsh]
  override: {items: append}
- macro: spawned
  condition: or evt.type = execveat
  override: {condition: append}
- rule: shell
  condition: and proc.tty != 0
  output: "(tty %proc.tty)"
  priority: critical
  tags: [b]
  override: {condition: append, output: append, priority: replace, tags: replace}
""",
    )
    assert result.errors == ()
    assert result.ruleset is not None
    (rule,) = result.ruleset.rules
    assert rule.condition == "spawned and proc.name in (shells) and proc.tty != 0"
    assert rule.output.text == "shell %proc.name (tty %proc.tty)"
    assert rule.priority.name == "CRITICAL"
    assert rule.tags == ("b",)
    assert rule.evttypes == frozenset({"execve", "execveat"})


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "- rule: shell\n  priority: INFO\n  override: {priority: append}\n",
            "Key 'priority' cannot be appended to, use 'replace' instead",
        ),
        (
            "- rule: shell\n  condition: x\n  priority: INFO\n  override: {condition: append}\n",
            "Unexpected key 'priority': no corresponding entry under 'override' is defined.",
        ),
        (
            "- rule: shell\n  condition: x\n  append: true\n  override: {condition: append}\n",
            ERROR_OVERRIDE_APPEND,
        ),
        (
            "- rule: nope\n  enabled: false\n  override: {enabled: replace}\n",
            ERROR_NO_PREVIOUS_RULE_REPLACE,
        ),
        (
            "- macro: nope\n  condition: x\n  override: {condition: append}\n",
            ERROR_NO_PREVIOUS_MACRO,
        ),
        (
            "- rule: shell\n  condition: x\n  override: {condition: merge}\n",
            "Invalid override operation for key 'condition': 'merge'. Allowed values are: "
            "append replace ",
        ),
        (
            "- rule: r2\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: LOUD\n",
            "Invalid priority",
        ),
    ],
)
def test_override_errors_use_falco_wording(item: str, message: str) -> None:
    result = _load(BASE, item)
    assert message in _messages(result)
    assert result.ruleset is None  # never half-loaded


def test_deprecated_append_and_enabled_still_work_with_warnings() -> None:
    result = _load(
        BASE,
        "- rule: shell\n  condition: and proc.tty != 0\n  append: true\n"
        "- rule: shell\n  enabled: false\n",
    )
    assert result.errors == ()
    assert WARNING_APPEND in _messages(result, "warning")
    assert any("standalone 'enabled'" in m for m in _messages(result, "warning"))
    assert result.ruleset is not None
    assert result.ruleset.enabled() == ()


def test_exceptions_compile_to_and_not() -> None:
    result = _load(
        BASE
        + """
- rule: cat
  desc: d
  condition: evt.type = open and proc.name = cat
  output: o
  priority: INFO
  exceptions:
    - name: tuple
      fields: [proc.name, proc.cmdline]
      comps: [=, contains]
      values: [[cat, "curl 127.0.0.1"]]
    - name: single
      fields: proc.pname
      values: [bash, sh]
"""
    )
    assert result.errors == ()
    assert result.ruleset is not None
    cat = next(r for r in result.ruleset.rules if r.name == "cat")
    assert cat.condition == (
        "(evt.type = open and proc.name = cat)"
        ' and not ((proc.name = cat and proc.cmdline contains "curl 127.0.0.1"))'
        " and not (proc.pname in (bash, sh))"
    )


def test_list_items_naming_earlier_lists_expand_and_unused_items_warn() -> None:
    result = _load(
        BASE
        + """
- list: more_shells
  items: [shells, zsh]
- list: unused
  items: [x]
- macro: unused_macro
  condition: proc.name in (more_shells)
"""
    )
    warnings = [(d.item_name, d.message) for d in result.warnings]
    assert ("unused", "List not referred to by any other rule/macro") in warnings
    assert ("unused_macro", "Macro not referred to by any other rule/macro") in warnings
    assert ("shells", "List not referred to by any other rule/macro") not in warnings


def test_every_error_is_listed_with_its_position() -> None:
    result = _load(
        """- rule: one
  desc: d
  condition: evt.type = open and
  output: o
  priority: INFO
- rule: two
  desc: d
  condition: evt.type = open and proc.nobody = 1
  output: o
  priority: INFO
- rule: three
  desc: d
  condition: evt.type = open
  output: o %not.a.field
  priority: INFO
- macro: loop_a
  condition: loop_b
- macro: loop_b
  condition: loop_a
- rule: four
  desc: d
  condition: evt.type = open and undefined_macro
  output: o
  priority: INFO
"""
    )
    assert result.ruleset is None
    found = {(d.item_name, d.code, d.line) for d in result.errors}
    assert ("one", "LOAD_ERR_COMPILE_CONDITION", 3) in found
    assert ("two", "LOAD_ERR_COMPILE_CONDITION", 8) in found
    assert ("three", "LOAD_ERR_COMPILE_OUTPUT", 14) in found
    assert ("four", "LOAD_ERR_VALIDATE", 22) in found
    assert any("reference loop in macro" in d.message for d in result.errors)
    two = next(d for d in result.errors if d.item_name == "two")
    assert two.message == "filter_check called with nonexistent field proc.nobody"
    assert two.column == 34  # the column of proc.nobody in the file


def test_skip_if_unknown_filter_turns_the_error_into_a_warning() -> None:
    rule = (
        "- rule: r\n  desc: d\n  condition: evt.type = open and proc.nobody = 1\n"
        "  output: o\n  priority: INFO\n  skip-if-unknown-filter: true\n"
    )
    result = _load(rule)
    assert result.errors == ()
    assert [d.code for d in result.warnings] == ["LOAD_UNKNOWN_FILTER"]
    assert result.ruleset is not None and result.ruleset.rules == ()


def test_hostile_conditions_and_files_fail_cleanly() -> None:
    deep = "(" * 150 + "evt.type = open" + ")" * 150
    result = _load(
        f"- rule: deep\n  desc: d\n  condition: '{deep}'\n  output: o\n  priority: INFO\n"
    )
    assert any("exceeded max depth limit of 100" in m for m in _messages(result))
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
        f" *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    assert _load(bomb).ruleset is None  # an alias bomb is refused, not expanded
    assert _messages(_load("- rule: [unclosed\n"))  # a YAML syntax error is an error
    dup = "- rule: r\n  rule: s\n  desc: d\n  condition: evt.type=open\n  output: o\n"
    assert any("duplicate key" in m for m in _messages(_load(dup)))
    huge = "#" * (64 * 1024 * 1024 + 1)
    assert any("larger than" in m for m in _messages(_load(huge)))


def _macro_chain(count: int, body: str) -> str:
    """Macros m0..m{count}: m0 a check, each next one `body` over the one before it."""
    text = "- macro: m0\n  condition: proc.name = x\n"
    for i in range(1, count + 1):
        cond = body.format(prev=f"m{i - 1}", i=i)
        text += f"- macro: m{i}\n  condition: {cond}\n"
    return text + (
        f"- rule: r1\n  desc: d\n  condition: evt.type = execve and m{count}\n"
        "  output: o\n  priority: WARNING\n"
    )


def test_doubling_macros_are_refused_by_size_not_expanded() -> None:
    # m22 expands to 8 million nodes (minutes and gigabytes before the cap): refused at once
    result = _load(_macro_chain(22, "({prev} or {prev})"))
    assert result.ruleset is None
    rule = [d for d in result.errors if d.item_type == "rule"]
    assert [(d.item_name, d.code) for d in rule] == [("r1", "LOAD_ERR_COMPILE_CONDITION")]
    assert "max size limit of 100000 nodes" in rule[0].message
    assert _load(_macro_chain(12, "({prev} or {prev})")).ok  # 8,191 nodes is fine


def test_the_total_expanded_size_of_a_load_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # each rule is under the per-condition cap; together they are not
    monkeypatch.setattr("skanse.rules.loader.MAX_EXPANDED_TOTAL", 20_000)
    text = _macro_chain(12, "({prev} or {prev})")
    text += "".join(
        f"- rule: r{k}\n  desc: d\n  condition: evt.type = open and m12\n"
        "  output: o\n  priority: WARNING\n"
        for k in range(2, 5)
    )
    result = _load(text)
    assert result.ruleset is None
    assert {d.item_name for d in result.errors} == {"r3", "r4"}
    assert all("max total size limit" in d.message for d in result.errors)


def test_deep_macro_chains_are_a_load_error_not_a_crash() -> None:
    # before: SyntaxError "too many nested parentheses" at 200, RecursionError at 1,000
    for count in (200, 1000):
        result = _load(_macro_chain(count, "({prev} and proc.pid = {i})"))
        assert result.ruleset is None
        rule = [d for d in result.errors if d.item_type == "rule"]
        assert [(d.item_name, d.code) for d in rule] == [("r1", "LOAD_ERR_COMPILE_CONDITION")]
        assert "max depth limit of 150" in rule[0].message
    # aliases in reverse order (m0: m1, m1: m2, ...) nest without nesting and/or/not
    aliases = "".join(f"- macro: m{i}\n  condition: m{i + 1}\n" for i in range(5000))
    aliases += "- macro: m5000\n  condition: proc.name = x\n"
    aliases += "- rule: r\n  desc: d\n  condition: evt.type = open and m0\n  output: o\n"
    result = _load(aliases + "  priority: INFO\n")
    assert result.ruleset is None
    assert any("macros nest deeper than" in d.message for d in result.errors)
    assert _load(_macro_chain(100, "({prev} and proc.pid = {i})")).ok


def test_required_versions() -> None:
    assert _load("- required_engine_version: 0.57.0\n").errors == ()
    assert _load("- required_engine_version: 15\n").errors == ()
    too_new = _load("- required_engine_version: 1.0.0\n")
    assert too_new.errors and "Rules require engine version 1.0.0" in too_new.errors[0].message
    plugins = "- required_plugin_versions:\n  - name: container\n    version: 0.4.0\n"
    assert _load(plugins).errors == ()


def test_read_rules_files_reads_in_order_and_names_what_cannot_be_read(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(BASE)
    second.write_text("- list: shells\n  items: [zsh]\n  append: true\n")
    files = read_rules_files([str(first), str(second)])
    assert [(f.name, f.content) for f in files] == [
        (str(first), BASE.encode()),
        (str(second), second.read_bytes()),
    ]
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match=f"{missing}: No such file"):
        read_rules_files([str(first), str(missing)])
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:  # sparse: the size is checked before anything is read
        handle.truncate(MAX_RULES_FILE_BYTES + 1)
    assert os.stat(huge).st_size > MAX_RULES_FILE_BYTES
    with pytest.raises(InputError, match=f"{huge}: larger than 64 MiB"):
        read_rules_files([str(huge)])


def test_a_rules_file_without_a_size_is_read_only_up_to_the_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A FIFO (or /dev/zero) has no size to check first: reading stops at the limit."""
    import skanse.rules.loader

    monkeypatch.setattr(skanse.rules.loader, "MAX_RULES_FILE_BYTES", 1024 * 1024)
    with (
        fed_fifo(tmp_path / "rules.fifo", b"#" * (4 * 1024 * 1024)) as fifo,
        pytest.raises(InputError, match=f"{fifo}: larger than 1 MiB"),
    ):
        read_rules_files([str(fifo)])


def _list_chain(count: int) -> str:
    """Lists m{count}..m0, each defined before the one it names twice: Falco substitutes
    m{count} first, then the m{count-1} in its items, ... (2^count items of /bin/sh)."""
    text = "".join(f"- list: m{i}\n  items: [m{i - 1}, m{i - 1}]\n" for i in range(count, 0, -1))
    return text + (
        "- list: m0\n  items: [/bin/sh]\n"
        f"- rule: r\n  desc: d\n  condition: evt.type = execve and proc.name in (m{count})\n"
        "  output: o\n  priority: WARNING\n"
    )


def test_doubling_lists_are_refused_by_size_not_substituted() -> None:
    # m24 is 16 million items; substituted one list after another, m18 took 264 s before
    result = _load(_list_chain(24))
    assert result.ruleset is None
    rule = [d for d in result.errors if d.item_type == "rule"]
    assert [(d.item_name, d.code) for d in rule] == [("r", "LOAD_ERR_COMPILE_CONDITION")]
    assert "lists expanded exceeds max size limit of 8388608 characters" in rule[0].message
    # below the cap the items are all substituted, as Falco substitutes them
    small = _load(_list_chain(10))
    assert small.ruleset is not None
    (rule_10,) = small.ruleset.rules
    assert isinstance(rule_10.ast, LogicalExpr)
    (values,) = [
        c.right
        for c in rule_10.ast.children
        if isinstance(c, BinaryCheck) and isinstance(c.right, ListExpr)
    ]
    assert values.values == ("/bin/sh",) * 1024
    engine = Engine(small.ruleset)
    shell = {"type": "execve", "pid": 1, "proc": {"name": "/bin/sh"}}
    assert [a.rule for a in engine.process(shell)] == ["r"]
    assert engine.process({"type": "execve", "pid": 2, "proc": {"name": "m0"}}) == []


class _CountingLists(dict[str, list[str]]):
    """Compiled lists that count how many of their entries are visited."""

    visits = 0

    def __iter__(self) -> Iterator[str]:
        for key in super().__iter__():
            _CountingLists.visits += 1
            yield key

    def items(self) -> Iterator[tuple[str, list[str]]]:  # type: ignore[override]
        for pair in super().items():
            _CountingLists.visits += 1
            yield pair


def test_list_substitution_visits_each_list_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every condition searched its text for every list: 8,000 lists and 8,000 rules took
    # 6.4 s (1.8 s at 4,000), now 1.3 s
    compile_lists = _Loader.compile_lists

    def counting(self: _Loader) -> dict[str, list[str]]:
        return _CountingLists(compile_lists(self))

    monkeypatch.setattr(_Loader, "compile_lists", counting)
    for count in (500, 1000):
        _CountingLists.visits = 0
        text = "".join(f"- list: l{i}\n  items: [p{i}]\n" for i in range(count))
        text += "".join(
            f"- rule: r{i}\n  desc: d\n  condition: evt.type = execve and proc.name in (l{i})\n"
            "  output: o\n  priority: WARNING\n"
            for i in range(count)
        )
        result = _load(text)
        assert result.ok
        assert _CountingLists.visits <= 4 * count  # before: count * count


class _Tag(str):
    """A tag that counts how often it is compared for equality."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _Tag.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_tags_are_deduplicated_by_lookup_not_by_scanning(monkeypatch: pytest.MonkeyPatch) -> None:
    # each tag was looked for in a list of the tags before it: one rule with 80,000 tags took
    # 24 s to load (20,000/40,000/80,000 = 1.1/5.1/24.0 s), now 0.04/0.09/0.19 s; 40,000
    # appended tags 8.5 s (5,000/10,000/20,000/40,000 = 0.22/0.64/2.24/8.48 s), now 1.1 s
    sequence = _Item.sequence

    def counting(self: _Item, key: str, ctx: Any) -> list[str]:
        values = sequence(self, key, ctx)
        return [_Tag(v) for v in values] if key == "tags" else values

    monkeypatch.setattr(_Item, "sequence", counting)
    rule = "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n"
    for count in (500, 1000):
        _Tag.compared = 0
        tags = [f"t{i}" for i in range(count)] + ["t0", "t1"]
        result = _load(rule + f"  tags: [{', '.join(tags)}]\n")
        assert result.ruleset is not None
        assert result.ruleset.rules[0].tags == tuple(sorted(f"t{i}" for i in range(count)))
        assert _Tag.compared <= 4 * count  # before: about count * count / 2
        _Tag.compared = 0
        appends = "".join(
            f"- rule: r\n  tags: [a{i}, t0]\n  override:\n    tags: append\n" for i in range(count)
        )
        appended = _load(rule + "  tags: [t0]\n" + appends)
        assert appended.ruleset is not None
        assert appended.ruleset.rules[0].tags == ("t0", *(f"a{i}" for i in range(count)))
        assert _Tag.compared <= 8 * count


def _exception(i: int) -> str:
    return f"  - name: e{i}\n    fields: [proc.name]\n    comps: [=]\n    values: [[x{i}]]\n"


def test_exceptions_are_found_by_name_not_by_scanning(monkeypatch: pytest.MonkeyPatch) -> None:
    # each exception was compared with every one before it, and its clause copied the whole
    # condition: 16,000 exceptions in one rule took 4.7 s to load (2,000/4,000/8,000/16,000 =
    # 0.17/0.42/1.38/4.42 s), now 0.14/0.28/0.73/1.57 s, most of it reading the YAML; as
    # 16,000 appends 4.4 s, now 2.2 s
    reads = count_reads(monkeypatch, _Exception, "name")
    rule = "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n"
    for count in (500, 1000):
        reads.count = 0
        inline = _load(rule + "  exceptions:\n" + "".join(_exception(i) for i in range(count)))
        assert inline.ok
        assert reads.count <= 4 * count  # before: about count * count / 2
        reads.count = 0
        appends = "".join(
            f"- rule: r\n  exceptions:\n{_exception(i)}  override:\n    exceptions: append\n"
            for i in range(count)
        )
        extend = "- rule: r\n  exceptions:\n  - name: e7\n    values: [[y]]\n"
        extend += "  override:\n    exceptions: append\n"
        appended = _load(rule + appends + extend)
        assert appended.ruleset is not None, [str(d) for d in appended.errors]
        condition = appended.ruleset.rules[0].condition
        assert condition.count(" and not ") == count
        assert "(proc.name = x7) or (proc.name = y)" in condition  # e7's values extended
        assert reads.count <= 8 * count


_APPEND_HEAD = (
    "- macro: m\n  condition: proc.name = a\n"
    "- rule: r\n  desc: d\n  condition: evt.type = execve and (m)\n  output: o\n"
    "  priority: WARNING\n"
)


def _macro_appends(count: int) -> str:
    return "".join(
        f"- macro: m\n  condition: or proc.name = p{i}\n  override: {{condition: append}}\n"
        for i in range(count)
    )


def _rule_appends(count: int) -> str:
    return "".join(
        f"- rule: r\n  condition: or proc.pname = q{i}\n  output: o{i}\n  desc: d{i}\n"
        "  override: {condition: append, output: append, desc: append}\n"
        for i in range(count)
    )


def test_appends_are_joined_once_not_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # each append joined its text to the whole text so far: 80,000 macro appends took 5.5 s
    # of CPU to load (10,000/20,000/40,000/80,000 = 0.41/0.86/2.21/5.53 s; read_macro alone
    # 1.4 s at 80,000), now 0.47/0.94/2.21/4.49 s, the YAML and the compile, linear
    from skanse.rules.loader import _Macro, _Rule

    texts = [
        count_reads(monkeypatch, _Macro, "cond", weigh=len),
        *(count_reads(monkeypatch, _Rule, f, weigh=len) for f in ("cond", "output", "desc")),
    ]
    copied = {}
    for count in (250, 500, 1000, 2000):
        for reads in texts:
            reads.weight = 0
        result = _load(_APPEND_HEAD + _macro_appends(count) + _rule_appends(count))
        assert result.ruleset is not None, [str(d) for d in result.errors]
        copied[count] = sum(reads.weight for reads in texts)
    # characters of condition, output and desc text read back: in proportion to the text
    # (8x the appends, 8x the text); one copy of the text so far per append made it 64x
    assert copied[2000] <= 10 * copied[250], copied


def test_appended_texts_are_joined_in_order_and_a_replace_drops_earlier_appends() -> None:
    count = 300
    result = _load(_APPEND_HEAD + _macro_appends(count) + _rule_appends(count))
    assert result.ruleset is not None
    (rule,) = result.ruleset.rules
    assert rule.condition == "evt.type = execve and (m) " + " ".join(
        f"or proc.pname = q{i}" for i in range(count)
    )
    assert rule.description == "d " + " ".join(f"d{i}" for i in range(count))
    engine = Engine(result.ruleset)
    (alert,) = engine.process(
        {"type": "execve", "pid": 9, "proc": {"pid": 9, "name": f"p{count - 1}"}}
    )  # the macro's last append: a process named p299 matches
    assert alert.output == "o " + " ".join(f"o{i}" for i in range(count))
    assert engine.process({"type": "execve", "pid": 8, "proc": {"pid": 8, "name": "zz"}}) == []
    replaced = _load(
        _APPEND_HEAD
        + _rule_appends(3)
        + "- rule: r\n  condition: proc.name = b\n  override: {condition: replace}\n"
        + "- rule: r\n  condition: or proc.name = c\n  override: {condition: append}\n"
    )
    assert replaced.ruleset is not None
    assert replaced.ruleset.rules[0].condition == "proc.name = b or proc.name = c"
    assert replaced.ruleset.rules[0].description == "d d0 d1 d2"


def test_appends_between_replaces_of_other_keys_are_still_joined_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a replace of the priority between appends of the condition keeps the appends
    from skanse.rules.loader import _Rule

    text = count_reads(monkeypatch, _Rule, "cond", weigh=len)
    copied = {}
    for count in (250, 2000):
        text.weight = 0
        body = "".join(
            f"- rule: r\n  condition: or proc.pname = q{i}\n  override: {{condition: append}}\n"
            "- rule: r\n  priority: ERROR\n  override: {priority: replace}\n"
            for i in range(count)
        )
        result = _load(_APPEND_HEAD + body)
        assert result.ruleset is not None
        assert result.ruleset.rules[0].condition == "evt.type = execve and (m) " + " ".join(
            f"or proc.pname = q{i}" for i in range(count)
        )
        copied[count] = text.weight
    assert copied[2000] <= 10 * copied[250], copied


def test_words_that_kubernetes_reads_as_booleans_stay_names_in_rules() -> None:
    # Falco's loader (yaml-cpp) keeps a scalar as text until a field converts it: `y` and `N`
    # as exception values are the process names "y" and "N". Kubernetes manifests are typed as
    # go-yaml v2 types them (where `y` is true); rules files must not be
    rules = (
        "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n"
        "  exceptions:\n  - name: e\n    fields: [proc.name]\n    comps: [=]\n"
        "    values: [[y], [N]]\n"
    )
    loaded = _load(rules)
    assert loaded.ruleset is not None, [str(d) for d in loaded.errors]
    assert "(proc.name = y) or (proc.name = N)" in loaded.ruleset.rules[0].condition
