"""Engine semantics: missing fields, list operators, ancestors, matching, outputs, alerts."""

from __future__ import annotations

import fnmatch
import re
import types
from collections.abc import Sequence
from typing import Any

import pytest
import re2

from skanse.model import Severity
from skanse.rules import compiler
from skanse.rules.engine import Engine
from skanse.rules.loader import Priority, Ruleset, RulesFile, load_rules


def _ruleset(text: str) -> Ruleset:
    result = load_rules([RulesFile("test.yaml", text)])
    assert result.errors == (), [str(d) for d in result.errors]
    assert result.ruleset is not None
    return result.ruleset


def _rule(condition: str, output: str = "out %proc.name", source: str = "syscall") -> str:
    return (
        f"- rule: r\n  desc: d\n  condition: {condition!r}\n  output: {output!r}\n"
        f"  priority: WARNING\n  source: {source}\n  warn_evttypes: false\n"
    )


def _fires(condition: str, event: dict[str, Any], *, table: Sequence[dict[str, Any]] = ()) -> bool:
    engine = Engine(_ruleset(_rule(condition)))
    for proc in table:
        engine.table.upsert(proc)
    return bool(engine.process(event))


EXEC = {"type": "execve", "pid": 10, "res": 0}


def _tree() -> list[dict[str, Any]]:
    # init(1) -> good-exe(10): the shape of libsinsp's filterchecks/proc.cpp aname test
    return [
        {"pid": 1, "ppid": 0, "name": "init"},
        {"pid": 5, "ppid": 1, "name": "sshd"},
        {"pid": 10, "ppid": 5, "name": "good-exe", "args": ["-x"]},
    ]


def test_a_comparison_on_a_missing_field_is_false_and_not_makes_it_true() -> None:
    event = {"type": "execve", "pid": 99}  # a process the table does not know
    assert not _fires("proc.name = bash", event)
    assert not _fires("proc.name != bash", event)
    assert _fires("not proc.name = bash", event)  # Falco's semantics (falco#3734)
    assert not _fires("proc.name exists", event)


def test_strict_missing_reports_instead_of_alerting() -> None:
    ruleset = _ruleset(_rule("evt.type = execve and not container.image.repository = trusted"))
    loose = Engine(ruleset)
    strict = Engine(ruleset, strict_missing=True)
    event = {"type": "execve", "pid": 7, "proc": {"pid": 7, "name": "sh", "container_id": "abc"}}
    assert len(loose.process(event)) == 1
    assert strict.process(event) == []
    (hit,) = strict.stats.missing_hits
    assert hit.rule == "r"
    assert "container.image.repository" in hit.fields
    known = dict(event, container={"id": "abc", "image": "docker.io/evil:1"})
    assert len(strict.process(known)) == 1  # a real value: a real alert


def test_strict_missing_counts_every_hit_and_keeps_a_bounded_number() -> None:
    from skanse.rules.engine import MAX_LISTED_MISSING_HITS

    ruleset = _ruleset(_rule("evt.type = execve and not container.image.repository = trusted"))
    strict = Engine(ruleset, strict_missing=True)
    hits = MAX_LISTED_MISSING_HITS + 200
    for pid in range(100, 100 + hits):
        event = {"type": "execve", "pid": pid, "proc": {"pid": pid, "name": "sh"}}
        assert strict.process(event) == []
    assert strict.stats.missing_hit_count == hits
    assert len(strict.stats.missing_hits) == MAX_LISTED_MISSING_HITS  # one per hit grew without end
    assert strict.stats.missing_hits[0].event_num == 1


def test_aname_without_index_is_any_ancestor_not_self() -> None:
    tree = _tree()
    assert _fires("proc.aname = init", EXEC, table=tree)
    assert _fires("proc.aname = sshd", EXEC, table=tree)
    assert not _fires("proc.aname = good-exe", EXEC, table=tree)
    assert _fires("proc.aname[2] = init", EXEC, table=tree)
    assert not _fires("proc.aname[1] = init", EXEC, table=tree)
    assert _fires("proc.apid[1] = 5", EXEC, table=tree)
    assert _fires("proc.pname = sshd and proc.cmdline = 'good-exe -x'", EXEC, table=tree)


