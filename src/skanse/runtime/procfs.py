"""Reading /proc: the processes that ran before the sensor started, and user names.

`read_process(pid)` returns a process record (the keys of docs/runtime-events.md plus the
sensor's own `cgroup`, `mntns`, `pidns`, `netns`) or None when the process is gone or
unreadable: every read is bounded and a vanished process is normal, never an error.
`UserNames` resolves uids and gids from the host's passwd/group files or, for a process in
a container, from the container's own (`/proc/<pid>/root/etc/passwd`), cached per mount
namespace: what `user.name` shows in Falco.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CLK_TCK",
    "UserNames",
    "boot_epoch_offset_ns",
    "cap_names",
    "iter_pids",
    "read_process",
    "start_ticks",
]

_MAX_READ = 64 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# capability numbers -> names (include/uapi/linux/capability.h)
_CAPS = (
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID "
    "CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST "
    "CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO "
    "CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE "
    "CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE "
    "CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM "
    "CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE"
).split()

_CAP_CACHE: dict[int, str] = {}


def cap_names(mask: int) -> str:
    """A capability mask as libsinsp prints it: space-separated names."""
    text = _CAP_CACHE.get(mask)
    if text is None:
        text = " ".join(
            _CAPS[bit] if bit < len(_CAPS) else f"CAP_{bit}" for bit in range(64) if mask >> bit & 1
        )
        if len(_CAP_CACHE) < 1024:
            _CAP_CACHE[mask] = text
    return text


def boot_epoch_offset_ns() -> int:
    """Add to a CLOCK_BOOTTIME timestamp (what the kernel records carry) to get epoch ns."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def _read(path: str, limit: int = _MAX_READ) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _ns_inode(proc: str, name: str) -> int | None:
    try:
        return os.stat(f"{proc}/ns/{name}").st_ino
    except OSError:
        return None


def read_cgroup(pid: int, proc_root: str = "/proc") -> str | None:
    data = _read(f"{proc_root}/{pid}/cgroup", 16384)
    return data.decode("utf-8", "replace") if data is not None else None


def iter_pids(proc_root: str = "/proc") -> Iterator[int]:
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return
    for entry in entries:
        if entry.isdigit():
            yield int(entry)


def exepath_text(link: str | None) -> tuple[str | None, bool]:
    """(exepath, from memfd) of a /proc/<pid>/exe link; memfd shows as `memfd:NAME`."""
    if link is None:
        return None, False
    if link.endswith(" (deleted)"):
        link = link[: -len(" (deleted)")]
    if link.startswith("/memfd:"):
        return link[1:], True
    return link, False


def _stat(pid: int, proc_root: str) -> tuple[str, list[str]] | None:
    """/proc/<pid>/stat as (comm, fields from field 3 (state) of proc(5) on), or None if
    the process is gone or the file is not what proc(5) describes."""
    stat = _read(f"{proc_root}/{pid}/stat", 4096)
    if not stat:
        return None
    text = stat.decode("utf-8", "replace")
    open_paren, close_paren = text.find("("), text.rfind(")")
    if open_paren < 0 or close_paren < 0:
        return None
    fields = text[close_paren + 2 :].split()
    if len(fields) < 20 or not fields[19].isdigit():
        return None
    return text[open_paren + 1 : close_paren], fields


def start_ticks(pid: int, proc_root: str = "/proc") -> int | None:
    """When the process started, in clock ticks (CLK_TCK a second) since boot; None if it
    is gone."""
    stat = _stat(pid, proc_root)
    return int(stat[1][19]) if stat is not None else None


