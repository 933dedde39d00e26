"""The sensor image run as deploy/sensor/daemonset.yaml runs it: host PID namespace, UID 0,
read-only root, every capability dropped but the seven it names, the host's BTF, cgroup tree,
/etc and the runtimes' state mounted. A `podman exec -it` in a second, ordinary container,
and a `ctr task exec --tty` in a containerd container started with `ctr run`, raise
"Terminal shell in container" naming that container; kill, freeze and isolate act on real
containers and `skanse runtime release` undoes the freeze and the isolation."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import corpus_path
from tests.e2e.conftest import PROJECT, Images, podman, podman_run
from tests.runtime.containers_real import (
    IMAGE,
    TINY_IMAGE,
    Containerd,
    PodmanContainer,
    containerd,
    podman_container,
    tiny_image,
)

pytestmark = pytest.mark.slow

# One rule per response action, each matching a process whose command line names its marker.
ACTIONS = ("freeze", "kill", "isolate")


def marker(action: str) -> str:
    return f"skanse-e2e-{action}-7c1d"


def marker_rule(action: str) -> str:
    return f"skanse e2e {action} marker"


MARKER_RULES = "".join(
    f"""
- rule: {marker_rule(action)}
  desc: a process naming the {action} marker in a container
  condition: >
    evt.type in (execve, execveat) and evt.dir=< and container.id != host
    and proc.cmdline contains "{marker(action)}"
  output: "{action} marker (container=%container.id)"
  priority: WARNING
"""
    for action in ACTIONS
)
CONFIG = """
rules:
  - /etc/skanse/rules/falco_rules.yaml
  - /etc/skanse/rules/markers.yaml
host_root: /host
state_dir: /var/lib/skanse
outputs:
  stdout: true
