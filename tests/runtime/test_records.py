"""Kernel records: parsing, decoding into Falco-shaped events, and hostile input.

The byte layouts here are built with the same `struct` formats the sensor reads, mirroring
sensor.bpf.c; that they match the real kernel program is shown by the live tests, which
decode what the kernel wrote.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skanse.runtime.records import (
    HEADER,
    ITEM,
    SOCK,
    SYSCALL_FIXED,
    TASK,
    Item,
    Kind,
    iter_records,
    parse_record,
    path_from_components,
)
from skanse.runtime.syscalls import SYSCALLS, decode_syscall, open_flags_text


class Ctx:
    def __init__(self, cwd: str | None = "/srv/app") -> None:
        self._cwd = cwd

    def cwd(self) -> str | None:
        return self._cwd

    def username(self, uid: int) -> str:
        return {0: "root", 65534: "nobody"}.get(uid, str(uid))


def _item(tag: int, data: bytes) -> bytes:
    return ITEM.pack(tag, len(data)) + data


def _syscall(
    name: str, args: tuple[int, ...], ret: int = 0, items: bytes = b"", tgid: int = 42
) -> bytes:
    nr = SYSCALLS[name].nr
    body = SYSCALL_FIXED.pack(0, 0, *(list(args) + [0] * (6 - len(args)))) + items
    size = HEADER.size + len(body)
    return HEADER.pack(Kind.SYSCALL, nr, size, 123, tgid, tgid, ret) + body


def _components(path: str, flags: int = 1) -> bytes:
    parts = [p for p in path.split("/") if p][::-1]
    return bytes([flags]) + b"".join(p.encode() + b"\0" for p in parts)


def _decode(raw: bytes, cwd: str | None = "/srv/app"):
    rec = parse_record(raw, 0, len(raw))
    assert rec is not None
    return decode_syscall(rec, Ctx(cwd))


def test_openat_decodes_like_falco_prints_it() -> None:
    flags = os.O_RDONLY | os.O_CLOEXEC
    raw = _syscall(
        "openat", (0xFFFFFF9C, 0, flags, 0), ret=3, items=_item(Item.PATH, b"/etc/shadow\0")
    )
    name, event = _decode(raw)
    assert name == "openat"
    assert event["args"] == {
        "fd": 3,
        "dirfd": -100,
        "name": "/etc/shadow",
        "flags": "O_RDONLY|O_CLOEXEC",
        "mode": "00",
    }
    assert event["fd"] == {
        "num": 3,
        "type": "file",
        "name": "/etc/shadow",
        "nameraw": "/etc/shadow",
    }


def test_relative_paths_join_the_directory_the_kernel_walked_and_normalise() -> None:
    items = _item(Item.PATH, b"../etc/./passwd\0") + _item(Item.BASE, _components("/home/dev/app"))
    _, event = _decode(_syscall("openat", (0xFFFFFF9C, 0, 0, 0), ret=4, items=items))
    assert event["fd"]["name"] == "/home/dev/etc/passwd"
    assert event["fd"]["nameraw"] == "../etc/./passwd"  # what directory_traversal looks at


def test_a_relative_path_without_a_walk_uses_the_recorded_cwd() -> None:
    _, event = _decode(
        _syscall("open", (0, 0, 0), ret=3, items=_item(Item.PATH, b"x.txt\0")), cwd="/srv"
    )
    assert event["fd"]["name"] == "/srv/x.txt"


def test_failed_open_has_fd_num_minus_one_and_the_errno_as_result() -> None:
    _, event = _decode(
        _syscall(
            "openat",
            (0xFFFFFF9C, 0, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            ret=-13,
            items=_item(Item.PATH, b"/etc/x\0"),
        )
    )
    assert event["fd"]["num"] == -1
    assert event["args"]["flags"] == "O_WRONLY|O_CREAT|O_TRUNC"
    assert event["args"]["mode"] == "0644"


def test_connect_builds_the_connection_tuple_from_socket_and_sockaddr() -> None:
    sock = SOCK.pack(
        socket.AF_INET,
        socket.SOCK_STREAM,
        51000,
        0,
        socket.inet_aton("10.1.0.7") + bytes(12),
        bytes(16),
    )
    addr = (
        struct.pack("<H", socket.AF_INET)
        + struct.pack(">H", 443)
        + socket.inet_aton("10.96.0.1")
        + bytes(8)
    )
    items = _item(Item.SOCK, sock) + _item(Item.SOCKADDR, addr)
    _, event = _decode(_syscall("connect", (3, 0, 16), ret=-115, items=items))  # EINPROGRESS
    fd = event["fd"]
    assert (fd["type"], fd["l4proto"]) == ("ipv4", "tcp")
    assert (fd["cip"], fd["cport"], fd["sip"], fd["sport"]) == ("10.1.0.7", 51000, "10.96.0.1", 443)
    assert event["args"]["addr"] == "10.96.0.1:443"


def test_ipv6_and_unix_socket_addresses() -> None:
    addr6 = (
        struct.pack("<H", socket.AF_INET6)
        + struct.pack(">H", 22)
        + bytes(4)
        + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        + bytes(4)
    )
    _, event = _decode(_syscall("connect", (3, 0, 28), items=_item(Item.SOCKADDR, addr6)))
    assert event["fd"]["sip"] == "2001:db8::1" and event["fd"]["type"] == "ipv6"
    unix = struct.pack("<H", socket.AF_UNIX) + b"/run/docker.sock\0"
    _, event = _decode(_syscall("connect", (3, 0, 19), items=_item(Item.SOCKADDR, unix)))
    assert event["fd"] == {"num": 3, "type": "unix", "name": "/run/docker.sock"}


def test_socket_ptrace_memfd_and_setuid_arguments_are_named() -> None:
    _, event = _decode(
        _syscall("socket", (socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0), ret=3)
    )
    assert event["args"]["domain"] == "AF_PACKET"
    assert event["args"]["type"] == "SOCK_RAW|SOCK_CLOEXEC"
    _, event = _decode(_syscall("ptrace", (16, 777)))
    assert event["args"]["request"] == "PTRACE_ATTACH" and event["args"]["pid"] == 777
    _, event = _decode(_syscall("memfd_create", (0, 1), ret=5, items=_item(Item.STR, b"payload\0")))
    assert event["fd"] == {"num": 5, "type": "memfd", "name": "memfd:payload"}
    assert event["args"]["flags"] == "MFD_CLOEXEC"
    _, event = _decode(_syscall("setuid", (65534,)))
    assert event["args"]["uid"] == "nobody"  # as evt.arg.uid=nobody in the incubating rules
    assert event["rawargs"]["uid"] == 65534


def test_every_supported_syscall_decodes_without_items() -> None:
    for name in SYSCALLS:
        if SYSCALLS[name].cls == 16:  # execve/execveat are exec records, not syscall records
            continue
        decoded = _decode(_syscall(name, (1, 2, 3, 4, 5, 6), ret=0))
        assert decoded is not None and decoded[0] == name


def test_open_flags_text_matches_libsinsp_names() -> None:
    assert open_flags_text(os.O_RDWR | os.O_APPEND | os.O_NONBLOCK) == "O_RDWR|O_APPEND|O_NONBLOCK"
    assert open_flags_text(os.O_RDONLY | os.O_DIRECTORY) == "O_RDONLY|O_DIRECTORY"


def test_exec_record_carries_the_task_facts() -> None:
    task = TASK.pack(
        1,
        2,
        2,
        1,
        2,
        0,
        0,
        1000,
        0xFFFFFFFF,
        34816,
        1 << 21,
        1 << 21,
        0,
        77,
        1,
        2,
        3,
        1,
        5,
        b"bash" + bytes(12),
    )
    items = _item(Item.ARGV, b"bash\0-i\0") + _item(Item.EXEPATH, _components("/usr/bin/bash"))
    body = task + items
    raw = HEADER.pack(Kind.EXEC, 59, HEADER.size + len(body), 9, 100, 100, 0) + body
    rec = parse_record(raw, 0, len(raw))
    assert rec is not None and rec.task is not None and rec.items is not None
    assert (rec.task.comm, rec.task.vpid, rec.task.tty, rec.task.cgroup_id) == (
        "bash",
        2,
        34816,
        77,
    )
    assert path_from_components(rec.items[Item.EXEPATH]) == ("/usr/bin/bash", True)


def test_path_components_say_when_a_walk_was_truncated() -> None:
    assert path_from_components(_components("/a/b", flags=2)) == ("/a/b", False)
    assert path_from_components(b"") == ("", False)


def test_a_chunk_with_a_lying_size_stops_without_raising() -> None:
    good = _syscall("openat", (0, 0, 0, 0), items=_item(Item.PATH, b"/x\0"))
    bad = bytearray(good)
    struct.pack_into("<I", bad, 4, 10**6)  # size beyond the chunk
    records = list(iter_records(bytes(good) + bytes(bad)))
    assert records[0] is not None and records[-1] is None


def test_items_running_past_the_record_are_dropped() -> None:
    raw = _syscall("openat", (0, 0, 0, 0), items=ITEM.pack(Item.PATH, 5000) + b"/etc")
    rec = parse_record(raw, 0, len(raw))
    assert rec is not None and rec.items == {}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(data: bytes) -> None:
    for record in iter_records(data):
        if record is not None and record.kind == Kind.SYSCALL:
            decode_syscall(record, Ctx())


def test_a_huge_hostile_chunk_is_bounded_in_time() -> None:
    # 16 MiB of records that each claim the minimum size: parsing is linear, no blow-up
    header = HEADER.pack(Kind.EXIT, 0, HEADER.size, 0, 1, 1, 0)
    chunk = header * (16 * 1024 * 1024 // len(header))
    started = time.process_time()
    count = sum(1 for _ in iter_records(chunk))
    assert count == len(chunk) // len(header)
    assert time.process_time() - started < 30


def test_every_syscall_number_matches_the_kernel_headers() -> None:
    header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"  # linux-libc-dev
    if not os.path.exists(header):
        pytest.skip(f"{header} is not installed")
    text = Path(header).read_text(encoding="ascii")
    wrong = [
        name for name, info in SYSCALLS.items() if f"#define __NR_{name} {info.nr}\n" not in text
    ]
    assert wrong == []
