"""The audit fallback sensor (`--sensor audit`): exec events from the kernel's audit netlink.

For machines where the BPF object cannot load (no BTF, an old kernel, no CAP_BPF). It adds
one audit rule (`-a always,exit -F arch=b64 -S execve,execveat -k skanse`) through the
netlink socket, listens on the audit multicast group (read-only, so it coexists with
auditd), joins each event's SYSCALL, EXECVE and CWD records by their serial, and removes
its rule when it stops. Only execve/execveat events exist here: file, network and ptrace
rules cannot fire, and the sensor says so at start. If auditing is off it is switched on
for the sensor's lifetime and off again at stop. There is no container id in audit
records; it is read from /proc/<pid>/cgroup when the event arrives (a process that has
already exited is reported without one). Needs CAP_AUDIT_CONTROL (the rule) and
CAP_AUDIT_READ (the multicast group). Without auditd, the kernel also logs the records to
the kernel log.
"""

from __future__ import annotations

import collections
import os
import re
import select
import socket
import struct
import time
from collections.abc import Iterator

from skanse.errors import SensorError, SensorUnavailableError
from skanse.runtime.records import Item, Kind, Record, TaskFacts, Walk

__all__ = ["AuditSensor", "audit_rule", "parse_audit_fields"]

NETLINK_AUDIT = 9
AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_STATUS_ENABLED = 1
AUDIT_ADD_RULE = 1011
AUDIT_DEL_RULE = 1012
AUDIT_SYSCALL = 1300
AUDIT_PATH = 1302
AUDIT_CWD = 1307
AUDIT_EXECVE = 1309
AUDIT_EOE = 1320
AUDIT_NLGRP_READLOG = 1
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
AUDIT_FILTER_EXIT = 0x04
AUDIT_ALWAYS = 2
AUDIT_ARCH = 11
AUDIT_FILTERKEY = 210
AUDIT_EQUAL = 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E
RULE_KEY = b"skanse"
_NLMSG = struct.Struct("=IHHII")
_EXECVE = 59
_EXECVEAT = 322


