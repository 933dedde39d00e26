"""The fields a condition or an output can name, with their types and how to extract them.

Each field compiles to a Python expression over three names, evaluated once per use:
`e` (the event dict), `p` (the `Process` that made a syscall) and `st` (the `ProcessTable`).
A missing value is `None`; every comparison on `None` is false (Falco's semantics), which
the compiler relies on. Helpers the expressions call live in `HELPERS`.

Sources: `syscall` (evt, proc, thread, user, group, fd, container, k8s) and `k8s_audit`
(ka, jevt), the latter over one Kubernetes audit event (`audit.k8s.io/v1` Event JSON).
"""

from __future__ import annotations

import datetime as _dt
import enum
import errno
import json
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from skanse.rules.events import EMPTY_PROCESS, Container, Process, ProcessTable

__all__ = [
    "HELPERS",
    "SOURCES",
    "Accessor",
    "ArgMode",
    "FieldSpec",
    "FieldType",
    "UnknownFieldError",
    "field_names",
    "resolve_field",
    "spec_for",
    "time_iso",
    "time_text",
    "utc_time",
]

SOURCES = ("syscall", "k8s_audit")


class FieldType(enum.StrEnum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    IPADDR = "ipaddr"
    IPNET = "ipnet"  # a value compared against networks (fd.net = 10.0.0.0/8)
    BYTES = "bytes"


class ArgMode(enum.Enum):
    NONE = "none"
    REQUIRED = "required"
    OPTIONAL = "optional"


class UnknownFieldError(ValueError):
    """A field name (or argument) that no source defines; carries Falco's wording."""


@dataclass(frozen=True, slots=True)
class Accessor:
    """A resolved field reference: the Python expression and how to compare its value."""

    field: str  # canonical text, e.g. "proc.aname[2]"
    expr: str
    type: FieldType
    is_list: bool = False  # a multi-valued field: `in` is a subset test
    either: bool = False  # several candidate values: a comparison holds if any one does


ExprFn = Callable[[str | None], str]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    source: str
    type: FieldType
    description: str
    code: ExprFn
    arg: ArgMode = ArgMode.NONE
    is_list: bool = False
    either_without_arg: bool = False  # proc.aname: any ancestor when no index is given


_E: Mapping[str, Any] = {}


# -- helpers called by generated code ------------------------------------------------------
def _fd(e: Mapping[str, Any]) -> Mapping[str, Any]:
    fd = e.get("fd")
    return fd if fd.__class__ is dict or isinstance(fd, Mapping) else _E


def _args(e: Mapping[str, Any]) -> Mapping[str, Any]:
    args = e.get("args")
    return args if args.__class__ is dict or isinstance(args, Mapping) else _E


_FD_TYPECHAR = {
    "file": "f",
    "directory": "d",
    "ipv4": "4",
    "ipv6": "6",
    "unix": "u",
    "pipe": "p",
    "event": "e",
    "signalfd": "s",
    "eventpoll": "l",
    "inotify": "i",
    "timerfd": "t",
    "netlink": "n",
    "bpf": "b",
    "userfaultfd": "u",
    "io_uring": "r",
    "memfd": "m",
}


def _fd_typechar(e: Mapping[str, Any]) -> str | None:
    fd = e.get("fd")
    if fd.__class__ is not dict:
        fd = _fd(e)
    typechar = fd.get("typechar")
    if typechar is not None:
        return str(typechar)
    return _FD_TYPECHAR.get(fd.get("type"))  # type: ignore[arg-type]


def _is_socket(fd: Mapping[str, Any]) -> bool:
    return fd.get("type") in ("ipv4", "ipv6")


def _fd_name(e: Mapping[str, Any]) -> str | None:
    fd = e.get("fd")
    if fd.__class__ is not dict:
        fd = _fd(e)
    name = fd.get("name")
    if name is not None:
        return str(name)
    if _is_socket(fd) and fd.get("cip") is not None and fd.get("sip") is not None:
        return f"{fd.get('cip')}:{fd.get('cport')}->{fd.get('sip')}:{fd.get('sport')}"
    return None


_DIRECTORY_CACHE: dict[str, str | None] = {}
_UNKNOWN = object()
# The memos keep only keys as long as a kernel makes them (a path of PATH_MAX, a flags text):
# replayed events choose their lengths, and 4,096 names of 100 KB each were kept (400 MB held
# by a replay that otherwise holds one line at a time).
MEMO_KEY_CHARS = 4096


def _fd_directory(e: Mapping[str, Any]) -> str | None:
    fd = e.get("fd")
    if fd.__class__ is not dict:
        fd = _fd(e)
    kind = fd.get("type")
    name = fd.get("name")
    if name.__class__ is not str:
        return None
    if kind == "directory":
        return str(name)
    if kind is None or kind == "file" or kind == "memfd":
        cached = _DIRECTORY_CACHE.get(name, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached  # type: ignore[return-value]
        head, sep, _ = str(name).rpartition("/")
        directory = (head.rstrip("/") or "/") if sep else None
        if len(name) > MEMO_KEY_CHARS:
            return directory
        if len(_DIRECTORY_CACHE) > 4096:  # bounded: an attacker chooses the names
            _DIRECTORY_CACHE.clear()
        _DIRECTORY_CACHE[name] = directory
        return directory
    return None


def _fd_filename(e: Mapping[str, Any]) -> str | None:
    fd = e.get("fd")
    if fd.__class__ is not dict:
        fd = _fd(e)
    name = fd.get("name")
    if not isinstance(name, str) or fd.get("type") not in (None, "file", "memfd"):
        return None
    return name.rpartition("/")[2] or None


def _fd_local_remote(e: Mapping[str, Any], local: bool, what: str) -> Any:
    """lip/rip/lport/rport: the client side is local unless the fd is a server socket."""
    fd = _fd(e)
    if not _is_socket(fd):
        return None
    server = fd.get("is_server") is True
    side = ("s" if server else "c") if local else ("c" if server else "s")
    return fd.get(side + what)


def _fd_either(e: Mapping[str, Any], what: str) -> tuple[Any, ...] | None:
    fd = _fd(e)
    values = tuple(v for v in (fd.get("c" + what), fd.get("s" + what)) if v is not None)
    return values or None


def _fd_sockfamily(e: Mapping[str, Any]) -> str | None:
    kind = _fd(e).get("type")
    if kind in ("ipv4", "ipv6"):
        return "ip"
    if kind == "unix":
        return "unix"
    return None


def _evt_res(e: Mapping[str, Any]) -> str | None:
    res = e.get("res")
    if isinstance(res, str):
        return res
    if not isinstance(res, int):
        return None
    if res >= 0:
        return "SUCCESS"
    return errno.errorcode.get(-res, str(res))


def _evt_rawres(e: Mapping[str, Any]) -> int | None:
    res = e.get("res")
    if isinstance(res, int) and not isinstance(res, bool):
        return res
    if isinstance(res, str) and res == "SUCCESS":
        return 0
    if isinstance(res, str) and hasattr(errno, res):
        return -int(getattr(errno, res))
    return None


def _evt_failed(e: Mapping[str, Any]) -> bool | None:
    res = _evt_rawres(e)
    return None if res is None else res < 0


_OPEN_TYPES = frozenset(("open", "openat", "openat2", "creat"))
_FLAG_CACHE: dict[str, tuple[frozenset[str], bool, bool]] = {}


def _flag_info(e: Mapping[str, Any]) -> tuple[frozenset[str], bool, bool] | None:
    """(flag names, opened for reading, opened for writing), memoised per flags text."""
    args = e.get("args")
    flags = (args if args.__class__ is dict else _args(e)).get("flags")
    if flags.__class__ is str:
        info = _FLAG_CACHE.get(flags)
        if info is not None:
            return info
        names = frozenset(f.strip() for f in flags.split("|") if f.strip())
    elif isinstance(flags, list):
        names = frozenset(str(f) for f in flags)
    else:
        return None
    info = (
        names,
        "O_RDONLY" in names or "O_RDWR" in names,
        "O_WRONLY" in names or "O_RDWR" in names,
    )
    if flags.__class__ is str and len(flags) <= MEMO_KEY_CHARS:
        if len(_FLAG_CACHE) > 4096:  # bounded: flag combinations are few, hostile input is not
            _FLAG_CACHE.clear()
        _FLAG_CACHE[flags] = info
    return info


def _flags(e: Mapping[str, Any]) -> frozenset[str] | None:
    info = _flag_info(e)
    return None if info is None else info[0]


def _is_open_read(e: Mapping[str, Any]) -> bool | None:
    args = e.get("args")
    flags = args.get("flags") if args.__class__ is dict else None
    info = _FLAG_CACHE.get(flags) if flags.__class__ is str else None
    if info is None:
        info = _flag_info(e)
    if info is None:
        return None
    return info[1] and e.get("type") in _OPEN_TYPES


def _is_open_write(e: Mapping[str, Any]) -> bool | None:
    args = e.get("args")
    flags = args.get("flags") if args.__class__ is dict else None
    info = _FLAG_CACHE.get(flags) if flags.__class__ is str else None
    if info is None:
        info = _flag_info(e)
    if info is None:
        return None
    return info[2] and e.get("type") in _OPEN_TYPES


def _is_open_exec(e: Mapping[str, Any]) -> bool | None:
    flags = _flags(e)
    if flags is None:
        return None
    mode = _args(e).get("mode")
    if isinstance(mode, str):
        try:
            mode = int(mode, 8) if not mode.startswith("0x") else int(mode, 16)
        except ValueError:
            mode = None
    return "O_CREAT" in flags and isinstance(mode, int) and bool(mode & 0o111)


def _arg_text(value: Any) -> str | None:
    if value.__class__ is str:
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return str(value)


def _evt_arg(e: Mapping[str, Any], name: str) -> str | None:
    args = e.get("args")
    if args.__class__ is not dict:
        args = _args(e)
    if name.isdigit():
        keys = list(args)
        index = int(name)
        return _arg_text(args[keys[index]]) if index < len(keys) else None
    return _arg_text(args.get(name))


def _evt_rawarg(e: Mapping[str, Any], name: str) -> Any:
    raw = e.get("rawargs")
    if isinstance(raw, Mapping) and name in raw:
        return raw[name]
    value = _args(e).get(name)
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return value
    return value


def _evt_args(e: Mapping[str, Any]) -> str | None:
    args = _args(e)
    if not args:
        return None
    return " ".join(f"{k}={_arg_text(v)}" for k, v in args.items())


def _evt_buffer(e: Mapping[str, Any]) -> str | None:
    data = _args(e).get("data")
    return data if isinstance(data, str) else None


def utc_time(ns: int) -> tuple[_dt.datetime, int] | None:
    """Nanoseconds since the epoch as a UTC time and its nanoseconds; None for a number that
    is no date (before year 1 or after 9999: an event's `ts` is input, whatever its value)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    try:
        return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC), nanos
    except (ValueError, OverflowError, OSError):
        return None


def time_text(ns: int) -> str:
    """`HH:MM:SS.nnnnnnnnn` (UTC), or the number itself when it is no date."""
    when = utc_time(ns)
    return str(ns) if when is None else f"{when[0]:%H:%M:%S}.{when[1]:09d}"


def time_iso(ns: int, zone: str = "Z") -> str:
    """ISO 8601 with nanoseconds (UTC, written as `zone`), or the number itself."""
    when = utc_time(ns)
    return str(ns) if when is None else f"{when[0]:%Y-%m-%dT%H:%M:%S}.{when[1]:09d}{zone}"


def _time_text(ts: Any) -> str | None:
    return time_text(ts) if isinstance(ts, int) else None


def _time_iso(ts: Any) -> str | None:
    return time_iso(ts, "+0000") if isinstance(ts, int) else None


def _parent(st: ProcessTable, p: Process) -> Process:
    ppid = p.ppid
    if ppid is None:
        return EMPTY_PROCESS
    return st.processes.get(ppid, EMPTY_PROCESS)


def _ancestor_attr(st: ProcessTable, p: Process, n: int, attr: str) -> Any:
    ancestor = st.ancestor(p, n)
    return None if ancestor is None else getattr(ancestor, attr)


def _ancestors_attr(st: ProcessTable, p: Process, attr: str) -> tuple[Any, ...] | None:
    values = tuple(v for a in st.ancestors(p) if (v := getattr(a, attr)) is not None)
    return values or None


def _sname(st: ProcessTable, p: Process) -> str | None:
    leader = st.session_leader(p)
    return None if leader is None else leader.name


def _duration(e: Mapping[str, Any], p: Process) -> int | None:
    ts = e.get("ts")
    if not isinstance(ts, int) or p.start_ts is None:
        return None
    return ts - p.start_ts


def _env(p: Process, name: str | None) -> str | None:
    env = p.env
    if env is None:
        return None
    if name is None:
        return " ".join(f"{k}={v}" for k, v in env.items())
    return env.get(name)


def _exe_ctime_since_start(p: Process) -> int | None:
    if p.exe_ino_ctime is None or p.start_ts is None:
        return None
    return p.start_ts - p.exe_ino_ctime


def _is_vpgid_leader(p: Process) -> bool | None:
    if p.vpid is None or p.vpgid is None:
        return None
    return p.vpid == p.vpgid


def _container_mounts(c: Container) -> str | None:
    if c.mounts is None:
        return None
    return ",".join(
        f"{m.get('source', '')}:{m.get('dest', '')}:{m.get('mode', '')}:"
        f"{str(m.get('rw', True)).lower()}:{m.get('propagation', '')}"
        for m in c.mounts
    )


def _container_mount(c: Container, dest: str, what: str) -> Any:
    if c.mounts is None:
        return None
    for mount in c.mounts:
        if mount.get("dest") == dest:
            return mount.get(what)
    return None


def _k8s_label(c: Container, name: str | None) -> str | None:
    labels = c.k8s_labels
    if labels is None:
        return None
    if name is None:
        return ", ".join(f"{k}:{v}" for k, v in labels.items())
    value = labels.get(name)
    return None if value is None else str(value)


_HOSTNAME = socket.gethostname()


# -- k8s audit helpers ---------------------------------------------------------------------
def _json_text(value: Any) -> str | None:
    """A JSON value as the k8saudit plugin renders it: strings bare, the rest as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def _ka(e: Mapping[str, Any], *keys: str) -> str | None:
    if "auditID" not in e:
        return None
    value: Any = e
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
        if value is None:
            return None
    return _json_text(value)


def _ka_values(e: Mapping[str, Any], index: int | None, *keys: str) -> list[Any] | None:
    """Walk `keys`, fanning out over arrays (or picking `index`), like getValuesRecursive."""
    if "auditID" not in e:
        return None

    def walk(value: Any, path: tuple[str, ...]) -> list[Any] | None:
        for i, key in enumerate(path):
            if isinstance(value, list):
                if index is None:
                    out: list[Any] = []
                    for item in value:
                        found = walk(item, path[i:])
                        out.extend(found if found is not None else [None])
                    return out
                if index >= len(value):
                    return None
                value = value[index]
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
            if value is None:
                return None
        return [value]

    return walk(e, keys)


def _ka_list(e: Mapping[str, Any], index: str | None, *keys: str) -> tuple[str, ...] | None:
    values = _ka_values(e, _index(index), *keys)
    if values is None:
        return None
    out = tuple(t for v in values if (t := _json_text(v)) is not None)
    return out or None


def _ka_flat_list(e: Mapping[str, Any], index: str | None, *keys: str) -> tuple[str, ...] | None:
    """Like _ka_list, but arrays found at the end are flattened (rules.verbs, sourceIPs)."""
    values = _ka_values(e, _index(index), *keys)
    if values is None:
        return None
    out: list[str] = []
    for v in values:
        if isinstance(v, list):
            out.extend(t for item in v if (t := _json_text(item)) is not None)
        elif (t := _json_text(v)) is not None:
            out.append(t)
    return tuple(out) or None


def _index(arg: str | None) -> int | None:
    if arg is None:
        return None
    try:
        return int(arg)
    except ValueError:
        return None


def _ka_images(e: Mapping[str, Any], index: str | None, group: str) -> tuple[str, ...] | None:
    return _ka_list(e, index, "requestObject", "spec", group, "image")


def _ka_repositories(e: Mapping[str, Any], index: str | None, group: str) -> tuple[str, ...] | None:
    images = _ka_images(e, index, group)
    if images is None:
        return None
    # the plugin cuts at the first ':' then '@' (so a registry port is cut too; kept faithful)
    return tuple(image.split(":")[0].split("@")[0] for image in images)


def _ka_container_privileged(e: Mapping[str, Any]) -> str | None:
    values = _ka_values(e, None, "requestObject", "spec", "containers", "securityContext")
    if values is None:
        return None
    for ctx in values:
        if isinstance(ctx, Mapping) and ctx.get("privileged") is True:
            return "true"
    return "false"


def _ka_subject_names(e: Mapping[str, Any], kind: str) -> tuple[str, ...] | None:
    subjects = _ka_values(e, None, "requestObject", "subjects")
    if subjects is None or not subjects or not isinstance(subjects[0], list):
        return None
    names = []
    for subject in subjects[0]:
        if not isinstance(subject, Mapping):
            continue
        if kind == "NamespacedServiceAccount":
            if subject.get("kind") == "ServiceAccount":
                names.append(f"{subject.get('namespace', '')}:{subject.get('name', '')}")
        elif subject.get("kind") == kind and subject.get("name") is not None:
            names.append(str(subject.get("name")))
    return tuple(names) or None


def _ka_uri_param(e: Mapping[str, Any], name: str) -> str | None:
    uri = _ka(e, "requestURI")
    if uri is None:
        return None
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query).get(name)
    return values[0] if values else None


def _ka_volume_hostpath(e: Mapping[str, Any], arg: str) -> str | None:
    paths = _ka_list(e, None, "requestObject", "spec", "volumes", "hostPath", "path")
    if paths is None:
        return None
    prefix = arg.endswith("*")
    for path in paths:
        if (prefix and path.startswith(arg[:-1])) or path == arg:
            return "true"
    return "false"


def _ka_volume_types(e: Mapping[str, Any], index: str | None) -> tuple[str, ...] | None:
    volumes = _ka_values(e, _index(index), "requestObject", "spec", "volumes")
    if volumes is None:
        return None
    items = volumes[0] if volumes and isinstance(volumes[0], list) else volumes
    out = [k for v in items if isinstance(v, Mapping) for k in v if k != "name"]
    return tuple(out) or None


def _ka_target_pod_name(e: Mapping[str, Any]) -> str | None:
    if _ka(e, "objectRef", "resource") == "pods" and not _ka(e, "objectRef", "subresource"):
        return _ka(e, "responseObject", "metadata", "name")
    return None


def _parse_rfc3339_ns(text: str) -> int | None:
    try:
        base, _, frac = text.rstrip("Z").partition(".")
        when = _dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC)
    except ValueError:
        return None
    digits = "".join(ch for ch in frac if ch.isdigit())[:9].ljust(9, "0")
    return int(when.timestamp()) * 1_000_000_000 + int(digits)


