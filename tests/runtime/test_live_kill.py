"""Kills that land before the offending syscall returns, and kills that never hit the wrong
process.

The first version killed with os.kill(pid) about 8 ms after the event: the victim had read
/etc/shadow already, and a pid reused in the meantime would have been killed instead.
"""

from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path

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
