"""Fixtures for the runtime sensor: a real sensor process, a real "container", namespaces.

The live tests run as root on a kernel with BTF and skip, saying which, otherwise. A
"container" is what the architecture describes: a cgroup named `docker-<64 hex>.scope` in
the cgroup v2 hierarchy plus `unshare --pid --mount --fork`, optionally inside a network
namespace made with `ip netns` and joined to the host by a veth pair.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from skanse.runtime.containers import cgroup2_mount

ROOT = Path(__file__).resolve().parents[2]
OBJECT = ROOT / "src" / "skanse" / "runtime" / "bpf" / "sensor.bpf.o"


def live_requirements() -> str | None:
    """Why the live sensor tests cannot run here, or None."""
    if sys.platform != "linux":
        return "the sensor needs Linux"
    if os.geteuid() != 0:
        return "the live sensor tests need root (loading BPF, cgroups, namespaces)"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
    if not OBJECT.exists():
        return f"{OBJECT.relative_to(ROOT)} is not built (run `make bpf`)"
    if cgroup2_mount() is None:
        return "no cgroup v2 hierarchy is mounted"
    return None


live = pytest.mark.skipif(live_requirements() is not None, reason=live_requirements() or "")


def stable_rules() -> Path:
    from tests.conftest import corpus_path

    return corpus_path("falco", "falco_rules.yaml")


@dataclass
class SensorProcess:
    """`skanse runtime run` in a child process, alerts appended to a file."""

    process: subprocess.Popen[str]
    alerts_file: Path
    stderr_file: Path
    _seen: list[dict[str, Any]] = field(default_factory=list)
    _offset: int = 0

    def alerts(self) -> list[dict[str, Any]]:
        try:
            with self.alerts_file.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return self._seen
        complete = data.rfind(b"\n") + 1
        for line in data[:complete].splitlines():
            self._seen.append(json.loads(line))
        self._offset += complete
        return self._seen

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            for alert in self.alerts():
                if predicate(alert):
                    return alert
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.stderr_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"raw": line})
        return lines

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> dict[str, Any]:
        """Signal the sensor and return its final summary log record."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the sensor did not stop on SIGTERM") from None
        for record in reversed(self.logs()):
            if record.get("msg") == "sensor stopped":
                return record
        return {}


def start_sensor(tmp: Path, *args: str, timeout: float = 60.0) -> SensorProcess:
    alerts = tmp / "alerts.jsonl"
    stderr = tmp / "sensor.log"
    command = [
        sys.executable,
        "-m",
        "skanse",
        "runtime",
        "run",
        "--no-stdout",
        "-o",
        str(alerts),
        "--state-dir",
        str(tmp / "state"),
        *args,
    ]
    with stderr.open("w") as err:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, text=True, cwd=tmp
        )
    sensor = SensorProcess(process, alerts, stderr)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.get("msg") == "sensor started" for r in sensor.logs()):
            return sensor
        if process.poll() is not None:
            raise AssertionError(
                f"the sensor exited with {process.returncode}:\n{stderr.read_text()}"
            )
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the sensor did not start within {timeout}s:\n{stderr.read_text()}")


@pytest.fixture
def sensors() -> Iterator[Callable[..., SensorProcess]]:
    """start_sensor for one test; whatever the test's outcome, no sensor outlives it."""
    started: list[SensorProcess] = []

    def start(tmp: Path, *args: str) -> SensorProcess:
        sensor = start_sensor(tmp, *args)
        started.append(sensor)
        return sensor

    yield start
    for sensor in started:
        if sensor.process.poll() is None:  # the test failed before stopping it
            sensor.process.send_signal(signal.SIGTERM)  # lets the audit sensor remove its rule
            try:
                sensor.process.wait(20)
            except subprocess.TimeoutExpired:
                sensor.process.kill()
                sensor.process.wait(30)


@dataclass
class FakeContainer:
    """A cgroup docker-<id>.scope; processes started in it get their own pid namespace."""

    full_id: str
    cgroup: Path
    netns: str | None = None
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.full_id[:12]

    def command(self, argv: list[str]) -> list[str]:
        """argv run as the init of a new pid namespace inside the container's cgroup."""
        quoted = " ".join(_shell_quote(a) for a in argv)
        # nsenter, not `ip netns exec`: that one remounts /sys and hides the cgroup tree
        enter = f"nsenter --net=/run/netns/{self.netns} " if self.netns else ""
        inner = (
            f"echo $$ > {self.cgroup}/cgroup.procs && "
            f"exec {enter}unshare --pid --mount --fork --mount-proc {quoted}"
        )
        return ["sh", "-c", inner]

    def run(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        kwargs.setdefault("timeout", 30)
        return subprocess.run(self.command(argv), check=False, **kwargs)

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(self.command(argv), **kwargs)
        self.children.append(child)
        return child

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def destroy(self) -> None:
        freeze = self.cgroup / "cgroup.freeze"
        if freeze.exists():
            freeze.write_text("0")
        kill = self.cgroup / "cgroup.kill"
        for _ in range(100):
            pids = self.pids()
            if not pids:
                break
            if kill.exists():
                kill.write_text("1")
            else:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.02)
        for child in self.children:
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
        # isolation links a failed test did not release (pinned: they outlive the sensor)
        pins = Path("/sys/fs/bpf/skanse", f"isolate-{self.id}")
        if pins.is_dir():
            for pin in pins.iterdir():
                pin.unlink()
            pins.rmdir()
        for _ in range(100):
            try:
                self.cgroup.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@pytest.fixture
def make_container() -> Iterator[Callable[..., FakeContainer]]:
    made: list[FakeContainer] = []

    def make(netns: str | None = None) -> FakeContainer:
        mount = cgroup2_mount()
        assert mount is not None
        full_id = secrets.token_hex(32)
        cgroup = Path(mount) / f"docker-{full_id}.scope"
        cgroup.mkdir()
        container = FakeContainer(full_id, cgroup, netns)
        made.append(container)
        return container

    yield make
    for container in made:
        container.destroy()


@dataclass
class Netns:
    """A network namespace joined to the host by a veth pair (host side .1, inside .2)."""

    name: str
    host_if: str
    host_ip: str
    inner_ip: str


@pytest.fixture
def netns() -> Iterator[Netns]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    suffix = secrets.token_hex(3)
    name = f"skn-{suffix}"
    host_if, inner_if = f"skh{suffix}", f"skc{suffix}"
    octet = 16 + secrets.randbelow(200)
    net = f"10.{octet}.{secrets.randbelow(250)}"
    host_ip, inner_ip = f"{net}.1", f"{net}.2"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", inner_if],
        ["ip", "link", "set", inner_if, "netns", name],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{inner_ip}/30", "dev", inner_if],
        ["ip", "netns", "exec", name, "ip", "link", "set", inner_if, "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, timeout=10)
        yield Netns(name, host_if, host_ip, inner_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
