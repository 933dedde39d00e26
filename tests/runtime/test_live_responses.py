"""Responses on this kernel, verified from outside the container, then released.

A sensor runs with three test rules, each answered by one response. Each test builds a
container (a docker-<id>.scope cgroup + its own pid namespace), makes the rule fire inside
it, checks the effect from the host (the process is gone; the cgroup is frozen; the host end
of a veth pair can no longer reach the container), then runs `skanse runtime release` and
checks the effect is gone.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import (
    FakeContainer,
    Netns,
    SensorProcess,
    live,
    live_requirements,
    start_sensor,
)
from tests.runtime.containers_real import PodmanContainer, podman_container

pytestmark = live

# `proc.vpid = 1`: the container's own first process, not the host-side wrappers (sh,
# nsenter, unshare) whose command lines carry the marker too before the new pid namespace
RULES = """
- macro: spawned_process
  condition: (evt.type in (execve, execveat))
- macro: container
  condition: (container.id != host)
- rule: skanse test kill
  desc: the kill response test
  condition: >
    spawned_process and container and proc.vpid = 1
    and proc.cmdline contains "respond-kill-"
  output: kill requested (command=%proc.cmdline)
  priority: WARNING
- rule: skanse test freeze
  desc: the freeze response test
  condition: >
    spawned_process and container and proc.vpid = 1
    and proc.cmdline contains "respond-freeze-"
  output: freeze requested (command=%proc.cmdline)
  priority: WARNING
- rule: skanse test isolate
  desc: the network isolation response test
  condition: >
    spawned_process and container and proc.vpid = 1
    and proc.cmdline contains "respond-isolate-"
  output: isolation requested (command=%proc.cmdline)
  priority: CRITICAL
