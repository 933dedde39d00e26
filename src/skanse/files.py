"""Small file helpers shared by every layer."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def _is_special(target: Path) -> bool:
    """An existing device, FIFO or socket (after symlinks): something to write into."""
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def write_atomic(
    path: str | Path, data: str | bytes, *, mode: int | None = None, exclusive: bool = False
) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half.

    The temporary file lives in the same directory (rename is atomic only within a file
    system); it is fsynced before the rename and removed if anything fails. An existing
    file keeps its permission bits unless `mode` is given. With `exclusive`, the file must
    not exist: it is linked into place, and FileExistsError is raised if something took the
    name meanwhile (nothing is replaced).
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not exclusive and _is_special(target):
        # `-o json=/dev/null`, `-o sbom.json=/dev/stdout`, a FIFO: write into it. Renaming
        # a new file over it would replace the device node itself (as root, for everyone).
        with open(target, "wb") as handle:
            handle.write(payload)
        return
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
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
