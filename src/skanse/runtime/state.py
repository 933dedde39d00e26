"""The sensor's process table: seeded from /proc, kept current from fork, exec and exit.

It owns the engine's `ProcessTable` (`skanse.rules.events`): every change is written there
with `upsert`, so `proc.pname`, `proc.aname[n]` and `proc.pcmdline` resolve from recorded
state even for processes that have long exited, as libsinsp's thread table does. A process
that exits is forgotten only after a grace period, so the events of its children that are
still in flight find their ancestry; a pid reused within that period replaces it at once.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import Any

from skanse.rules.events import Process, ProcessTable
from skanse.runtime import procfs
from skanse.runtime.containers import (
    CgroupPaths,
    ContainerMetadata,
    ContainerRef,
    container_from_cgroup,
    container_from_proc_cgroup,
)
from skanse.runtime.records import (
    EXE_FROM_MEMFD,
    EXE_UPPER_LAYER,
    Item,
    Record,
    path_from_components,
)

__all__ = ["ProcessState"]

_LOGINUID_UNSET = 0xFFFFFFFF
# execve's `flags` argument, as Falco names the bits it can report here
_EXE_FLAGS = ((EXE_UPPER_LAYER, "EXE_UPPER_LAYER"), (EXE_FROM_MEMFD, "EXE_FROM_MEMFD"))


class ProcessState:
    """Process records by pid (dicts in the event schema) mirrored into a ProcessTable."""

    def __init__(
        self,
        table: ProcessTable,
        *,
        users: procfs.UserNames,
        cgroups: CgroupPaths,
        metadata: ContainerMetadata,
        boot_offset_ns: int,
        exit_grace_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        proc_root: str = "/proc",
    ) -> None:
        self.table = table
        self.users = users
        self.cgroups = cgroups
        self.metadata = metadata
        self.boot_offset_ns = boot_offset_ns
        self.records: dict[int, dict[str, Any]] = {}
        self._exited: collections.deque[tuple[float, int, Process]] = collections.deque()
        self._grace = exit_grace_s
        self._clock = clock
        self._cgroup_container: dict[int, str | None] = {}
        # cgroups whose container's record is incomplete, to read again when its source changes
        self._cgroup_incomplete: dict[int, ContainerRef] = {}
        self.seeded = 0
        self._missing: set[int] = set()
        self._root_ids: set[int] = set()
        self.proc_root = proc_root
        # told every cgroup v2 id found to be a container's (the kernel program's kill
        # scope: skn_kill_cgroups)
        self.on_container_cgroup: Callable[[int], None] | None = None

    # -- containers --------------------------------------------------------------------
    def _container_for_cgroup_id(self, cgroup_id: int, pid: int) -> str | None:
        """The container of a cgroup v2 id; /proc/<pid>/cgroup when v2 cannot tell.

        A v2 id of 0 (the audit sensor) or of the root (a host whose runtime only uses
        cgroup v1 hierarchies) says nothing, so the process's own cgroup file is read.
        """
        if cgroup_id in self._cgroup_container:
            cid = self._cgroup_container[cgroup_id]
            if cid is not None or cgroup_id not in self._root_ids:
                stale = self._cgroup_incomplete.get(cgroup_id)
                if stale is not None and self.metadata.stale(stale.full_id):
                    self._upsert(cgroup_id, stale)  # its source changed: read it again
                return cid
        path = self.cgroups.path(cgroup_id) if cgroup_id > 1 else "/"
        if path in (None, "/"):
            if path == "/":
                self._root_ids.add(cgroup_id)
            return self._container_for_proc(procfs.read_cgroup(pid, self.proc_root))
        ref = container_from_cgroup(path)
        cid = None
        if ref is not None:
            cid = ref.id
            self._upsert(cgroup_id, ref)
            if self.on_container_cgroup is not None:
                self.on_container_cgroup(cgroup_id)
        if len(self._cgroup_container) > 65536:
            self._cgroup_container.clear()
            self._cgroup_incomplete.clear()
        self._cgroup_container[cgroup_id] = cid
        return cid

    def _upsert(self, cgroup_id: int, ref: ContainerRef) -> None:
        """Put the container's record in the table; remember a record left incomplete, to
        read it again when its source changes (the cgroup's container is not looked up again
        otherwise)."""
        self.table.upsert_container(self.metadata.lookup(ref))
        if self.metadata.incomplete(ref.full_id):
            self._cgroup_incomplete[cgroup_id] = ref
        else:
            self._cgroup_incomplete.pop(cgroup_id, None)

    def _container_for_proc(self, cgroup_text: str | None) -> str | None:
        if not cgroup_text:
            return None
        ref = container_from_proc_cgroup(cgroup_text)
        if ref is None:
            return None
        self.table.upsert_container(self.metadata.lookup(ref))
        if self.on_container_cgroup is not None:
            cgroup_id = self._v2_cgroup_id(cgroup_text)
            if cgroup_id is not None:
                self.on_container_cgroup(cgroup_id)
        return ref.id

    def _v2_cgroup_id(self, cgroup_text: str) -> int | None:
        """The cgroup v2 id (its directory's inode) of a /proc/<pid>/cgroup text."""
        mount = self.cgroups.mount
        if mount is None:
            return None
        for line in cgroup_text.splitlines():
            if line.startswith("0::/") and line != "0::/":
                try:
                    return os.stat(mount + line[3:]).st_ino
                except OSError:
                    return None
        return None

    def _names(self, data: dict[str, Any], pid: int) -> None:
        mntns = data.get("mntns")
        self.users.refresh(mntns, pid)
        data["user"] = self.users.user(data.get("uid"), mntns=mntns, pid=pid)
        data["group"] = self.users.group(data.get("gid"), mntns=mntns, pid=pid)
        home = self.users.home(data.get("uid"), mntns=mntns)
        if home:
            data["user_homedir"], data["user_shell"] = home
        loginuid = data.get("loginuid")
        if isinstance(loginuid, int) and loginuid >= 0:
            data["loginname"] = self.users.user(loginuid, mntns=mntns, pid=pid)

    def _store(self, data: dict[str, Any]) -> Process:
        pid = data["pid"]
        self.records[pid] = data
        return self.table.add(Process.from_typed(data))

    # -- seeding -----------------------------------------------------------------------
    def seed(self, proc_root: str = "/proc", skip: frozenset[int] = frozenset()) -> int:
        """Record every running process; returns how many were read."""
        count = 0
        for pid in procfs.iter_pids(proc_root):
            if pid in skip or pid in self.records:
                continue  # an exec/fork record seen already is fresher than /proc
            data = procfs.read_process(pid, proc_root=proc_root, boot_offset_ns=self.boot_offset_ns)
            if data is None:
                continue
            data["container_id"] = self._container_for_proc(data.pop("cgroup", None))
            self._names(data, pid)
            self._store(data)
            count += 1
        self.seeded = count
        return count

    def adopt(self, pid: int, proc_root: str = "/proc") -> Process | None:
        """Read one process the table does not know (its fork record was lost)."""
        data = procfs.read_process(pid, proc_root=proc_root, boot_offset_ns=self.boot_offset_ns)
        if data is None:
            return None
        data["container_id"] = self._container_for_proc(data.pop("cgroup", None))
        self._names(data, pid)
        return self._store(data)

    def sweep(self, proc_root: str = "/proc") -> int:
        """Forget processes missing from /proc at two sweeps in a row (lost exit records)."""
        missing = {pid for pid in self.records if not os.path.exists(f"{proc_root}/{pid}")}
        gone = missing & self._missing
        self._missing = missing - gone
        for pid in gone:
            self.records.pop(pid, None)
            self.table.processes.pop(pid, None)
        self._forget_ended_containers()
        return len(gone)

    def _forget_ended_containers(self) -> int:
        """Forget the containers no process of the table is in any more (all of a
        container's processes have exited: it has ended), and the cgroups found to be
        theirs, so that a process seen in one later looks its container up again. Without
        this the table kept every container ever seen (a node running CronJobs for months).
        Linear in processes, containers and cgroups; run at each sweep."""
        live = {process.container_id for process in self.table.processes.values()}
        ended = {cid for cid in self.table.containers if cid not in live}
        if not ended:
            return 0
        for cid in ended:
            del self.table.containers[cid]
        stale = [cgroup for cgroup, cid in self._cgroup_container.items() if cid in ended]
        for cgroup in stale:
            del self._cgroup_container[cgroup]
            self._cgroup_incomplete.pop(cgroup, None)
        return len(ended)

    # -- kernel records ----------------------------------------------------------------
    def _task_data(self, rec: Record, previous: dict[str, Any] | None) -> dict[str, Any]:
        task = rec.task
        assert task is not None
        if previous is not None and previous.get("cgroup_id") == task.cgroup_id and task.cgroup_id:
            container_id = previous.get("container_id")  # same cgroup as before: same container
        else:
            container_id = self._container_for_cgroup_id(task.cgroup_id, rec.tgid)
        loginuid = -1 if task.loginuid == _LOGINUID_UNSET else task.loginuid
        return {
            "pid": rec.tgid,
            "tid": rec.tgid,
            "ppid": task.ppid,
            "vpid": task.vpid,
            "vtid": task.vpid,
            "vpgid": task.vpgid,
            "sid": task.sid,
            "name": task.comm,
            "tty": task.tty,
            "uid": task.uid,
            "gid": task.gid,
            "loginuid": loginuid,
            "cap_effective": procfs.cap_names(task.cap_effective),
            "cap_permitted": procfs.cap_names(task.cap_permitted),
            "cap_inheritable": procfs.cap_names(task.cap_inheritable),
            "start_ts": self.boot_offset_ns + task.start_ts,
            "mntns": task.mntns,
            "pidns": task.pidns,
            "netns": task.netns,
            "cgroup_id": task.cgroup_id,
            "container_id": container_id,
        }

    def fork(self, rec: Record) -> Process:
        """A new process: its parent's image and state, its own ids."""
        parent = self.records.get(rec.task.ppid) if rec.task else None
        data = dict(parent) if parent is not None else {}
        fresh = self._task_data(rec, parent)
        if parent is not None:
            for key in ("name",):  # comm right after fork is the parent's anyway
                fresh.pop(key, None)
        data.update(fresh)
        if data.get("uid") != (parent or {}).get("uid") or "user" not in data:
            self._names(data, rec.tgid)
        return self._store(data)

    def exec(self, rec: Record) -> Process:
        """A new image in an existing (or unknown) process."""
        items = rec.items or {}
        old = self.records.get(rec.tgid)
        data = self._task_data(rec, old)
        # decoded once, then split: a NUL is never part of a multi-byte sequence
        argv = items.get(Item.ARGV, b"").decode("utf-8", "replace").split("\0")
        if argv and argv[-1] == "":
            argv.pop()
        task = rec.task
        assert task is not None
        memfd = bool(task.exe_flags & EXE_FROM_MEMFD)
        exe_item = items.get(Item.EXEPATH)
        if exe_item is not None:
            exepath, _complete = path_from_components(exe_item)
            if memfd:  # a memfd has no path: Falco shows memfd:NAME
                exepath = exepath.rsplit("/", 1)[-1]
            data["exepath"] = exepath
        data["exe"] = argv[0] if argv else data["name"]
        data["args"] = argv[1:]
        cwd_item = items.get(Item.CWD)
        if cwd_item is not None:
            data["cwd"] = path_from_components(cwd_item)[0]
        data["is_exe_from_memfd"] = memfd
        data["is_exe_upper_layer"] = bool(task.exe_flags & EXE_UPPER_LAYER)
        if old is not None and "start_ts" in old:
            data["start_ts"] = old["start_ts"]
        self._names(data, rec.tgid)
        return self._store(data)

    def exit(self, rec: Record) -> None:
        process = self.table.processes.get(rec.tgid)
        if process is None:
            return
        self._exited.append((self._clock() + self._grace, rec.tgid, process))

    def sync_uid(self, pid: int, uid: int, gid: int) -> Process | None:
        """A syscall showed different credentials (after setuid and the like)."""
        data = self.records.get(pid)
        if data is None or (data.get("uid") == uid and data.get("gid") == gid):
            return None
        data = dict(data, uid=uid, gid=gid)
        self._names(data, pid)
        return self._store(data)

    def expire(self) -> int:
        """Forget the processes whose exit grace period is over; returns how many."""
        now = self._clock()
        removed = 0
        exited = self._exited
        while exited and exited[0][0] <= now:
            _, pid, process = exited.popleft()
            if self.table.processes.get(pid) is process:  # not reused by a newer process
                del self.table.processes[pid]
                self.records.pop(pid, None)
                removed += 1
        return removed

    def cwd(self, pid: int) -> str | None:
        data = self.records.get(pid)
        value = data.get("cwd") if data else None
        return value if isinstance(value, str) else None

    def mntns(self, pid: int) -> int | None:
        data = self.records.get(pid)
        value = data.get("mntns") if data else None
        return value if isinstance(value, int) else None

    def exec_args(self, rec: Record, process: Process) -> dict[str, Any]:
        """The arguments of an execve/execveat exit event, as Falco names them."""
        flags = rec.task.exe_flags if rec.task is not None else 0
        names = [name for bit, name in _EXE_FLAGS if flags & bit]
        return {
            "res": 0,
            "exe": process.exe,
            "flags": "|".join(names) if names else "0",
            "args": " ".join(process.args or ()),
            "tid": rec.tid,
            "pid": rec.tgid,
            "ptid": process.ppid,
            "cwd": process.cwd,
            "comm": process.name,
            "tty": process.tty,
            "uid": process.uid,
            "gid": process.gid,
            "loginuid": process.loginuid,
        }
