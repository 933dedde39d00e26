"""`skanse rules test`: declarative rule tests, modelled on Falco's evtgen e2e suite.

A tests file names the rules files to load and lists tests. Each test gives the rule, either
raw `events` or a small process tree (`context.processes`, outermost first, optionally in a
`context.container`) whose last process makes the syscalls in `steps`, and the expected
outcome: the rule fires with a priority and output fields, or (`expectedOutcome: none`) it
does not. `cases` with `strategy: matrix` expand `%{ item.NAME }` placeholders. The format
is documented in docs/rules.md.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skanse.errors import InputError, RuleTestError, YamlError
from skanse.files import FileTooLarge, read_capped
from skanse.rules.engine import Engine
from skanse.rules.loader import (
    MAX_RULES_FILE_BYTES,
    LoadResult,
    Priority,
    load_rules,
    read_rules_files,
)
from skanse.rules.output import render_value
from skanse.sources.yamlpos import load_documents

__all__ = ["RuleTestError", "TestOutcome", "build_events", "run_tests"]

_PLACEHOLDER = re.compile(r"%\{\s*item\.([A-Za-z0-9_]+)\s*\}")
_DEFAULT_CONTAINER = {
    "id": "5c0ffee1d00d",
    "name": "skanse-test",
    "image": "docker.io/library/busybox:1.36",
    "type": "containerd",
}


@dataclass(frozen=True, slots=True)
class TestOutcome:
    name: str
    case: str  # "" or the matrix values, e.g. "shell=bash spawner=nginx"
    passed: bool
    message: str = ""


def _substitute(value: Any, item: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group(1) in item:
            return item[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(item.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [_substitute(v, item) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, item) for k, v in value.items()}
    return value


# The cases of one tests file: a matrix is the product of its value lists, so a few lines
# (8 keys of 10 values) made 100 million cases, run for days; the stable rules' tests have 236
MAX_CASES = 10_000


def _matrices(test: Mapping[str, Any]) -> list[tuple[list[str], list[list[Any]]]]:
    """The (keys, value lists) of each matrix of a test; checked, not yet multiplied."""
    out = []
    for case in test.get("cases") or ():
        if not isinstance(case, Mapping):
            raise RuleTestError(f"test {test.get('name')!r}: each case must be a mapping")
        strategy = case.get("strategy", "matrix")
        values = case.get("values") or {}
        if strategy != "matrix" or not isinstance(values, Mapping):
            raise RuleTestError(f"test {test.get('name')!r}: only 'matrix' cases are supported")
        out.append((list(values), [v if isinstance(v, list) else [v] for v in values.values()]))
    return out


def _case_count(test: Mapping[str, Any]) -> int:
    matrices = _matrices(test)
    return sum(math.prod(len(v) for v in lists) for _, lists in matrices) if matrices else 1


def _cases(test: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    matrices = _matrices(test)
    if not matrices:
        yield {}
        return
    for keys, lists in matrices:
        for combo in itertools.product(*lists):
            yield dict(zip(keys, combo, strict=True))


def _process_state(spec: Mapping[str, Any], pid: int, ppid: int | None) -> dict[str, Any]:
    """A process record from a test's process spec; unspecified facts get plain defaults."""
    name = str(spec.get("name", "proc"))
    exe = str(spec.get("exe", name))
    user = str(spec.get("user", "root"))
    state: dict[str, Any] = {
        "pid": pid,
        "tid": pid,
        "ppid": ppid,
        "vpid": pid,
        "exe": exe,
        "exepath": exe if exe.startswith("/") else f"/usr/bin/{name}",
        "args": [],
        "cwd": "/",
        "tty": 0,
        "user": user,
        "uid": 0 if user == "root" else 1000,
        "gid": 0,
        "group": "root",
        "loginuid": -1,
    }
    state.update({k: v for k, v in spec.items() if k != "exec_args"})
    state["name"] = name[:15]  # comm is at most 15 characters
    return state


