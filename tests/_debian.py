"""A real Debian root file system for tests: `debootstrap --variant=minbase bookworm`, cached.

Building it takes about a minute and 200 MB from Debian's mirror, so the tree is built once per
machine and kept under the cache directory ($SKANSE_TEST_CACHE, default
/var/cache/skanse-tests): CI runs on a fresh clone but the same machine, and later runs reuse
the tree. The build goes to a temporary directory beside the cache and is renamed into place
only when debootstrap succeeded, under a lock, so two test processes never see half a tree.

`debian_rootfs()` returns the tree, or skips the calling test with the reason it cannot be had
(debootstrap missing, not root, the mirror unreachable). SKANSE_DEBOOTSTRAP_ROOTFS=DIR uses a
tree made elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = "http://deb.debian.org/debian"


def cache_dir() -> Path:
    return Path(os.environ.get("SKANSE_TEST_CACHE", "/var/cache/skanse-tests"))


def _usable(tree: Path) -> bool:
    return (tree / "var" / "lib" / "dpkg" / "status").is_file() and (tree / "bin").exists()


def debian_rootfs(suite: str = SUITE, variant: str = VARIANT) -> Path:
    """The cached debootstrap tree for `suite` and `variant`, built on first use."""
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
        pytest.skip("debootstrap is not installed (make test installs it: APT_PACKAGES)")
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
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
            pytest.skip("debootstrap did not finish in 15 minutes (Debian's mirror is slow)")
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"debootstrap failed (is Debian's mirror reachable?): {' | '.join(tail)}")
        partial.rename(tree)
    return tree
