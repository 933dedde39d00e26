"""Real containers for the runtime tests: podman (with runc), containerd (`ctr`), runc.

Each helper starts the runtime the way a user does and skips the calling test, saying why,
when the runtime cannot start here. The image is the cached debootstrap tree of
tests/_debian.py imported once into podman's store (and exported for containerd). Podman
needs `--runtime runc` and lowered ulimits on this kind of machine (crun refuses its hybrid
cgroups), which the helpers pass themselves.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools.debian_base import PODMAN_RUN_OPTIONS

from tests._debian import debian_rootfs

IMAGE = "localhost/skanse-runtime-test:bookworm"
PODMAN_RUN = ["podman", "run", *PODMAN_RUN_OPTIONS]


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _podman_import(tar_argv: list[str], image: str, timeout: float) -> None:
    """`tar_argv`'s archive imported into podman's store as `image`, or the test skipped."""
    tar = subprocess.Popen(tar_argv, stdout=subprocess.PIPE)
    done = subprocess.run(
        ["podman", "import", "--change", 'CMD ["/bin/sh"]', "-", image],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    tar.wait()
    if done.returncode != 0:
        pytest.skip(f"podman cannot import {image}: {done.stderr.strip()[-300:]}")


def podman_image() -> str:
    """The test image in podman's store (imported from the debootstrap tree once)."""
    if os.geteuid() != 0:
        pytest.skip("real containers need root")
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman or runc is not installed (make test installs them: APT_PACKAGES)")
    if _run(["podman", "image", "exists", IMAGE]).returncode == 0:
        return IMAGE
    _podman_import(["tar", "-C", str(debian_rootfs()), "-c", "."], IMAGE, timeout=300)
    return IMAGE


TINY_IMAGE = "localhost/skanse-tiny-test:bookworm"


def tiny_image() -> str:
    """A few-megabyte image of the debootstrap tree's sh (dash), sleep and cat with libc, in
    podman's store (made once): quick to save and import into containerd."""
    podman_image()  # the same checks (root, podman) and the tree
    if _run(["podman", "image", "exists", TINY_IMAGE]).returncode == 0:
        return TINY_IMAGE
    tree = debian_rootfs()
    files = ["bin", "lib", "lib64", "usr", "usr/bin", "usr/bin/dash", "usr/bin/sh",
             "usr/bin/sleep", "usr/bin/cat", "tmp"]  # fmt: skip
    for pattern in ("usr/lib/*-linux-gnu/libc.so.6", "usr/lib*/ld-linux*.so.*",
                    "usr/lib/*-linux-gnu/ld-linux*.so.*"):  # fmt: skip
        for found in sorted(tree.glob(pattern)):
            relative = found.relative_to(tree)
            files += [str(parent) for parent in reversed(relative.parents) if str(parent) != "."]
            files.append(str(relative))
    files = list(dict.fromkeys(f for f in files if (tree / f).exists() or (tree / f).is_symlink()))
    _podman_import(
        ["tar", "-C", str(tree), "--no-recursion", "-c", *files], TINY_IMAGE, timeout=120
    )
    return TINY_IMAGE


@dataclass
class PodmanContainer:
    full_id: str
    name: str
    pid: int

    @property
    def id(self) -> str:
        return self.full_id[:12]

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return _run(["podman", "exec", self.name, *argv], timeout=60)