"""


@pytest.fixture(scope="module")
def responder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SensorProcess]:
    if live_requirements() is not None:
        pytest.skip(live_requirements() or "")
    tmp = tmp_path_factory.mktemp("responder")
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    running = start_sensor(
        tmp,
        "--rules",
        str(rules),
        "--respond-rule",
        "skanse test kill=kill",
        "--respond-rule",
        "skanse test freeze=freeze",
        "--respond-rule",
        "skanse test isolate=isolate",
    )
    yield running
    running.stop()


def _journal(sensor: SensorProcess) -> list[dict]:
    path = sensor.alerts_file.parent / "state" / "responses.json"
    try:
        return json.loads(path.read_text())["responses"]
    except FileNotFoundError:
        return []


def _wait_journal(
    sensor: SensorProcess, action: str, container: FakeContainer, timeout: float = 5
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in _journal(sensor):
            if entry["action"] == action and entry["container_id"] == container.id:
                return entry
        time.sleep(0.02)
    raise AssertionError(
        f"no {action} response for {container.id}: {_journal(sensor)}\n{sensor.logs()[-5:]}"
    )


def _release(sensor: SensorProcess, container: FakeContainer) -> subprocess.CompletedProcess[str]:
    state = sensor.alerts_file.parent / "state"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "skanse",
            "runtime",
            "release",
            container.id,
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _frozen(container: FakeContainer) -> bool:
    events = (container.cgroup / "cgroup.events").read_text()
    return "frozen 1" in events.splitlines()


def test_kill_response_ends_the_process(responder: SensorProcess, make_container) -> None:
    container = make_container()
    marker = f"respond-kill-{secrets.token_hex(4)}"
    started = time.monotonic()
    child = container.spawn(["sh", "-c", f"sleep 30; : {marker}"])
    try:
        code = child.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the process was not killed") from None
    assert time.monotonic() - started < 5, "the process lived on (it sleeps for 30 s)"
    assert code != 0
    entry = _wait_journal(responder, "kill", container)
    assert entry["status"] == "done", entry
    assert entry["rule"] == "skanse test kill"
    assert not Path(f"/proc/{entry['pid']}").exists()
    assert not container.pids()
    # a kill cannot be undone: release has nothing to do for this container
    done = _release(responder, container)
    assert done.returncode == 0, done.stderr
    assert "nothing to release" in done.stdout


def test_freeze_response_freezes_the_cgroup_and_release_thaws_it(
    responder: SensorProcess, make_container, tmp_path: Path
) -> None:
    container = make_container()
    ticks = tmp_path / "ticks"
    loop = container.spawn(["sh", "-c", f"while :; do echo . >> {ticks}; sleep 0.02; done"])
    deadline = time.monotonic() + 5
    while not ticks.exists() or ticks.stat().st_size < 3:
        assert time.monotonic() < deadline, "the workload did not start"
        time.sleep(0.02)
    marker = f"respond-freeze-{secrets.token_hex(4)}"
    trigger = container.spawn(["sh", "-c", f"sleep 0.5; : {marker}"])
    entry = _wait_journal(responder, "freeze", container)
    assert entry["status"] == "done", entry
    deadline = time.monotonic() + 5
    while not _frozen(container):
        assert time.monotonic() < deadline, "cgroup.events never said frozen 1"
        time.sleep(0.02)
    size = ticks.stat().st_size
    time.sleep(0.4)
    assert ticks.stat().st_size == size, "a frozen workload kept running"
    assert loop.poll() is None

    done = _release(responder, container)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "released: freeze" in done.stdout
    assert not _frozen(container)
    deadline = time.monotonic() + 5
    while ticks.stat().st_size == size:
        assert time.monotonic() < deadline, "the workload did not resume after release"
        time.sleep(0.02)
    trigger.wait(10)
    # released entries stay in the journal, marked as such
    assert [e["status"] for e in _journal(responder) if e["id"] == entry["id"]] == ["released"]


def _reachable(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def test_isolate_response_cuts_the_network_and_release_restores_it(
    responder: SensorProcess, make_container, netns: Netns
) -> None:
    container = make_container(netns=netns.name)
    server = (
        "import socket\n"
        "s = socket.create_server(('0.0.0.0', 8080))\n"
        "while True:\n"
        "    c, _ = s.accept(); c.close()\n"
    )
    container.spawn([sys.executable, "-c", server])
    deadline = time.monotonic() + 10
    while not _reachable(netns.inner_ip, 8080, 0.5):
        assert time.monotonic() < deadline, "the container's server never came up"
        time.sleep(0.05)
    marker = f"respond-isolate-{secrets.token_hex(4)}"
    trigger = container.spawn(["sh", "-c", f"sleep 1; : {marker}"])
    entry = _wait_journal(responder, "isolate", container)
    assert entry["status"] == "done", entry
    assert not _reachable(netns.inner_ip, 8080), "the host still reaches the isolated container"
    # the rules are inside the container's namespace, not on the host
    host_tables = subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=False
    ).stdout
    assert "skanse_isolate" not in host_tables

    done = _release(responder, container)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "released: isolate" in done.stdout
    assert _reachable(netns.inner_ip, 8080), "the container is still cut off after release"
    trigger.wait(10)


def test_isolation_needs_no_live_process_and_outlives_the_sensor(
    tmp_path: Path, sensors, make_container, netns: Netns
) -> None:
    """The offender exits before the response; the isolation still lands, on the cgroup.

    Before, isolation entered the offender's network namespace through /proc/PID/ns/net:
    with the offender gone and no other process left in the container, it failed and the
    container stayed reachable (3 of 16 triggers in a test run).
    """
    rules = tmp_path / "rules.yaml"
    # its own marker: the module's responder sensor must not act on this container too
    rules.write_text(RULES.replace("respond-isolate-", "respond-cut-"))
    sensor = sensors(
        tmp_path, "--rules", str(rules), "--respond-rule", "skanse test isolate=isolate"
    )
    container = make_container(netns=netns.name)
    marker = f"respond-cut-{secrets.token_hex(4)}"
    sensor.process.send_signal(signal.SIGSTOP)  # the offender is gone before the sensor looks
    try:
        done = container.run(["sh", "-c", f": {marker}"])
        assert done.returncode == 0
        assert container.pids() == []
    finally:
        sensor.process.send_signal(signal.SIGCONT)
    entry = _wait_journal(sensor, "isolate", container, timeout=10)
    assert entry["status"] == "done", entry
    assert "cgroup BPF" in entry["detail"]
    # a process that starts in the container afterwards is isolated too, both ways
    server = (
        "import socket, sys\n"
        "s = socket.create_server(('0.0.0.0', 8080))\n"
        "try:\n"
        f"    socket.create_connection(('{netns.host_ip}', 9), timeout=2)\n"
        "except PermissionError:\n"
        "    print('connect refused', flush=True)\n"
        "except OSError as e:\n"
        "    print('connect failed', e, flush=True)\n"
        "while True:\n"
        "    c, _ = s.accept(); c.close()\n"
    )
    workload = container.spawn([sys.executable, "-c", server], stdout=subprocess.PIPE)
    assert workload.stdout is not None
    assert workload.stdout.readline().decode().strip() == "connect refused"
    assert not _reachable(netns.inner_ip, 8080)
    sensor.stop()
    assert not _reachable(netns.inner_ip, 8080), "isolation ended with the sensor"
    done = _release(sensor, container)
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 5
    while not _reachable(netns.inner_ip, 8080, 0.5):
        assert time.monotonic() < deadline, (
            f"the container is still cut off after release: {done.stdout}"
        )
        time.sleep(0.05)
    workload.stdout.close()


def _podman(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *argv], capture_output=True, text=True, timeout=120, check=False
    )


def _connects_out(container: PodmanContainer, address: str, port: int) -> bool:
    """Whether a new process in the container connects to address:port (bash's /dev/tcp:
    the image has no python)."""
    done = container.exec("bash", "-c", f"echo > /dev/tcp/{address}/{port}")
    return done.returncode == 0


def _cgroup_inode(container: PodmanContainer) -> int:
    pid = int(_podman("inspect", "-f", "{{.State.Pid}}", container.name).stdout.strip())
    text = Path(f"/proc/{pid}/cgroup").read_text()
    path = next(line[3:] for line in text.splitlines() if line.startswith("0::"))
    mount = next(
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[2] == "cgroup2"
    )
    return (Path(mount + path)).stat().st_ino


def test_a_restarted_podman_container_is_isolated_again_until_released(
    tmp_path: Path, sensors
) -> None:
    """`podman restart` makes a new cgroup at the same path, without the isolation
    programs attached to the old one. Before, the restarted container reached its peer
    again while the journal still said it was isolated; now the sensor attaches the
    programs again on the new cgroup, and `release` stops that."""
    rules = tmp_path / "rules.yaml"
    # the exec'd marker is not the container's pid 1, and its own marker keeps the
    # module's responder sensor off this container
    rules.write_text(
        RULES.replace("proc.vpid = 1\n    and ", "").replace("respond-isolate-", "respond-again-")
    )
    with podman_container() as container:
        gateway = _podman(
            "inspect", "-f", "{{.NetworkSettings.Gateway}}", container.name
        ).stdout.strip()
        assert gateway, "the container has no bridge network gateway"
        peer = socket.create_server((gateway, 0))  # the peer: the host, on the bridge
        port = peer.getsockname()[1]
        assert _connects_out(container, gateway, port), "the peer is unreachable to begin with"
        sensor = sensors(
            tmp_path, "--rules", str(rules), "--respond-rule", "skanse test isolate=isolate"
        )
        marker = f"respond-again-{secrets.token_hex(4)}"
        container.exec("sh", "-c", f": {marker}")
        entry = _wait_journal_for(sensor, container.id, lambda e: e["action"] == "isolate")
        assert entry is not None and entry["status"] == "done", entry
        assert not _connects_out(container, gateway, port), "isolation did not cut the peer"

        before = _cgroup_inode(container)
        assert _podman("restart", "-t", "0", container.name).returncode == 0
        assert _cgroup_inode(container) != before, "the restart did not recreate the cgroup"
        again = _wait_journal_for(
            sensor, container.id, lambda e: e.get("reisolates") == entry["id"], strict=False
        )
        assert not _connects_out(container, gateway, port), (
            "the restarted container reaches its peer while the journal says isolated"
        )
        assert again is not None and again["status"] == "done", _journal(sensor)
        assert "re-isolated" in again["detail"]
        logged = [str(line.get("msg")) for line in sensor.logs()]
        assert any("re-isolation" in msg for msg in logged), logged[-5:]

        done = _release_id(sensor, container.id)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _connects_out(container, gateway, port), "still cut off after release"
        # released: a further restart is not isolated again (the backstop runs every second)
        assert _podman("restart", "-t", "0", container.name).returncode == 0
        time.sleep(2.5)
        assert _connects_out(container, gateway, port), "isolated again after release"
        assert not any(e.get("reisolates") and e["status"] == "done" for e in _journal(sensor)), (
            _journal(sensor)
        )
        sensor.stop()
        peer.close()


def _wait_journal_for(
    sensor: SensorProcess,
    container: str,
    match: Callable[[dict[str, Any]], bool],
    timeout: float = 10,
    *,
    strict: bool = True,
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in _journal(sensor):
            if entry["container_id"] == container and match(entry):
                return entry
        time.sleep(0.05)
    if strict:
        raise AssertionError(f"no matching response for {container}: {_journal(sensor)}")
    return None


def _release_id(sensor: SensorProcess, container: str) -> subprocess.CompletedProcess[str]:
    state = sensor.alerts_file.parent / "state"
    command = ["runtime", "release", container, "--state-dir", str(state)]
    return subprocess.run(
        [sys.executable, "-m", "skanse", *command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