def _jevt_rawtime(e: Mapping[str, Any]) -> int | None:
    for key in ("stageTimestamp", "requestReceivedTimestamp"):
        value = e.get(key)
        if isinstance(value, str):
            parsed = _parse_rfc3339_ns(value)
            if parsed is not None:
                return parsed
    return None


def _jevt_value(e: Mapping[str, Any], pointer: str) -> str | None:
    if pointer == "":
        return _json_text(dict(e))
    if not pointer.startswith("/"):
        return None
    value: Any = e
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, Mapping):
            value = value.get(token)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
        if value is None:
            return None
    return _json_text(value)


HELPERS: dict[str, Any] = {
    name: value
    for name, value in globals().items()
    if name.startswith("_") and callable(value) and not name.startswith("__")
}
HELPERS["_E"] = _E
HELPERS["_HOSTNAME"] = _HOSTNAME


# -- the registry --------------------------------------------------------------------------
_REGISTRY: dict[str, FieldSpec] = {}


def _add(
    name: str,
    source: str,
    ftype: FieldType,
    description: str,
    code: ExprFn | str,
    *,
    arg: ArgMode = ArgMode.NONE,
    is_list: bool = False,
    either_without_arg: bool = False,
) -> None:
    fn: ExprFn = _template(code) if isinstance(code, str) else code
    _REGISTRY[name] = FieldSpec(
        name, source, ftype, description, fn, arg, is_list, either_without_arg
    )


