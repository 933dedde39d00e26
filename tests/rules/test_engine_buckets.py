"""The per-type bucket functions decide `evt.type` checks when they are compiled and run the
operands of `and`/`or` cheapest first: neither may change which rules match.

The reference is each candidate rule's own compiled condition (`rule.fn`, the written order,
nothing folded), evaluated one at a time.
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest

from skanse.rules.engine import Engine
from skanse.rules.events import EMPTY_PROCESS
from skanse.rules.loader import Ruleset, RulesFile, load_rules

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
STABLE = CORPORA / "falco" / "falco_rules.yaml"

TYPE_RULES = """\
- rule: not an open
  desc: d
  condition: evt.type != openat and evt.type in (openat, execve, connect) and proc.name = sh
  output: o %proc.name
  priority: INFO
  warn_evttypes: false
- rule: never
  desc: d
  condition: evt.type = openat and evt.type = execve
  output: o
  priority: INFO
  warn_evttypes: false
- rule: not in
  desc: d
  condition: not evt.type in (open, openat) and proc.name = sh and not fd.name = /x
  output: o
  priority: INFO
  warn_evttypes: false
- rule: any type
  desc: d
  condition: proc.name = sh or evt.type = openat
  output: o %evt.type
  priority: INFO
  warn_evttypes: false
