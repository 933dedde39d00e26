"""Kills that land before the offending syscall returns, and kills that never hit the wrong
process.

The first version killed with os.kill(pid) about 8 ms after the event: the victim had read
/etc/shadow already, and a pid reused in the meantime would have been killed instead.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import live
from tests.runtime.containers_real import podman_container

pytestmark = live

KILL_RULES = """\
- macro: open_read
  condition: >-
    (evt.type in (open,openat,openat2) and evt.is_open_read=true
    and fd.typechar='f' and fd.num>=0)
- macro: container
  condition: (container.id != host)
- rule: Kill shadow readers
  desc: whoever opens the shadow file for reading dies before the open returns
  condition: open_read and fd.name in (/etc/shadow, /etc/gshadow)
  output: "shadow opened by %proc.name (pid=%proc.pid container=%container.id)"
  priority: CRITICAL
- rule: Kill drop and execute
  desc: a binary written in the container and executed there dies before it runs
  condition: evt.type in (execve, execveat) and container and proc.is_exe_upper_layer=true
  output: "dropped binary %proc.exepath executed (pid=%proc.pid)"
  priority: CRITICAL
"""


def _journal(tmp: Path) -> list[dict]:
    import json

    path = tmp / "state" / "responses.json"
    return json.loads(path.read_text())["responses"] if path.exists() else []


def _start(tmp_path: Path, sensors):
    rules = tmp_path / "kill.yaml"
    rules.write_text(KILL_RULES)
    return sensors(
        tmp_path,
        "--rules",
        str(rules),
        "--respond-rule",
        "Kill shadow readers=kill",
        "--respond-rule",
        "Kill drop and execute=kill",
    )


def test_a_shadow_read_in_a_container_never_completes(tmp_path: Path, sensors) -> None:
    with podman_container() as container:
        sensor = _start(tmp_path, sensors)  # finds the running container in /proc
        started = next(r for r in sensor.logs() if r.get("msg") == "sensor started")
        assert "/etc/shadow" in started["kernel_kills"]["paths"]
        done = container.exec("sh", "-c", 'read line < //etc/../etc/shadow; echo "READ:$line"')
        assert "READ:" not in done.stdout  # the read after the open never ran
        assert done.returncode == 137, (done.returncode, done.stdout, done.stderr)
        alert = sensor.wait_for(lambda a: a["rule"] == "Kill shadow readers", timeout=10)
        assert alert is not None
        assert alert["output_fields"]["container.id"] == container.id
        # a read of another file in the container is untouched
        other = container.exec("sh", "-c", 'read line < /etc/hostname; echo "READ:$line"')
        assert other.returncode == 0 and "READ:" in other.stdout
    deadline = time.monotonic() + 10
    while not any(e["action"] == "kill" for e in _journal(tmp_path)):
        assert time.monotonic() < deadline, "the kill was not journaled"
        time.sleep(0.05)
    entry = next(e for e in _journal(tmp_path) if e["action"] == "kill")
    assert entry["status"] == "done"
    assert "kernel program" in entry["detail"]
    # host processes are outside the kernel's scope unless host kills are allowed
    host = subprocess.run(["cat", "/etc/shadow"], capture_output=True, timeout=10, check=False)
    assert host.returncode == 0
    sensor.stop()


def test_an_executed_dropped_binary_never_runs(tmp_path: Path, sensors) -> None:
    with podman_container() as container:
        sensor = _start(tmp_path, sensors)
        copied = container.exec("cp", "/bin/echo", "/tmp/dropped")
        assert copied.returncode == 0, copied.stderr
        done = container.exec("/tmp/dropped", "RAN")
        assert "RAN" not in done.stdout
        assert done.returncode == 137, (done.returncode, done.stdout, done.stderr)
        # a binary of the image still runs
        assert container.exec("/bin/echo", "RAN").stdout.strip() == "RAN"
        alert = sensor.wait_for(lambda a: a["rule"] == "Kill drop and execute", timeout=10)
        assert alert is not None
    sensor.stop()


def test_the_kernel_kill_scope_takes_new_containers_after_65536_have_come_and_gone() -> None:
    """cgroup ids are never reused: a node that has run 65,536 containers since the sensor
    started must still let the kernel kill in the next one."""
    from skanse.runtime.bpf_sensor import BpfSensor, BpfSensorOptions

    sensor = BpfSensor(BpfSensorOptions(event_types=frozenset({"openat"})))
    sensor.start()
    try:
        gone = sensor._object.map("skn_kill_cgroups").max_entries  # type: ignore[union-attr]
        for cgroup_id in range(1, gone + 1):  # containers that ran and exited
            sensor.add_container_cgroup(cgroup_id)
        newest = gone + 1
        sensor.add_container_cgroup(newest)
        handle = sensor._object.map("skn_kill_cgroups")  # type: ignore[union-attr]
        assert sensor._object.lookup(handle, struct.pack("<Q", newest), 1) == b"\x01"  # type: ignore[union-attr]
    finally:
        sensor.close()


# clone(CLONE_FILES | SIGCHLD): a second process, not a thread, using the opener's file
# table. It waits for the descriptor the opener's next open will get and reads it.
SHARED_TABLE = """\
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
path, report = sys.argv[1], sys.argv[2]
expect = os.dup(0)
os.close(expect)
if libc.syscall(56, 0x400 | 17, 0, 0, 0, 0) == 0:
    for _ in range(3000):
        try:
            data = os.pread(expect, 64, 0)
        except OSError:
            time.sleep(0.001)
            continue
        with open(report, "wb") as out:
            out.write(data.split(b"\\n")[0])
        os._exit(0)
    os._exit(1)
time.sleep(0.1)
os.open(path, os.O_RDONLY)
os.write(1, b"OPENER RAN ON")
"""


def test_a_process_sharing_the_openers_file_table_dies_with_it(
    tmp_path: Path, sensors, make_container
) -> None:
    """Before, only the opener's thread group got the SIGKILL: a process made with
    clone(CLONE_FILES) kept the descriptor of /etc/shadow and read the file."""
    from skanse.runtime.bpf_sensor import SHARERS_KFUNCS
    from skanse.runtime.libbpf import load_libbpf

    missing = set(SHARERS_KFUNCS) - load_libbpf().kernel_functions(SHARERS_KFUNCS)
    if missing:
        pytest.skip(f"the kernel lacks {sorted(missing)}: the opener alone is killed")
    container = make_container()
    waiting = container.spawn(["sleep", "60"])  # the container exists before the sensor
    script = tmp_path / "shared_table.py"
    script.write_text(SHARED_TABLE)
    _start(tmp_path, sensors)
    assert container.pids(), waiting.poll()
    for attempt in range(2):
        report = tmp_path / f"sharer-read-{attempt}"
        done = container.run(
            ["sh", "-c", f"{sys.executable} {script} /etc/shadow {report}; sleep 1"],
            capture_output=True,
        )
        assert b"OPENER RAN ON" not in done.stdout  # the opener died in the open
        assert not report.exists(), report.read_bytes()  # and its sharer read nothing
    # the same sharing without the sensitive file: both live, the sharer reads
    report = tmp_path / "sharer-read-hostname"
    done = container.run(
        ["sh", "-c", f"{sys.executable} {script} /etc/hostname {report}; sleep 1"],
        capture_output=True,
    )
    assert b"OPENER RAN ON" in done.stdout
    assert report.read_bytes() == Path("/etc/hostname").read_bytes().split(b"\n")[0]