def _fdk(key: str) -> str:
    """Code reading one key of the event's fd object."""
    return f"(e.get('fd') or _E).get({key!r})"


def _template(code: str) -> ExprFn:
    """`code` with `{arg!r}` replaced by the field argument (or constant code)."""

    def expr(arg: str | None) -> str:
        return code.format(arg=arg) if "{arg" in code else code

    return expr


def _ancestor_code(attr: str) -> ExprFn:
    def expr(arg: str | None) -> str:
        if arg is None:
            return f"_ancestors_attr(st, p, {attr!r})"
        return f"_ancestor_attr(st, p, {int(arg)}, {attr!r})"

    return expr


S, N, B = FieldType.STRING, FieldType.INT, FieldType.BOOL
SYS, KA = "syscall", "k8s_audit"

# evt.*
_add("evt.type", SYS, S, "the syscall name (exit events only, as Falco >= 0.42)", "e.get('type')")
_add("evt.num", SYS, N, "the event number", "e.get('num')")
_add("evt.time", SYS, S, "event time, HH:MM:SS.nnnnnnnnn UTC", "_time_text(e.get('ts'))")
_add("evt.time.iso8601", SYS, S, "event time, ISO 8601", "_time_iso(e.get('ts'))")
_add("evt.datetime", SYS, S, "event time, ISO 8601", "_time_iso(e.get('ts'))")
_add("evt.rawtime", SYS, N, "event time, ns since the epoch", "e.get('ts')")
_add("evt.hostname", SYS, S, "the host name", "_HOSTNAME")
_add("evt.dir", SYS, S, "always '<' (exit events only)", "'<'")
_add("evt.source", SYS, S, "the event source", "'syscall'")
_add("evt.res", SYS, S, "SUCCESS or the errno name (ENOENT)", "_evt_res(e)")
_add("evt.rawres", SYS, N, "the return value", "_evt_rawres(e)")
_add("evt.failed", SYS, B, "the call returned an error", "_evt_failed(e)")
_add("evt.is_open_read", SYS, B, "an open for reading", "_is_open_read(e)")
_add("evt.is_open_write", SYS, B, "an open for writing", "_is_open_write(e)")
_add("evt.is_open_exec", SYS, B, "an open that creates an executable", "_is_open_exec(e)")
_add("evt.args", SYS, S, "all arguments as name=value", "_evt_args(e)")
_add("evt.buffer", SYS, S, "the data argument of read/write calls", "_evt_buffer(e)")
_add(
    "evt.arg",
    SYS,
    S,
    "one argument by name or position: evt.arg.flags, evt.arg[0]",
    "_evt_arg(e, {arg!r})",
    arg=ArgMode.REQUIRED,
)
_add(
    "evt.rawarg",
    SYS,
    S,
    "one argument, unformatted (numbers as numbers)",
    "_evt_rawarg(e, {arg!r})",
    arg=ArgMode.REQUIRED,
)