def test_in_on_a_list_field_is_a_subset_test() -> None:
    def pod(*images: str) -> dict[str, Any]:
        return {
            "auditID": "1",
            "requestObject": {"spec": {"containers": [{"image": i} for i in images]}},
        }

    def fires(cond: str, event: dict[str, Any]) -> bool:
        engine = Engine(_ruleset(_rule(cond, "x", "k8s_audit")), source="k8s_audit")
        return bool(engine.process(event))

    cond = "ka.req.pod.containers.image.repository in (nginx, redis)"
    assert fires(cond, pod("nginx:1", "redis:7"))
    assert not fires(cond, pod("nginx:1", "evil:1"))  # (b,c,d) in (a,b,c) is false
    assert fires("ka.req.pod.containers.image.repository intersects (evil)", pod("nginx", "evil"))
    assert not fires(cond, {"auditID": "1", "requestObject": {"spec": {"containers": []}}})


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("/tmp/hello/world", "(/tmp/hello)", True),
        ("/tmp/hello", "(/tmp/hello)", True),
        ("/tmp/hello_world", "(/tmp/hello)", False),
        ("/opt/dir/subdir/file.txt", "(/opt/*/subdir)", True),
        ("/opt/dir/subdir/file.txt", "(/opt/di[!r]/subdir)", False),
        ("/opt/a/b/subdir/file.txt", "(/opt/*/subdir)", False),  # * does not cross /
        ("/etc/shadow", "(/usr, /etc)", True),
        ("/opt/[ab]/x", "('/opt/[ab]')", True),  # a glob part matches itself too
        ("/opt/a/x", "('/opt/[ab]', /opt/c)", True),
        ("/x/y", "(/)", True),
        ("x/y", "(/)", False),
        ("/var/a/d7/f", "(/var/*/d6/*, /var/*/d7/*, /var/a/d9)", True),
        ("/var/a/d7", "(/var/*/d6/*, /var/*/d7/*, /var/a/d9)", False),
    ],
)
def test_pmatch_is_a_component_wise_prefix_match(path: str, patterns: str, expected: bool) -> None:
    event = {"type": "openat", "fd": {"type": "file", "name": path}}
    assert _fires(f"fd.name pmatch {patterns}", event) is expected


class _CountingPattern:
    """A compiled glob whose matches are counted (see the pmatch cost test)."""

    def __init__(self, pattern: re.Pattern[str], calls: list[str]) -> None:
        self._pattern = pattern
        self._calls = calls

    def match(self, text: str) -> re.Match[str] | None:
        self._calls.append(text)
        return self._pattern.match(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pattern, name)