"""

_TYPES = ["open", "openat", "openat2", "execve", "execveat", "connect", "sendto", "dup2",
          "ptrace", "symlink", "socket", "read", "init_module"]  # fmt: skip
_NAMES = ["sh", "bash", "cat", "nginx", "sshd", "python3", "runc", "java", "dpkg", "node"]
_PATHS = ["/etc/shadow", "/etc/sudoers", "/etc/pam.d/common", "/etc/hosts", "/var/log/syslog",
          "/root/.ssh/id_rsa", "/home/u/.ssh/authorized_keys", "/sys/fs/cgroup/x/release_agent",
          "/usr/lib/libc.so.6", "/tmp/x", "/dev/shm/run", "/bin/ls", "/x"]  # fmt: skip
_FLAGS = ["O_RDONLY", "O_RDONLY|O_CLOEXEC", "O_WRONLY|O_CREAT|O_TRUNC", "O_RDWR", "O_WRONLY"]


def _world(rng: random.Random, engine: Engine) -> list[int]:
    table = engine.table
    table.upsert_container({"id": "0123456789ab", "name": "app", "image": "nginx:1"})
    pids = [1]
    table.upsert({"pid": 1, "ppid": 0, "name": "systemd", "exe": "/sbin/init"})
    for pid in range(100, 260):
        name = rng.choice(_NAMES)
        table.upsert(
            {
                "pid": pid,
                "ppid": rng.choice(pids),
                "name": name,
                "exe": f"/usr/bin/{name}",
                "args": rng.choice([["-c", "cat /etc/shadow"], ["--serve"], []]),
                "uid": rng.choice([0, 1000]),
                "user": rng.choice(["root", "app"]),
                "tty": rng.choice([0, 34816]),
                "start_ts": 1_700_000_000_000_000_000 - rng.randrange(10**10),
                "container_id": rng.choice(["0123456789ab", None]),
            }
        )
        pids.append(pid)
    return pids


def _event(rng: random.Random, pids: list[int], ts: int) -> dict[str, Any]:
    path = rng.choice(_PATHS)
    event: dict[str, Any] = {
        "type": rng.choice(_TYPES),
        "ts": ts,
        "num": rng.randrange(3),
        "pid": rng.choice([*pids, 99_999]),
        "res": rng.choice([0, 3, -2, -13]),
        "args": {"name": path, "flags": rng.choice(_FLAGS), "request": "PTRACE_ATTACH"},
    }
    kind = rng.choice(["file", "ipv4", "unix", None, "odd"])
    if kind == "odd":  # what a damaged or foreign record may carry where the fd belongs
        event["fd"] = rng.choice(["x", 7, [], {"name": 5}, {"type": "file"}, {"name": None}])
    elif kind == "file":
        raw = rng.choice([path, "../../.." + path, path.replace("/", "//")])
        event["fd"] = {"num": rng.choice([3, -1]), "type": "file", "name": path, "nameraw": raw}
    elif kind == "ipv4":
        event["fd"] = {
            "num": 4,
            "type": "ipv4",
            "cip": "10.0.0.5",
            "cport": 40000,
            "sip": rng.choice(["10.96.0.1", "203.0.113.10", "127.0.0.1"]),
            "sport": rng.choice([443, 4444, 22, 53]),
            "l4proto": rng.choice(["tcp", "udp"]),
            "connected": rng.choice([True, False]),
        }
    return event


def _one_by_one(engine: Engine, event: dict[str, Any], first: bool) -> list[str]:
    process = engine.table.processes.get(event["pid"], EMPTY_PROCESS)
    matched = []
    for rule in engine.candidates(event["type"]):
        try:
            hit = rule.fn(event, process, engine.table)
        except Exception:  # the engine skips a rule that raises too
            hit = False
        if hit:
            matched.append(rule.name)
            if first:
                break
    return matched


def _ruleset(*texts: tuple[str, str]) -> Ruleset:
    result = load_rules([RulesFile(name, text) for name, text in texts])
    assert result.ruleset is not None, [str(d) for d in result.errors]
    return result.ruleset


@pytest.mark.parametrize("matching", ["first", "all"])
def test_buckets_match_exactly_the_rules_that_match_one_by_one(matching: str) -> None:
    if not STABLE.exists():
        pytest.skip(f"the stable Falco rules are not at {STABLE}")
    ruleset = _ruleset((STABLE.name, STABLE.read_text()), ("types.yaml", TYPE_RULES))
    engine = Engine(ruleset, rule_matching=matching)
    rng = random.Random(17)  # noqa: S311 - reproducible test data, not secrets
    pids = _world(rng, engine)
    seen: set[str] = set()
    for i in range(6_000):
        event = _event(rng, pids, 1_700_000_000_000_000_000 + i)
        got = [alert.rule for alert in engine.process(event)]
        assert got == _one_by_one(engine, event, matching == "first"), event
        seen.update(got)
    # the events reach the rules whose evt.type checks are folded, both ways
    assert {"not an open", "not in", "any type", "Read sensitive file untrusted"} <= seen
    assert "never" not in seen


def test_an_alert_renders_each_field_once_with_the_same_text_and_values() -> None:
    ruleset = _ruleset(
        (
            "r.yaml",
            "- rule: r\n  desc: d\n  condition: evt.type = openat\n"
            "  output: '%proc.name %proc.name %fd.num %evt.is_open_read %proc.aname[9]"
            " %5proc.name'\n"
            "  priority: INFO\n",
        )
    )
    engine = Engine(ruleset)
    engine.table.upsert({"pid": 7, "ppid": 1, "name": "catalogue"})
    event = {"type": "openat", "pid": 7, "res": 3, "args": {"flags": "O_RDONLY"},
             "fd": {"num": 3, "type": "file", "name": "/x"}}  # fmt: skip
    (alert,) = engine.process(event)
    assert alert.output == "catalogue catalogue 3 true <NA> catal"
    assert alert.output_fields == {
        "proc.name": "catalogue",
        "fd.num": 3,
        "evt.is_open_read": True,
        "proc.aname[9]": None,
    }


def test_the_directory_memo_stays_bounded_and_right_for_many_distinct_paths() -> None:
    from skanse.rules import fields

    for i in range(20_000):
        name = f"/var/lib/app/{i}/data" if i % 2 else f"//srv//{i}"
        expected = f"/var/lib/app/{i}" if i % 2 else "//srv"
        event = {"fd": {"type": "file", "name": name}}
        assert fields._fd_directory(event) == expected
        assert fields._fd_directory(event) == expected  # the memoised answer too
        assert len(fields._DIRECTORY_CACHE) <= 4097
    assert fields._fd_directory({"fd": {"type": "file", "name": "nodir"}}) is None
    assert fields._fd_directory({"fd": {"type": "directory", "name": "/etc/x"}}) == "/etc/x"


def test_the_memos_keep_no_more_text_than_a_kernel_would_hand_them() -> None:
    # a memo kept 4,096 keys of any length: a replay of 4,000 file names of 100 KB (400 MB)
    # held 419 MB at its end; now 29 MB (names longer than 4,096 characters are not kept)
    from skanse.rules import compiler, fields

    nets = (ipaddress.ip_network("10.0.0.0/8"),)
    for i in range(300):
        long = "/" + str(i) + "/" + "a" * 20_000
        assert fields._fd_directory({"fd": {"type": "file", "name": long}}) == f"/{i}"
        flags = "O_RDONLY|" + "|".join(f"O_X{k}" for k in range(i, i + 3000))
        found = fields._flags({"args": {"flags": flags}})
        assert found is not None and {"O_RDONLY", f"O_X{i}"} <= found
        assert compiler._ip_in_nets("10.0.0.1%" + "z" * 20_000 + str(i), nets) is False
    kept = [*fields._DIRECTORY_CACHE, *fields._FLAG_CACHE, *compiler._IP_CACHE]
    assert sum(len(key) for key in kept) <= 300 * 4096  # before: 18 million
    # short keys are still memoised, with the same answers
    assert fields._fd_directory({"fd": {"type": "file", "name": "/etc/shadow"}}) == "/etc"
    assert fields._DIRECTORY_CACHE["/etc/shadow"] == "/etc"
    assert compiler._ip_in_nets("10.1.2.3", nets) is True
    assert "10.1.2.3" in compiler._IP_CACHE


class _Code(str):
    """Generated code that counts the characters its searches and replacements scan."""

    scanned = 0

    def count(self, *args: Any) -> int:
        _Code.scanned += len(self)
        return str.count(self, *args)

    def replace(self, *args: Any) -> str:
        _Code.scanned += len(self)
        return str.replace(self, *args)


class _Marks:
    """Stands in for compiler._MARK: counts the characters each scan of the code reads."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern

    def finditer(self, text: str) -> Any:
        _Code.scanned += len(text)
        return self.pattern.finditer(text)


