"""The commands: rules validate, rules test, runtime replay (exit codes, outputs, bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._fifo import fed_fifo
from tests.conftest import CORPORA, corpus_path

HERE = Path(__file__).resolve().parent
STABLE_TESTS = HERE / "stable_rules_tests.yaml"

RULES = """- rule: shadow read
  desc: reads of /etc/shadow
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: "shadow read by %proc.name (file=%fd.name)"
  priority: WARNING
  tags: [filesystem]
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def _event(name: str = "/etc/shadow", pid: int = 5) -> str:
    return json.dumps(
        {
            "type": "openat",
            "ts": 1_700_000_000_000_000_000,
            "pid": pid,
            "res": 3,
            "fd": {"num": 3, "type": "file", "name": name},
            "proc": {"pid": pid, "ppid": 1, "name": "cat"},
        }
    )


def test_validate_ok_and_broken(cli, rules_file: Path, tmp_path: Path) -> None:
    ok = cli("rules", "validate", str(rules_file))
    assert ok.code == 0
    assert "ok: 1 rules" in ok.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES.replace("fd.name = /etc/shadow", "fd.nam = /etc/shadow"))
    bad = cli("rules", "validate", str(rules_file), str(broken))
    assert bad.code == 1
    assert f"{broken}:3:" in bad.stdout
    assert "nonexistent field fd.nam" in bad.stdout
    as_json = json.loads(cli("rules", "validate", "-f", "json", str(broken)).stdout)
    assert as_json["ok"] is False
    (error,) = as_json["errors"]
    assert error["code"] == "LOAD_ERR_COMPILE_CONDITION"
    assert (error["line"], error["column"]) == (3, 45)  # where fd.nam starts
    missing = cli("rules", "validate", str(tmp_path / "nope.yaml"))
    assert missing.code == 2


@pytest.mark.corpus
def test_validate_the_upstream_rulesets(cli) -> None:
    falco = corpus_path("falco")
    files = [str(falco / n) for n in ("falco_rules.yaml", "falco-incubating_rules.yaml")]
    result = cli("rules", "validate", *files)
    assert result.code == 0, result.stdout
    assert "ok: 56 rules (56 enabled)" in result.stderr


@pytest.mark.corpus
def test_rule_tests_cover_the_stable_ruleset(cli) -> None:
    rules = corpus_path("falco", "falco_rules.yaml")
    result = cli("rules", "test", str(STABLE_TESTS), "--rules", str(rules))
    assert result.code == 0, result.stdout
    assert ", 0 failed" in result.stdout
    from skanse.rules.testing import run_tests

    outcomes, loaded = run_tests(STABLE_TESTS, extra_rules=[rules])
    assert loaded is not None and loaded.ruleset is not None
    import yaml

    tests = yaml.safe_load(STABLE_TESTS.read_text())["tests"]
    positive = {t["rule"] for t in tests if t.get("expectedOutcome") not in (None, "none")}
    negative = {t["rule"] for t in tests if t.get("expectedOutcome") in (None, "none")}
    stable = {r.name for r in loaded.ruleset.rules}
    assert len(positive & negative & stable) >= 20
    assert "Terminal shell in container" in positive & negative
    assert all(o.passed for o in outcomes)


def test_a_failing_rule_test_exits_1(cli, rules_file: Path, tmp_path: Path) -> None:
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        f"rules: [{rules_file.name}]\n"
        "tests:\n"
        "  - name: fires\n"
        "    rule: shadow read\n"
        "    context: {processes: [{name: cat}]}\n"
        "    steps: [{syscall: openat, args: {pathname: /etc/shadow}}]\n"
        "    expectedOutcome: {priority: warning, outputFields: {proc.name: cat}}\n"
        "  - name: wrong expectation\n"
        "    rule: shadow read\n"
        "    context: {processes: [{name: cat}]}\n"
        "    steps: [{syscall: openat, args: {pathname: /etc/hosts}}]\n"
        "    expectedOutcome: {priority: warning}\n"
    )
    result = cli("rules", "test", str(tests))
    assert result.code == 1
    assert "FAIL wrong expectation: expected an alert, got none" in result.stdout
    assert "1 passed, 1 failed" in result.stdout