def _step_event(step: Mapping[str, Any]) -> dict[str, Any]:
    syscall = str(step.get("syscall", "")).strip()
    args = dict(step.get("args") or {})
    event: dict[str, Any] = {"type": syscall, "args": args}
    path = args.pop("pathname", None) or args.get("name") or args.get("filename")
    if syscall in ("open", "openat", "openat2", "creat"):
        args.setdefault("flags", "O_RDONLY")
        if path is not None:
            args["name"] = path
        event["fd"] = {"num": 3, "type": "file", "name": path}
        event["res"] = 3
    elif syscall in ("connect", "sendto", "sendmsg", "accept", "accept4"):
        address = str(args.pop("address", "203.0.113.10:443"))
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        family = "ipv6" if ":" in host else "ipv4"
        event["fd"] = {
            "num": 3,
            "type": family,
            "cip": "10.0.0.2" if family == "ipv4" else "fd00::2",
            "cport": 40000,
            "sip": host,
            "sport": int(port) if port.isdigit() else 0,
            "l4proto": str(args.pop("l4proto", "tcp")),
            "connected": True,
        }
        event["res"] = 0
    elif syscall == "socket":
        event["res"] = 3
        domain = str(args.get("domain", ""))
        kind = {"AF_INET": "ipv4", "AF_INET6": "ipv6", "AF_UNIX": "unix"}.get(domain)
        if kind:
            event["fd"] = {"num": 3, "type": kind}
    else:
        if path is not None and "fd" not in step:
            event["fd"] = {"num": 3, "type": "file", "name": path}
        event["res"] = 0
    if "res" in step:
        event["res"] = step["res"]
    if isinstance(step.get("fd"), Mapping):
        event["fd"] = {**event.get("fd", {}), **step["fd"]}
    extra = step.get("event")
    if isinstance(extra, Mapping):
        event.update(extra)
    return event


