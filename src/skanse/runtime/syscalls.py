"""The syscalls the BPF sensor can report, and how their records become engine events.

`SYSCALLS` maps each supported event type (Falco's syscall name) to its x86-64 number and to
the way the kernel program reads its arguments (`SyscallClass`). `decode_syscall` turns one
syscall record into an event of docs/runtime-events.md, with arguments named and rendered
as Falco's exit events name and print them (`flags=O_RDONLY|O_CLOEXEC`,
`request=PTRACE_ATTACH`, `domain=AF_PACKET`) and the `fd` object the `fd.*` fields read.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from skanse.rules.paths import concatenate_paths, normalize_path
from skanse.runtime.records import (
    SOCK,
    Item,
    Record,
    SyscallClass,
    c_string,
    path_from_components,
)

__all__ = ["SYSCALLS", "DecodeContext", "SyscallInfo", "decode_syscall", "syscall_names"]

C = SyscallClass


class DecodeContext(Protocol):
    """What a decoder may ask about the calling process (computed only when needed)."""

    def cwd(self) -> str | None: ...

    def username(self, uid: int) -> str: ...


@dataclass(frozen=True, slots=True)
class SyscallInfo:
    name: str
    nr: int  # x86-64
    cls: SyscallClass


_TABLE: tuple[tuple[str, int, SyscallClass], ...] = (
    ("open", 2, C.PATH0),
    ("creat", 85, C.PATH0),
    ("openat", 257, C.DIRFD_PATH1),
    ("openat2", 437, C.OPENAT2),
    ("execve", 59, C.EXEC),
    ("execveat", 322, C.EXEC),
    ("connect", 42, C.CONNECT),
    ("accept", 43, C.SOCK_RET),
    ("accept4", 288, C.SOCK_RET),
    ("listen", 50, C.SOCK_FD),
    ("socket", 41, C.PLAIN),
    ("sendto", 44, C.SENDTO),
    ("sendmsg", 46, C.SENDMSG),
    ("dup", 32, C.SOCK_RET),
    ("dup2", 33, C.SOCK_RET),
    ("dup3", 292, C.SOCK_RET),
    ("ptrace", 101, C.PLAIN),
    ("memfd_create", 319, C.STR0),
    ("setuid", 105, C.PLAIN),
    ("setgid", 106, C.PLAIN),
    ("setreuid", 113, C.PLAIN),
    ("setregid", 114, C.PLAIN),
    ("setresuid", 117, C.PLAIN),
    ("setresgid", 119, C.PLAIN),
    ("unlink", 87, C.PATH0),
    ("unlinkat", 263, C.DIRFD_PATH1),
    ("rename", 82, C.PATH0_PATH1),
    ("renameat", 264, C.RENAMEAT),
    ("renameat2", 316, C.RENAMEAT),
    ("mkdir", 83, C.PATH0),
    ("mkdirat", 258, C.DIRFD_PATH1),
    ("rmdir", 84, C.PATH0),
    ("chmod", 90, C.PATH0),
    ("fchmod", 91, C.PLAIN),
    ("fchmodat", 268, C.DIRFD_PATH1),
    ("link", 86, C.PATH0_PATH1),
    ("linkat", 265, C.RENAMEAT),
    ("symlink", 88, C.PATH0_PATH1),
    ("symlinkat", 266, C.SYMLINKAT),
    ("mount", 165, C.MOUNT),
    ("umount2", 166, C.PATH0),
    ("init_module", 175, C.STR2),
    ("finit_module", 313, C.STR1),
    ("bpf", 321, C.PLAIN),
    ("setns", 308, C.PLAIN),
    ("unshare", 272, C.PLAIN),
    ("userfaultfd", 323, C.PLAIN),
    ("chdir", 80, C.PATH0),
    ("fchdir", 81, C.PLAIN),
    ("chroot", 161, C.PATH0),
    ("kill", 62, C.PLAIN),
    ("tgkill", 234, C.PLAIN),
    ("capset", 126, C.PLAIN),
    ("pivot_root", 155, C.PATH0_PATH1),
)

SYSCALLS: Mapping[str, SyscallInfo] = {name: SyscallInfo(name, nr, cls) for name, nr, cls in _TABLE}
_BY_NR: dict[int, SyscallInfo] = {info.nr: info for info in SYSCALLS.values()}

# always traced: the process table needs every exec (the fork and exit tracepoints are
# separate programs)
STATE_SYSCALLS = frozenset({"execve", "execveat"})


def syscall_names() -> frozenset[str]:
    return frozenset(SYSCALLS)


def info_for(nr: int) -> SyscallInfo | None:
    return _BY_NR.get(nr)


# -- rendering as Falco prints arguments ------------------------------------------------
def _flag_text(value: int, table: tuple[tuple[int, str], ...], zero: str | None = None) -> str:
    names = [name for bit, name in table if bit and value & bit == bit]
    if not names and zero is not None:
        return zero
    return "|".join(names) if names else str(value)


_OPEN_FLAGS: tuple[tuple[int, str], ...] = (
    (os.O_CREAT, "O_CREAT"),
    (os.O_EXCL, "O_EXCL"),
    (os.O_NOCTTY, "O_NOCTTY"),
    (os.O_TRUNC, "O_TRUNC"),
    (os.O_APPEND, "O_APPEND"),
    (os.O_NONBLOCK, "O_NONBLOCK"),
    (os.O_DSYNC, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (os.O_DIRECT, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (os.O_DIRECTORY, "O_DIRECTORY"),
    (os.O_NOFOLLOW, "O_NOFOLLOW"),
    (os.O_NOATIME, "O_NOATIME"),
    (os.O_CLOEXEC, "O_CLOEXEC"),
    (0o4000000, "O_SYNC"),
    (os.O_PATH, "O_PATH"),
    (0o20000000, "O_TMPFILE"),
)


def open_flags_text(flags: int) -> str:
    access = flags & 3
    first = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_RDWR")[access]
    rest = [name for bit, name in _OPEN_FLAGS if flags & bit == bit]
    return "|".join([first, *rest])


def _mode_octal(mode: int) -> str:
    return f"0{mode & 0o7777:o}"


_MODE_FLAGS = (
    (0o4000, "S_ISUID"),
    (0o2000, "S_ISGID"),
    (0o1000, "S_ISVTX"),
    (0o400, "S_IRUSR"),
    (0o200, "S_IWUSR"),
    (0o100, "S_IXUSR"),
    (0o40, "S_IRGRP"),
    (0o20, "S_IWGRP"),
    (0o10, "S_IXGRP"),
    (0o4, "S_IROTH"),
    (0o2, "S_IWOTH"),
    (0o1, "S_IXOTH"),
)

_PTRACE = {
    0: "PTRACE_TRACEME",
    1: "PTRACE_PEEKTEXT",
    2: "PTRACE_PEEKDATA",
    3: "PTRACE_PEEKUSR",
    4: "PTRACE_POKETEXT",
    5: "PTRACE_POKEDATA",
    6: "PTRACE_POKEUSR",
    7: "PTRACE_CONT",
    8: "PTRACE_KILL",
    9: "PTRACE_SINGLESTEP",
    12: "PTRACE_GETREGS",
    13: "PTRACE_SETREGS",
    14: "PTRACE_GETFPREGS",
    15: "PTRACE_SETFPREGS",
    16: "PTRACE_ATTACH",
    17: "PTRACE_DETACH",
    18: "PTRACE_GETFPXREGS",
    19: "PTRACE_SETFPXREGS",
    24: "PTRACE_SYSCALL",
    0x4200: "PTRACE_SETOPTIONS",
    0x4201: "PTRACE_GETEVENTMSG",
    0x4202: "PTRACE_GETSIGINFO",
    0x4203: "PTRACE_SETSIGINFO",
    0x4204: "PTRACE_GETREGSET",
    0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE",
    0x4207: "PTRACE_INTERRUPT",
    0x4208: "PTRACE_LISTEN",
    0x4209: "PTRACE_PEEKSIGINFO",
    0x420A: "PTRACE_GETSIGMASK",
    0x420B: "PTRACE_SETSIGMASK",
    0x420C: "PTRACE_SECCOMP_GET_FILTER",
    0x420E: "PTRACE_GET_SYSCALL_INFO",
}

_SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET"}
_SOCK_TYPE_FLAGS = ((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC"))
_L4 = {1: "tcp", 2: "udp", 3: "raw", 5: "tcp"}

_BPF_CMDS = (
    "BPF_MAP_CREATE BPF_MAP_LOOKUP_ELEM BPF_MAP_UPDATE_ELEM BPF_MAP_DELETE_ELEM "
    "BPF_MAP_GET_NEXT_KEY BPF_PROG_LOAD BPF_OBJ_PIN BPF_OBJ_GET BPF_PROG_ATTACH "
    "BPF_PROG_DETACH BPF_PROG_TEST_RUN BPF_PROG_GET_NEXT_ID BPF_MAP_GET_NEXT_ID "
    "BPF_PROG_GET_FD_BY_ID BPF_MAP_GET_FD_BY_ID BPF_OBJ_GET_INFO_BY_FD BPF_PROG_QUERY "
    "BPF_RAW_TRACEPOINT_OPEN BPF_BTF_LOAD BPF_BTF_GET_FD_BY_ID BPF_TASK_FD_QUERY "
    "BPF_MAP_LOOKUP_AND_DELETE_ELEM BPF_MAP_FREEZE BPF_BTF_GET_NEXT_ID "
    "BPF_MAP_LOOKUP_BATCH BPF_MAP_LOOKUP_AND_DELETE_BATCH BPF_MAP_UPDATE_BATCH "
    "BPF_MAP_DELETE_BATCH BPF_LINK_CREATE BPF_LINK_UPDATE BPF_LINK_GET_FD_BY_ID "
    "BPF_LINK_GET_NEXT_ID BPF_ENABLE_STATS BPF_ITER_CREATE BPF_LINK_DETACH BPF_PROG_BIND_MAP"
).split()

_MEMFD_FLAGS = (
    (1, "MFD_CLOEXEC"),
    (2, "MFD_ALLOW_SEALING"),
    (4, "MFD_HUGETLB"),
    (8, "MFD_NOEXEC_SEAL"),
    (16, "MFD_EXEC"),
)
_MOUNT_FLAGS = tuple(
    (1 << bit, name)
    for bit, name in enumerate(
        "RDONLY NOSUID NODEV NOEXEC SYNCHRONOUS REMOUNT MANDLOCK DIRSYNC NOSYMFOLLOW _ "
        "NOATIME NODIRATIME BIND MOVE REC SILENT POSIXACL UNBINDABLE PRIVATE SLAVE SHARED "
        "RELATIME KERNMOUNT I_VERSION STRICTATIME LAZYTIME".split()
    )
    if name != "_"
)
_AT_FLAGS = (
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_REMOVEDIR"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x1000, "AT_EMPTY_PATH"),
)
_RENAME_FLAGS = ((1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT"))
_CLONE_NS_FLAGS = (
    (0x00020000, "CLONE_NEWNS"),
    (0x02000000, "CLONE_NEWCGROUP"),
    (0x04000000, "CLONE_NEWUTS"),
    (0x08000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
    (0x00000080, "CLONE_NEWTIME"),
    (0x00000200, "CLONE_FS"),
    (0x00000400, "CLONE_FILES"),
    (0x00000800, "CLONE_SIGHAND"),
    (0x00008000, "CLONE_SYSVSEM"),
)


def _family_name(family: int) -> str:
    try:
        return socket.AddressFamily(family).name
    except ValueError:
        return str(family)


def _sock_type_text(value: int) -> str:
    base = _SOCK_TYPES.get(value & 0xF, str(value & 0xF))
    flags = [name for bit, name in _SOCK_TYPE_FLAGS if value & bit]
    return "|".join([base, *flags])


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# -- paths ------------------------------------------------------------------------------
def _resolve(raw: str, base_item: bytes | None, ctx: DecodeContext) -> str:
    """fd.name as libsinsp builds it: the raw path joined to its directory, normalised."""
    if not raw:
        return raw
    if raw[0] == "/":
        return normalize_path(raw)
    base = path_from_components(base_item)[0] if base_item else ctx.cwd()
    return concatenate_paths(base, raw)


# -- sockets ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Sock:
    family: int
    type: int
    lport: int
    rport: int
    laddr: str | None
    raddr: str | None


def _addr_text(family: int, raw: bytes) -> str | None:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == socket.AF_INET6:
        address = ipaddress.IPv6Address(raw[:16])
        return str(address.ipv4_mapped or address)
    return None


def _sock(items: Mapping[int, bytes]) -> _Sock | None:
    data = items.get(Item.SOCK)
    if data is None or len(data) < SOCK.size:
        return None
    family, kind, lport, rport, laddr, raddr = SOCK.unpack_from(data)
    return _Sock(family, kind, lport, rport, _addr_text(family, laddr), _addr_text(family, raddr))


def _sockaddr(data: bytes | None) -> tuple[int, str | None, int | None] | None:
    """(family, address or unix path, port) of a user sockaddr."""
    if not data or len(data) < 2:
        return None
    family = struct.unpack_from("<H", data)[0]
    if family == socket.AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        return family, str(ipaddress.IPv4Address(data[4:8])), port
    if family == socket.AF_INET6 and len(data) >= 24:
        port = struct.unpack_from(">H", data, 2)[0]
        address = ipaddress.IPv6Address(data[8:24])
        return family, str(address.ipv4_mapped or address), port
    if family == socket.AF_UNIX:
        path = data[2:]
        if path[:1] == b"\0":  # abstract socket: libsinsp prints it with a leading @
            return family, "@" + path[1:].split(b"\0", 1)[0].decode("utf-8", "replace"), None
        return family, c_string(path), None
    return family, None, None


_FD_TYPES: dict[int, str] = {
    int(socket.AF_INET): "ipv4",
    int(socket.AF_INET6): "ipv6",
    int(socket.AF_UNIX): "unix",
    int(socket.AF_NETLINK): "netlink",
}


def _fd_type(family: int) -> str | None:
    return _FD_TYPES.get(family)


def _socket_fd(
    num: int,
    sock: _Sock | None,
    peer: tuple[int, str | None, int | None] | None,
    *,
    server: bool = False,
) -> dict[str, Any]:
    """The fd object of a socket: client side local unless this is the server's socket."""
    family = sock.family if sock else (peer[0] if peer else None)
    fd: dict[str, Any] = {"num": num}
    if family is None:
        return fd
    kind = _fd_type(family)
    if kind is not None:
        fd["type"] = kind
    if family == socket.AF_UNIX:
        if peer and peer[1]:
            fd["name"] = peer[1]
        return fd
    if kind not in ("ipv4", "ipv6"):
        return fd
    remote_ip = peer[1] if peer and peer[1] else (sock.raddr if sock else None)
    remote_port = peer[2] if peer and peer[2] is not None else (sock.rport if sock else None)
    local_ip = sock.laddr if sock else None
    local_port = sock.lport if sock else None
    if server:
        fd.update(cip=remote_ip, cport=remote_port, sip=local_ip, sport=local_port)
        fd["is_server"] = True
    else:
        fd.update(cip=local_ip, cport=local_port, sip=remote_ip, sport=remote_port)
    if sock is not None:
        proto = _L4.get(sock.type & 0xF)
        if proto is not None:
            fd["l4proto"] = proto
        fd["connected"] = bool(sock.rport)
    return fd


