"""Run skanse as the unprivileged user 65534 ("nobody") from any checkout.

A test that drops to nobody needs an interpreter, the standard library, the installed
dependencies and skanse's sources that nobody can reach. A checkout (or an interpreter, as
pyenv's under /root) below a directory of mode 0700 is out of reach; then a reachable shadow
is built once per session under a 0755 temporary directory: hard links (a copy across file
systems) of the interpreter, its shared library and standard library, the virtualenv's
site-packages and src/. Nothing is changed in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534
ROOT = Path(__file__).resolve().parent.parent
_SKIPPED = frozenset({"__pycache__", "test", "tests", "idlelib", "tkinter", "turtledemo"})


@dataclass(frozen=True)
class NobodyPython:
    """`argv` starts a Python that nobody can run with skanse importable; `env` goes with it."""

    argv: tuple[str, ...]
    env: dict[str, str]


def _setpriv() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise LookupError("setpriv (util-linux) is not installed")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _imports(python: NobodyPython) -> bool:
    run = subprocess.run(
        [*_setpriv(), *python.argv, "-c", "import skanse._cli, yaml, pydantic, rich"],
        env=python.env,
        capture_output=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    return run.returncode == 0


def _open_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)  # noqa: S103 - nobody must traverse the shadow


def _link_tree(source: Path, target: Path, skipped: frozenset[str] = frozenset()) -> None:
    for directory, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d not in skipped and d != "__pycache__"]
        here = target / Path(directory).relative_to(source)
        _open_dir(here)
        for name in files:
            _link(Path(directory) / name, here / name)


def _link(source: Path, target: Path) -> None:
    if source.is_symlink():
        os.symlink(os.readlink(source), target)  # relative links stay inside the shadow
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    os.chmod(target, (source.stat().st_mode & 0o777) | 0o444)


def _shadow(base: Path) -> NobodyPython:
    _open_dir(base)
    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    _open_dir(base / "bin")
    _link(Path(os.path.realpath(sys._base_executable)), base / "bin" / version)  # type: ignore[attr-defined]
    libdir = Path(sysconfig.get_config_var("LIBDIR") or prefix / "lib")
    _open_dir(base / "lib")
    for shared in libdir.glob("libpython*.so*"):
        _link(shared, base / "lib" / shared.name)
    _link_tree(prefix / "lib" / version, base / "lib" / version, _SKIPPED | {"site-packages"})
    site = Path(sysconfig.get_paths()["purelib"])
    _link_tree(site, base / "site")
    _link_tree(ROOT / "src", base / "src")
    env = dict(
        os.environ,
        PYTHONPATH=f"{base / 'src'}:{base / 'site'}",
        PYTHONHOME=str(base),
        LD_LIBRARY_PATH=str(base / "lib"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return NobodyPython((str(base / "bin" / version),), env)


def nobody_python() -> Iterator[NobodyPython]:
    """A Python nobody can run with skanse importable (a generator for a session fixture:
    the shadow, when one is needed, is removed afterwards). Raises LookupError when none can
    be had (no setpriv, not root)."""
    if os.geteuid() != 0:
        raise LookupError("dropping to uid 65534 needs root")
    direct = NobodyPython((sys.executable,), dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    if _imports(direct):
        yield direct
        return
    base = Path(tempfile.mkdtemp(prefix="skanse-nobody-"))
    try:
        shadow = _shadow(base)
        if not _imports(shadow):
            raise LookupError("no interpreter that uid 65534 can run could be prepared")
        yield shadow
    finally:
        shutil.rmtree(base, ignore_errors=True)