def test_names_from_rules_and_tests_files_cannot_forge_lines(
    cli, rules_file: Path, tmp_path: Path
) -> None:
    # a rule name with a colour escape and a line break, a broken condition to report it
    forged = tmp_path / "forged.yaml"
    forged.write_text(
        '- rule: "r\\e[31mRED\\nforged.yaml:1: ok"\n  desc: d\n'
        "  condition: evt.type = openat and fd.nmae = /x\n  output: o\n  priority: WARNING\n"
    )
    validate = cli("rules", "validate", str(forged))
    assert validate.code == 1
    assert "\x1b" not in validate.stdout
    assert "rule 'r\\x1b[31mRED\\nforged.yaml:1: ok'" in validate.stdout
    assert len(validate.stdout.splitlines()) == 1
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        f"rules: [{rules_file.name}]\n"
        "tests:\n"
        '  - name: "x\\e[2J\\nPASS all good"\n'
        "    rule: shadow read\n"
        "    context: {processes: [{name: cat}]}\n"
        "    steps: [{syscall: openat, args: {pathname: /etc/hosts}}]\n"
        "    expectedOutcome: {priority: warning}\n"
    )
    result = cli("rules", "test", str(tests))
    assert result.code == 1
    assert "\x1b" not in result.stdout
    assert not any(line.startswith("PASS") for line in result.stdout.splitlines())
    assert "FAIL x\\x1b[2J\\nPASS all good: expected an alert, got none" in result.stdout


def test_replay_text_jsonl_and_reports(cli, rules_file: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(_event() + "\n" + _event("/etc/hosts", 6) + "\n")
    text = cli("runtime", "replay", str(events), "--rules", str(rules_file))
    assert text.code == 0
    assert text.stdout == ("22:13:20.000000000: Warning shadow read by cat (file=/etc/shadow)\n")
    jsonl = cli("runtime", "replay", str(events), "--rules", str(rules_file), "-f", "jsonl")
    (alert,) = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert alert["rule"] == "shadow read"
    fields = alert["output_fields"]
    assert {k: fields.pop(k) for k in ("proc.name", "fd.name")} == {
        "proc.name": "cat",
        "fd.name": "/etc/shadow",
    }
    # evt.time (ns since the epoch) and the appended workload fields, null when unknown
    assert fields.pop("evt.time") == 1_700_000_000_000_000_000
    assert fields.pop("container.id") == fields.pop("container.name") == "host"
    assert set(fields) == {
        "container.image.repository",
        "container.image.tag",
        "container.image.digest",
        "k8s.ns.name",
        "k8s.pod.name",
    }
    assert set(fields.values()) == {None}
    sarif = cli("runtime", "replay", str(events), "--rules", str(rules_file), "-f", "sarif")
    doc = json.loads(sarif.stdout)
    (result,) = doc["runs"][0]["results"]
    assert result["ruleId"] == "shadow read"
    assert result["level"] == "warning"  # WARNING -> MEDIUM -> warning
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    junit = cli("runtime", "replay", str(events), "--rules", str(rules_file), "-f", "junit")
    assert "<testsuite" in junit.stdout
    out = tmp_path / "alerts.jsonl"
    written = cli(
        "runtime", "replay", str(events), "--rules", str(rules_file), "-o", str(out), "-f", "jsonl"
    )
    assert written.stdout == "" and json.loads(out.read_text())["rule"] == "shadow read"
    failing = cli(
        "runtime", "replay", str(events), "--rules", str(rules_file), "--fail-on", "medium"
    )
    assert failing.code == 1


def test_replay_jsonl_writes_no_c1_control_of_a_process_name_raw(
    cli, rules_file: Path, tmp_path: Path
) -> None:
    name = "cat\u009b2J\u009d0;title\u009c\u0085\x7f\u202e"
    event = json.loads(_event())
    event["proc"]["name"] = name
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event) + "\n")  # ASCII, the controls as JSON escapes
    jsonl = cli("runtime", "replay", str(events), "--rules", str(rules_file), "-f", "jsonl")
    assert jsonl.code == 0
    raw = {chr(c) for c in range(0x7F, 0xA0)} | {"\u202e"}
    assert not raw & set(jsonl.stdout)
    (line,) = jsonl.stdout.splitlines()
    assert json.loads(line)["output_fields"]["proc.name"] == name