# -- the decoders -----------------------------------------------------------------------
_Decoder = Callable[[Record, Mapping[int, bytes], str, DecodeContext], dict[str, Any]]


def _path_item(items: Mapping[int, bytes], tag: int) -> str | None:
    data = items.get(tag)
    return c_string(data) if data is not None else None


_FLAGS_TEXT: dict[int, str] = {}  # open flags, mode: as Falco renders them, memoised
_MODE_TEXT: dict[int, str] = {}


def _open_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    data = items.get(Item.PATH)
    raw = data.partition(b"\0")[0].decode("utf-8", "replace") if data else ""
    name = _resolve(raw, items.get(Item.BASE), ctx)
    if kind == "openat2":
        how = items.get(Item.OPEN_HOW)
        flags, mode, resolve = (
            struct.unpack_from("<3Q", how) if how and len(how) >= 24 else (0, 0, 0)
        )
    elif kind == "openat":
        flags, mode, resolve = rec.args[2], rec.args[3], None
    elif kind == "creat":
        flags, mode, resolve = os.O_CREAT | os.O_WRONLY | os.O_TRUNC, rec.args[1], None
    else:
        flags, mode, resolve = rec.args[1], rec.args[2], None
    flags_text = _FLAGS_TEXT.get(flags)
    if flags_text is None:
        flags_text = open_flags_text(flags)
        if len(_FLAGS_TEXT) < 4096:
            _FLAGS_TEXT[flags] = flags_text
    mode_text = _MODE_TEXT.get(mode)
    if mode_text is None:
        mode_text = _mode_octal(mode)
        if len(_MODE_TEXT) < 4096:  # bounded: modes are few, hostile input is not
            _MODE_TEXT[mode] = mode_text
    args: dict[str, Any] = {
        "fd": rec.ret,
        "name": name,
        "flags": flags_text,
        "mode": mode_text,
    }
    if kind == "openat" or kind == "openat2":
        args["dirfd"] = _s32(rec.args[0])
    if resolve is not None:
        args["resolve"] = resolve
    fd_num = rec.ret if rec.ret >= 0 else -1
    fd = {
        "num": fd_num,
        "type": "directory" if flags & os.O_DIRECTORY else "file",
        "name": name,
        "nameraw": raw,
    }
    return {"args": args, "rawargs": {"flags": flags, "mode": mode}, "fd": fd}


