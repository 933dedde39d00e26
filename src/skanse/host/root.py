"""Reading a host's files through a root path: `/` for this machine, `/mnt/node` for a node's
file system mounted elsewhere, or a fixture tree in a test.

Every path a host check names is absolute as seen *inside* the audited system ("/proc/sys/
kernel/kptr_restrict"); `HostRoot` maps it under the root and resolves symbolic links the way
a chroot would (an absolute link target starts again at the root, `..` never climbs above it),
so a hostile or merely absolute link in a mounted image cannot make the audit read the
auditor's own files. Reads are bounded in size. Failures raise `FactUnavailable` (could not
check) with the reason; a missing file raises `FileNotFoundError` so callers can decide
whether absence is a finding, "not applicable" or a problem.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from skanse.errors import FactUnavailable, HostError

__all__ = ["MAX_FILE_BYTES", "FileInfo", "HostRoot"]

MAX_FILE_BYTES = 4 * 1024 * 1024  # configuration files; /proc entries are far smaller
_MAX_LINKS = 40  # as the kernel's own bound on symlink resolution (ELOOP)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What `stat` says about a file, for permission checks on sockets and configs."""

    path: str
    mode: int  # permission bits only
    uid: int
    gid: int
    is_socket: bool


def _unavailable(exc: OSError, inner: str) -> FactUnavailable:
    """What an OSError other than "not found" means for the audit: could not check, and why."""
    if isinstance(exc, PermissionError):
        if os.geteuid() == 0:
            # root was refused: asking to run as root would send the user in a circle
            return FactUnavailable(
                "permission denied even to root (/proc mounted with hidepid, a user "
                "namespace without the host's root, or an LSM such as SELinux or AppArmor "
                "restricts it)",
                path=inner,
            )
        return FactUnavailable("permission denied (run as root to check this)", path=inner)
    return FactUnavailable(exc.strerror or str(exc), path=inner)


class HostRoot:
    """The audited system's file tree, read-only, through `root`."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        path = Path(os.path.abspath(root))
        if not path.exists():
            raise HostError(f"--root {root}: no such directory")
        if not path.is_dir():
            raise HostError(f"--root {root}: not a directory")
        self.path = path
        self.is_live = path == Path("/")
        self.files_read = 0
        self._processes: list[tuple[int, tuple[str, ...]]] | None = None

    def __repr__(self) -> str:
        return f"HostRoot({str(self.path)!r})"

    # --- path mapping -------------------------------------------------------------------

    def resolve(self, inner: str) -> Path:
        """The real path of `inner` (absolute inside the root), links resolved inside it."""
        if not inner.startswith("/"):
            raise ValueError(f"host paths are absolute inside the root: {inner!r}")
        if self.is_live:
            return Path(inner)
        parts = [p for p in inner.split("/") if p]
        resolved: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.path.joinpath(*resolved, part)
            try:
                is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
            except OSError:
                is_link = False  # missing or unreadable: the caller's open() reports it
            if not is_link:
                resolved.append(part)
                continue
            links += 1
            if links > _MAX_LINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", inner)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
        return self.path.joinpath(*resolved)

    # --- reading ------------------------------------------------------------------------

    def exists(self, inner: str) -> bool:
        try:
            return os.path.lexists(self.resolve(inner))
        except OSError:
            return False

    def is_dir(self, inner: str) -> bool:
        try:
            return self.resolve(inner).is_dir()
        except OSError:
            return False

    def read_bytes(self, inner: str, limit: int = MAX_FILE_BYTES) -> bytes:
        """At most `limit` bytes of a regular file (or a /proc or /sys entry).

        Raises FileNotFoundError when it does not exist and FactUnavailable for anything
        else that stops the read (permission, a directory, a device, too large).
        """
        try:
            real = self.resolve(inner)
            # O_NONBLOCK: a FIFO planted in a mounted image must not hang the audit (it is
            # rejected below as not a regular file). Links are resolved already under a root.
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(real, flags if self.is_live else flags | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise FileNotFoundError(errno.ENOENT, "not found", inner) from None
            raise _unavailable(exc, inner) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise FactUnavailable("is a directory, not a file", path=inner)
            if not stat.S_ISREG(info.st_mode):
                raise FactUnavailable("not a regular file", path=inner)
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = os.read(fd, min(65536, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise FactUnavailable(
                        f"larger than {limit} bytes; not read", path=inner, kind="too-large"
                    )
        except OSError as exc:
            raise _unavailable(exc, inner) from None
        finally:
            os.close(fd)
        self.files_read += 1
        return b"".join(chunks)

    def read_text(self, inner: str, limit: int = MAX_FILE_BYTES) -> str:
        """`read_bytes` decoded as UTF-8; undecodable bytes become U+FFFD (never a crash)."""
        return self.read_bytes(inner, limit).decode("utf-8", errors="replace")

    def read_optional(self, inner: str, limit: int = MAX_FILE_BYTES) -> str | None:
        """The text of a file, or None when it does not exist."""
        try:
            return self.read_text(inner, limit)
        except FileNotFoundError:
            return None

    def processes(self) -> list[tuple[int, tuple[str, ...]]]:
        """(pid, argv) of every process in /proc whose command line can be read; read once.

        Processes that exit meanwhile or are hidden (hidepid) are left out: their absence is
        not ours to judge. Kernel threads have an empty command line and are left out too.
        """
        if self._processes is None:
            table = []
            for name in self.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    raw = self.read_bytes(f"/proc/{name}/cmdline", limit=1024 * 1024)
                except (FileNotFoundError, FactUnavailable):
                    continue
                argv = raw.decode("utf-8", errors="replace").split("\0")
                while argv and argv[-1] == "":
                    argv.pop()
                if argv:
                    table.append((int(name), tuple(argv)))
            self._processes = table
        return self._processes

    def listdir(self, inner: str) -> list[str]:
        """Names in a directory, sorted; [] when it does not exist."""
        try:
            return sorted(os.listdir(self.resolve(inner)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _unavailable(exc, inner) from None

    def readlink(self, inner: str) -> str:
        """The target of a symbolic link itself (namespace links in /proc/<pid>/ns)."""
        try:
            parent, _, name = inner.rpartition("/")
            return os.readlink(self.resolve(parent or "/") / name)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _unavailable(exc, inner) from None

    def stat(self, inner: str) -> FileInfo:
        """Owner and mode of a file (not following a final link); FileNotFoundError if absent."""
        try:
            info = os.lstat(self.resolve(inner))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _unavailable(exc, inner) from None
        return FileInfo(
            path=inner,
            mode=stat.S_IMODE(info.st_mode),
            uid=info.st_uid,
            gid=info.st_gid,
            is_socket=stat.S_ISSOCK(info.st_mode),
        )