def test_replay_reports_and_skips_bad_lines(cli, rules_file: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([_event(), "{not json", "[1, 2]", "", _event()]) + "\n")
    result = cli("runtime", "replay", str(events), "--rules", str(rules_file))
    assert result.code == 0
    assert result.stdout.count("shadow read by cat") == 2
    assert "replayed 2 event(s) from 5 line(s): 2 alert(s), 2 line(s) skipped" in result.stderr
    assert f"{events}:2: invalid JSON" in result.stderr
    assert f"{events}:3: not a JSON object" in result.stderr
    strict = cli("runtime", "replay", str(events), "--rules", str(rules_file), "--strict")
    assert strict.code == 2


def test_replay_shows_an_event_time_that_is_no_date_as_its_number(cli, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("(file=%fd.name)", "(at %evt.datetime %evt.time.iso8601)"))
    events = tmp_path / "events.jsonl"
    lines = [json.loads(_event()) for _ in range(3)]
    lines[0]["ts"], lines[1]["ts"] = -(10**23), 10**23
    events.write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    text = cli("runtime", "replay", str(events), "--rules", str(rules))
    assert text.code == 0, text.stderr  # before: internal error (ValueError), nothing shown
    assert text.stdout.splitlines()[0].startswith("-100000000000000000000000: Warning shadow")
    assert f"at {10**23} {10**23}" in text.stdout
    assert "replayed 3 event(s) from 3 line(s): 3 alert(s)" in text.stderr
    jsonl = cli("runtime", "replay", str(events), "--rules", str(rules), "-f", "jsonl")
    times = [json.loads(line)["time"] for line in jsonl.stdout.splitlines()]
    assert times == [str(-(10**23)), str(10**23), "2023-11-14T22:13:20.000000000Z"]


def test_replay_skips_a_100_mb_line_without_holding_it(rules_file: Path, tmp_path: Path) -> None:
    from skanse.rules.engine import Engine
    from skanse.rules.loader import RulesFile, load_rules
    from skanse.rules.replay import replay

    events = tmp_path / "huge.jsonl"
    with events.open("wb") as handle:
        handle.write(_event().encode() + b"\n")
        handle.write(b'{"type": "openat", "pad": "')
        chunk = b"x" * (1024 * 1024)
        for _ in range(100):
            handle.write(chunk)
        handle.write(b'"}\n')
        handle.write(_event().encode() + b"\n")
    ruleset = load_rules([RulesFile("r", rules_file.read_bytes())]).ruleset
    assert ruleset is not None
    with events.open("rb") as stream:
        alerts, summary = replay(Engine(ruleset), stream, max_line_bytes=16 * 1024 * 1024)
    assert [a.line for a in alerts] == [1, 3]
    (problem,) = summary.problems
    assert problem.line == 2
    assert "longer than 16,777,216 bytes" in problem.message