def build_events(test: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events a test describes: raw `events`, or execs of its process tree plus `steps`."""
    if "events" in test:
        raw = test["events"]
        if not isinstance(raw, list) or not all(isinstance(e, Mapping) for e in raw):
            raise RuleTestError(f"test {test.get('name')!r}: 'events' must be a list of mappings")
        return [dict(e) for e in raw]
    context = test.get("context") or {}
    processes = context.get("processes") or [{"name": "skanse-evtgen"}]
    container = context.get("container")
    container_state = None
    if container is not None:
        container_state = {**_DEFAULT_CONTAINER, **dict(container)}
    events: list[dict[str, Any]] = []
    ts = 1_700_000_000_000_000_000
    pid = 4000
    ppid: int | None = None
    state: dict[str, Any] = {}
    for spec in processes:
        if not isinstance(spec, Mapping):
            raise RuleTestError(f"test {test.get('name')!r}: each process must be a mapping")
        state = _process_state(spec, pid, ppid)
        if container_state is not None:
            state["container_id"] = container_state["id"]
        if state.get("start_ts") is None:
            state["start_ts"] = ts
        exec_event: dict[str, Any] = {
            "type": "execve",
            "ts": ts,
            "pid": pid,
            "res": 0,
            "args": dict(spec.get("exec_args") or {}),
            "proc": state,
        }
        if container_state is not None:
            exec_event["container"] = container_state
        events.append(exec_event)
        ts += 1_000_000
        ppid = pid
        pid += 1
    for step in test.get("steps") or ():
        if not isinstance(step, Mapping):
            raise RuleTestError(f"test {test.get('name')!r}: each step must be a mapping")
        event = _step_event(step)
        event.setdefault("ts", ts)
        event.setdefault("pid", state.get("pid"))
        events.append(event)
        ts += 1_000_000
    return events


def _check(test: Mapping[str, Any], engine: Engine, events: list[dict[str, Any]]) -> str | None:
    """None if the outcome is as expected, else what went wrong."""
    rule = test.get("rule")
    if not isinstance(rule, str):
        raise RuleTestError(f"test {test.get('name')!r}: 'rule' is required")
    known = {r.name for r in engine.rules}
    if rule not in known:
        return f"rule {rule!r} is not loaded (or not enabled) for source {engine.source}"
    alerts = [a for e in events for a in engine.process(e) if a.rule == rule]
    expected = test.get("expectedOutcome", {})
    if expected in (None, "none", False):
        if alerts:
            return f"expected no alert, got: {alerts[0].output}"
        return None
    if not alerts:
        return "expected an alert, got none"
    want_priority = expected.get("priority")
    problems: list[str] = []
    for alert in alerts:
        problems = []
        if want_priority is not None:
            parsed = Priority.parse(str(want_priority))
            if parsed is None:
                raise RuleTestError(
                    f"test {test.get('name')!r}: unknown priority {want_priority!r}"
                )
            if parsed != alert.priority:
                problems.append(f"priority {alert.priority.label}, expected {parsed.label}")
        source = expected.get("source")
        if source is not None and source != alert.source:
            problems.append(f"source {alert.source}, expected {source}")
        for key, value in (expected.get("outputFields") or {}).items():
            got = render_value(alert.output_fields.get(key)) if key in alert.output_fields else None
            if got is None:
                problems.append(f"output field {key} is not in the rule's output")
            elif got != render_value(value):
                problems.append(f"{key}={got}, expected {render_value(value)}")
        if not problems:
            return None
    return "; ".join(problems)


def load_tests(path: Path) -> dict[str, Any]:
    try:
        # capped as a rules file is: a device or a FIFO has no size to refuse it by
        text = read_capped(path, MAX_RULES_FILE_BYTES)
    except FileTooLarge:
        raise RuleTestError(f"{path}: larger than {MAX_RULES_FILE_BYTES // 2**20} MiB") from None
    except OSError as exc:
        raise RuleTestError(f"{path}: {exc.strerror or exc}") from None
    try:
        docs = list(load_documents(text, typing="yaml11"))
    except YamlError as exc:
        raise RuleTestError(f"{path}: {exc.diagnostics()}") from None
    if len(docs) != 1 or isinstance(docs[0], YamlError) or not isinstance(docs[0].data, dict):
        raise RuleTestError(f"{path}: expected one YAML mapping with 'tests'")
    data = docs[0].data
    if not isinstance(data.get("tests"), list):
        raise RuleTestError(f"{path}: 'tests' must be a list")
    return data


def _load(paths: Sequence[Path]) -> LoadResult:
    """The rules files a test names, read as `--rules` reads them (capped: `rules:
    [/dev/zero]` was read until memory ran out)."""
    try:
        files = read_rules_files(str(p) for p in paths)
    except InputError as exc:
        raise RuleTestError(str(exc)) from None
    return load_rules(files)


def _rules_paths(tests: Path, names: Any, where: str) -> list[Path]:
    """The rules files a tests file names (`rules:` at the top or in a test), each inside the
    tests file's directory.

    A tests file is often someone else's (a pull request's): `rules: [/etc/shadow]`, a
    `../` path or a symbolic link out of the directory made `skanse rules test` read that
    file and quote it in its errors. A file elsewhere is given with --rules.
    """
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RuleTestError(f"{tests}: {where}'rules' must be a list of file names")
    base = tests.parent.resolve()
    paths = []
    for name in names:
        relative = Path(name)
        if not name or relative.is_absolute() or ".." in relative.parts:
            raise RuleTestError(
                f"{tests}: {where}rules file {name!r} must be a relative path inside the "
                f"tests file's directory {base} (give other rules files with --rules)"
            )
        full = (base / relative).resolve()
        if not full.is_relative_to(base):
            raise RuleTestError(
                f"{tests}: {where}rules file {name!r} is a symbolic link out of the tests "
                f"file's directory {base} (to {full}); give it with --rules"
            )
        paths.append(full)
    return paths


def run_tests(
    path: Path, *, extra_rules: Sequence[Path] = ()
) -> tuple[list[TestOutcome], LoadResult | None]:
    """Run every test of a tests file; the outcomes and the load result of its rules.
    The rules files the tests file names lie in its directory (`_rules_paths`);
    `extra_rules` (--rules) may be anywhere."""
    data = load_tests(path)
    default_rules = _rules_paths(path, data.get("rules") or [], "") + list(extra_rules)
    cache: dict[tuple[str, ...], LoadResult] = {}
    outcomes: list[TestOutcome] = []
    last: LoadResult | None = None
    cases = 0
    for test in data["tests"]:  # counted before any runs: a file over the limit runs nothing
        if not isinstance(test, Mapping):
            raise RuleTestError(f"{path}: each test must be a mapping")
        cases += _case_count(test)
        if cases > MAX_CASES:
            raise RuleTestError(
                f"{path}: more than {MAX_CASES:,} cases (a matrix has as many as the product "
                f"of its value lists); at test {str(test.get('name', 'unnamed'))!r}"
            )
    for test in data["tests"]:  # every path checked before any test runs
        if "rules" in test:
            _rules_paths(path, test["rules"], f"test {str(test.get('name', 'unnamed'))!r}: ")
    for test in data["tests"]:
        name = str(test.get("name", "unnamed"))
        rule_paths = (
            _rules_paths(path, test["rules"], f"test {name!r}: ")
            if "rules" in test
            else default_rules
        )
        if not rule_paths:
            raise RuleTestError(f"{path}: test {name!r} names no rules files")
        key = tuple(str(p) for p in rule_paths)
        if key not in cache:
            cache[key] = _load(rule_paths)
        result = last = cache[key]
        if result.ruleset is None:
            first = result.errors[0] if result.errors else None
            outcomes.append(TestOutcome(name, "", False, f"rules do not load: {first}"))
            continue
        for item in _cases(test):
            concrete = _substitute(dict(test), item)
            concrete.pop("cases", None)
            source = (
                (concrete.get("expectedOutcome") or {}).get("source", "syscall")
                if isinstance(concrete.get("expectedOutcome"), Mapping)
                else concrete.get("source", "syscall")
            )
            engine = Engine(result.ruleset, source=str(source), rule_matching="all")
            events = build_events(concrete)
            problem = _check(concrete, engine, events)
            label = " ".join(f"{k}={v}" for k, v in item.items())
            outcomes.append(TestOutcome(name, label, problem is None, problem or ""))
    return outcomes, last