@contextmanager
def podman_container(
    *options: str, command: tuple[str, ...] = ("sleep", "600")
) -> Iterator[PodmanContainer]:
    image = podman_image()
    name = f"skn-test-{secrets.token_hex(4)}"
    started = _run([*PODMAN_RUN, "-d", "--name", name, *options, image, *command])
    if started.returncode != 0:
        pytest.skip(f"podman cannot start a container here: {started.stderr.strip()[-300:]}")
    try:
        full_id = started.stdout.strip().splitlines()[-1]
        pid = int(_run(["podman", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip())
        yield PodmanContainer(full_id, name, pid)
    finally:
        _run(["podman", "rm", "-f", "-t", "0", name])


@contextmanager
def podman_api(tmp: Path) -> Iterator[Path]:
    """`podman system service` listening on a socket of its own, for the test's duration."""
    sock = tmp / "podman.sock"
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip("podman system service did not start")
            time.sleep(0.05)
        yield sock
    finally:
        _terminate(process, 10)


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a daemon the test started, then SIGKILL if it has not gone in `timeout`."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _remove_cgroup(path: str) -> None:
    """rmdir a cgroup path (and its now empty parents) in every hierarchy, leaf first."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        parts = [p for p in path.strip("/").split("/") if p]
        while parts:
            try:
                (hierarchy / "/".join(parts)).rmdir()
            except FileNotFoundError:
                pass  # the runtime removed it itself
            except OSError:
                break  # not empty: another container's, or still in use
            parts.pop()


@dataclass
class Containerd:
    """A containerd of the test's own (root, state, socket), driven with `ctr`."""

    address: str
    state: Path
    started: list[tuple[str, str]]  # (id, cgroup path)

    def ctr(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _run(["ctr", "-a", self.address, *argv], timeout=timeout)

    def run(self, full_id: str, *options: str) -> int:
        """`ctr run -d` of /bin/sleep on the debootstrap tree (read-only); the task's pid."""
        cgroup = next((o.split("=", 1)[1] for o in options if o.startswith("--cgroup=")), "")
        done = self.ctr(
            "run",
            "-d",
            "--rootfs",
            "--read-only",
            "--env",
            "PATH=/usr/bin:/bin",
            *options,
            str(debian_rootfs()),
            full_id,
            "/bin/sleep",
            "600",
        )
        if done.returncode != 0:
            pytest.skip(f"ctr run failed here: {done.stderr.strip()[-300:]}")
        self.started.append((full_id, cgroup or f"/default/{full_id}"))
        for line in self.ctr("task", "ls").stdout.splitlines():
            fields = line.split()
            if fields and fields[0] == full_id:
                return int(fields[1])
        raise AssertionError(f"no task {full_id}")

    def import_image(self, image: str, work: Path) -> None:
        """`image` from podman's store into this containerd, as an OCI archive."""
        archive = work / "image.oci.tar"
        done = _run(["podman", "save", "--format", "oci-archive", "-o", str(archive), image])
        if done.returncode != 0:
            pytest.skip(f"podman save failed: {done.stderr.strip()[-300:]}")
        done = self.ctr("image", "import", "--base-name", image.rsplit(":", 1)[0], str(archive))
        if done.returncode != 0:
            pytest.skip(f"ctr image import failed here: {done.stderr.strip()[-300:]}")

    def run_image(self, full_id: str, image: str) -> int:
        """`ctr run -d IMAGE ID sleep 600` (an imported image); the task's pid."""
        done = self.ctr("run", "-d", image, full_id, "/bin/sleep", "600")
        if done.returncode != 0:
            pytest.skip(f"ctr run failed here: {done.stderr.strip()[-300:]}")
        self.started.append((full_id, f"/default/{full_id}"))
        for line in self.ctr("task", "ls").stdout.splitlines():
            fields = line.split()
            if fields and fields[0] == full_id:
                return int(fields[1])
        raise AssertionError(f"no task {full_id}")

    @property
    def metadata(self) -> Path:
        """containerd's metadata database (bbolt) under this daemon's root."""
        return self.state.parent / "root" / "io.containerd.metadata.v1.bolt" / "meta.db"

    def cleanup(self) -> None:
        for full_id, _cgroup in self.started:
            self.ctr("task", "kill", "-s", "SIGKILL", full_id)
        for full_id, cgroup in self.started:
            for _ in range(50):
                if self.ctr("task", "rm", full_id).returncode == 0:
                    break
                time.sleep(0.1)
            self.ctr("container", "rm", full_id)
            _remove_cgroup(cgroup)


@contextmanager
def containerd(tmp: Path) -> Iterator[Containerd]:
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd is not installed (make test installs it: APT_PACKAGES)")
    root, state, sock = tmp / "root", tmp / "state", tmp / "containerd.sock"
    config = tmp / "containerd.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{root}"\nstate = "{state}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
    )
    log = (tmp / "containerd.log").open("w")
    process = subprocess.Popen(
        ["containerd", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    daemon = Containerd(str(sock), state, [])
    try:
        deadline = time.monotonic() + 30
        while daemon.ctr("version").returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip(
                    f"containerd did not start: {(tmp / 'containerd.log').read_text()[-300:]}"
                )
            time.sleep(0.1)
        yield daemon
    finally:
        daemon.cleanup()
        _terminate(process, 20)
        log.close()


@contextmanager
def runc_container(tmp: Path, full_id: str) -> Iterator[tuple[int, Path]]:
    """Plain `runc run -d` (cgroupfs, no cgroupsPath): (pid, runc root)."""
    import json

    if os.geteuid() != 0 or shutil.which("runc") is None:
        pytest.skip("runc (and root) is needed")
    bundle, root = tmp / "bundle", tmp / "runc"
    bundle.mkdir()
    spec = _run(["runc", "spec", "--bundle", str(bundle)])
    if spec.returncode != 0:
        pytest.skip(f"runc spec failed: {spec.stderr.strip()}")
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(debian_rootfs()), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sleep", "600"]
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    (bundle / "config.json").write_text(json.dumps(config))
    errors = tmp / "runc.err"
    with errors.open("w") as err:  # a file, not a pipe: the detached container keeps it open
        done = subprocess.run(
            ["runc", "--root", str(root), "run", "-d", "--bundle", str(bundle), full_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=60,
            check=False,
        )
    if done.returncode != 0:
        pytest.skip(f"runc run failed here: {errors.read_text().strip()[-300:]}")
    try:
        state = json.loads(_run(["runc", "--root", str(root), "state", full_id]).stdout)
        yield int(state["pid"]), root
    finally:
        _run(["runc", "--root", str(root), "kill", full_id, "KILL"])
        for _ in range(50):
            if _run(["runc", "--root", str(root), "delete", full_id]).returncode == 0:
                break
            time.sleep(0.1)
        _remove_cgroup(f"/{full_id}")