def test_replay_with_rules_that_do_not_load_exits_2(cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("- rule: x\n  desc: d\n")
    events = tmp_path / "e.jsonl"
    events.write_text(_event() + "\n")
    result = cli("runtime", "replay", str(events), "--rules", str(broken))
    assert result.code == 2
    assert "Item has no mapping for key 'condition'" in result.stderr


def test_fields_lists_both_sources(cli) -> None:
    syscall = cli("rules", "fields").stdout
    assert "proc.aname[ARG?]" in syscall and "fd.name" in syscall
    audit = cli("rules", "fields", "--source", "k8s_audit").stdout
    assert "jevt.value[ARG]" in audit and "ka.verb" in audit


def test_corpora_root_is_relative_to_the_repository() -> None:
    # the fixtures are found beside the clone, never through a machine-specific path
    assert CORPORA.name == "corpora" and CORPORA.parent.name == "shared"


def test_replay_names_events_it_could_not_fully_check(
    cli, rules_file: Path, tmp_path: Path
) -> None:
    # a shadow read whose values have the wrong types reads as missing, so no rule fires:
    # before, the replay said nothing of it, and --strict --fail-on exited 0
    good = json.loads(_event())
    wrong = [
        {**good, "fd": "/etc/shadow"},
        {**good, "fd": {"num": 3, "type": "file", "name": ["/etc/shadow"]}},
        {**good, "fd": {"num": "3", "type": "file", "name": 7}},
        {**good, "proc": {"pid": 5, "name": ["cat"]}},
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [good, *wrong]) + "\n")
    run = cli("runtime", "replay", str(events), "--rules", str(rules_file))
    assert run.code == 0
    # the well-typed event, and the one whose process name alone was lost
    assert run.stdout.count("shadow read by cat") == 1
    assert run.stdout.count("shadow read by <NA>") == 1
    assert "4 event(s) not fully checked" in run.stderr
    assert f"{events}:2: not fully checked: 'fd' is a string, not an object" in run.stderr
    assert f"{events}:3: not fully checked: 'fd.name' is a list, not a string" in run.stderr
    assert (
        f"{events}:4: not fully checked: 'fd.num' is a string, not an integer; "
        "'fd.name' is an integer, not a string" in run.stderr
    )
    assert f"{events}:5: not fully checked: 'proc.name' is a list, not a string" in run.stderr
    strict = cli(
        "runtime",
        "replay",
        str(events),
        "--rules",
        str(rules_file),
        "--strict",
        "--fail-on",
        "low",
    )
    assert strict.code == 2
    clean = tmp_path / "clean.jsonl"
    clean.write_text(_event() + "\n")
    ok = cli("runtime", "replay", str(clean), "--rules", str(rules_file), "--strict")
    assert ok.code == 0
    assert "not fully checked" not in ok.stderr


def test_strict_missing_hits_cannot_forge_lines(cli, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        '- rule: "r\\e[31mRED\\nforged: line"\n  desc: d\n'
        "  condition: evt.type = execve and not proc.name in (bash)\n"
        "  output: o %proc.name\n  priority: WARNING\n"
    )
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "execve", "pid": 1}\n')
    run = cli("runtime", "replay", str(events), "--rules", str(rules), "--strict-missing")
    assert run.code == 0
    assert "\x1b" not in run.stderr
    assert not any(line.startswith("forged") for line in run.stderr.splitlines())
    assert "strict-missing: 'r\\x1b[31mRED\\nforged: line' matched event 1" in run.stderr


def test_rules_test_refuses_a_matrix_of_more_cases_than_it_can_run(
    cli, rules_file: Path, tmp_path: Path
) -> None:
    # a matrix is the product of its value lists: 8 keys of 10 values were 100 million cases
    # from 480 bytes, run for days with memory growing; now more than 10,000 is refused
    def tests(values: int, keys: int = 3) -> Path:
        matrix = ", ".join(
            f"k{k}: [{', '.join(str(i) for i in range(values))}]" for k in range(keys)
        )
        path = tmp_path / f"tests-{values}-{keys}.yaml"
        path.write_text(
            f"rules: [{rules_file.name}]\n"
            "tests:\n"
            "  - name: matrix\n"
            "    rule: shadow read\n"
            "    context: {processes: [{name: cat}]}\n"
            "    steps: [{syscall: openat, args: {pathname: /etc/shadow}}]\n"
            "    expectedOutcome: {priority: warning}\n"
            f"    cases: [{{strategy: matrix, values: {{{matrix}}}}}]\n"
        )
        return path

    for refused in (tests(30), tests(10, keys=8)):  # 27,000 and 100,000,000 cases
        result = cli("rules", "test", str(refused))
        assert result.code == 2
        assert "more than 10,000 cases" in result.stderr
        assert "passed" not in result.stdout
    allowed = cli("rules", "test", str(tests(3)))
    assert allowed.code == 0
    assert "27 passed, 0 failed (1 tests, 27 cases)" in allowed.stdout


