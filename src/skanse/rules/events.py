"""What the engine evaluates: syscall events as plain dicts, plus the process and container state.

A syscall event is one JSON object (the schema is in docs/runtime-events.md):

    {"type": "openat", "ts": 1700000000123456789, "pid": 4242, "res": 3,
     "args": {"name": "/etc/shadow", "flags": "O_RDONLY|O_CLOEXEC"},
     "fd": {"num": 3, "type": "file", "name": "/etc/shadow"}}

The process that made the call is looked up by `pid` in a `ProcessTable`, which the sensor
keeps current (fork, exec, exit); its ancestors follow `ppid`, so `proc.aname[2]` resolves from
recorded state, as libsinsp's thread table does. An event may also carry its process
(`"proc": {...}`) and container (`"container": {...}`): the engine then records them in the
table first, which makes a recorded event file self-contained.

Everything here is plain and fast: the compiled rules read attributes of `Process` directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from skanse.oci.reference import split_reference

__all__ = ["Container", "Process", "ProcessTable"]

_MAX_ANCESTRY = 64  # a ppid loop in recorded state must not hang the engine


class Container:
    """A container's metadata, as the container plugin of Falco reports it."""

    __slots__ = (
        "id",
        "image",
        "image_digest",
        "image_id",
        "image_repository",
        "image_tag",
        "ip",
        "k8s_labels",
        "k8s_ns",
        "k8s_pod",
        "k8s_pod_uid",
        "mounts",
        "name",
        "privileged",
        "start_ts",
        "type",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.id: str | None = _text(data.get("id"))
        self.name: str | None = _text(data.get("name"))
        image = _text(data.get("image"))
        repository = _text(data.get("image_repository"))
        tag = _text(data.get("image_tag"))
        if image and repository is None:
            repository, tag_from_image, _ = split_reference(image)
            tag = tag if tag is not None else tag_from_image
        self.image = image
        self.image_repository = repository
        self.image_tag = tag
        self.image_digest: str | None = _text(data.get("image_digest"))
        self.image_id: str | None = _text(data.get("image_id"))
        privileged = data.get("privileged")
        self.privileged: bool | None = privileged if isinstance(privileged, bool) else None
        mounts = data.get("mounts")
        self.mounts: tuple[Mapping[str, Any], ...] | None = (
            tuple(m for m in mounts if isinstance(m, Mapping)) if isinstance(mounts, list) else None
        )
        self.start_ts: int | None = _int(data.get("start_ts"))
        self.type: str | None = _text(data.get("type"))
        self.ip: str | None = _text(data.get("ip"))
        k8s = data.get("k8s")
        k8s = k8s if isinstance(k8s, Mapping) else {}
        self.k8s_ns: str | None = _text(k8s.get("ns"))
        self.k8s_pod: str | None = _text(k8s.get("pod"))
        self.k8s_pod_uid: str | None = _text(k8s.get("pod_uid"))
        labels = k8s.get("labels")
        self.k8s_labels: Mapping[str, Any] | None = labels if isinstance(labels, Mapping) else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return None
    return None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


HOST = Container({"id": "host", "name": "host"})


class Process:
    """One process (thread group) as libsinsp's thread table knows it."""

    __slots__ = (
        "args",
        "args_text",
        "cap_effective",
        "cap_inheritable",
        "cap_permitted",
        "cmdline",
        "container",
        "container_id",
        "cwd",
        "env",
        "exe",
        "exe_ino_ctime",
        "exe_ino_mtime",
        "exepath",
        "gid",
        "group",
        "is_exe_from_memfd",
        "is_exe_upper_layer",
        "is_exe_writable",
        "loginname",
        "loginuid",
        "name",
        "pid",
        "ppid",
        "sid",
        "start_ts",
        "tid",
        "tty",
        "uid",
        "user",
        "user_homedir",
        "user_shell",
        "vpgid",
        "vpid",
        "vtid",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.pid: int | None = _int(data.get("pid"))
        self.tid: int | None = _int(data.get("tid", data.get("pid")))
        self.ppid: int | None = _int(data.get("ppid"))
        self.vpid: int | None = _int(data.get("vpid"))
        self.vtid: int | None = _int(data.get("vtid", data.get("vpid")))
        self.vpgid: int | None = _int(data.get("vpgid"))
        self.sid: int | None = _int(data.get("sid"))
        self.name: str | None = _text(data.get("name"))
        raw_args = data.get("args")
        args: tuple[str, ...] | None
        if isinstance(raw_args, list):
            args = tuple(str(a) for a in raw_args)
        elif isinstance(raw_args, str):
            args = tuple(raw_args.split()) if raw_args else ()
        else:
            args = None
        self.args = args
        self.args_text: str | None = " ".join(args) if args is not None else None
        exe = _text(data.get("exe"))
        self.exe: str | None = exe if exe is not None else self.name
        self.exepath: str | None = _text(data.get("exepath"))
        if self.name is None:
            self.cmdline: str | None = None
        elif self.args_text:
            self.cmdline = f"{self.name} {self.args_text}"
        else:
            self.cmdline = self.name
        self.cwd: str | None = _text(data.get("cwd"))
        self.tty: int | None = _int(data.get("tty"))
        self.uid: int | None = _int(data.get("uid"))
        self.gid: int | None = _int(data.get("gid"))
        self.user: str | None = _text(data.get("user"))
        self.group: str | None = _text(data.get("group"))
        self.user_homedir: str | None = _text(data.get("user_homedir"))
        self.user_shell: str | None = _text(data.get("user_shell"))
        self.loginuid: int | None = _int(data.get("loginuid"))
        self.loginname: str | None = _text(data.get("loginname"))
        env = data.get("env")
        if isinstance(env, Mapping):
            self.env: dict[str, str] | None = {str(k): str(v) for k, v in env.items()}
        elif isinstance(env, list):
            self.env = dict(str(item).partition("=")[::2] for item in env)
        else:
            self.env = None
        self.cap_effective: str | None = _caps(data.get("cap_effective"))
        self.cap_permitted: str | None = _caps(data.get("cap_permitted"))
        self.cap_inheritable: str | None = _caps(data.get("cap_inheritable"))
        self.start_ts: int | None = _int(data.get("start_ts"))
        self.is_exe_upper_layer: bool | None = _bool(data.get("is_exe_upper_layer"))
        self.is_exe_from_memfd: bool | None = _bool(data.get("is_exe_from_memfd"))
        self.is_exe_writable: bool | None = _bool(data.get("is_exe_writable"))
        self.exe_ino_ctime: int | None = _int(data.get("exe_ino_ctime"))
        self.exe_ino_mtime: int | None = _int(data.get("exe_ino_mtime"))
        self.container_id: str | None = _text(data.get("container_id"))
        self.container: Container = HOST

    @classmethod
    def from_typed(cls, data: Mapping[str, Any]) -> Process:
        """As `Process(data)`, for data whose values already have the schema's types (the
        sensor's own records: ints, strs, a list of argument strings, no env). Nothing is
        coerced, which makes it about three times faster; the sensor builds one per exec
        and fork."""
        process = object.__new__(cls)
        get = data.get
        pid = get("pid")
        process.pid = pid
        process.tid = get("tid", pid)
        process.ppid = get("ppid")
        vpid = get("vpid")
        process.vpid = vpid
        process.vtid = get("vtid", vpid)
        process.vpgid = get("vpgid")
        process.sid = get("sid")
        name = get("name")
        process.name = name
        raw_args = get("args")
        args = tuple(raw_args) if raw_args is not None else None
        process.args = args
        args_text = " ".join(args) if args is not None else None
        process.args_text = args_text
        exe = get("exe")
        process.exe = exe if exe is not None else name
        process.exepath = get("exepath")
        if name is None:
            process.cmdline = None
        elif args_text:
            process.cmdline = f"{name} {args_text}"
        else:
            process.cmdline = name
        process.cwd = get("cwd")
        process.tty = get("tty")
        process.uid = get("uid")
        process.gid = get("gid")
        process.user = get("user")
        process.group = get("group")
        process.user_homedir = get("user_homedir")
        process.user_shell = get("user_shell")
        process.loginuid = get("loginuid")
        process.loginname = get("loginname")
        process.env = None
        process.cap_effective = get("cap_effective")
        process.cap_permitted = get("cap_permitted")
        process.cap_inheritable = get("cap_inheritable")
        process.start_ts = get("start_ts")
        process.is_exe_upper_layer = get("is_exe_upper_layer")
        process.is_exe_from_memfd = get("is_exe_from_memfd")
        process.is_exe_writable = get("is_exe_writable")
        process.exe_ino_ctime = get("exe_ino_ctime")
        process.exe_ino_mtime = get("exe_ino_mtime")
        process.container_id = get("container_id")
        process.container = HOST
        return process


def _caps(value: object) -> str | None:
    """Capabilities render as libsinsp does: space-separated names (`CAP_CHOWN CAP_KILL`)."""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return _text(value)


EMPTY_PROCESS = Process({})
EMPTY_PROCESS.container = Container({})  # an unknown process: no container facts either


class ProcessTable:
    """Processes by pid and containers by id; the sensor keeps it current.

    `upsert` records a process (after fork or exec), `remove` forgets one (after exit and
    once its events are evaluated). Ancestors are resolved by following `ppid`.
    """

    __slots__ = ("containers", "processes")

    def __init__(self) -> None:
        self.processes: dict[int, Process] = {}
        self.containers: dict[str, Container] = {}

    def upsert(self, data: Mapping[str, Any]) -> Process:
        """Record the process described by `data` (keys as in the event schema)."""
        process = Process(data)
        container = data.get("container")
        if isinstance(container, Mapping):
            self.upsert_container(container)
            if process.container_id is None:
                process.container_id = _text(container.get("id"))
        return self.add(process)

    def add(self, process: Process) -> Process:
        """Record a process built already (the sensor's, see `Process.from_typed`)."""
        self.attach_container(process)
        if process.pid is not None:
            self.processes[process.pid] = process
        return process

    def upsert_container(self, data: Mapping[str, Any]) -> Container:
        container = Container(data)
        if container.id is not None:
            self.containers[container.id] = container
        return container

    def attach_container(self, process: Process) -> None:
        cid = process.container_id
        if cid is None or cid == "host":
            process.container = HOST
            return
        known = self.containers.get(cid)
        process.container = known if known is not None else Container({"id": cid})

    def remove(self, pid: int) -> None:
        self.processes.pop(pid, None)

    def get(self, pid: int | None) -> Process:
        """The process with this pid, or an empty process whose every field is missing."""
        if pid is None:
            return EMPTY_PROCESS
        return self.processes.get(pid, EMPTY_PROCESS)

    def ancestors(self, process: Process) -> Iterator[Process]:
        """Parent, grandparent, ... as far as the table knows them (self excluded)."""
        seen = 0
        ppid = process.ppid
        procs = self.processes
        while ppid is not None and seen < _MAX_ANCESTRY:
            parent = procs.get(ppid)
            if parent is None or parent is process:
                return
            yield parent
            seen += 1
            if parent.ppid == parent.pid:
                return
            ppid = parent.ppid

    def ancestor(self, process: Process, n: int) -> Process | None:
        """The n-th ancestor (1 = parent); n = 0 is the process itself."""
        if n == 0:
            return process
        if n > _MAX_ANCESTRY:
            return None
        # the walk of ancestors() without a generator: rules ask for proc.aname[2..4] often
        procs = self.processes
        current = process
        for _ in range(n):
            ppid = current.ppid
            if ppid is None or (current is not process and ppid == current.pid):
                return None
            parent = procs.get(ppid)
            if parent is None or parent is process:
                return None
            current = parent
        return current

    def session_leader(self, process: Process) -> Process | None:
        sid = process.sid
        if sid is None:
            return None
        leader = self.processes.get(sid)
        if leader is not None:
            return leader
        # libsinsp walks up while the session id stays the same
        last = None
        for parent in self.ancestors(process):
            if parent.sid != sid:
                break
            last = parent
        return last
