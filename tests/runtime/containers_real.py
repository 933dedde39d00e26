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

from tests._debian import debian_rootfs

IMAGE = "localhost/skanse-runtime-test:bookworm"
PODMAN_RUN = [
    "podman",
    "run",
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
]


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def podman_image() -> str:
    """The test image in podman's store (imported from the debootstrap tree once)."""
    if os.geteuid() != 0:
        pytest.skip("real containers need root")
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman or runc is not installed (make test installs them: APT_PACKAGES)")
    if _run(["podman", "image", "exists", IMAGE]).returncode == 0:
        return IMAGE
    tree = debian_rootfs()
    tar = subprocess.Popen(["tar", "-C", str(tree), "-c", "."], stdout=subprocess.PIPE)
    done = subprocess.run(
        ["podman", "import", "--change", 'CMD ["/bin/sh"]', "-", IMAGE],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tar.wait()
    if done.returncode != 0:
        pytest.skip(f"podman cannot import the test image: {done.stderr.strip()[-300:]}")
    return IMAGE


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
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