def test_pmatch_with_a_long_list_costs_per_path_component_not_per_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every prefix was tried in turn, a glob test each (20,000 prefixes: 38 ms an event).
    Count the glob tests an event costs, per-prefix fnmatch or compiled glob alike: at most
    one per component of its path, however many prefixes there are."""
    tests: list[str] = []
    fnmatchcase = fnmatch.fnmatchcase

    def counting_fnmatchcase(name: str, pattern: str) -> bool:
        tests.append(name)
        return fnmatchcase(name, pattern)

    def counting_compile(pattern: str, flags: int = 0) -> _CountingPattern:
        return _CountingPattern(re.compile(pattern, flags), tests)

    monkeypatch.setattr(fnmatch, "fnmatchcase", counting_fnmatchcase)
    counting_re = types.SimpleNamespace(**{**vars(re), "compile": counting_compile})
    monkeypatch.setattr(compiler, "re", counting_re)
    prefixes = ", ".join(f"/var/*/d{i}/*" for i in range(2_000))
    engine = Engine(_ruleset(_rule(f"evt.type = openat and fd.name pmatch ({prefixes})")))
    events = [
        {"type": "openat", "pid": 1, "fd": {"type": "file", "name": f"/var/lib/x{i}/f"}}
        for i in range(21)
    ]
    assert not engine.process(events[0])  # the first event of a type compiles its rules
    tests.clear()
    assert not any(engine.process(e) for e in events[1:])
    assert len(tests) <= 4 * (len(events) - 1), len(tests)  # before: 2,000 an event
    hit = {"type": "openat", "pid": 1, "fd": {"type": "file", "name": "/var/lib/d1999/x/y"}}
    assert engine.process(hit)


def test_regex_is_a_full_match_and_cannot_backtrack_catastrophically(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = {"type": "execve", "pid": 1, "proc": {"pid": 1, "name": "bash"}}
    assert _fires("proc.name regex 'ba.*'", event)
    assert not _fires("proc.name regex 'as'", event)  # full match, not search
    # RE2 is linear; Python's re would take hours on the hostile name: check that the
    # pattern goes to RE2 before feeding it one.
    compiled: list[str] = []
    re2_compile = re2.compile

    def recording(pattern: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(pattern)
        return re2_compile(pattern, *args, **kwargs)

    monkeypatch.setattr(re2, "compile", recording)
    assert _fires("proc.name regex '(a+)+$'", {**event, "proc": {"pid": 1, "name": "aaa"}})
    assert "(a+)+$" in compiled
    hostile = {"type": "execve", "pid": 2, "proc": {"pid": 2, "name": "a" * 30 + "!"}}
    assert not _fires("proc.name regex '(a+)+$'", hostile)


def test_operators_and_transformers() -> None:
    event = {
        "type": "openat",
        "pid": 3,
        "proc": {"pid": 3, "ppid": 1, "name": "Cat", "exe": "/usr/bin/cat", "args": ["-n", "x"]},
        "fd": {"num": 3, "type": "file", "name": "/etc/Shadow"},
        "args": {"flags": "O_RDONLY|O_CLOEXEC"},
    }
    table = [{"pid": 1, "ppid": 0, "name": "Cat"}]
    cases = {
        "fd.name icontains shadow": True,
        "fd.name contains shadow": False,
        "fd.name glob '/etc/*'": True,
        "fd.name iglob '/ETC/s*'": True,
        "fd.directory = /etc and fd.filename = Shadow": True,
        "toupper(proc.name) = CAT": True,
        "tolower(proc.name) in (cat, dog)": True,
        "len(proc.name) = 3": True,
        "basename(proc.exe) = cat": True,
        "proc.name = val(proc.pname)": True,
        "proc.name == oneof (Cat, Dog)": True,
        "proc.name startswith anyof (X, C)": True,
        "proc.name contains allof (C, t)": True,
        "proc.name contains allof (C, z)": False,
        "evt.is_open_read = true and evt.is_open_write = false": True,
        "evt.arg.flags contains O_CLOEXEC": True,
        "fd.num >= 3 and fd.num < 4": True,
        "fd.typechar = f": True,
    }
    for condition, expected in cases.items():
        assert _fires(condition, event, table=table) is expected, condition


def test_network_fields_and_either_side_semantics() -> None:
    event = {
        "type": "connect",
        "res": 0,
        "fd": {"type": "ipv4", "cip": "10.0.0.2", "cport": 4000, "sip": "8.8.8.8", "sport": 53},
    }
    assert _fires("fd.snet in ('10.0.0.0/8', '8.8.0.0/16')", event)
    assert _fires("fd.ip = 10.0.0.2", event)  # either side
    assert not _fires("fd.ip != 10.0.0.2", event)  # != means neither side
    assert _fires("fd.net = '8.8.8.0/24' and fd.sport = 53", event)
    assert _fires("fd.name = '10.0.0.2:4000->8.8.8.8:53'", event)


def test_events_with_wrong_types_are_counted_not_fatal() -> None:
    engine = Engine(_ruleset(_rule("fd.num >= 0 and fd.name startswith /etc")))
    assert engine.process({"type": "openat", "fd": "not-an-object"}) == []
    assert engine.process({"type": "openat", "fd": {"num": "3", "name": 7}}) == []
    assert engine.stats.eval_errors >= 1
    assert engine.process({"type": "openat", "fd": {"num": 3, "name": "/etc/x"}})


RULES = """
- rule: open etc
  desc: d
  condition: evt.type in (open, openat) and fd.name startswith /etc
  output: "open %fd.name by %proc.name parent=%proc.aname[2] up=%toupper(proc.name) [%5proc.pid]"
  priority: error
  tags: [b, a]