def _connect_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    sock = _sock(items)
    peer = _sockaddr(items.get(Item.SOCKADDR))
    fd = _socket_fd(_s32(rec.args[0]), sock, peer)
    args: dict[str, Any] = {"fd": _s32(rec.args[0])}
    if peer and peer[1]:
        args["addr"] = f"{peer[1]}:{peer[2]}" if peer[2] is not None else peer[1]
    return {"args": args, "fd": fd}


def _accept_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    fd = _socket_fd(rec.ret if rec.ret >= 0 else -1, _sock(items), None, server=True)
    args: dict[str, Any] = {"fd": rec.ret}
    if kind == "accept4":
        args["flags"] = rec.args[3]
    return {"args": args, "fd": fd}


def _dup_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    args: dict[str, Any] = {"res": rec.ret, "oldfd": _s32(rec.args[0])}
    if kind in ("dup2", "dup3"):
        args["newfd"] = _s32(rec.args[1])
    if kind == "dup3":
        args["flags"] = "O_CLOEXEC" if rec.args[2] & os.O_CLOEXEC else "0"
    sock = _sock(items)
    fd = _socket_fd(rec.ret, sock, None) if sock else {"num": rec.ret}
    return {"args": args, "fd": fd}


def _send_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    sock = _sock(items)
    peer = _sockaddr(items.get(Item.SOCKADDR))
    fd = _socket_fd(_s32(rec.args[0]), sock, peer)
    if "type" in fd:
        fd["name_changed"] = peer is not None
    size = rec.args[2] if kind == "sendto" else None
    args: dict[str, Any] = {"res": rec.ret, "fd": _s32(rec.args[0])}
    if size is not None:
        args["size"] = size
    return {"args": args, "fd": fd}


