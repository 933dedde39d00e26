"""Path fields in their one normal form, checked against libsinsp's cases and the kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skanse.rules.paths import concatenate_paths, normalize_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # libsinsp's tests normalise //dir/term to /dir/term; the rest follow its rules
        ("//dir/term", "/dir/term"),
        ("/dir//term", "/dir/term"),
        ("/dir/./term", "/dir/term"),
        ("/dir/../term", "/term"),
        ("/dir/term/", "/dir/term"),
        ("/../../term", "/term"),
        ("/", "/"),
        ("//", "/"),
        ("///etc/shadow", "/etc/shadow"),
        ("//etc/shadow", "/etc/shadow"),
        ("/etc/shadow", "/etc/shadow"),
        ("/.ssh/id_rsa", "/.ssh/id_rsa"),
        ("/etc/.", "/etc"),
        ("/etc/..", "/"),
    ],
)
def test_absolute_paths_normalise_as_libsinsp_does(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    ("base", "raw", "expected"),
    [
        ("/root", "x", "/root/x"),
        ("/root/", "./x", "/root/x"),
        ("/root", "../etc//shadow", "/etc/shadow"),
        ("/", "../../etc/shadow", "/etc/shadow"),
        ("/root", "//etc/shadow", "/etc/shadow"),  # an absolute raw path ignores the base
        (None, "x/../y", "x/../y"),  # no base known: recorded as the process gave it
        ("", "y", "y"),
    ],
)
def test_relative_paths_join_their_directory(base: str | None, raw: str, expected: str) -> None:
    assert concatenate_paths(base, raw) == expected


_COMPONENTS = st.sampled_from(["a", "b", ".", "..", ""])


def _tree(root: Path) -> None:
    for first in ("a", "b"):
        for second in ("a", "b"):
            for third in ("a", "b"):
                (root / first / second / third).mkdir(parents=True, exist_ok=True)
    for directory in [root, *root.rglob("*")]:
        (directory / "f").touch()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(os.path.realpath(tmp_path_factory.mktemp("paths")))
    _tree(root)
    return root


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    components=st.lists(_COMPONENTS, max_size=8),
    leading=st.integers(min_value=1, max_value=3),
    trailing=st.booleans(),
)
def test_the_normal_form_is_the_path_the_kernel_resolves(
    tree: Path, components: list[str], leading: int, trailing: bool
) -> None:
    raw = "/" * leading + str(tree)[1:] + "/" + "/".join(components) + ("/" if trailing else "")
    try:
        fd = os.open(raw, os.O_PATH)
    except OSError:
        return  # the kernel did not resolve it (a component that does not exist)
    try:
        kernel = os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    assert normalize_path(raw) == kernel


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(components=st.lists(_COMPONENTS, min_size=1, max_size=8))
def test_relative_paths_resolve_as_the_kernel_resolves_them_from_a_directory(
    tree: Path, components: list[str]
) -> None:
    raw = "/".join(components) or "."
    if raw.startswith("/"):
        raw = "." + raw
    base = str(tree / "a" / "b")
    dirfd = os.open(base, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = os.open(raw, os.O_PATH, dir_fd=dirfd)
    except OSError:
        return
    finally:
        os.close(dirfd)
    try:
        kernel = os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    assert concatenate_paths(base, raw) == kernel
