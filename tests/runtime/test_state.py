"""The process table from kernel records: fork, exec, exit, ancestry of short-lived processes.

Records are built as the kernel program writes them (skanse.runtime.records) and fed to the
agent without a kernel, so the table's behaviour is checked in isolation; the live tests
show the same behaviour on real records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from skanse.rules.engine import Engine
from skanse.rules.loader import RulesFile, load_rules
from skanse.runtime import procfs
from skanse.runtime.agent import Agent
from skanse.runtime.containers import CgroupPaths, ContainerMetadata, RuntimeRoots
from skanse.runtime.records import Item, Kind, Record, TaskFacts
from skanse.runtime.state import ProcessState
from skanse.runtime.syscalls import SYSCALLS

RULES = """
- rule: shell under a web server
  desc: test
  condition: evt.type = execve and proc.name = sh and proc.aname[2] = nginx
  output: "shell %proc.cmdline parent=%proc.pname gparent=%proc.aname[2] pcmd=%proc.pcmdline"
  priority: WARNING
- rule: shadow
  desc: test
  condition: evt.type = openat and fd.name = /etc/shadow
  output: "read by %proc.name (%user.name)"
  priority: WARNING
"""


class ListSensor:
    name = "test"

    def __init__(self, records: list[Record]) -> None:
        self._records = records
        self.delivered = len(records)

    def records(self, max_bytes: int = 0) -> Iterator[Record | None]:
        yield from self._records
        self._records = []

    def wait(self, timeout: float) -> bool:
        return bool(self._records)

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def drops(self) -> tuple[int, int]:
        return (self.delivered, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _task(ppid: int, comm: str, uid: int = 0) -> TaskFacts:
    return TaskFacts(
        ppid, 1, 1, 1, 1, uid, uid, uid, 0xFFFFFFFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, comm
    )


def _fork(pid: int, ppid: int, comm: str) -> Record:
    return Record(Kind.FORK, 0, 1, pid, pid, 0, task=_task(ppid, comm))


def _exec(pid: int, ppid: int, argv: list[str], uid: int = 0) -> Record:
    items: dict[int, bytes] = {
        Item.ARGV: b"\0".join(a.encode() for a in argv) + b"\0",
        Item.EXEPATH: b"\x01" + argv[0].encode() + b"\0bin\0",
    }
    return Record(
        Kind.EXEC,
        SYSCALLS["execve"].nr,
        2,
        pid,
        pid,
        0,
        task=_task(ppid, argv[0][:15], uid),
        items=items,
    )


def _exit(pid: int) -> Record:
    return Record(Kind.EXIT, 0, 3, pid, pid, 0)


def _open(pid: int, path: str, uid: int = 0) -> Record:
    return Record(
        Kind.SYSCALL,
        SYSCALLS["openat"].nr,
        4,
        pid,
        pid,
        3,
        uid,
        uid,
        (0xFFFFFF9C, 0, 0, 0, 0, 0),
        None,
        {Item.PATH: path.encode() + b"\0"},
    )


def _agent(tmp_path: Path, records: list[Record]) -> tuple[Agent, ProcessState, Clock]:
    result = load_rules([RulesFile("rules.yaml", RULES.encode())])
    assert result.ruleset is not None
    engine = Engine(result.ruleset, rule_matching="all")
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n"
    )
    clock = Clock()
    state = ProcessState(
        engine.table,
        users=procfs.UserNames(str(tmp_path), proc_root=str(tmp_path / "no-proc")),
        cgroups=CgroupPaths(None),
        metadata=ContainerMetadata(RuntimeRoots.under(str(tmp_path))),
        boot_offset_ns=0,
        exit_grace_s=5.0,
        clock=clock,
    )
    return (
        Agent(engine, ListSensor(records), state, proc_root=str(tmp_path / "no-proc")),
        state,
        clock,
    )


def test_ancestry_of_exited_parents_resolves_from_recorded_state(tmp_path: Path) -> None:
    # nginx (10) forks a worker (11) that runs sh -c (12), and both parents exit first:
    # proc.aname[2] must still be nginx, as libsinsp's thread table keeps it
    records = [
        _fork(10, 1, "init"),
        _exec(10, 1, ["nginx", "-g", "daemon off;"]),
        _fork(11, 10, "nginx"),
        _exit(10),
        _fork(12, 11, "nginx"),
        _exit(11),
        _exec(12, 11, ["sh", "-c", "id"]),
    ]
    alerts: list = []
    agent, _, _ = _agent(tmp_path, records)
    agent.on_alert = lambda alert, context: alerts.append(alert)
    agent.drain()
    assert [a.rule for a in alerts] == ["shell under a web server"]
    fields = alerts[0].output_fields
    assert fields["proc.pname"] == "nginx" and fields["proc.aname[2]"] == "nginx"
    assert fields["proc.pcmdline"] == "nginx -g daemon off;"


def test_exited_processes_are_forgotten_after_the_grace_period(tmp_path: Path) -> None:
    agent, state, clock = _agent(tmp_path, [_fork(20, 1, "x"), _exec(20, 1, ["x"]), _exit(20)])
    agent.drain()
    assert 20 in agent.engine.table.processes
    clock.now = 10.0
    assert state.expire() == 1
    assert 20 not in agent.engine.table.processes


def test_a_reused_pid_is_not_forgotten_with_its_predecessor(tmp_path: Path) -> None:
    agent, state, clock = _agent(
        tmp_path, [_exec(30, 1, ["old"]), _exit(30), _fork(30, 1, "new"), _exec(30, 1, ["new"])]
    )
    agent.drain()
    clock.now = 10.0
    state.expire()
    assert agent.engine.table.processes[30].name == "new"


def test_credentials_follow_the_syscalls_and_user_names_come_from_passwd(tmp_path: Path) -> None:
    alerts: list = []
    agent, _, _ = _agent(tmp_path, [_exec(40, 1, ["cat"], uid=0), _open(40, "/etc/shadow", uid=33)])
    agent.on_alert = lambda alert, context: alerts.append(alert)
    agent.drain()
    assert alerts[0].output == "read by cat (www)"
    assert agent.engine.table.processes[40].uid == 33


def test_a_record_that_breaks_handling_is_counted_and_the_rest_goes_on(tmp_path: Path) -> None:
    broken = Record(Kind.EXEC, SYSCALLS["execve"].nr, 1, 50, 50, 0, task=None)  # no task facts
    agent, _, _ = _agent(tmp_path, [broken, _exec(51, 1, ["ok"]), None])  # type: ignore[list-item]
    agent.drain()
    assert agent.stats.errors == 1
    assert agent.stats.malformed == 1
    assert 51 in agent.engine.table.processes


def test_engine_reports_the_event_types_its_rules_index_on() -> None:
    result = load_rules([RulesFile("rules.yaml", RULES.encode())])
    assert result.ruleset is not None
    assert Engine(result.ruleset).event_types() == frozenset({"execve", "openat"})
    catch_all = RULES + (
        "\n- rule: any\n  desc: t\n  condition: proc.name = x\n  output: x\n"
        "  priority: INFO\n  warn_evttypes: false\n"
    )
    result = load_rules([RulesFile("rules.yaml", catch_all.encode())])
    assert result.ruleset is not None
    assert Engine(result.ruleset).event_types() is None  # the kernel must then send everything


class ScriptedSensor(ListSensor):
    """Delivers one batch of records at the waits listed in `batches_at`; stops the agent
    after `waits` waits; remembers every timeout it was given."""

    def __init__(self, batches_at: set[int], waits: int, stop: object) -> None:
        super().__init__([])
        self.batches_at = batches_at
        self.waits = waits
        self._stop_event = stop
        self.timeouts: list[float] = []

    def wait(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        if len(self.timeouts) >= self.waits:
            self._stop_event.set()  # type: ignore[attr-defined]
        if len(self.timeouts) in self.batches_at:
            self._records = [_exit(1)]
        return bool(self._records)


def test_the_agent_looks_again_soon_after_records_and_seldom_while_idle(tmp_path: Path) -> None:
    import threading

    agent, _, _ = _agent(tmp_path, [])
    stop = threading.Event()
    sensor = ScriptedSensor({1, 7}, waits=9, stop=stop)
    agent.sensor = sensor
    agent.run(stop, poll_interval=0.05, idle_wait=0.25)
    assert sensor.timeouts == [0.05, 0.05, 0.1, 0.2, 0.25, 0.25, 0.25, 0.05, 0.1]


def test_the_typed_fast_path_builds_the_same_process_as_the_checked_one(tmp_path: Path) -> None:
    # the sensor builds its processes with Process.from_typed (no coercion); every record
    # it keeps, from /proc and from kernel records, must give what Process(data) gives
    from skanse.rules.events import Process

    agent, state, _ = _agent(
        tmp_path,
        [
            _fork(10, 1, "init"),
            _exec(10, 1, ["nginx", "-g", "daemon off;"]),
            _fork(11, 10, "nginx"),
            _exec(11, 10, ["sh"]),
            _exec(12, 11, ["sh", "-c", "caf\xe9 \u2603"], uid=33),
        ],
    )
    agent.drain()
    assert state.seed("/proc") > 0
    assert len(state.records) > 3
    for pid, data in state.records.items():
        typed, checked = Process.from_typed(data), Process(data)
        for slot in Process.__slots__:
            assert getattr(typed, slot) == getattr(checked, slot), (pid, slot)
        assert state.table.processes[pid].cmdline == checked.cmdline


def _in_container(proc: Path, pid: int, container: str) -> None:
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "cgroup").write_text(f"0::/libpod_parent/libpod-{container}\n")


def test_containers_whose_processes_all_exited_are_forgotten(tmp_path: Path) -> None:
    """The table kept every container it had seen: 1,000 containers that came and went
    stayed 1,000 entries for the sensor's life. A sweep now forgets a container none of
    whose processes is left, and one seen again is looked up again."""
    proc = tmp_path / "proc"
    count = 1000
    records: list[Record] = []
    for n in range(count):
        pid = 1000 + n
        _in_container(proc, pid, f"{n:012x}" + "0" * 52)
        records += [_fork(pid, 1, "x"), _exec(pid, 1, ["x"]), _exit(pid)]
    _in_container(proc, 5000, "ab" * 32)  # one container still running
    records += [_fork(5000, 1, "x"), _exec(5000, 1, ["x"])]
    agent, state, clock = _agent(tmp_path, records)
    state.proc_root = str(proc)
    agent.drain()
    table = agent.engine.table
    assert len(table.containers) == count + 1
    clock.now = 10.0
    assert state.expire() == count
    state.sweep(str(proc))
    assert set(table.containers) == {("ab" * 32)[:12]}
    # a process in one of the ended containers (its id reused, or a record seen late)
    _in_container(proc, 6000, f"{7:012x}" + "0" * 52)
    agent.sensor = ListSensor([_fork(6000, 1, "x"), _exec(6000, 1, ["x"])])
    agent.drain()
    assert table.processes[6000].container is table.containers[f"{7:012x}"]