# proc.* and thread.*
_PROC_SIMPLE = {
    "proc.pid": (N, "pid", "process id"),
    "proc.ppid": (N, "ppid", "parent process id"),
    "proc.vpid": (N, "vpid", "process id in its pid namespace"),
    "proc.vpgid": (N, "vpgid", "process group id in its pid namespace"),
    "proc.sid": (N, "sid", "session id"),
    "proc.name": (S, "name", "the command (comm), at most 15 characters"),
    "proc.exe": (S, "exe", "argv[0]"),
    "proc.exepath": (S, "exepath", "the full path of the executable"),
    "proc.args": (S, "args_text", "the arguments (argv[1:]) joined by spaces"),
    "proc.cmdline": (S, "cmdline", "proc.name and proc.args"),
    "proc.cwd": (S, "cwd", "working directory"),
    "proc.tty": (N, "tty", "controlling terminal, 0 if none"),
    "proc.pid.ts": (N, "start_ts", "process start time (ns)"),
    "proc.is_exe_upper_layer": (B, "is_exe_upper_layer", "executable in an overlay upper layer"),
    "proc.is_exe_from_memfd": (B, "is_exe_from_memfd", "executable is a memfd"),
    "proc.is_exe_writable": (B, "is_exe_writable", "executable writable by the process user"),
    "proc.exe_ino.ctime": (N, "exe_ino_ctime", "ctime of the executable's inode (ns)"),
    "proc.exe_ino.mtime": (N, "exe_ino_mtime", "mtime of the executable's inode (ns)"),
    "thread.tid": (N, "tid", "thread id"),
    "thread.vtid": (N, "vtid", "thread id in its pid namespace"),
    "thread.cap_effective": (S, "cap_effective", "effective capabilities"),
    "thread.cap_permitted": (S, "cap_permitted", "permitted capabilities"),
    "thread.cap_inheritable": (S, "cap_inheritable", "inheritable capabilities"),
    "user.uid": (N, "uid", "user id"),
    "user.name": (S, "user", "user name"),
    "user.loginuid": (N, "loginuid", "audit login uid, -1 if unset"),
    "user.loginname": (S, "loginname", "name of the login user"),
    "user.homedir": (S, "user_homedir", "home directory of the user"),
    "user.shell": (S, "user_shell", "shell of the user"),
    "group.gid": (N, "gid", "group id"),
    "group.name": (S, "group", "group name"),
}
for _name, (_type, _attr, _desc) in _PROC_SIMPLE.items():
    _add(_name, SYS, _type, _desc, f"p.{_attr}")