def read_process(
    pid: int, *, proc_root: str = "/proc", boot_offset_ns: int | None = None
) -> dict[str, Any] | None:
    """The process record of a running process, or None if it is gone or unreadable."""
    base = f"{proc_root}/{pid}"
    stat = _stat(pid, proc_root)
    if stat is None:
        return None
    comm, fields = stat
    ppid, pgrp, session, tty_nr = (int(fields[i]) for i in (1, 2, 3, 4))
    started = int(fields[19])
    data: dict[str, Any] = {
        "pid": pid,
        "tid": pid,
        "ppid": ppid,
        "sid": session,
        "name": comm[:15],
        "tty": tty_nr,
    }
    if boot_offset_ns is not None:
        data["start_ts"] = boot_offset_ns + started * 1_000_000_000 // CLK_TCK
    status = _read(f"{base}/status", 16384)
    if status:
        for line in status.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "Uid":
                parts = value.split()
                if len(parts) >= 2:
                    data["uid"] = int(parts[1])  # effective, as the kernel records report
            elif key == "Gid":
                parts = value.split()
                if len(parts) >= 2:
                    data["gid"] = int(parts[1])
            elif key == "NSpid":
                data["vpid"] = int(value.split()[-1])
                data["vtid"] = data["vpid"]
            elif key == "NSpgid":
                data["vpgid"] = int(value.split()[-1])
            elif key == "CapEff":
                data["cap_effective"] = cap_names(int(value, 16))
            elif key == "CapPrm":
                data["cap_permitted"] = cap_names(int(value, 16))
            elif key == "CapInh":
                data["cap_inheritable"] = cap_names(int(value, 16))
    data.setdefault("vpgid", pgrp)
    cmdline = _read(f"{base}/cmdline", 4096)
    if cmdline:
        argv = [a.decode("utf-8", "replace") for a in cmdline.rstrip(b"\0").split(b"\0")]
        data["exe"] = argv[0]
        data["args"] = argv[1:]
    else:
        data["args"] = []  # a kernel thread
    exepath, memfd = exepath_text(_readlink(f"{base}/exe"))
    if exepath is not None:
        data["exepath"] = exepath
        data["is_exe_from_memfd"] = memfd
    cwd = _readlink(f"{base}/cwd")
    if cwd is not None:
        data["cwd"] = cwd
    loginuid = _read(f"{base}/loginuid", 32)
    if loginuid:
        auid = int(loginuid.strip() or b"-1")
        data["loginuid"] = -1 if auid == 0xFFFFFFFF else auid
    cgroup = _read(f"{base}/cgroup", 16384)
    if cgroup is not None:
        data["cgroup"] = cgroup.decode("utf-8", "replace")
    for ns in ("mnt", "pid", "net"):
        inode = _ns_inode(base, ns)
        if inode is not None:
            data[f"{ns}ns"] = inode
    return data


_FileStamp = tuple[int, int, int, int] | None  # st_dev, st_ino, st_mtime_ns, st_size