def audit_rule(syscalls: tuple[int, ...] = (_EXECVE, _EXECVEAT), key: bytes = RULE_KEY) -> bytes:
    """struct audit_rule_data for `-a always,exit -F arch=b64 -S <syscalls> -k <key>`."""
    mask = [0] * 64
    for nr in syscalls:
        mask[nr // 32] |= 1 << (nr % 32)
    fields = [0] * 64
    values = [0] * 64
    flags = [0] * 64
    fields[0], values[0], flags[0] = AUDIT_ARCH, AUDIT_ARCH_X86_64, AUDIT_EQUAL
    fields[1], values[1], flags[1] = AUDIT_FILTERKEY, len(key), AUDIT_EQUAL
    head = struct.pack("=III", AUDIT_FILTER_EXIT, AUDIT_ALWAYS, 2)
    body = struct.pack("=64I", *mask) + struct.pack("=64I", *fields)
    body += struct.pack("=64I", *values) + struct.pack("=64I", *flags)
    return head + body + struct.pack("=I", len(key)) + key


_FIELD = re.compile(rb'([a-z0-9_]+)=("(?:[^"]*)"|\S+)')
_HEADER = re.compile(rb"audit\((\d+)\.(\d+):(\d+)\):\s*")


def parse_audit_fields(text: bytes) -> tuple[tuple[int, int, int] | None, dict[str, str]]:
    """((seconds, millis, serial), fields) of one audit record's text."""
    head = _HEADER.match(text)
    stamp = None
    if head:
        stamp = (int(head.group(1)), int(head.group(2)), int(head.group(3)))
        text = text[head.end() :]
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(text):
        name = key.decode()
        fields[name] = _audit_value(
            value, hex_allowed=name in _STRING_FIELDS or _ARG.fullmatch(name) is not None
        )
    return stamp, fields


# fields the kernel logs with audit_log_untrustedstring: quoted, or hex when odd bytes occur
_STRING_FIELDS = frozenset({"comm", "exe", "cwd", "name", "proctitle", "key"})
_ARG = re.compile(r"a\d+")


def _audit_value(raw: bytes, *, hex_allowed: bool) -> str:
    """A quoted string as is; an unquoted hex string field is how audit escapes odd bytes."""
    if raw.startswith(b'"') and raw.endswith(b'"'):
        return raw[1:-1].decode("utf-8", "replace")
    text = raw.decode("utf-8", "replace")
    if hex_allowed and len(text) % 2 == 0 and len(text) >= 2 and re.fullmatch(r"[0-9A-F]+", text):
        try:
            return bytes.fromhex(text).decode("utf-8", "replace")
        except ValueError:
            return text
    return text


def _tty(text: str | None) -> int:
    """audit's tty name (pts3, tty1, (none)) as new_encode_dev(major, minor)."""
    if not text:
        return 0
    match = re.fullmatch(r"pts(\d+)", text)
    if match:
        n = int(match.group(1))
        major, minor = 136 + n // 256, n % 256
        return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    match = re.fullmatch(r"tty(\d+)", text)
    if match:
        return (4 << 8) | int(match.group(1))
    return 0


def _components(path: str) -> bytes:
    parts = [p for p in path.split("/") if p]
    parts.reverse()
    return bytes([Walk.COMPLETE]) + b"".join(p.encode("utf-8", "replace") + b"\0" for p in parts)


class AuditSensor:
    """Exec events from the audit netlink, as the same records the BPF sensor produces."""

    name = "audit"

    def __init__(self, *, boot_offset_ns: int) -> None:
        self._sock: socket.socket | None = None
        self._control: socket.socket | None = None
        self._pending: dict[int, dict[int, dict[str, str]]] = {}
        self._ready: collections.deque[Record] = collections.deque()
        self._offset = boot_offset_ns
        self.delivered = 0
        self.lost = 0
        self._rule_added = False
        self._enabled_by_us = False

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SensorUnavailableError(
                "the audit sensor needs to add an audit rule and read the audit log",
                requirement="root, or CAP_AUDIT_CONTROL and CAP_AUDIT_READ",
            )
        try:
            control = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
            control.bind((0, 0))
            listen = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
            listen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
            listen.bind((0, AUDIT_NLGRP_READLOG))
        except OSError as exc:
            raise SensorUnavailableError(
                f"cannot open the audit netlink: {exc.strerror or exc}",
                requirement="a kernel with CONFIG_AUDIT; CAP_AUDIT_READ for its multicast group",
            ) from None
        self._control = control
        self._sock = listen
        enabled = self._status()[1]
        if enabled == 2:
            pass  # locked (auditctl -e 2): rules cannot change, but auditing is on
        elif enabled == 0:  # auditing is off: switch it on, and back off at stop
            self._request(AUDIT_SET, struct.pack("=10I", AUDIT_STATUS_ENABLED, 1, *([0] * 8)))
            self._enabled_by_us = True
        self._request(AUDIT_DEL_RULE, audit_rule(), ignore_errors=True)  # a leftover of a crash
        self._request(AUDIT_ADD_RULE, audit_rule())
        self._rule_added = True

    def _status(self) -> tuple[int, ...]:
        """struct audit_status as AUDIT_GET returns it (mask, enabled, failure, pid, ...)."""
        assert self._control is not None
        self._control.send(_NLMSG.pack(_NLMSG.size, AUDIT_GET, NLM_F_REQUEST, 2, 0))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._control], [], [], 0.5)
            if not ready:
                continue
            data = self._control.recv(65536)
            _length, mtype, *_ = _NLMSG.unpack_from(data, 0)
            if mtype == AUDIT_GET and len(data) >= _NLMSG.size + 40:
                return struct.unpack_from("=10I", data, _NLMSG.size)
            if mtype == NLMSG_ERROR:
                code = struct.unpack_from("=i", data, _NLMSG.size)[0]
                raise SensorUnavailableError(
                    f"cannot read the audit status: {os.strerror(-code)}",
                    requirement="CAP_AUDIT_CONTROL",
                )
        raise SensorError("no answer from the audit netlink")

    def _request(self, kind: int, payload: bytes, *, ignore_errors: bool = False) -> None:
        assert self._control is not None
        message = (
            _NLMSG.pack(_NLMSG.size + len(payload), kind, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + payload
        )
        self._control.send(message)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._control], [], [], 0.5)
            if not ready:
                continue
            data = self._control.recv(65536)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, mtype, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
                if mtype == NLMSG_ERROR:
                    code = struct.unpack_from("=i", data, offset + _NLMSG.size)[0]
                    if code != 0 and not ignore_errors:
                        raise SensorError(
                            f"the kernel refused the audit rule: {os.strerror(-code)}"
                        )
                    return
                offset += max((length + 3) & ~3, _NLMSG.size)
        if not ignore_errors:
            raise SensorError("no answer from the audit netlink")

    def wait(self, timeout: float) -> bool:
        if self._ready:
            return True
        if self._sock is None:
            raise SensorError("the audit sensor is not running")
        ready, _, _ = select.select([self._sock], [], [], timeout)
        return bool(ready)

    def _receive(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:  # ENOBUFS: the socket overflowed and records were lost
                self.lost += 1
                return
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, mtype, *_ = _NLMSG.unpack_from(data, offset)
                body = data[offset + _NLMSG.size : offset + length]
                offset += max((length + 3) & ~3, _NLMSG.size)
                self._record(mtype, body.rstrip(b"\0"))

    def _record(self, mtype: int, text: bytes) -> None:
        stamp, fields = parse_audit_fields(text)
        if stamp is None:
            return
        serial = stamp[2]
        if mtype == AUDIT_EOE:
            parts = self._pending.pop(serial, None)
            if parts is not None:
                record = self._event(stamp, parts)
                if record is not None:
                    self._ready.append(record)
            return
        if mtype in (AUDIT_SYSCALL, AUDIT_EXECVE, AUDIT_CWD):
            if len(self._pending) > 4096:  # bounded: events whose EOE never came
                self._pending.pop(next(iter(self._pending)))
            self._pending.setdefault(serial, {})[mtype] = fields

    def _event(
        self, stamp: tuple[int, int, int], parts: dict[int, dict[str, str]]
    ) -> Record | None:
        syscall = parts.get(AUDIT_SYSCALL)
        if (
            syscall is None
            or syscall.get("key") != RULE_KEY.decode()
            or syscall.get("success") != "yes"
        ):
            return None
        nr = int(syscall.get("syscall", _EXECVE))
        pid = int(syscall.get("pid", 0))
        execve = parts.get(AUDIT_EXECVE, {})
        argc = int(execve.get("argc", 0) or 0)
        argv = [execve.get(f"a{i}", "") for i in range(min(argc, 1024))]
        cwd = parts.get(AUDIT_CWD, {}).get("cwd", "")
        auid = int(syscall.get("auid", 4294967295))
        ts_epoch = stamp[0] * 1_000_000_000 + stamp[1] * 1_000_000
        comm = syscall.get("comm", "")[:15]
        task = TaskFacts(
            ppid=int(syscall.get("ppid", 0)),
            vpid=pid,
            vtid=pid,
            sid=int(syscall.get("ses", 0)) if syscall.get("ses", "").isdigit() else 0,
            vpgid=pid,
            uid=int(syscall.get("euid", 0)),
            gid=int(syscall.get("egid", 0)),
            ruid=int(syscall.get("uid", 0)),
            loginuid=auid,
            tty=_tty(syscall.get("tty")),
            cap_effective=0,
            cap_permitted=0,
            cap_inheritable=0,
            cgroup_id=0,
            pidns=0,
            mntns=_ns(pid, "mnt"),
            netns=_ns(pid, "net"),
            exe_flags=0,
            start_ts=ts_epoch - self._offset,
            comm=comm,
        )
        items: dict[int, bytes] = {
            Item.ARGV: b"\0".join(a.encode("utf-8", "replace") for a in argv) + b"\0",
            Item.CWD: _components(cwd),
        }
        exe = syscall.get("exe")
        if exe:
            items[Item.EXEPATH] = _components(exe)
        self.delivered += 1
        return Record(
            Kind.EXEC, nr, ts_epoch - self._offset, pid, pid, 0, task.uid, task.gid, (), task, items
        )

    def records(self, max_records: int = 0) -> Iterator[Record | None]:
        self._receive()
        while self._ready:
            yield self._ready.popleft()

    def drops(self) -> tuple[int, int]:
        return self.delivered + self.lost, self.lost

    def stop(self) -> None:
        if self._rule_added:
            try:
                self._request(AUDIT_DEL_RULE, audit_rule(), ignore_errors=True)
            finally:
                self._rule_added = False
        if self._enabled_by_us:
            self._enabled_by_us = False
            self._request(
                AUDIT_SET,
                struct.pack("=10I", AUDIT_STATUS_ENABLED, 0, *([0] * 8)),
                ignore_errors=True,
            )

    def close(self) -> None:
        self.stop()
        for sock in (self._sock, self._control):
            if sock is not None:
                sock.close()
        self._sock = self._control = None

    def describe(self) -> dict[str, object]:
        return {
            "sensor": "audit",
            "audit_rule": "-a always,exit -F arch=b64 -S execve,execveat -k skanse",
            "event_types": ["execve", "execveat"],
        }


def _ns(pid: int, name: str) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino
    except OSError:
        return 0