responses:
""" + "".join(f'  - {{rule: "{marker_rule(action)}", actions: [{action}]}}\n' for action in ACTIONS)
DAEMONSET = PROJECT / "deploy" / "sensor" / "daemonset.yaml"


def daemonset_options(
    config: Path, state: Path, hosts: Mapping[str, Path] | None = None
) -> list[str]:
    """`podman run` options for what deploy/sensor/daemonset.yaml declares: its user, read-only
    root, capabilities, host PID namespace and every hostPath volume at its mount path (the
    ConfigMap and the response journal come from the test's own directories, and `hosts`
    replaces a hostPath with another directory: the test's own containerd)."""
    pod = yaml.safe_load(DAEMONSET.read_text())["spec"]["template"]["spec"]
    [container] = pod["containers"]
    context = container["securityContext"]
    assert pod["hostPID"] is True and context["readOnlyRootFilesystem"] is True
    options = ["--pid", "host", "--user", f"{context['runAsUser']}:{context['runAsGroup']}"]
    options += ["--read-only", "--cap-drop", "ALL"]
    options += ["--cap-add", ",".join(context["capabilities"]["add"])]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        mode = "ro" if mount.get("readOnly") else "rw"
        if "hostPath" in volume and mount["mountPath"] != "/var/lib/skanse":
            host = (hosts or {}).get(volume["hostPath"]["path"]) or Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                host.mkdir(parents=True, exist_ok=True)
            options += ["-v", f"{host}:{mount['mountPath']}:{mode}"]
        elif "hostPath" in volume:
            options += ["-v", f"{state}:{mount['mountPath']}:{mode}"]
        elif "configMap" in volume:
            options += ["-v", f"{config}:{mount['mountPath']}:ro"]
        elif "emptyDir" in volume:
            options += ["--tmpfs", mount["mountPath"]]
    return options


@dataclass
class SensorContainer:
    name: str
    containerd: Containerd | None  # the test's own, whose state the sensor has mounted
    containerd_missing: str  # why there is none

    def alerts(self) -> list[dict[str, Any]]:
        out = podman("logs", self.name, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in self.alerts():
                if match(alert):
                    return alert
            time.sleep(0.3)
        return None


@pytest.fixture(scope="module")
def sensor(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SensorContainer]:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("this kernel has no BTF: the sensor cannot load")
    work = tmp_path_factory.mktemp("sensor-container")
    config, state = work / "etc", work / "state"
    (config / "rules").mkdir(parents=True)
    state.mkdir()
    (config / "sensor.yaml").write_text(CONFIG)
    shutil.copy(corpus_path("falco", "falco_rules.yaml"), config / "rules" / "falco_rules.yaml")
    (config / "rules" / "markers.yaml").write_text(MARKER_RULES)
    with contextlib.ExitStack() as stack:
        daemon, missing, hosts = None, "", {}
        try:
            (work / "containerd").mkdir()
            started = stack.enter_context(containerd(work / "containerd"))
            started.import_image(tiny_image(), work)
            daemon = started
        except pytest.skip.Exception as why:
            missing = str(why)
        if daemon is not None:
            tasks = daemon.state / "io.containerd.runtime.v2.task"
            tasks.mkdir(parents=True, exist_ok=True)
            hosts = {
                "/run/containerd/io.containerd.runtime.v2.task": tasks,
                "/var/lib/containerd/io.containerd.metadata.v1.bolt": daemon.metadata.parent,
            }
        name = f"skanse-sensor-{secrets.token_hex(4)}"
        podman_run(
            "-d", "--name", name, "--network", "none",
            *daemonset_options(config, state, hosts), images.sensor.name,
            "runtime", "run", "--config", "/etc/skanse/sensor.yaml",
        )  # fmt: skip
        stack.callback(podman, "rm", "-f", "-t", "5", name, check=False)
        deadline = time.monotonic() + 60
        while "sensor started" not in podman("logs", name, check=False).stderr:
            running = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            if running != "true" or time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                pytest.fail(f"the sensor container did not start: {logs.stderr[-3000:]}")
            time.sleep(0.3)
        yield SensorContainer(name, daemon, missing)


def _tty_exec(container: PodmanContainer, command: str) -> subprocess.CompletedProcess[str]:
    """`podman exec -it` with a terminal (script(1) gives it one)."""
    return subprocess.run(
        ["script", "-qec", f"podman exec -it {container.name} sh -c '{command}'", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_terminal_shell_in_a_podman_container_names_it(sensor: SensorContainer) -> None:
    with podman_container() as target:
        done = _tty_exec(target, "echo tty-probe-51e2")
        assert "tty-probe-51e2" in done.stdout, done.stdout + done.stderr
        alert = sensor.wait_for(
            lambda a: (
                a["rule"] == "Terminal shell in container"
                and a["output_fields"].get("container.id") == target.id
            )
        )
    assert alert is not None, [a["rule"] for a in sensor.alerts()]
    fields = alert["output_fields"]
    assert fields["container.name"] == target.name
    assert fields["container.image.repository"] == IMAGE.rsplit(":", 1)[0]
    assert fields["container.image.tag"] == "bookworm"
    assert fields["proc.tty"] != 0


def _frozen(container: PodmanContainer) -> bool:
    """The kernel's word: cgroup v2 `cgroup.events` says frozen 1, or the v1 freezer FROZEN."""
    for line in Path(f"/proc/{container.pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        events = Path(f"/sys/fs/cgroup/unified{path}/cgroup.events")
        if controllers == "" and events.exists() and "frozen 1" in events.read_text():
            return True
        state = Path(f"/sys/fs/cgroup/freezer{path}/freezer.state")
        if "freezer" in controllers.split(",") and state.read_text().strip() == "FROZEN":
            return True
    return False


def _trigger(sensor: SensorContainer, target: PodmanContainer, action: str) -> None:
    """Run a process naming the action's marker in target; the sensor alerts on that container."""
    target.exec("sh", "-c", f"true {marker(action)}")
    alert = sensor.wait_for(
        lambda a: (
            a["rule"] == marker_rule(action) and a["output_fields"].get("container.id") == target.id
        )
    )
    assert alert is not None, f"no {action} marker alert for {target.id}"


def test_freeze_acts_on_the_real_container_and_release_thaws_it(sensor: SensorContainer) -> None:
    with podman_container() as target:
        assert not _frozen(target)
        _trigger(sensor, target, "freeze")
        deadline = time.monotonic() + 10
        while not _frozen(target) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _frozen(target)
        released = podman("exec", sensor.name, "skanse", "runtime", "release", target.id)
        assert target.id in released.stdout + released.stderr
        assert not _frozen(target)
        assert target.exec("true").returncode == 0


def test_kill_acts_on_the_process_in_the_real_container(sensor: SensorContainer) -> None:
    with podman_container() as target:
        started = time.monotonic()
        done = target.exec("sh", "-c", f"sleep 30; echo {marker('kill')}")
        assert done.returncode == 137, (done.returncode, done.stdout, done.stderr)
        assert time.monotonic() - started < 25
        assert target.exec("true").returncode == 0  # the container itself lives on


def test_terminal_shell_in_a_containerd_container_names_it(sensor: SensorContainer) -> None:
    """`ctr run IMAGE ID` then `ctr task exec --tty`: the id from the cgroup, the image (and
    its digest) from containerd's metadata database, the name being containerd's id."""
    if sensor.containerd is None:
        pytest.skip(sensor.containerd_missing)
    full_id = secrets.token_hex(32)
    sensor.containerd.run_image(full_id, TINY_IMAGE)
    exec_id = f"probe-{secrets.token_hex(4)}"
    done = subprocess.run(
        ["script", "-qec",
         f"ctr -a {sensor.containerd.address} task exec --tty --exec-id {exec_id} {full_id} "
         "sh -c 'echo tty-probe-6a0f'", "/dev/null"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "tty-probe-6a0f" in done.stdout, done.stdout + done.stderr
    alert = sensor.wait_for(
        lambda a: (
            a["rule"] == "Terminal shell in container"
            and a["output_fields"].get("container.id") == full_id[:12]
        )
    )
    assert alert is not None, [a["rule"] for a in sensor.alerts()]
    fields = alert["output_fields"]
    assert fields["container.name"] == full_id
    assert fields["container.image.repository"] == TINY_IMAGE.rsplit(":", 1)[0]
    assert fields["container.image.tag"] == "bookworm"
    listed = sensor.containerd.ctr("image", "ls").stdout
    assert fields["container.image.digest"].startswith("sha256:")
    assert fields["container.image.digest"] in listed
    assert fields["proc.tty"] != 0


@contextlib.contextmanager
def _listener(address: str) -> Iterator[int]:
    """A TCP server on the host's `address` accepting in a thread: its port."""
    server = socket.create_server((address, 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection, _ = server.accept()
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _connects(container: PodmanContainer, address: str, port: int) -> bool:
    probe = f"exec 3<>/dev/tcp/{address}/{port}"
    return container.exec("timeout", "5", "bash", "-c", probe).returncode == 0


def _gateway(container: PodmanContainer) -> str:
    """The container's default gateway (the host's end of podman's bridge), from its routes."""
    routes = container.exec("cat", "/proc/net/route").stdout.splitlines()[1:]
    for line in routes:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
    pytest.skip("the podman container has no default route (no bridge network here)")


def test_isolate_cuts_the_real_container_off_and_release_restores_it(
    sensor: SensorContainer,
) -> None:
    with podman_container() as target, _listener(gateway := _gateway(target)) as port:
        assert _connects(target, gateway, port), "no connection to the host before isolation"
        _trigger(sensor, target, "isolate")
        deadline = time.monotonic() + 10
        while _connects(target, gateway, port):
            assert time.monotonic() < deadline, "the isolated container still reaches the host"
            time.sleep(0.3)
        released = podman("exec", sensor.name, "skanse", "runtime", "release", target.id)
        assert "released: isolate" in released.stdout, released.stdout + released.stderr
        assert _connects(target, gateway, port), "the container is still cut off after release"