def _listen_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    fd = _socket_fd(_s32(rec.args[0]), _sock(items), None, server=True)
    return {
        "args": {"res": rec.ret, "fd": _s32(rec.args[0]), "backlog": _s32(rec.args[1])},
        "fd": fd,
    }


def _socket_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    domain, sock_type, proto = rec.args[0] & 0xFFFF, _s32(rec.args[1]), _s32(rec.args[2])
    fd: dict[str, Any] = {"num": rec.ret if rec.ret >= 0 else -1}
    fd_type = _fd_type(domain)
    if fd_type:
        fd["type"] = fd_type
    l4 = _L4.get(sock_type & 0xF)
    if l4 and fd_type in ("ipv4", "ipv6"):
        fd["l4proto"] = l4
    return {
        "args": {
            "fd": rec.ret,
            "domain": _family_name(domain),
            "type": _sock_type_text(sock_type),
            "proto": proto,
        },
        "rawargs": {"domain": domain, "type": sock_type, "proto": proto},
        "fd": fd,
    }


def _ptrace_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    request = rec.args[0] & 0xFFFFFFFF
    return {
        "args": {
            "res": rec.ret,
            "request": _PTRACE.get(request, str(request)),
            "pid": _s32(rec.args[1]),
            "addr": rec.args[2],
            "data": rec.args[3],
        },
        "rawargs": {"request": request},
    }