def test_shared_accessors_are_found_in_one_pass_over_the_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # each accessor the code used was counted, and then replaced, in all of the code: one
    # rule of 20,000 `or`ed ancestor and environment checks took 14 s to load (2,500/5,000/
    # 10,000/20,000 = 0.36/1.11/3.81/14.01 s), now 0.18/0.35/0.76/1.71 s; the first execve
    # of 16,000 rules waited 12 s for its bucket (2,000/.../16,000 = 0.31/0.95/3.46/11.98 s),
    # now 1.9 s (0.16/0.35/0.95/1.88 s)
    from skanse.rules import compiler

    share = compiler.ModuleBuilder.share_accessors
    sizes: list[int] = []

    def counting(self: compiler.ModuleBuilder, body: str) -> tuple[str, str]:
        sizes.append(len(body))
        return share(self, _Code(body))

    monkeypatch.setattr(compiler.ModuleBuilder, "share_accessors", counting)
    monkeypatch.setattr(compiler, "_MARK", _Marks(getattr(compiler, "_MARK", None)), raising=False)
    for count in (250, 500):
        checks = " or ".join(f"proc.aname[2] = x{i} or proc.env[V{i}] = y" for i in range(count))
        rule = f"- rule: r\n  desc: d\n  condition: evt.type = execve and ({checks})\n"
        _Code.scanned, sizes[:] = 0, []
        loaded = load_rules([RulesFile("r.yaml", rule + "  output: o\n  priority: INFO\n")])
        assert loaded.ruleset is not None
        assert _Code.scanned <= 4 * sum(sizes)  # before: about 2 * count * sum(sizes)
        engine = Engine(loaded.ruleset)
        engine.table.upsert({"pid": 1, "name": "sh", "ppid": 2})
        engine.table.upsert({"pid": 2, "name": "bash", "ppid": 3})
        engine.table.upsert({"pid": 3, "name": f"x{count - 1}"})
        _Code.scanned, sizes[:] = 0, []
        assert [a.rule for a in engine.process({"type": "execve", "pid": 1})] == ["r"]
        assert engine.process({"type": "execve", "pid": 2}) == []
        assert _Code.scanned <= 4 * sum(sizes)
