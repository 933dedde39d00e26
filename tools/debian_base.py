"""A Debian base image made here, for building skanse's images without pulling from a registry.

The Dockerfile's default base (`python:*-slim-bookworm`) comes from Docker Hub. Where no
registry is reachable but Debian's package mirror is, the same Dockerfile builds on a base
made locally and passed in with `--build-arg BASE=...`:

1. `debootstrap --variant=minbase bookworm` gives a root file system (about a minute and
   200 MB from the mirror), cached under $SKANSE_TEST_CACHE (default /var/cache/skanse-tests)
   and shared with the tests (tests/_debian.py);
2. the tree is packed with sorted names, numeric owners and a fixed mtime and imported with
   `podman import` as localhost/skanse-debian-minbase:bookworm;
3. Debian's python3, python3-venv and ca-certificates are installed on it with `podman build`
   (fixed timestamp) as localhost/skanse-base:bookworm, the image `make image` builds on.

Each step is done once per machine: an image or tree that exists is reused. Stdlib only, so
`make image` runs it with the system's python3 before any virtual environment exists.

    python3 tools/debian_base.py          # prints the base image's name, building it if needed
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = "http://deb.debian.org/debian"
MINBASE_IMAGE = f"localhost/skanse-debian-minbase:{SUITE}"
BASE_IMAGE = f"localhost/skanse-base:{SUITE}"
# The images made here carry this creation time and file mtime (2024-01-01T00:00:00Z): their
# ids depend only on the packages, not on when they were built.
EPOCH = 1704067200
# What the Dockerfile's stages need from the base: an interpreter, venv (with ensurepip) and
# the CA certificates pip checks PyPI's with. The official python image has the same.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# podman here: crun refuses the hybrid cgroup hierarchy and raising rlimits is not permitted.
PODMAN_RUN_OPTIONS = (
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
)


class Unavailable(Exception):
    """The base cannot be made on this machine; the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("SKANSE_TEST_CACHE", "/var/cache/skanse-tests"))


def _usable(tree: Path) -> bool:
    return (tree / "var" / "lib" / "dpkg" / "status").is_file() and (tree / "bin").exists()


def rootfs(suite: str = SUITE, variant: str = VARIANT) -> Path:
    """The cached debootstrap tree for `suite` and `variant`, built on first use.

    The build goes to a temporary directory beside the cache and is renamed into place only
    when debootstrap succeeded, under a lock, so two processes never see half a tree.
    SKANSE_DEBOOTSTRAP_ROOTFS=DIR uses a tree made elsewhere.
    """
    reuse = os.environ.get("SKANSE_DEBOOTSTRAP_ROOTFS")
    if reuse:
        return Path(reuse)
    root = cache_dir() / "debootstrap"
    tree = root / f"{suite}-{variant}"
    if _usable(tree):
        return tree
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise Unavailable("debootstrap is not installed (make test installs it: APT_PACKAGES)")
    if os.geteuid() != 0:
        raise Unavailable("debootstrap needs root")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _usable(tree):
            return tree
        partial = root / f".{suite}-{variant}.partial"
        if partial.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(partial)], check=True)
        try:
            done = subprocess.run(
                [debootstrap, f"--variant={variant}", suite, str(partial), MIRROR],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(
                "debootstrap did not finish in 15 minutes (Debian's mirror is slow)"
            ) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise Unavailable(
                f"debootstrap failed (is Debian's mirror reachable?): {' | '.join(tail)}"
            )
        partial.rename(tree)
    return tree


def _podman() -> str:
    podman = shutil.which("podman")
    if podman is None:
        raise Unavailable("podman is not installed (make test installs it: APT_PACKAGES)")
    if os.geteuid() != 0:
        raise Unavailable("building images here needs root (rootless podman is not set up)")
    return podman


def image_exists(name: str) -> bool:
    done = subprocess.run(
        [_podman(), "image", "exists", name], capture_output=True, check=False, timeout=60
    )
    return done.returncode == 0


def _run(argv: list[str], what: str, timeout: float) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what} did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise Unavailable(f"{what} failed: {' | '.join(tail)}")


def _import_minbase(podman: str, tree: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="skanse-minbase-") as tmp:
        archive = Path(tmp) / "rootfs.tar"
        _run(
            [
                "tar",
                "-C",
                str(tree),
                "--sort=name",
                f"--mtime=@{EPOCH}",
                "--numeric-owner",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "--exclude=./dev/*",
                "-cf",
                str(archive),
                ".",
            ],
            "packing the debootstrap tree",
            timeout=600,
        )
        _run(
            [podman, "import", "--change", 'CMD ["/bin/bash"]', str(archive), MINBASE_IMAGE],
            "podman import",
            timeout=600,
        )


def _containerfile() -> str:
    packages = " ".join(BASE_PACKAGES)
    return (
        f"FROM {MINBASE_IMAGE}\n"
        "ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8\n"
        "RUN apt-get update \\\n"
        f" && apt-get install -y --no-install-recommends {packages} \\\n"
        " && apt-get clean \\\n"
        " && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \\\n"
        "    /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old /var/lib/dpkg/*-old\n"
        'CMD ["python3"]\n'
    )


def base_image() -> str:
    """The local base image's name, made (once per machine) if it does not exist yet."""
    podman = _podman()
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".base-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists(BASE_IMAGE):
            return BASE_IMAGE
        if not image_exists(MINBASE_IMAGE):
            _import_minbase(podman, rootfs())
        with tempfile.TemporaryDirectory(prefix="skanse-base-") as tmp:
            (Path(tmp) / "Containerfile").write_text(_containerfile())
            _run(
                [
                    podman,
                    "build",
                    *PODMAN_RUN_OPTIONS,
                    "--network",
                    "host",
                    "--timestamp",
                    str(EPOCH),
                    "-t",
                    BASE_IMAGE,
                    tmp,
                ],
                "building the base image (apt-get from Debian's mirror)",
                timeout=900,
            )
    return BASE_IMAGE


def main() -> int:
    try:
        print(base_image())
    except Unavailable as error:
        print(f"debian_base: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