def _memfd_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    name = _path_item(items, Item.STR) or ""
    fd = {"num": rec.ret if rec.ret >= 0 else -1, "type": "memfd", "name": f"memfd:{name}"}
    return {
        "args": {"fd": rec.ret, "name": name, "flags": _flag_text(rec.args[1], _MEMFD_FLAGS, "0")},
        "fd": fd,
    }


def _id_event(names: tuple[str, ...], *, user: bool) -> _Decoder:
    def decode(
        rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"res": rec.ret}
        raw: dict[str, Any] = {}
        for index, name in enumerate(names):
            value = rec.args[index] & 0xFFFFFFFF
            raw[name] = value
            if value == 0xFFFFFFFF:
                args[name] = "-1"
            elif user:
                args[name] = ctx.username(value)
            else:
                args[name] = str(value)
        return {"args": args, "rawargs": raw}

    return decode


def _path_event(
    arg: str, *, dirfd: bool = False, extra: Callable[[Record], dict[str, Any]] | None = None
) -> _Decoder:
    def decode(
        rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
    ) -> dict[str, Any]:
        raw = _path_item(items, Item.PATH) or ""
        name = _resolve(raw, items.get(Item.BASE), ctx)
        args: dict[str, Any] = {"res": rec.ret}
        if dirfd:
            args["dirfd"] = _s32(rec.args[0])
        args[arg] = name
        if extra is not None:
            args.update(extra(rec))
        return {"args": args, "fd": {"num": -1, "type": "file", "name": name, "nameraw": raw}}

    return decode


