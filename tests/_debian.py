"""A real Debian root file system for tests: `debootstrap --variant=minbase bookworm`, cached.

Building it takes about a minute and 200 MB from Debian's mirror, so the tree is built once per
machine and kept under the cache directory ($SKANSE_TEST_CACHE, default
/var/cache/skanse-tests): CI runs on a fresh clone but the same machine, and later runs reuse
the tree. tools/debian_base.py builds it (and, from it, the base `make image` builds skanse's
images on); this wraps it for tests.

`debian_rootfs()` returns the tree, or skips the calling test with the reason it cannot be had
(debootstrap missing, not root, the mirror unreachable). SKANSE_DEBOOTSTRAP_ROOTFS=DIR uses a
tree made elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tools.debian_base import SUITE, VARIANT, Unavailable, cache_dir, rootfs

__all__ = ["SUITE", "VARIANT", "cache_dir", "debian_rootfs"]


def debian_rootfs(suite: str = SUITE, variant: str = VARIANT) -> Path:
    """The cached debootstrap tree for `suite` and `variant`, built on first use."""
    try:
        return rootfs(suite, variant)
    except Unavailable as error:
        pytest.skip(str(error))
