"""The kernel's records, field by field, against what /proc says about the same process.

The detection tests show that rules fire; these show that every fact the kernel program
reads (ids, credentials, capabilities, namespaces, cgroup, tty, start time, argv, the
executable's path, the cwd, the directory a relative open is resolved against) is the one
the kernel itself reports, on the host and in a pid namespace of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skanse.runtime.bpf_sensor import BpfSensor, BpfSensorOptions
from skanse.runtime.containers import cgroup2_mount
from skanse.runtime.records import (
    EXE_UPPER_LAYER,
    Item,
    Kind,
    Record,
    c_string,
    path_from_components,
)
from tests.runtime.conftest import live

OPENAT = 257
EXECVE = 59

# opens two relative paths (one against the cwd, one against a directory fd), then waits
HELPER = """
import os, sys
os.open("rel.txt", os.O_RDONLY)
sub = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
os.open("inner.txt", os.O_RDONLY, dir_fd=sub)
print("ready", flush=True)
sys.stdin.read()
sys.exit(3)
"""


@pytest.fixture
def sensor() -> Iterator[BpfSensor]:
    instance = BpfSensor(BpfSensorOptions(event_types=frozenset({"openat", "execve"})))
    instance.start()
    try:
        yield instance
    finally:
        instance.close()


def _collect(sensor: BpfSensor, until: Callable[[list[Record]], bool]) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records.extend(r for r in sensor.records() if r is not None)
        if until(records):
            break
        sensor.wait(0.02)
    return records


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _ns(pid: int, kind: str) -> int:
    return int(os.readlink(f"/proc/{pid}/ns/{kind}").split("[")[1].rstrip("]"))


def _cgroup_inode(pid: int) -> int:
    mount = cgroup2_mount()
    assert mount is not None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return os.stat(mount + line[3:]).st_ino
    raise AssertionError("no cgroup v2 line")


def _expected(pid: int) -> dict[str, object]:
    """The task facts of a running process as /proc reports them."""
    status = _status(pid)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    uid = [int(x) for x in status["Uid"].split()]
    gid = [int(x) for x in status["Gid"].split()]
    return {
        "ppid": int(stat[1]),
        "vpid": int(status["NSpid"].split()[-1]),
        "vtid": int(status["NSpid"].split()[-1]),
        "sid": int(stat[3]),
        "vpgid": int(status["NSpgid"].split()[-1]),
        "uid": uid[1],
        "gid": gid[1],
        "ruid": uid[0],
        "loginuid": int(Path(f"/proc/{pid}/loginuid").read_text()),
        "tty": int(stat[4]),
        "cap_effective": int(status["CapEff"], 16),
        "cap_permitted": int(status["CapPrm"], 16),
        "cap_inheritable": int(status["CapInh"], 16),
        "cgroup_id": _cgroup_inode(pid),
        "pidns": _ns(pid, "pid"),
        "mntns": _ns(pid, "mnt"),
        "netns": _ns(pid, "net"),
        "exe_flags": 0,
        "comm": status["Name"],
    }


@live
@pytest.mark.parametrize("where", ["host", "container"])
def test_exec_fork_and_open_records_match_proc(
    tmp_path: Path, where: str, sensor: BpfSensor, make_container
) -> None:
    work = tmp_path / "a dir" / "work"
    (work / "sub").mkdir(parents=True)
    (work / "rel.txt").write_text("x")
    (work / "sub" / "inner.txt").write_text("x")
    argv = [sys.executable, "-c", HELPER, "an argument"]
    if where == "host":
        # forked by a shell: the sensor does not see its own process's forks
        child = subprocess.Popen(
            ["sh", "-c", '"$@"; exit $?', "sh", *argv],
            cwd=work,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        pid = 0
    else:
        container = make_container()
        child = container.spawn(
            argv, cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        pid = 0
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "ready"
    if where == "host":
        pid = int(Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text())
    else:
        # the helper is the pid namespace's init: the one whose NSpid ends in 1
        pid = next(p for p in container.pids() if _status(p)["NSpid"].split()[-1] == "1")
    expected = _expected(pid)
    start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    exe = os.readlink(f"/proc/{pid}/exe")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()

    def opened(records: list[Record]) -> bool:
        return sum(1 for r in records if r.tgid == pid and r.nr == OPENAT and r.items) >= 3

    records = _collect(sensor, opened)
    child.stdin.close()
    assert child.wait(10) == 3
    child.stdout.close()
    records += _collect(sensor, lambda rs: any(r.kind == Kind.EXIT and r.tgid == pid for r in rs))

    execs = [r for r in records if r.kind == Kind.EXEC and r.tgid == pid]
    forks = [r for r in records if r.kind == Kind.FORK and r.tgid == pid]
    exits = [r for r in records if r.kind == Kind.EXIT and r.tgid == pid]
    assert execs and forks and exits, f"exec {len(execs)}, fork {len(forks)}, exit {len(exits)}"
    rec = execs[-1]  # in the container, unshare's own exec came first
    assert rec.nr == EXECVE and rec.ret == 0 and rec.tid == pid
    assert rec.task is not None
    facts = rec.task._asdict()
    start_ts = facts.pop("start_ts")
    assert {k: facts[k] for k in expected} == expected
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert start_ticks * tick <= start_ts < (start_ticks + 1) * tick
    assert rec.items is not None
    assert rec.items[Item.ARGV] == cmdline
    assert path_from_components(rec.items[Item.EXEPATH]) == (exe, True)
    assert path_from_components(rec.items[Item.CWD]) == (str(work), True)

    fork = forks[0]
    assert fork.task is not None
    assert fork.ts <= rec.ts
    assert fork.task.start_ts == start_ts
    assert fork.task.vpid == expected["vpid"] and fork.task.pidns == expected["pidns"]
    assert fork.task.cgroup_id == expected["cgroup_id"]

    bases = {}
    for r in records:
        if r.tgid == pid and r.kind == Kind.SYSCALL and r.nr == OPENAT and r.items:
            raw = c_string(r.items.get(Item.PATH, b""))
            base = r.items.get(Item.BASE)
            bases[raw] = path_from_components(base) if base is not None else None
    assert bases["rel.txt"] == (str(work), True)
    assert bases["inner.txt"] == (str(work / "sub"), True)
    assert all(v is None for k, v in bases.items() if k.startswith("/"))
    assert exits[-1].ret == 3 << 8  # the kernel's exit_code: the status in the high byte


@live
def test_exec_from_an_overlay_upper_layer_is_flagged(tmp_path: Path, sensor: BpfSensor) -> None:
    if "overlay" not in Path("/proc/filesystems").read_text():
        pytest.skip("the kernel has no overlay filesystem")
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for directory in (lower, upper, work, merged):
        directory.mkdir()
    true = shutil.which("true") or "/bin/true"
    shutil.copy(true, lower / "from-lower")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        shutil.copy(true, merged / "from-upper")  # written through the mount: the upper layer
        pids = {}
        for name in ("from-lower", "from-upper"):
            child = subprocess.Popen([str(merged / name)])
            assert child.wait(10) == 0
            pids[child.pid] = name

        def both(records: list[Record]) -> bool:
            return {r.tgid for r in records if r.kind == Kind.EXEC} >= set(pids)

        records = _collect(sensor, both)
    finally:
        subprocess.run(["umount", str(merged)], check=False)
    flags = {
        pids[r.tgid]: r.task.exe_flags
        for r in records
        if r.kind == Kind.EXEC and r.tgid in pids and r.task is not None
    }
    assert flags == {"from-lower": 0, "from-upper": EXE_UPPER_LAYER}


@live
def test_the_first_record_after_a_quiet_spell_wakes_the_reader(sensor: BpfSensor) -> None:
    """The kernel wakes a reader blocked on the rings when its CPU has not for a while, so
    an isolated event is seen at once rather than when the reader's wait runs out."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # drain, then let every CPU's last wakeup age
        list(sensor.records())
        if not sensor.wait(0.3):
            break
    import threading

    true = shutil.which("true") or "/bin/true"
    later = threading.Timer(0.5, subprocess.run, args=([true],))
    started = time.monotonic()
    later.start()
    try:
        assert sensor.wait(10.0)  # blocked in epoll until the exec's record wakes it
    finally:
        later.join()
    assert time.monotonic() - started < 2.0