def _two_path_event(
    first: str, second: str, *, dirfds: tuple[str, str] | None = None, resolve_first: bool = True
) -> _Decoder:
    def decode(
        rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
    ) -> dict[str, Any]:
        raw1 = _path_item(items, Item.PATH) or ""
        raw2 = _path_item(items, Item.PATH2) or ""
        args: dict[str, Any] = {"res": rec.ret}
        if dirfds:
            args[dirfds[0]] = _s32(rec.args[0])
            args[dirfds[1]] = _s32(rec.args[2])
        args[first] = _resolve(raw1, items.get(Item.BASE), ctx) if resolve_first else raw1
        args[second] = _resolve(raw2, items.get(Item.BASE2), ctx)
        if kind == "renameat2":
            args["flags"] = _flag_text(rec.args[4], _RENAME_FLAGS, "0")
        if kind == "linkat":
            args["flags"] = _flag_text(rec.args[4], _AT_FLAGS, "0")
        return {"args": args}

    return decode


def _symlinkat_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    target = _path_item(items, Item.PATH) or ""
    raw = _path_item(items, Item.PATH2) or ""
    return {
        "args": {
            "res": rec.ret,
            "target": target,
            "linkdirfd": _s32(rec.args[1]),
            "linkpath": _resolve(raw, items.get(Item.BASE2), ctx),
        }
    }


def _mount_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    directory = _resolve(_path_item(items, Item.PATH) or "", items.get(Item.BASE), ctx)
    return {
        "args": {
            "res": rec.ret,
            "dev": _path_item(items, Item.STR) or "",
            "dir": directory,
            "type": _path_item(items, Item.STR3) or "",
            "flags": _flag_text(rec.args[3], _MOUNT_FLAGS, "0"),
        }
    }


def _module_event(
    rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
) -> dict[str, Any]:
    args: dict[str, Any] = {"res": rec.ret, "uargs": _path_item(items, Item.STR) or ""}
    if kind == "finit_module":
        args["fd"] = _s32(rec.args[0])
        args["flags"] = rec.args[2]
    else:
        args["length"] = rec.args[1]
    return {"args": args}


def _plain(
    *names: str,
    render: Mapping[str, Callable[[int], Any]] | None = None,
    signed: frozenset[str] = frozenset(),
) -> _Decoder:
    def decode(
        rec: Record, items: Mapping[int, bytes], kind: str, ctx: DecodeContext
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"res": rec.ret}
        raw: dict[str, Any] = {}
        for index, name in enumerate(names):
            value = rec.args[index]
            value = _s32(value) if name in signed else value
            raw[name] = value
            fn = (render or {}).get(name)
            args[name] = fn(value) if fn else value
        return {"args": args, "rawargs": raw}

    return decode


def _bpf_cmd(value: int) -> str:
    value &= 0xFFFFFFFF
    return _BPF_CMDS[value] if value < len(_BPF_CMDS) else str(value)