for _name, _attr, _type in (
    ("proc.pname", "name", S),
    ("proc.pexe", "exe", S),
    ("proc.pexepath", "exepath", S),
    ("proc.pcmdline", "cmdline", S),
    ("proc.pargs", "args_text", S),
    ("proc.pvpid", "vpid", N),
):
    _add(_name, SYS, _type, f"the parent's {_attr}", f"_parent(st, p).{_attr}")

for _name, _attr, _type in (
    ("proc.aname", "name", S),
    ("proc.apid", "pid", N),
    ("proc.aexe", "exe", S),
    ("proc.aexepath", "exepath", S),
    ("proc.acmdline", "cmdline", S),
):
    _add(
        _name,
        SYS,
        _type,
        f"the {_attr} of the n-th ancestor ([1] = parent); without [n]: any ancestor, not self",
        _ancestor_code(_attr),
        arg=ArgMode.OPTIONAL,
        either_without_arg=True,
    )

_add("proc.sname", SYS, S, "name of the session leader", "_sname(st, p)")
_add("proc.duration", SYS, N, "ns since the process started", "_duration(e, p)")
_add("proc.is_vpgid_leader", SYS, B, "process group leader in its namespace", "_is_vpgid_leader(p)")
_add(
    "proc.exe_ino.ctime_duration_proc_start",
    SYS,
    N,
    "ns between the executable's ctime and the process start",
    "_exe_ctime_since_start(p)",
)
_add(
    "proc.env",
    SYS,
    S,
    "environment; proc.env[NAME] is one variable",
    "_env(p, {arg!r})",
    arg=ArgMode.OPTIONAL,
)