- rule: any open
  desc: d
  condition: evt.type = openat
  output: "any open"
  priority: INFO
- rule: exec
  desc: d
  condition: evt.type = execve
  output: "exec"
  priority: notice
"""


def test_rule_matching_first_and_all_and_the_event_type_index() -> None:
    ruleset = _ruleset(RULES)
    event = {"type": "openat", "ts": 0, "pid": 10, "fd": {"type": "file", "name": "/etc/x"}}
    first = Engine(ruleset)
    everything = Engine(ruleset, rule_matching="all")
    assert [a.rule for a in first.process(event)] == ["open etc"]
    assert [a.rule for a in everything.process(event)] == ["open etc", "any open"]
    assert [r.name for r in first.candidates("execve")] == ["exec"]
    assert [r.name for r in first.candidates("openat")] == ["open etc", "any open"]
    assert first.candidates("read") == ()


def test_output_format_and_falco_json_shape() -> None:
    engine = Engine(_ruleset(RULES), hostname="node-1")
    for proc in _tree():
        engine.table.upsert(proc)
    event = {
        "type": "open",
        "ts": 1_470_327_477_881_781_397,
        "pid": 10,
        "fd": {"type": "file", "name": "/etc/shadow"},
    }
    (alert,) = engine.process(event)
    assert alert.output == "open /etc/shadow by good-exe parent=init up=GOOD-EXE [10   ]"
    doc = alert.to_json()
    assert doc == {
        "time": "2016-08-04T16:17:57.881781397Z",
        "rule": "open etc",
        "priority": "Error",
        "source": "syscall",
        "hostname": "node-1",
        "output": "16:17:57.881781397: Error " + alert.output,
        "output_fields": {
            "fd.name": "/etc/shadow",
            "proc.name": "good-exe",
            "proc.aname[2]": "init",
            "toupper(proc.name)": "GOOD-EXE",
            "proc.pid": 10,
        },
        "tags": ["a", "b"],
    }
    unknown = {"type": "open", "pid": 77, "fd": {"type": "file", "name": "/etc/x"}}
    (missing,) = engine.process(unknown)
    assert "by <NA> parent=<NA>" in missing.output
    assert missing.output_fields["proc.name"] is None  # JSON null, as Falco writes


def test_priority_names_and_severity_mapping_are_exhaustive() -> None:
    mapping = {p: p.severity for p in Priority}
    assert mapping == {
        Priority.EMERGENCY: Severity.CRITICAL,
        Priority.ALERT: Severity.CRITICAL,
        Priority.CRITICAL: Severity.CRITICAL,
        Priority.ERROR: Severity.HIGH,
        Priority.WARNING: Severity.MEDIUM,
        Priority.NOTICE: Severity.LOW,
        Priority.INFORMATIONAL: Severity.INFO,
        Priority.DEBUG: Severity.INFO,
    }
    assert Priority.parse("info") is Priority.INFORMATIONAL
    assert Priority.parse("wArNiNg") is Priority.WARNING
    assert Priority.parse("loud") is None
    assert Priority.INFORMATIONAL.label == "Informational"


def test_the_bucket_function_and_the_rule_by_rule_path_agree() -> None:
    text = RULES + (
        "- rule: typed\n  desc: d\n  condition: evt.type = openat and fd.l4proto startswith t\n"
        "  output: o\n  priority: INFO\n"
    )
    ruleset = _ruleset(text)
    events = [
        {"type": "openat", "pid": 1, "fd": {"type": "file", "name": "/etc/x", "num": 3}},
        {"type": "openat", "pid": 1, "fd": {"type": "file", "name": "/tmp/x", "num": 3}},
        # l4proto of the wrong type makes "typed" raise: the other rules must still be seen
        {"type": "openat", "pid": 1, "fd": {"type": "file", "name": "/etc/y", "l4proto": 6}},
        {"type": "execve", "pid": 1},
        {"type": "read", "pid": 1},
    ]
    for matching in ("first", "all"):
        fast = Engine(ruleset, rule_matching=matching)
        slow = Engine(ruleset, rule_matching=matching, strict_missing=True)  # rule by rule
        for event in events:
            assert [a.rule for a in fast.process(event)] == [a.rule for a in slow.process(event)], (
                matching,
                event,
            )
    everything = Engine(ruleset, rule_matching="all")
    assert [a.rule for a in everything.process(events[2])] == ["open etc", "any open"]
    assert everything.stats.eval_errors == 1


def test_prepare_compiles_every_event_type_up_front_and_changes_no_result(monkeypatch) -> None:
    from skanse.rules import compiler

    ruleset = _ruleset(RULES)
    events = [
        {"type": "openat", "pid": 1, "fd": {"type": "file", "name": "/etc/x", "num": 3}},
        {"type": "execve", "pid": 1},
        {"type": "read", "pid": 1},
    ]
    lazy = Engine(ruleset, rule_matching="all")
    expected = [[a.rule for a in lazy.process(event)] for event in events]
    prepared = Engine(ruleset, rule_matching="all")
    prepared.prepare()

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled at an event, after prepare()")

    monkeypatch.setattr(compiler.ModuleBuilder, "build", no_compiling)
    assert [[a.rule for a in prepared.process(event)] for event in events] == expected


def _output_errors(output: str) -> list[tuple[str, str]]:
    result = load_rules([RulesFile("test.yaml", _rule("evt.type = execve", output))])
    return [(d.code, d.message) for d in result.errors]


def test_an_output_width_is_a_column_not_an_allocation() -> None:
    # before: %2000000000proc.name loaded, and each alert of the rule was a 2 GB string
    # (3 events: 94 s, 19.5 GB); 5,000 digits were an internal error (int's digit limit)
    assert _output_errors("x %2000000000proc.name") == [
        (
            "LOAD_ERR_COMPILE_OUTPUT",
            "invalid formatting token: width 2000000000 is larger than 1024",
        )
    ]
    ((code, message),) = _output_errors("x %" + "9" * 5000 + "proc.name")
    assert code == "LOAD_ERR_COMPILE_OUTPUT"
    assert message.startswith("invalid formatting token: width 999999999999... is larger")
    engine = Engine(_ruleset(_rule("evt.type = execve", "[%1024proc.name] [%2proc.name]")))
    (alert,) = engine.process({"type": "execve", "pid": 1, "proc": {"name": "bash"}})
    assert alert.output == "[bash" + " " * 1020 + "] [ba]"


class _Matcher:
    """Stands in for output._FIELD: counts the characters of format text handed to it in a
    string object other than the one handed before (a copy of the format's remainder)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.last: str | None = None
        self.copied = 0

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        if text is not self.last:
            self.copied += len(text)
            self.last = text
        return self.pattern.match(text, pos)


def test_an_output_format_is_read_without_copying_its_remainder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # each token copied the rest of the format: 80,000 tokens took 2.1 s (10,000/20,000/
    # 40,000/80,000 = 0.16/0.37/0.81/2.09 s), now 0.04/0.07/0.14/0.27 s
    from skanse.rules import output

    for count in (1000, 2000):
        matcher = _Matcher(output._FIELD)
        monkeypatch.setattr(output, "_FIELD", matcher)
        text = "%proc.name " * count
        compiled = output.compile_output(text, "syscall")
        assert len(compiled.parts) == 2 * count
        assert matcher.copied <= 2 * len(text)  # before: about count * len(text) / 2