_DECODERS: dict[str, _Decoder] = {
    "open": _open_event,
    "openat": _open_event,
    "openat2": _open_event,
    "creat": _open_event,
    "connect": _connect_event,
    "accept": _accept_event,
    "accept4": _accept_event,
    "listen": _listen_event,
    "socket": _socket_event,
    "sendto": _send_event,
    "sendmsg": _send_event,
    "dup": _dup_event,
    "dup2": _dup_event,
    "dup3": _dup_event,
    "ptrace": _ptrace_event,
    "memfd_create": _memfd_event,
    "setuid": _id_event(("uid",), user=True),
    "setgid": _id_event(("gid",), user=False),
    "setreuid": _id_event(("ruid", "euid"), user=True),
    "setregid": _id_event(("rgid", "egid"), user=False),
    "setresuid": _id_event(("ruid", "euid", "suid"), user=True),
    "setresgid": _id_event(("rgid", "egid", "sgid"), user=False),
    "unlink": _path_event("path"),
    "unlinkat": _path_event(
        "name", dirfd=True, extra=lambda r: {"flags": _flag_text(r.args[2], _AT_FLAGS, "0")}
    ),
    "rename": _two_path_event("oldpath", "newpath"),
    "renameat": _two_path_event("oldpath", "newpath", dirfds=("olddirfd", "newdirfd")),
    "renameat2": _two_path_event("oldpath", "newpath", dirfds=("olddirfd", "newdirfd")),
    "link": _two_path_event("oldpath", "newpath"),
    "linkat": _two_path_event("oldpath", "newpath", dirfds=("olddir", "newdir")),
    "symlink": _two_path_event("target", "linkpath", resolve_first=False),
    "symlinkat": _symlinkat_event,
    "mkdir": _path_event("path", extra=lambda r: {"mode": _mode_octal(r.args[1])}),
    "mkdirat": _path_event("path", dirfd=True, extra=lambda r: {"mode": _mode_octal(r.args[2])}),
    "rmdir": _path_event("path"),
    "chmod": _path_event(
        "filename", extra=lambda r: {"mode": _flag_text(r.args[1], _MODE_FLAGS, "0")}
    ),
    "fchmodat": _path_event(
        "filename", dirfd=True, extra=lambda r: {"mode": _flag_text(r.args[2], _MODE_FLAGS, "0")}
    ),
    "fchmod": _plain(
        "fd",
        "mode",
        render={"mode": lambda v: _flag_text(v, _MODE_FLAGS, "0")},
        signed=frozenset({"fd"}),
    ),
    "mount": _mount_event,
    "umount2": _path_event("name", extra=lambda r: {"flags": r.args[1]}),
    "init_module": _module_event,
    "finit_module": _module_event,
    "bpf": _plain("cmd", render={"cmd": _bpf_cmd}),
    "setns": _plain(
        "fd",
        "nstype",
        render={"nstype": lambda v: _flag_text(v, _CLONE_NS_FLAGS, "0")},
        signed=frozenset({"fd"}),
    ),
    "unshare": _plain("flags", render={"flags": lambda v: _flag_text(v, _CLONE_NS_FLAGS, "0")}),
    "userfaultfd": _plain("flags"),
    "chdir": _path_event("path"),
    "fchdir": _plain("fd", signed=frozenset({"fd"})),
    "chroot": _path_event("path"),
    "kill": _plain("pid", "sig", signed=frozenset({"pid"})),
    "tgkill": _plain("pid", "tid", "sig", signed=frozenset({"pid", "tid"})),
    "capset": _plain("header", "data"),
    "pivot_root": _two_path_event("new_root", "put_old"),
}

assert set(_DECODERS) | STATE_SYSCALLS == set(SYSCALLS), "every syscall needs a decoder"


def decode_syscall(rec: Record, ctx: DecodeContext) -> tuple[str, dict[str, Any]] | None:
    """(event type, the event's args/rawargs/fd) of a syscall record; None if unknown."""
    entry = _DECODE_BY_NR.get(rec.nr)
    if entry is None:
        return None
    name, decoder = entry
    return name, decoder(rec, rec.items or _NO_ITEMS, name, ctx)


_NO_ITEMS: Mapping[int, bytes] = {}
_DECODE_BY_NR: dict[int, tuple[str, _Decoder]] = {
    info.nr: (info.name, _DECODERS[info.name])
    for info in SYSCALLS.values()
    if info.name in _DECODERS
}