# fd.*
_add("fd.num", SYS, N, "file descriptor number (-1 on failure)", _fdk("num"))
_add(
    "fd.type",
    SYS,
    S,
    "file, directory, ipv4, ipv6, unix, pipe, ...",
    _fdk("type"),
)
_add("fd.typechar", SYS, S, "one letter for fd.type (f, d, 4, 6, u, p, ...)", "_fd_typechar(e)")
_add("fd.name", SYS, S, "full path, or the connection tuple for sockets", "_fd_name(e)")
_add("fd.nameraw", SYS, S, "the name as passed to the call", _fdk("nameraw"))
_add("fd.directory", SYS, S, "the directory of a file", "_fd_directory(e)")
_add("fd.filename", SYS, S, "the file name without its directory", "_fd_filename(e)")
_add("fd.cip", SYS, FieldType.IPADDR, "client IP", _fdk("cip"))
_add("fd.sip", SYS, FieldType.IPADDR, "server IP", _fdk("sip"))
_add("fd.cport", SYS, N, "client port", _fdk("cport"))
_add("fd.sport", SYS, N, "server port", _fdk("sport"))
_add("fd.lip", SYS, FieldType.IPADDR, "local IP", "_fd_local_remote(e, True, 'ip')")
_add("fd.rip", SYS, FieldType.IPADDR, "remote IP", "_fd_local_remote(e, False, 'ip')")
_add("fd.lport", SYS, N, "local port", "_fd_local_remote(e, True, 'port')")
_add("fd.rport", SYS, N, "remote port", "_fd_local_remote(e, False, 'port')")
_add(
    "fd.cnet",
    SYS,
    FieldType.IPNET,
    "client IP, compared with networks",
    _fdk("cip"),
)
_add(
    "fd.snet",
    SYS,
    FieldType.IPNET,
    "server IP, compared with networks",
    _fdk("sip"),
)
_add(
    "fd.lnet",
    SYS,
    FieldType.IPNET,
    "local IP, compared with networks",
    "_fd_local_remote(e, True, 'ip')",
)
_add(
    "fd.rnet",
    SYS,
    FieldType.IPNET,
    "remote IP, compared with networks",
    "_fd_local_remote(e, False, 'ip')",
)
_add("fd.l4proto", SYS, S, "tcp, udp, icmp or raw", "(e.get('fd') or _E).get('l4proto')")
_add("fd.sockfamily", SYS, S, "ip or unix", "_fd_sockfamily(e)")
_add("fd.connected", SYS, B, "the socket is connected", _fdk("connected"))
_add(
    "fd.name_changed",
    SYS,
    B,
    "the name changed in this event",
    _fdk("name_changed"),
)
_add("fd.is_server", SYS, B, "the process is the server side", _fdk("is_server"))
_add("fd.dev", SYS, N, "device number", _fdk("dev"))
_add("fd.ino", SYS, N, "inode number", _fdk("ino"))
for _side in ("cip", "sip", "lip", "rip"):
    _add(
        f"fd.{_side}.name",
        SYS,
        S,
        f"DNS name of {_side}",
        _fdk(f"{_side}_name"),
    )
_FD_EITHER = {
    "fd.ip": (FieldType.IPADDR, "ip", "client or server IP"),
    "fd.port": (N, "port", "client or server port"),
    "fd.net": (FieldType.IPNET, "ip", "client or server IP, compared with networks"),
}
for _name, (_type, _what, _desc) in _FD_EITHER.items():
    _add(_name, SYS, _type, _desc, f"_fd_either(e, {_what!r})", either_without_arg=True)

# container.* and k8s.*
_CONTAINER_SIMPLE = {
    "container.id": (S, "id", "container id (12 hex digits), 'host' on the host"),
    "container.name": (S, "name", "container name, 'host' on the host"),
    "container.image": (S, "image", "image reference"),
    "container.image.repository": (S, "image_repository", "image repository"),
    "container.image.tag": (S, "image_tag", "image tag"),
    "container.image.digest": (S, "image_digest", "image digest"),
    "container.image.id": (S, "image_id", "image id"),
    "container.privileged": (B, "privileged", "the container runs privileged"),
    "container.start_ts": (N, "start_ts", "container start time (ns)"),
    "container.type": (S, "type", "docker, containerd, cri-o, podman, ..."),
    "container.ip": (FieldType.IPADDR, "ip", "container IP"),
    "k8s.ns.name": (S, "k8s_ns", "Kubernetes namespace"),
    "k8s.pod.name": (S, "k8s_pod", "Kubernetes pod name"),
    "k8s.pod.uid": (S, "k8s_pod_uid", "Kubernetes pod uid"),
}
for _name, (_type, _attr, _desc) in _CONTAINER_SIMPLE.items():
    _add(_name, SYS, _type, _desc, f"p.container.{_attr}")
_add(
    "container.mounts",
    SYS,
    S,
    "all mounts, source:dest:mode:rw:propagation",
    "_container_mounts(p.container)",
)
_add(
    "container.mount.dest",
    SYS,
    S,
    "the mount at a destination: container.mount.dest[/etc] is its source",
    "_container_mount(p.container, {arg!r}, 'source')",
    arg=ArgMode.REQUIRED,
)
_add(
    "container.mount.source",
    SYS,
    S,
    "the destination of the mount with this source",
    "_container_mount(p.container, {arg!r}, 'dest')",
    arg=ArgMode.REQUIRED,
)
_add(
    "k8s.pod.label",
    SYS,
    S,
    "one pod label: k8s.pod.label[app]",
    "_k8s_label(p.container, {arg!r})",
    arg=ArgMode.REQUIRED,
)
_add("k8s.pod.labels", SYS, S, "all pod labels", "_k8s_label(p.container, None)")

