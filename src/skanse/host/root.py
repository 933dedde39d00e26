"""Reading a host's files through a root path: `/` for this machine, `/mnt/node` for a node's
file system mounted elsewhere, or a fixture tree in a test.

Every path a host check names is absolute as seen *inside* the audited system ("/proc/sys/
kernel/kptr_restrict"); `HostRoot` maps it under the root and resolves symbolic links the way
a chroot would (an absolute link target starts again at the root, `..` never climbs above it),
so a hostile or merely absolute link in a mounted image cannot make the audit read the
auditor's own files. Reads walk the tree one directory at a time through open directory
descriptors (`openat` with O_NOFOLLOW), so a directory swapped for a link while the audit
reads cannot redirect it outside the root either. Reads are bounded in size. Failures raise
`FactUnavailable` (could not check) with the reason; a missing file raises
`FileNotFoundError` so callers can decide whether absence is a finding, "not applicable" or
a problem.
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

    def _at(self, inner: str, *, follow: bool) -> tuple[int, str]:
        """The open directory holding `inner`'s last component, and that component's name
        ("." for the root itself); links resolved inside the root as `resolve` does.

        Every step is an `openat` relative to the directory already open, never following a
        link: a link is read and resolved here, so what is opened is what was resolved even
        if the tree changes meanwhile. With `follow`, a last component that is a link is
        resolved too. The caller closes the descriptor.
        """
        if not inner.startswith("/"):
            raise ValueError(f"host paths are absolute inside the root: {inner!r}")
        dir_flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        stack = [os.open(self.path, dir_flags)]  # the root, then the directories walked
        parts = [p for p in inner.split("/") if p]
        links = 0
        try:
            while parts:
                part = parts.pop(0)
                if part == ".":
                    continue
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                target: str | None = None
                if parts:
                    try:
                        stack.append(os.open(part, dir_flags, dir_fd=stack[-1]))
                        continue
                    except OSError as exc:
                        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                            raise
                        target = _link_target(part, stack[-1])
                        if target is None:
                            raise
                elif follow:
                    target = _link_target(part, stack[-1])
                if target is None:
                    last = stack.pop()
                    return last, part
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", inner)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = [p for p in target.split("/") if p] + parts
            return stack.pop(), "."
        finally:
            for fd in stack:
                os.close(fd)

    # --- reading ------------------------------------------------------------------------

    def exists(self, inner: str) -> bool:
        if self.is_live:
            return os.path.lexists(inner)
        try:
            directory, name = self._at(inner, follow=False)
        except (OSError, ValueError):
            return False
        try:
            os.stat(name, dir_fd=directory, follow_symlinks=False)
            return True
        except OSError:
            return False
        finally:
            os.close(directory)

    def is_dir(self, inner: str) -> bool:
        if self.is_live:
            return os.path.isdir(inner)
        try:
            directory, name = self._at(inner, follow=True)
        except (OSError, ValueError):
            return False
        try:
            return stat.S_ISDIR(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
        except OSError:
            return False
        finally:
            os.close(directory)

    def open(self, inner: str, flags: int) -> int:
        """A descriptor of `inner` opened with `flags` (the caller closes it), links followed
        inside the root (see `_at`)."""
        if self.is_live:
            return os.open(inner, flags)
        directory, name = self._at(inner, follow=True)
        try:
            # O_NOFOLLOW: a link that appeared since `_at` is refused (ELOOP), not followed
            return os.open(name, flags | os.O_NOFOLLOW, dir_fd=directory)
        finally:
            os.close(directory)

    def read_bytes(self, inner: str, limit: int = MAX_FILE_BYTES) -> bytes:
        """At most `limit` bytes of a regular file (or a /proc or /sys entry).

        Raises FileNotFoundError when it does not exist and FactUnavailable for anything
        else that stops the read (permission, a directory, a device, too large).
        """
        try:
            # O_NONBLOCK: a FIFO planted in a mounted image must not hang the audit (it is
            # rejected below as not a regular file).
            fd = self.open(inner, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
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
            fd = self.open(inner, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _unavailable(exc, inner) from None
        try:
            return sorted(os.listdir(fd))
        except OSError as exc:
            raise _unavailable(exc, inner) from None
        finally:
            os.close(fd)

    def readlink(self, inner: str) -> str:
        """The target of a symbolic link itself (namespace links in /proc/<pid>/ns)."""
        try:
            if self.is_live:
                return os.readlink(inner)
            directory, name = self._at(inner, follow=False)
            try:
                return os.readlink(name, dir_fd=directory)
            finally:
                os.close(directory)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _unavailable(exc, inner) from None

    def stat(self, inner: str) -> FileInfo:
        """Owner and mode of a file (not following a final link); FileNotFoundError if absent."""
        try:
            if self.is_live:
                info = os.lstat(inner)
            else:
                directory, name = self._at(inner, follow=False)
                try:
                    info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                finally:
                    os.close(directory)
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


def _link_target(name: str, directory: int) -> str | None:
    """The target of `name` in `directory` if it is a symbolic link, else None."""
    try:
        return os.readlink(name, dir_fd=directory)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
            return None  # not a link, or absent: the open that follows says so
        raise
