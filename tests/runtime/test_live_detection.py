"""The sensor on this kernel, for real: the stable Falco rules fire on real syscalls.

One sensor process (`skanse runtime run` with falco_rules.yaml) watches the machine while
each test makes the syscalls a stable rule is about, the way Falco's e2e suite
(e2e_tests/evtgen_suite) does: a terminal shell in a container, /etc/shadow read, an
AF_PACKET socket, exec from /dev/shm, memfd_create + fexecve, PTRACE_ATTACH, an ssh
connection to a non-standard port. Alerts are matched to the test by the pid of the process
that made the syscall (appended to every alert with `--append-output`).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import (
    SensorProcess,
    live,
    live_requirements,
    stable_rules,
    start_sensor,
)

pytestmark = live

APPEND = (
    "container_id=%container.id container_name=%container.name "
    "pid=%proc.pid vpid=%proc.vpid exe=%proc.exe"
)


@pytest.fixture(scope="module")
def sensor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SensorProcess]:
    if live_requirements() is not None:
        pytest.skip(live_requirements() or "")
    tmp = tmp_path_factory.mktemp("sensor")
    running = start_sensor(tmp, "--rules", str(stable_rules()), "--append-output", APPEND)
    yield running
    summary = running.stop()
    assert summary.get("record_errors", 0) == 0, summary


def _epoch(alert: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(
        alert["time"].replace("Z", "+00:00")[:26] + "+00:00"
    ).timestamp()


def _by_pid(rule: str, pid: int):
    return lambda a: a["rule"] == rule and a["output_fields"].get("proc.pid") == pid


def test_terminal_shell_in_container_fires_with_container_and_process_facts(
    sensor: SensorProcess, make_container, tmp_path: Path
) -> None:
    container = make_container()
    runc = tmp_path / "runc"  # the shell's parent is the runtime, as under `docker exec -it`
    runc.symlink_to(shutil.which("script") or "/usr/bin/script")
    facts = tmp_path / "facts"
    inner = (
        f"echo $$ > {facts}.vpid; stat -Lc '%t %T' /proc/self/fd/0 > {facts}.tty; "
        f"readlink /proc/self/ns/pid > {facts}.ns"
    )
    env = dict(os.environ, SHELL="/bin/bash")
    done = container.run([str(runc), "-qec", inner, "/dev/null"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    vpid = int(Path(f"{facts}.vpid").read_text())
    major, minor = (int(x, 16) for x in Path(f"{facts}.tty").read_text().split())
    tty = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)  # new_encode_dev, as Falco
    assert Path(f"{facts}.ns").read_text().strip() != os.readlink("/proc/self/ns/pid")

    alert = sensor.wait_for(
        lambda a: (
            a["rule"] == "Terminal shell in container"
            and a["output_fields"].get("container.id") == container.id
        ),
        timeout=5,
    )
    seen = time.time()
    assert alert is not None, "Terminal shell in container did not fire"
    fields = alert["output_fields"]
    assert fields["proc.name"] == "bash"
    assert fields["proc.vpid"] == vpid
    assert fields["proc.tty"] == tty != 0
    assert fields["proc.pname"] == "runc"
    assert alert["priority"] == "Notice"
    assert seen - _epoch(alert) < 1.0, "the alert took more than a second"


def test_the_same_terminal_shell_outside_a_container_does_not_fire(
    sensor: SensorProcess, tmp_path: Path
) -> None:
    runc = tmp_path / "runc"
    runc.symlink_to(shutil.which("script") or "/usr/bin/script")
    pidfile = tmp_path / "pid"
    # the same shell, plus a read of /etc/shadow that fires on the host too: proof that the
    # sensor saw this shell's process tree while the container rule stayed silent
    inner = f"echo $$ > {pidfile}; cat /etc/shadow > /dev/null"
    env = dict(os.environ, SHELL="/bin/bash")
    done = subprocess.run(
        [str(runc), "-qec", inner, "/dev/null"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shell_pid = int(pidfile.read_text())
    read = sensor.wait_for(
        lambda a: (
            a["rule"] == "Read sensitive file untrusted"
            and a["output_fields"].get("proc.pname") == "bash"
            and a["output_fields"].get("proc.aname[2]") == "runc"
        ),
        timeout=5,
    )
    assert read is not None, "the sensor did not see the shell's child read /etc/shadow"
    time.sleep(0.5)
    assert not [
        a
        for a in sensor.alerts()
        if a["rule"] == "Terminal shell in container"
        and a["output_fields"].get("proc.pid") == shell_pid
    ]
    assert read["output_fields"]["container.id"] == "host"


def test_reading_etc_shadow_fires(sensor: SensorProcess) -> None:
    process = subprocess.Popen(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL)
    process.wait(10)
    alert = sensor.wait_for(_by_pid("Read sensitive file untrusted", process.pid), timeout=5)
    assert alert is not None
    assert alert["output_fields"]["fd.name"] == "/etc/shadow"
    assert alert["output_fields"]["proc.name"] == "cat"
    assert alert["output_fields"]["evt.type"] == "openat"


@pytest.mark.parametrize(
    "path", ["//etc/shadow", "///etc/shadow", "/etc/./shadow", "/tmp/../etc/shadow"]
)
def test_reading_etc_shadow_by_an_unnormal_path_fires_with_the_normal_path(
    sensor: SensorProcess, path: str
) -> None:
    # posixpath.normpath keeps two leading slashes: `cat //etc/shadow` evaded fd.name rules
    process = subprocess.Popen(["cat", path], stdout=subprocess.DEVNULL)
    process.wait(10)
    alert = sensor.wait_for(_by_pid("Read sensitive file untrusted", process.pid), timeout=5)
    assert alert is not None, f"cat {path} raised no alert"
    assert alert["output_fields"]["fd.name"] == "/etc/shadow"


def test_packet_socket_in_container_fires(sensor: SensorProcess, make_container) -> None:
    container = make_container()
    code = (
        "import socket, os; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); "
        "print(os.getpid())"
    )
    done = container.run([sys.executable, "-c", code], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == b"1"  # the init of its own pid namespace
    alert = sensor.wait_for(
        lambda a: (
            a["rule"] == "Packet socket created in container"
            and a["output_fields"].get("container.id") == container.id
        ),
        timeout=5,
    )
    assert alert is not None
    assert "domain=AF_PACKET" in alert["output"]
    assert alert["output_fields"]["proc.vpid"] == 1


def test_execution_from_dev_shm_fires(sensor: SensorProcess) -> None:
    path = Path("/dev/shm") / f"skanse-test-{secrets.token_hex(4)}"
    shutil.copy(shutil.which("true") or "/bin/true", path)
    try:
        process = subprocess.Popen([str(path)])
        process.wait(10)
    finally:
        path.unlink()
    alert = sensor.wait_for(_by_pid("Execution from /dev/shm", process.pid), timeout=5)
    assert alert is not None
    assert alert["output_fields"]["proc.exe"] == str(path)


def test_memfd_create_and_fexecve_fires(sensor: SensorProcess) -> None:
    code = (
        "import os\n"
        "fd = os.memfd_create('skanse-payload', 0)\n"
        f"os.write(fd, open({shutil.which('true') or '/bin/true'!r}, 'rb').read())\n"
        "os.execve(fd, ['payload'], {})\n"  # fexecve: execveat(fd, '', AT_EMPTY_PATH)
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    assert process.wait(10) == 0
    alert = sensor.wait_for(_by_pid("Fileless execution via memfd_create", process.pid), timeout=5)
    assert alert is not None
    assert alert["output_fields"]["evt.type"] in ("execve", "execveat")
    assert alert["output_fields"]["proc.exepath"] == "memfd:skanse-payload"
    assert alert["priority"] == "Critical"


def test_ptrace_attach_fires(sensor: SensorProcess) -> None:
    target = subprocess.Popen(["sleep", "30"])
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]\n"
        f"assert libc.ptrace(16, {target.pid}, None, None) == 0, os.strerror(ctypes.get_errno())\n"
        f"os.waitpid({target.pid}, 0)\n"
        f"libc.ptrace(17, {target.pid}, None, None)\n"  # PTRACE_DETACH
    )
    try:
        attacher = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
        _, err = attacher.communicate(timeout=10)
        assert attacher.returncode == 0, err
    finally:
        target.send_signal(signal.SIGKILL)
        target.wait()
    alert = sensor.wait_for(_by_pid("PTRACE attached to process", attacher.pid), timeout=5)
    assert alert is not None
    assert alert["output_fields"]["evt.type"] == "ptrace"


def test_ssh_connection_to_a_disallowed_port_fires(sensor: SensorProcess, tmp_path: Path) -> None:
    address = "198.51.100.7"  # TEST-NET-2: public as far as the rule is concerned
    pidfile = tmp_path / "pid"
    listener = f"import socket, time; s = socket.create_server(({address!r}, 4444)); time.sleep(5)"
    # in a private network namespace: a listener, then a process whose argv[0] is
    # /usr/bin/ssh (proc.exe) connecting to port 4444 (bash's /dev/tcp makes the connect)
    script = (
        f"ip link set lo up && ip addr add {address}/32 dev lo || exit 1\n"
        f'{sys.executable} -c "$0" & listener=$!\n'
        f"for i in $(seq 50); do ss -ltn | grep -q ':4444' && break; sleep 0.05; done\n"
        f"(exec -a /usr/bin/ssh bash -c 'echo $$ > {pidfile}; exec 3<>/dev/tcp/{address}/4444')\n"
        "status=$?; kill $listener; exit $status\n"
    )
    done = subprocess.run(
        ["unshare", "--net", "bash", "-c", script, listener],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pid = int(pidfile.read_text())
    alert = sensor.wait_for(_by_pid("Disallowed SSH Connection Non Standard Port", pid), timeout=5)
    assert alert is not None
    assert alert["output_fields"]["fd.name"].endswith(f"->{address}:4444")
    assert alert["output_fields"]["proc.exe"] == "/usr/bin/ssh"


def test_user_name_comes_from_the_containers_own_passwd(
    sensor: SensorProcess, tmp_path: Path
) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("inside-root:x:0:0:root in the container:/root:/bin/sh\n")
    marker = f"/nonexistent-{secrets.token_hex(4)}"  # makes this cat's command line unique
    # a private mount namespace whose /etc/passwd names uid 0 differently from the host's
    script = (
        f"mount --bind {passwd} /etc/passwd && "
        f"exec sh -c 'cat /etc/shadow {marker} > /dev/null 2>&1; sleep 1'"
    )
    subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, timeout=30, check=False
    )
    alert = sensor.wait_for(
        lambda a: (
            a["rule"] == "Read sensitive file untrusted"
            and marker in a["output_fields"].get("proc.cmdline", "")
        ),
        timeout=5,
    )
    assert alert is not None
    assert alert["output_fields"]["user.name"] == "inside-root"