# k8s_audit: ka.* and jevt.*
_KA_KEYS = {
    "ka.auditid": ("auditID",),
    "ka.stage": ("stage",),
    "ka.auth.decision": ("annotations", "authorization.k8s.io/decision"),
    "ka.auth.reason": ("annotations", "authorization.k8s.io/reason"),
    "ka.auth.openshift.decision": ("annotations", "authentication.openshift.io/decision"),
    "ka.auth.openshift.username": ("annotations", "authentication.openshift.io/username"),
    "ka.validations.admission.policy.failure": (
        "annotations",
        "validation.policy.admission.k8s.io/validation_failure",
    ),
    "ka.security.pod.violations": ("annotations", "pod-security.kubernetes.io/audit-violations"),
    "ka.user.name": ("user", "username"),
    "ka.impuser.name": ("impersonatedUser", "username"),
    "ka.verb": ("verb",),
    "ka.uri": ("requestURI",),
    "ka.target.name": ("objectRef", "name"),
    "ka.target.namespace": ("objectRef", "namespace"),
    "ka.target.resource": ("objectRef", "resource"),
    "ka.target.subresource": ("objectRef", "subresource"),
    "ka.req.binding.role": ("requestObject", "roleRef", "name"),
    "ka.req.configmap.name": ("objectRef", "name"),
    "ka.req.configmap.obj": ("requestObject", "data"),
    "ka.req.pod.host_ipc": ("requestObject", "spec", "hostIPC"),
    "ka.req.pod.host_network": ("requestObject", "spec", "hostNetwork"),
    "ka.req.container.host_network": ("requestObject", "spec", "hostNetwork"),
    "ka.req.pod.host_pid": ("requestObject", "spec", "hostPID"),
    "ka.req.pod.run_as_user": ("requestObject", "spec", "securityContext", "runAsUser"),
    "ka.req.pod.run_as_group": ("requestObject", "spec", "securityContext", "runAsGroup"),
    "ka.req.pod.fs_group": ("requestObject", "spec", "securityContext", "fsGroup"),
    "ka.req.service.type": ("requestObject", "spec", "type"),
    "ka.resp.name": ("responseObject", "metadata", "name"),
    "ka.response.code": ("responseStatus", "code"),
    "ka.response.reason": ("responseStatus", "reason"),
    "ka.useragent": ("userAgent",),
    "ka.cluster.name": ("annotations", "cluster_name"),
}
for _name, _keys in _KA_KEYS.items():
    _add(_name, KA, S, "k8s audit: " + "/".join(_keys), f"_ka(e, *{_keys!r})")

_KA_LISTS = {
    "ka.user.groups": ("user", "groups"),
    "ka.req.binding.subjects": ("requestObject", "subjects"),
    "ka.req.role.rules": ("requestObject", "rules"),
    "ka.req.pod.supplemental_groups": (
        "requestObject",
        "spec",
        "securityContext",
        "supplementalGroups",
    ),
}
for _name, _keys in _KA_LISTS.items():
    _add(
        _name,
        KA,
        S,
        "k8s audit list: " + "/".join(_keys),
        f"_ka_flat_list(e, None, *{_keys!r})",
        is_list=True,
    )
for _name, _keys in {
    "ka.req.role.rules.apiGroups": ("requestObject", "rules", "apiGroups"),
    "ka.req.role.rules.nonResourceURLs": ("requestObject", "rules", "nonResourceURLs"),
    "ka.req.role.rules.verbs": ("requestObject", "rules", "verbs"),
    "ka.req.role.rules.resources": ("requestObject", "rules", "resources"),
    "ka.req.service.ports": ("requestObject", "spec", "ports"),
    "ka.req.pod.volumes.hostpath": ("requestObject", "spec", "volumes", "hostPath", "path"),
    "ka.req.pod.volumes.flexvolume_driver": (
        "requestObject",
        "spec",
        "volumes",
        "flexVolume",
        "driver",
    ),
    "ka.sourceips": ("sourceIPs",),
}.items():
    _add(
        _name,
        KA,
        S,
        "k8s audit list: " + "/".join(_keys),
        "_ka_flat_list(e, {arg!r}, *" + repr(_keys) + ")",
        arg=ArgMode.OPTIONAL,
        is_list=True,
    )
_add(
    "ka.req.pod.volumes.volume_type",
    KA,
    S,
    "volume types of the pod",
    "_ka_volume_types(e, {arg!r})",
    arg=ArgMode.OPTIONAL,
    is_list=True,
)
for _name, _what in (
    ("user_names", "User"),
    ("serviceaccount_names", "ServiceAccount"),
    ("serviceaccount_ns_names", "NamespacedServiceAccount"),
    ("group_names", "Group"),
):
    _add(
        f"ka.req.binding.subjects.{_name}",
        KA,
        S,
        f"binding subjects of kind {_what}",
        f"_ka_subject_names(e, {_what!r})",
        is_list=True,
    )
_add(
    "ka.req.binding.subject.has_name",
    KA,
    S,
    "deprecated: always true",
    "'true'",
    arg=ArgMode.REQUIRED,
)
_add(
    "ka.uri.param",
    KA,
    S,
    "a query parameter of the request URI",
    "_ka_uri_param(e, {arg!r})",
    arg=ArgMode.REQUIRED,
)
_add("ka.target.pod.name", KA, S, "the pod name of a pod creation", "_ka_target_pod_name(e)")
_add(
    "ka.req.container.image",
    KA,
    S,
    "image of the first container",
    "(_v[0] if (_v := _ka_images(e, '0', 'containers')) else None)",
)
_add(
    "ka.req.container.image.repository",
    KA,
    S,
    "image repository of the first container",
    "(_v[0] if (_v := _ka_repositories(e, '0', 'containers')) else None)",
)
_add(
    "ka.req.container.privileged",
    KA,
    S,
    "any container is privileged",
    "_ka_container_privileged(e)",
)
_add(
    "ka.req.volume.hostpath",
    KA,
    S,
    "a hostPath volume matches the argument",
    "_ka_volume_hostpath(e, {arg!r})",
    arg=ArgMode.REQUIRED,
)