def test_rules_test_reads_its_files_as_rules_files_are_read(
    cli, monkeypatch, tmp_path: Path
) -> None:
    # rules: [/dev/zero] in a tests file was read until memory ran out (3.9 GB in 6 s); a
    # rules file is now one in the tests file's directory, which can be a FIFO as well
    import skanse.rules.loader
    import skanse.rules.testing  # bound its own copy of the limit on import: not the patched

    monkeypatch.setattr(skanse.rules.loader, "MAX_RULES_FILE_BYTES", 1024 * 1024)
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        "rules: [rules.fifo]\n"
        "tests:\n"
        "  - name: t\n    rule: r\n    context: {processes: [{name: cat}]}\n"
        "    expectedOutcome: none\n"
    )
    with fed_fifo(tmp_path / "rules.fifo", b"#" * (4 * 1024 * 1024)):
        result = cli("rules", "test", str(tests))
    assert result.code == 2
    assert "rules.fifo: larger than 1 MiB" in result.stderr
    monkeypatch.undo()
    itself = cli("rules", "test", "/dev/zero")
    assert itself.code == 2
    assert "/dev/zero: larger than 64 MiB" in itself.stderr
    missing = cli("rules", "test", str(tmp_path / "nope.yaml"))
    assert missing.code == 2
    assert "nope.yaml: No such file" in missing.stderr


_RULE_R = (
    "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: fired\n  priority: WARNING\n"
)


def _tests_naming(rules: str, *, in_test: bool = False) -> str:
    test = "  - name: t\n    rule: r\n    context: {processes: [{name: cat}]}\n"
    if in_test:
        return f"tests:\n{test}    rules: {rules}\n    expectedOutcome: none\n"
    return f"rules: {rules}\ntests:\n{test}    expectedOutcome: none\n"


@pytest.mark.parametrize("in_test", [False, True])
@pytest.mark.parametrize(
    ("named", "why"),
    [
        ("../outside/rules.yaml", "must be a relative path inside"),
        ("sub/../../outside/rules.yaml", "must be a relative path inside"),
        ("{outside}/rules.yaml", "must be a relative path inside"),
        ("link.yaml", "symbolic link out of"),
        ("linkdir/rules.yaml", "symbolic link out of"),
    ],
)
def test_rules_test_reads_no_rules_file_outside_the_tests_files_directory(
    cli, tmp_path: Path, named: str, why: str, in_test: bool
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "rules.yaml").write_text(_RULE_R)  # it fires: read, the test would fail
    suite = tmp_path / "suite"
    (suite / "sub").mkdir(parents=True)
    (suite / "link.yaml").symlink_to(outside / "rules.yaml")
    (suite / "linkdir").symlink_to(outside)
    tests = suite / "tests.yaml"
    tests.write_text(_tests_naming(f"[{named.format(outside=outside)}]", in_test=in_test))
    result = cli("rules", "test", str(tests))
    assert result.code == 2
    assert why in result.stderr and "tests file's directory" in result.stderr
    assert "fired" not in result.stdout and "passed" not in result.stdout


