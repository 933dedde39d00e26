"""skanse's own images, built here with podman (tools/images.py, as `make image` builds them).

The images are built once per session on the local Debian base (tools/debian_base.py); podman's
layer cache under /var/lib/containers and pip's build cache make a rebuild of unchanged
sources take seconds. Tests skip with the reason when podman, root or the base is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools.debian_base import PODMAN_RUN_OPTIONS, Unavailable
from tools.images import BuiltImage, build

from tests._registry import LocalRegistry

PROJECT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Images:
    cli: BuiltImage
    sensor: BuiltImage


@pytest.fixture(scope="session")
def images() -> Images:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make test installs it: APT_PACKAGES)")
    if os.geteuid() != 0:
        pytest.skip("the image tests run podman as root")
    try:
        return Images(build("cli"), build("sensor"))
    except Unavailable as error:
        pytest.skip(f"skanse's images cannot be built here: {error}")


def podman(
    *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done


def podman_run(
    *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`podman run` with the options this machine needs (runc, lowered rlimits)."""
    return podman("run", *PODMAN_RUN_OPTIONS, *args, timeout=timeout, check=check)


def skanse(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The skanse CLI of this checkout, as its own process (as a user runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "skanse", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT / "src"), **(env or {})},
        cwd=PROJECT,
    )


@dataclass(frozen=True)
class Pushed:
    """An image in the local registry: `tag` (host/repo:tag) and `digest` (host/repo@sha256)."""

    tag: str
    digest: str


def push(image: str, registry: LocalRegistry, repository: str, tag: str, work: Path) -> Pushed:
    target = f"{registry.host}/{repository}:{tag}"
    digest_file = work / f"{repository.replace('/', '_')}-{tag}.digest"
    podman(
        "push", "--tls-verify=false", "--digestfile", str(digest_file), image,
        f"docker://{target}",
    )  # fmt: skip
    digest = digest_file.read_text().strip()
    return Pushed(target, f"{registry.host}/{repository}@{digest}")


def lines(text: str) -> Sequence[str]:
    return [line for line in text.splitlines() if line.strip()]