_CONTAINER_SUBFIELDS = {
    "name": ("name",),
    "command": ("command",),
    "args": ("args",),
    "privileged": ("securityContext", "privileged"),
    "allow_privilege_escalation": ("securityContext", "allowPrivilegeEscalation"),
    "read_only_fs": ("securityContext", "readOnlyRootFilesystem"),
    "run_as_user": ("securityContext", "runAsUser"),
    "run_as_group": ("securityContext", "runAsGroup"),
    "proc_mount": ("securityContext", "procMount"),
    "add_capabilities": ("securityContext", "capabilities", "add"),
    "host_port": ("ports", "hostPort"),
}
for _group in ("containers", "initContainers", "ephemeralContainers"):
    _add(
        f"ka.req.pod.{_group}.image",
        KA,
        S,
        f"images of the pod's {_group}",
        "_ka_images(e, {arg!r}, " + repr(_group) + ")",
        arg=ArgMode.OPTIONAL,
        is_list=True,
    )
    _add(
        f"ka.req.pod.{_group}.image.repository",
        KA,
        S,
        f"image repositories of the pod's {_group}",
        "_ka_repositories(e, {arg!r}, " + repr(_group) + ")",
        arg=ArgMode.OPTIONAL,
        is_list=True,
    )
    for _sub, _keys in _CONTAINER_SUBFIELDS.items():
        _add(
            f"ka.req.pod.{_group}.{_sub}",
            KA,
            S,
            f"{_sub} of the pod's {_group}",
            "_ka_flat_list(e, {arg!r}, 'requestObject', 'spec', " + f"{_group!r}, *{_keys!r})",
            arg=ArgMode.OPTIONAL,
            is_list=True,
        )

_add("jevt.time", KA, S, "event time, HH:MM:SS.nnnnnnnnn", "_time_text(_jevt_rawtime(e))")
_add("jevt.time.iso8601", KA, S, "event time, ISO 8601", "_time_iso(_jevt_rawtime(e))")
_add("jevt.rawtime", KA, N, "event time, ns since the epoch", "_jevt_rawtime(e)")
_add("jevt.obj", KA, S, "the whole event as JSON", "_json_text(dict(e))")
_add(
    "jevt.value",
    KA,
    S,
    "the value at a JSON pointer: jevt.value[/user/username]",
    "_jevt_value(e, {arg!r})",
    arg=ArgMode.REQUIRED,
)
_add("evt.time", KA, S, "event time, HH:MM:SS.nnnnnnnnn", "_time_text(_jevt_rawtime(e))")

# `evt.*` of plugin sources: Falco exposes a few generic event fields for every source.
_GENERIC_KA = {
    "evt.rawtime": (N, "_jevt_rawtime(e)"),
    "evt.time.iso8601": (S, "_time_iso(_jevt_rawtime(e))"),
    "evt.hostname": (S, "_HOSTNAME"),
    "evt.source": (S, "'k8s_audit'"),
    "evt.num": (N, "e.get('_num')"),
}
_KA_EVT: dict[str, FieldSpec] = {
    name: FieldSpec(name, KA, t, "generic event field", _template(c))
    for name, (t, c) in _GENERIC_KA.items()
}


def field_names(source: str) -> list[str]:
    """Every field of a source, sorted (for `skanse rules fields` and docs)."""
    names = {n for n, s in _REGISTRY.items() if s.source == source}
    if source == KA:
        names |= set(_KA_EVT) | {"evt.time"}
    return sorted(names)


def spec_for(name: str, source: str) -> FieldSpec | None:
    """The field `name` of `source`, also for the dotted-argument forms (evt.arg.flags)."""
    if source == KA:
        if name in _KA_EVT:
            return _KA_EVT[name]
        if name == "evt.time":
            return FieldSpec(name, KA, S, "event time", _template("_time_text(_jevt_rawtime(e))"))
    spec = _REGISTRY.get(name)
    if spec is not None and (spec.source == source or (spec.name == "evt.time" and source == KA)):
        return spec
    return None


def resolve_field(name: str, arg: str | None, source: str) -> Accessor:
    """The accessor for `name[arg]` in `source`, or UnknownFieldError (Falco's wording)."""
    spec = spec_for(name, source)
    if spec is None and source == SYS:
        for prefix in ("evt.arg.", "evt.rawarg."):
            if name.startswith(prefix) and len(name) > len(prefix) and arg is None:
                base = _REGISTRY[prefix[:-1]]
                key = name[len(prefix) :]
                return Accessor(name, base.code(key), base.type)
    if spec is None:
        raise UnknownFieldError(f"filter_check called with nonexistent field {name}")
    text = name if arg is None else f"{name}[{arg}]"
    if spec.arg is ArgMode.NONE and arg is not None:
        raise UnknownFieldError(f"field '{name}' does not accept an argument")
    if spec.arg is ArgMode.REQUIRED and arg is None:
        raise UnknownFieldError(f"field '{name}' requires an argument")
    if spec.name in ("proc.aname", "proc.apid", "proc.aexe", "proc.aexepath", "proc.acmdline"):
        if arg is not None and not arg.isdigit():
            raise UnknownFieldError(f"invalid index '{arg}' for field '{name}'")
    either = spec.either_without_arg and arg is None
    return Accessor(text, spec.code(arg), spec.type, spec.is_list, either)