def test_rules_test_reads_rules_files_inside_its_directory_and_from_the_command_line(
    cli, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    (suite / "sub").mkdir(parents=True)
    (suite / "sub" / "rules.yaml").write_text(_RULE_R)
    (suite / "inside.yaml").symlink_to(suite / "sub" / "rules.yaml")  # a link that stays in
    for named in ("sub/rules.yaml", "./sub/rules.yaml", "inside.yaml"):
        tests = suite / "tests.yaml"
        tests.write_text(_tests_naming(f"[{named}]").replace("none", "{priority: warning}"))
        result = cli("rules", "test", str(tests))
        assert (result.code, result.stdout) == (0, "1 passed, 0 failed (1 tests, 1 cases)\n")
    # a file anywhere is still the user's to give, on the command line
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(_RULE_R)
    tests.write_text(_tests_naming("[]").replace("none", "{priority: warning}"))
    given = cli("rules", "test", str(tests), "--rules", str(elsewhere))
    assert given.code == 0


class _HeldAlertsAtEnd:
    """Standard input for `runtime replay -`: the given lines, then, when the replay asks
    past the last one (every event has been evaluated), a count of the ReplayAlert objects
    still alive. Optionally fails there instead of ending, as a broken pipe would."""

    def __init__(self, lines: list[bytes], *, fail: bool = False) -> None:
        self._lines = iter(lines)
        self._fail = fail
        self.held: int | None = None
        self.buffer = self

    def readline(self, limit: int = -1) -> bytes:
        line = next(self._lines, b"")
        if not line:
            import gc

            from skanse.rules.replay import ReplayAlert

            self.held = sum(isinstance(o, ReplayAlert) for o in gc.get_objects())
            if self._fail:
                raise OSError("the input broke off")
        return line


@pytest.mark.parametrize("events", [500, 4000])
@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_replay_streams_alert_lines_and_holds_none_of_them(
    cli, monkeypatch, rules_file: Path, tmp_path: Path, fmt: str, events: int
) -> None:
    import sys

    lines = [(_event(pid=5 + n) + "\n").encode() for n in range(events)]
    stdin = _HeldAlertsAtEnd(lines)
    monkeypatch.setattr(sys, "stdin", stdin)
    out = tmp_path / "alerts"
    done = cli("runtime", "replay", "-", "--rules", str(rules_file), "-f", fmt, "-o", str(out))
    assert done.code == 0
    assert len(out.read_text().splitlines()) == events  # every event raised its alert
    # once the last event is read, the alerts before it are written out, not held: the
    # whole replay used to keep all of them (and their text) until the end
    assert stdin.held is not None and stdin.held <= 1
    assert f"{events} alert(s), 0 line(s) skipped" in done.stderr


def test_replay_to_a_file_leaves_no_half_file_when_the_input_breaks_off(
    cli, monkeypatch, rules_file: Path, tmp_path: Path
) -> None:
    import sys

    out = tmp_path / "alerts.jsonl"
    out.write_text("the previous run's alerts\n")
    monkeypatch.setattr(sys, "stdin", _HeldAlertsAtEnd([_event().encode() + b"\n"], fail=True))
    done = cli("runtime", "replay", "-", "--rules", str(rules_file), "-f", "jsonl", "-o", str(out))
    assert done.code == 2
    assert out.read_text() == "the previous run's alerts\n"
    # and no temporary file beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.jsonl", "rules.yaml"]


def test_replay_counts_every_skipped_line_and_lists_a_bounded_number(
    cli, rules_file: Path, tmp_path: Path
) -> None:
    from skanse.rules.engine import Engine
    from skanse.rules.loader import load_rules, read_rules_files
    from skanse.rules.replay import MAX_LISTED_PROBLEMS, replay

    broken = MAX_LISTED_PROBLEMS + 500
    events = tmp_path / "events.jsonl"
    events.write_text("{not json\n" * broken + _event() + "\n")
    ruleset = load_rules(read_rules_files([str(rules_file)])).ruleset
    assert ruleset is not None
    with events.open("rb") as stream:
        alerts, summary = replay(Engine(ruleset), stream)
    assert (len(alerts), summary.skipped) == (1, broken)
    assert len(summary.problems) == MAX_LISTED_PROBLEMS  # the rest counted, not kept
    assert summary.problems[0].line == 1
    run = cli("runtime", "replay", str(events), "--rules", str(rules_file), "--strict")
    assert run.code == 2
    assert f"1 alert(s), {broken} line(s) skipped" in run.stderr
    assert f"... and {broken - 20} more" in run.stderr