def _stamp(path: str) -> _FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class UserNames:
    """uid/gid -> name from the host's files or a container's own, cached per mount ns.

    `refresh(mntns, pid)`, called once per exec, reads a container's files again when they
    changed (their stat differs from when they were read): a container's passwd can be
    bind mounted or edited after the namespace's first exec was seen, and a name must come
    from the files as they are now. A process already gone is looked at through another
    live process of its namespace. The host's files are checked at most once a second.
    """

    HOST_RECHECK_SECONDS = 1.0

    def __init__(
        self,
        host_root: str = "/",
        *,
        proc_root: str = "/proc",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host_root = host_root
        self.proc_root = proc_root
        self._clock = clock
        # kthreadd (pid 2) is always in the initial namespaces and readable where init may
        # not be
        self._host_mntns = _ns_inode(f"{proc_root}/1", "mnt") or _ns_inode(f"{proc_root}/2", "mnt")
        self._users: dict[int | None, dict[int, str]] = {}
        self._groups: dict[int | None, dict[int, str]] = {}
        self._homes: dict[int | None, dict[int, tuple[str, str]]] = {}
        # per namespace: the files' stamps when read, and a process they were read through
        self._stamps: dict[int | None, tuple[_FileStamp, _FileStamp]] = {}
        self._readers: dict[int | None, int | None] = {}
        self._host_checked = clock()

    def _root(self, mntns: int | None, pid: int | None) -> str:
        if mntns and mntns != self._host_mntns and pid is not None:  # 0/None: unknown, host
            return f"{self.proc_root}/{pid}/root"
        return self.host_root

    def _stamps_under(self, root: str) -> tuple[_FileStamp, _FileStamp]:
        return (_stamp(f"{root}/etc/passwd"), _stamp(f"{root}/etc/group"))

    def refresh(self, mntns: int | None, pid: int | None) -> None:
        """Forget the names of `mntns` if its files changed since they were read."""
        if mntns not in self._users:
            return  # read at the first lookup
        root = self._root(mntns, pid)
        if root == self.host_root:
            now = self._clock()
            if now - self._host_checked < self.HOST_RECHECK_SECONDS:
                return
            self._host_checked = now
        stamps = self._stamps_under(root)
        through = pid
        if stamps == (None, None) and root != self.host_root:
            through = self._readers.get(mntns)  # the process is gone: ask another one
            if through is None or through == pid:
                return
            stamps = self._stamps_under(self._root(mntns, through))
            if stamps == (None, None):
                return
        if stamps != self._stamps.get(mntns):
            for table in (self._users, self._groups, self._homes, self._stamps):
                table.pop(mntns, None)
            self._load(mntns, through)
        elif root != self.host_root and through == pid:
            self._readers[mntns] = pid

    def _load(self, mntns: int | None, pid: int | None) -> None:
        if mntns in self._users:
            return
        root = self._root(mntns, pid)
        stamps = self._stamps_under(root)
        users: dict[int, str] = {}
        homes: dict[int, tuple[str, str]] = {}
        for line in _lines(Path(root, "etc/passwd")):
            parts = line.split(":")
            if len(parts) >= 7 and parts[2].isdigit():
                uid = int(parts[2])
                users.setdefault(uid, parts[0])
                homes.setdefault(uid, (parts[5], parts[6]))
        groups: dict[int, str] = {}
        for line in _lines(Path(root, "etc/group")):
            parts = line.split(":")
            if len(parts) >= 3 and parts[2].isdigit():
                groups.setdefault(int(parts[2]), parts[0])
        if not users and root != self.host_root:
            return  # the container's files were unreadable (process gone): try again later
        if len(self._users) > 4096:  # bounded: one entry per mount namespace seen
            self._users.clear()
            self._groups.clear()
            self._homes.clear()
            self._stamps.clear()
            self._readers.clear()
        self._users[mntns] = users
        self._groups[mntns] = groups
        self._homes[mntns] = homes
        self._stamps[mntns] = stamps
        if root != self.host_root:
            self._readers[mntns] = pid

    def user(
        self, uid: int | None, *, mntns: int | None = None, pid: int | None = None
    ) -> str | None:
        if uid is None:
            return None
        self._load(mntns, pid)
        return self._users.get(mntns, {}).get(uid) or self._fallback(self._users, uid)

    def group(
        self, gid: int | None, *, mntns: int | None = None, pid: int | None = None
    ) -> str | None:
        if gid is None:
            return None
        self._load(mntns, pid)
        return self._groups.get(mntns, {}).get(gid) or self._fallback(self._groups, gid)

    def home(self, uid: int | None, *, mntns: int | None = None) -> tuple[str, str] | None:
        if uid is None:
            return None
        return self._homes.get(mntns, {}).get(uid)

    def _fallback(self, table: dict[int | None, dict[int, str]], key: int) -> str | None:
        if key == 0:
            return "root"
        if None not in table:
            self._load(None, None)
        return table.get(None, {}).get(key)

    def resolver(self, mntns: int | None = None, pid: int | None = None) -> Callable[[int], str]:
        def name(uid: int) -> str:
            return self.user(uid, mntns=mntns, pid=pid) or str(uid)

        return name


def _lines(path: Path) -> list[str]:
    try:
        with path.open("rb") as handle:
            data = handle.read(4 * 1024 * 1024)  # bounded: a passwd file is small
    except OSError:
        return []
    return [
        line for line in data.decode("utf-8", "replace").splitlines() if line and line[0] != "#"
    ]
