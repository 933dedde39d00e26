"""Small file helpers shared by every layer."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "FileTooLarge",
    "OutputRefused",
    "output_path",
    "output_problem",
    "output_stream",
    "read_capped",
    "write_atomic",
    "write_output",
]


class OutputRefused(OSError):
    """An output path that skanse will not write through (a symlink out of the tree)."""


class FileTooLarge(OSError):
    """An input over its reader's limit; `size` is None when the file has no size to tell
    (a device, a FIFO) and it was refused once more than the limit had been read."""

    def __init__(self, path: str | Path, limit: int, size: int | None) -> None:
        super().__init__(f"{path}: more than {limit:,} bytes")
        self.limit, self.size = limit, size


def read_capped(path: str | Path, limit: int) -> bytes:
    """The bytes of `path`, at most `limit` of them (FileTooLarge past it). A regular file
    is refused by its size before it is read; anything else (/dev/zero, a FIFO, a /proc
    file, whose size says nothing) by reading one byte more than the limit, never more."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise FileTooLarge(path, limit, info.st_size)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, limit, None)
    return data


def _write_through(path: Path, payload: bytes) -> None:
    """Write into an existing file that is not a regular one (a device, a FIFO, a terminal)
    as it is: never replaced, never truncated."""
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _is_special(path: Path) -> bool:
    """An existing file that is not a regular one (following symlinks)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def output_problem(path: str | Path) -> str | None:
    """Why a file cannot be written at `path`, when that is plain before any work: the path
    is a directory, or the directory it names does not exist (the usual -o mistakes)."""
    target = Path(path)
    if target.is_dir():
        return f"{path} is a directory (name a file)"
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        reason = "is not a directory" if parent.exists() else "does not exist"
        return f"cannot write {path}: {parent} {reason}"
    return None


def output_path(path: str) -> str:
    """`path` as an output file, or ValueError saying why not (for settings parsers)."""
    problem = output_problem(path)
    if problem is not None:
        raise ValueError(problem)
    return path


def _output_target(path: str | Path, tree: str | Path) -> tuple[Path, bool]:
    """The file an -o path writes (symlinks resolved within `tree`), and whether it is an
    existing file that is not a regular one (a device, a FIFO: written through)."""
    target = Path(path)
    if _is_special(target):  # before the symlink rule: /dev/stdout is a link out of the tree
        return target, True
    if target.is_symlink():
        real = os.path.realpath(target)
        root = os.path.realpath(tree)
        if not _inside(real, root):
            raise OutputRefused(
                f"{path} is a symlink to {real}, outside {root}; refused (name the file itself)"
            )
        target = Path(real)
    problem = output_problem(target)
    if problem is not None:
        raise OutputRefused(problem)
    return target, False


def write_output(path: str | Path, data: str | bytes, *, tree: str | Path = ".") -> None:
    """Write a report to `path` (-o): through to whatever is not a regular file (/dev/null,
    /dev/stdout, a FIFO), atomically into a regular file, and through a symlink only when
    its target lies inside `tree` (the working directory): a planted link cannot make skanse
    overwrite a file elsewhere. OutputRefused says why not."""
    with output_stream(path, tree=tree) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def output_stream(path: str | Path, *, tree: str | Path = ".") -> Iterator[BinaryIO]:
    """`write_output` for a report written while it is made (alerts as they are found):
    the same rules for symlinks, devices and FIFOs; a regular file appears, atomically,
    only when the block ends without an exception, so a run that fails half-way leaves the
    old file (or none), never half a report."""
    target, special = _output_target(path, tree)
    if special:
        fd = os.open(target, os.O_WRONLY | os.O_NOCTTY)
        with os.fdopen(fd, "wb") as through:
            yield through
        return
    with ExitStack() as stack:
        try:
            handle = stack.enter_context(_atomic_file(target, mode=None, exclusive=False))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
            raise OutputRefused(f"cannot write {path}: {exc.strerror or exc}") from None
        yield handle


def write_atomic(
    path: str | Path, data: str | bytes, *, mode: int | None = None, exclusive: bool = False
) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half.

    The temporary file lives in the same directory (rename is atomic only within a file
    system); it is fsynced before the rename and removed if anything fails. An existing
    file keeps its permission bits unless `mode` is given. With `exclusive`, the file must
    not exist: it is linked into place, and FileExistsError is raised if something took the
    name meanwhile (nothing is replaced). An existing target that is not a regular file (a
    device such as /dev/null, a FIFO) is written through, never replaced.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not exclusive and _is_special(target):
        _write_through(target, payload)  # a device or FIFO is never replaced by a file
        return
    with _atomic_file(target, mode=mode, exclusive=exclusive) as handle:
        handle.write(payload)


@contextmanager
def _atomic_file(target: Path, *, mode: int | None, exclusive: bool) -> Iterator[BinaryIO]:
    """A temporary file beside `target`, put in its place when the block ends (see
    write_atomic), removed if the block or the move fails."""
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif not exclusive and target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        if exclusive:
            os.link(tmp, target)  # fails if the name exists
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
