"""The binary records of the BPF sensor (the layout of src/skanse/runtime/bpf/sensor.bpf.c).

A record is a fixed part followed by items (`u16 tag, u16 length, bytes`). `parse_records`
turns a chunk copied from the ring buffer into `Record` objects; it trusts nothing about the
chunk beyond the ring buffer's own framing: a length that runs past the end, an unknown kind
or a truncated fixed part is counted as malformed and skipped, never raised.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "Item",
    "Kind",
    "Record",
    "SyscallClass",
    "TaskFacts",
    "Walk",
    "parse_items",
    "path_from_components",
]


class Kind(enum.IntEnum):
    SYSCALL = 1
    EXEC = 2
    FORK = 3
    EXIT = 4


class SyscallClass(enum.IntEnum):
    """How the kernel reads a syscall's arguments (the value of `skn_syscalls[nr]`)."""

    OFF = 0
    PLAIN = 1
    PATH0 = 2
    DIRFD_PATH1 = 3
    PATH0_PATH1 = 4
    RENAMEAT = 5
    SYMLINKAT = 6
    CONNECT = 7
    SOCK_RET = 8
    SENDTO = 9
    SENDMSG = 10
    SOCK_FD = 11
    STR0 = 12
    MOUNT = 13
    STR1 = 14
    STR2 = 15
    EXEC = 16
    OPENAT2 = 17


class Item(enum.IntEnum):
    PATH = 1
    PATH2 = 2
    BASE = 3
    BASE2 = 4
    SOCK = 5
    SOCKADDR = 6
    ARGV = 7
    EXEPATH = 8
    CWD = 9
    STR = 10
    STR2 = 11
    STR3 = 12
    OPEN_HOW = 13
    KILLED = 14  # u32: the kill rule the kernel program acted on (skanse.runtime.enforce)


class Walk(enum.IntFlag):
    COMPLETE = 1
    TRUNCATED = 2


# plain ints for the hot path: IntFlag operators cost a Python call each
_WALK_DONE = Walk.COMPLETE.value | Walk.TRUNCATED.value
_WALK_COMPLETE = Walk.COMPLETE.value

EXE_FROM_MEMFD = 1
EXE_UPPER_LAYER = 2

HEADER = struct.Struct("<HHIQIIq")  # kind, nr, size, ts, tgid, tid, ret
SYSCALL_FIXED = struct.Struct("<II6Q")  # uid, gid, args[6]
TASK = struct.Struct("<10I3QQ4IQ16s")
ITEM = struct.Struct("<HH")
SOCK = struct.Struct("<HHHH16s16s")  # family, type, lport, rport, laddr, raddr

SYSCALL_SIZE = HEADER.size + SYSCALL_FIXED.size  # 88
TASK_RECORD_SIZE = HEADER.size + TASK.size  # 144

assert SYSCALL_SIZE == 88 and TASK_RECORD_SIZE == 144 and SOCK.size == 40


class TaskFacts(NamedTuple):
    """What the kernel reported about a task at exec or fork."""

    ppid: int
    vpid: int
    vtid: int
    sid: int
    vpgid: int
    uid: int
    gid: int
    ruid: int
    loginuid: int
    tty: int
    cap_effective: int
    cap_permitted: int
    cap_inheritable: int
    cgroup_id: int
    pidns: int
    mntns: int
    netns: int
    exe_flags: int
    start_ts: int  # ns since boot
    comm: str


class Record(NamedTuple):
    """One kernel record (a tuple: records are made at ring-buffer speed)."""

    kind: int  # Kind
    nr: int
    ts: int  # ns since boot
    tgid: int
    tid: int
    ret: int
    uid: int = 0
    gid: int = 0
    args: tuple[int, ...] = ()
    task: TaskFacts | None = None
    items: dict[int, bytes] | None = None


def parse_items(data: bytes | memoryview, offset: int, end: int) -> dict[int, bytes]:
    """The items between `offset` and `end`; a malformed tail is ignored."""
    items: dict[int, bytes] = {}
    unpack = ITEM.unpack_from
    while offset + 4 <= end:
        tag, length = unpack(data, offset)
        offset += 4
        if offset + length > end:
            break
        items[tag] = bytes(data[offset : offset + length])
        offset += length
    return items


_SYSCALL = int(Kind.SYSCALL)
_EXEC = int(Kind.EXEC)
_FORK = int(Kind.FORK)
_EXIT = int(Kind.EXIT)
_HEADER_SIZE = HEADER.size
_unpack_header = HEADER.unpack_from
# a syscall record's header and fixed part in one call: most records are syscalls
_unpack_syscall_record = struct.Struct(HEADER.format + SYSCALL_FIXED.format[1:]).unpack_from
_new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__


def parse_record(data: bytes | memoryview, offset: int, length: int) -> Record | None:
    """One record of `length` bytes at `offset`; None when it is malformed."""
    if length < _HEADER_SIZE:
        return None
    if data[offset] == _SYSCALL and data[offset + 1] == 0:
        if length < SYSCALL_SIZE:
            return None
        v = _unpack_syscall_record(data, offset)
        items = (
            parse_items(data, offset + SYSCALL_SIZE, offset + length)
            if length > SYSCALL_SIZE
            else None
        )
        # kind, nr, ts, tgid, tid, ret, uid, gid, args, task, items
        return _new_tuple(
            Record, (_SYSCALL, v[1], v[3], v[4], v[5], v[6], v[7], v[8], v[9:], None, items)
        )
    kind, nr, _size, ts, tgid, tid, ret = _unpack_header(data, offset)
    if kind == _EXEC or kind == _FORK:
        if length < TASK_RECORD_SIZE:
            return None
        fields = TASK.unpack_from(data, offset + _HEADER_SIZE)
        comm = fields[-1].split(b"\0", 1)[0].decode("utf-8", "replace")
        task = TaskFacts._make((*fields[:-1], comm))
        items = (
            parse_items(data, offset + TASK_RECORD_SIZE, offset + length)
            if length > TASK_RECORD_SIZE
            else None
        )
        return Record(kind, nr, ts, tgid, tid, ret, task.uid, task.gid, (), task, items)
    if kind == _EXIT:
        return Record(kind, nr, ts, tgid, tid, ret)
    return None


def iter_records(chunk: bytes | memoryview) -> Iterator[Record | None]:
    """The records of a chunk of concatenated records (each carries its own size)."""
    offset = 0
    total = len(chunk)
    unpack = HEADER.unpack_from
    while offset + HEADER.size <= total:
        size = unpack(chunk, offset)[2]
        if size < HEADER.size or offset + size > total:
            yield None
            return
        yield parse_record(chunk, offset, size)
        offset += size


def c_string(data: bytes) -> str:
    """A NUL-terminated string as the kernel copied it (invalid UTF-8 becomes U+FFFD)."""
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


def path_from_components(data: bytes) -> tuple[str, bool]:
    """A BASE/EXEPATH/CWD item: (absolute path, complete); components arrive leaf first."""
    if not data:
        return "", False
    flags = data[0]
    # decoded once, then split: a NUL is never part of a multi-byte sequence
    parts = [p for p in data[1:].decode("utf-8", "replace").split("\0") if p]
    parts.reverse()
    path = "/" + "/".join(parts)
    return path, flags & _WALK_DONE == _WALK_COMPLETE
