"""libbpf through ctypes: open, size, load and attach a BPF object; read and write its maps.

Only the dozen libbpf 1.x functions the sensor needs are bound, on Debian's `libbpf.so.1`
(no BCC, no compiler at run time). libbpf's own log lines (the verifier log when a program
is rejected) are captured instead of going to stderr, so a load failure can say why.

Every object here owns kernel resources through file descriptors; `BpfObject.close()`
destroys the links and closes the object, after which no program or map of it is left in
the kernel (the links are not pinned, so a crashed process leaves nothing behind either).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from skanse.errors import SensorError, SensorUnavailableError

__all__ = ["BpfObject", "Libbpf", "MapHandle", "load_libbpf"]

_LIB_NAMES = ("libbpf.so.1", "libbpf.so")

_BPF_MAP_TYPE_RINGBUF = 27
_BTF_KIND_FUNC = 12

_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class Libbpf:
    """The bound functions of one loaded libbpf."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.lib = lib
        self.path = path
        vp = ctypes.c_void_p
        self._fn("bpf_object__open_file", vp, [ctypes.c_char_p, vp])
        self._fn("bpf_object__load", ctypes.c_int, [vp])
        self._fn("bpf_object__close", None, [vp])
        self._fn("bpf_object__find_map_by_name", vp, [vp, ctypes.c_char_p])
        self._fn("bpf_object__find_program_by_name", vp, [vp, ctypes.c_char_p])
        self._fn("bpf_object__next_program", vp, [vp, vp])
        self._fn("bpf_program__name", ctypes.c_char_p, [vp])
        self._fn("bpf_program__section_name", ctypes.c_char_p, [vp])
        self._fn("bpf_program__attach", vp, [vp])
        self._fn("bpf_program__set_autoload", ctypes.c_int, [vp, ctypes.c_bool])
        self._fn("bpf_program__fd", ctypes.c_int, [vp])
        self._fn("btf__load_vmlinux_btf", vp, [])
        self._fn("btf__find_by_name_kind", ctypes.c_int, [vp, ctypes.c_char_p, ctypes.c_uint32])
        self._fn("btf__free", None, [vp])
        self._fn("bpf_link__destroy", ctypes.c_int, [vp])
        self._fn("bpf_program__attach_cgroup", vp, [vp, ctypes.c_int])
        self._fn("bpf_link__pin", ctypes.c_int, [vp, ctypes.c_char_p])
        self._fn("bpf_map__fd", ctypes.c_int, [vp])
        self._fn("bpf_map__max_entries", ctypes.c_uint32, [vp])
        self._fn("bpf_map__set_max_entries", ctypes.c_int, [vp, ctypes.c_uint32])
        self._fn("bpf_map__set_inner_map_fd", ctypes.c_int, [vp, ctypes.c_int])
        self._fn(
            "bpf_map_create",
            ctypes.c_int,
            [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, vp],
        )
        self._fn("bpf_map_update_elem", ctypes.c_int, [ctypes.c_int, vp, vp, ctypes.c_uint64])
        self._fn("bpf_map_delete_elem", ctypes.c_int, [ctypes.c_int, vp])
        self._fn("bpf_map_lookup_elem", ctypes.c_int, [ctypes.c_int, vp, vp])
        self._fn("libbpf_num_possible_cpus", ctypes.c_int, [])
        self._fn("libbpf_set_print", vp, [_PRINT_FN])
        self._log: list[str] = []
        self._log_lock = threading.Lock()
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        vsnprintf = libc.vsnprintf
        vsnprintf.restype = ctypes.c_int
        vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, vp]
        copy_va_list = platform.machine() in ("x86_64", "AMD64")

        def _print(level: int, fmt: bytes | None, args: int | None) -> int:
            # x86-64 passes va_list as a pointer to a 24-byte record: saving and restoring
            # that record is va_copy, so the message can be measured first (the verifier
            # log arrives as one "%s" and its end says why a program was refused)
            if fmt is None or args is None:
                return 0
            size = 8192
            if copy_va_list:
                saved = ctypes.create_string_buffer(24)
                ctypes.memmove(saved, args, 24)
                size = max(vsnprintf(None, 0, fmt, args), 0) + 1
                ctypes.memmove(args, saved, 24)
            buffer = ctypes.create_string_buffer(size)
            vsnprintf(buffer, size, fmt, args)
            with self._log_lock:
                self._log.append(buffer.value.decode("utf-8", "replace"))
                del self._log[:-400]
            return 0

        self._print_cb = _PRINT_FN(_print)  # kept alive as long as libbpf may call it
        lib.libbpf_set_print(self._print_cb)

    def _fn(self, name: str, restype: object, argtypes: list[object]) -> None:
        try:
            fn = getattr(self.lib, name)
        except AttributeError:
            raise SensorUnavailableError(
                f"{self.path} has no {name}: libbpf 1.0 or newer is required",
                requirement="libbpf >= 1.0",
            ) from None
        fn.restype = restype
        fn.argtypes = argtypes

    def take_log(self) -> list[str]:
        with self._log_lock:
            lines, self._log = self._log, []
        return lines

    def kernel_functions(self, names: Iterable[str]) -> frozenset[str]:
        """Which of `names` the running kernel's BTF declares as functions (kfuncs)."""
        btf = self.lib.btf__load_vmlinux_btf()
        if not btf:
            return frozenset()
        try:
            find = self.lib.btf__find_by_name_kind
            return frozenset(n for n in names if find(btf, n.encode(), _BTF_KIND_FUNC) > 0)
        finally:
            self.lib.btf__free(btf)

    def num_possible_cpus(self) -> int:
        n = int(self.lib.libbpf_num_possible_cpus())
        if n <= 0:
            raise SensorError(f"libbpf could not count the possible CPUs: {os.strerror(-n)}")
        return n


_LOADED: Libbpf | None = None
_LOAD_LOCK = threading.Lock()


def load_libbpf(path: str | None = None) -> Libbpf:
    """Debian's libbpf.so.1 (or `path`); SensorUnavailableError names what is missing."""
    global _LOADED
    with _LOAD_LOCK:
        if _LOADED is not None and (path is None or _LOADED.path == path):
            return _LOADED
        candidates = (path,) if path else _LIB_NAMES
        errors = []
        for name in candidates:
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError as exc:
                errors.append(str(exc))
                continue
            _LOADED = Libbpf(lib, name)
            return _LOADED
        raise SensorUnavailableError(
            "libbpf is not installed (" + "; ".join(errors) + ")",
            requirement="libbpf.so.1 (Debian/Ubuntu: apt-get install libbpf1)",
        )


@dataclass(frozen=True, slots=True)
class MapHandle:
    """One map of a loaded object: its name, fd and number of entries."""

    name: str
    fd: int
    max_entries: int


@dataclass(frozen=True, slots=True)
class ProgramInfo:
    name: str
    section: str


class BpfObject:
    """A BPF object file opened with libbpf: size maps, load, attach, close."""

    def __init__(self, libbpf: Libbpf, path: str) -> None:
        self._libbpf = libbpf
        self._lib = libbpf.lib
        self.path = path
        self._links: list[int] = []
        libbpf.take_log()
        ctypes.set_errno(0)
        obj = self._lib.bpf_object__open_file(os.fsencode(path), None)
        if not obj:
            err = ctypes.get_errno() or errno.EINVAL
            raise SensorError(
                f"{path}: libbpf could not open the BPF object: {os.strerror(err)}"
                + _log_tail(libbpf.take_log())
            )
        self._obj: int | None = obj
        self.loaded = False

    def _require(self) -> int:
        if self._obj is None:
            raise SensorError("the BPF object is closed")
        return self._obj

    def programs(self) -> Iterator[ProgramInfo]:
        obj = self._require()
        prog = self._lib.bpf_object__next_program(obj, None)
        while prog:
            name = (self._lib.bpf_program__name(prog) or b"").decode()
            section = (self._lib.bpf_program__section_name(prog) or b"").decode()
            yield ProgramInfo(name, section)
            prog = self._lib.bpf_object__next_program(obj, prog)

    def _map(self, name: str) -> int:
        item = self._lib.bpf_object__find_map_by_name(self._require(), name.encode())
        if not item:
            raise SensorError(f"{self.path}: no map named {name}")
        return int(item)

    def set_max_entries(self, name: str, entries: int) -> None:
        rc = self._lib.bpf_map__set_max_entries(self._map(name), entries)
        if rc != 0:
            raise SensorError(f"map {name}: cannot set {entries} entries: {os.strerror(-rc)}")

    def set_inner_map(self, name: str, fd: int) -> None:
        """Use the map `fd` as the inner-map template of a map-in-map (before loading).

        (Sizing libbpf's own template with bpf_map__set_max_entries crashes libbpf 1.1:
        its inner map has no object.)"""
        rc = self._lib.bpf_map__set_inner_map_fd(self._map(name), fd)
        if rc != 0:
            raise SensorError(f"map {name}: cannot set its inner map: {os.strerror(-rc)}")

    def create_ringbuf(self, name: str, size: int) -> int:
        """A new BPF ring buffer map of `size` bytes; its fd (the caller closes it)."""
        ctypes.set_errno(0)
        fd = int(self._lib.bpf_map_create(_BPF_MAP_TYPE_RINGBUF, name.encode(), 0, 0, size, None))
        if fd < 0:
            err = ctypes.get_errno() or -fd
            raise SensorError(
                f"cannot create ring buffer {name} of {size} bytes: {os.strerror(err)}"
            )
        return fd

    def load(self) -> None:
        self._libbpf.take_log()
        rc = self._lib.bpf_object__load(self._require())
        if rc != 0:
            err = -rc if rc < 0 else ctypes.get_errno()
            log = self._libbpf.take_log()
            hint = ""
            if err == errno.EPERM:
                hint = " (loading BPF needs root or CAP_BPF + CAP_PERFMON)"
            raise SensorError(
                f"{self.path}: the kernel refused the BPF object: {os.strerror(err)}{hint}"
                + _log_tail(log)
            )
        self.loaded = True

    def _program(self, program: str) -> int:
        prog = self._lib.bpf_object__find_program_by_name(self._require(), program.encode())
        if not prog:
            raise SensorError(f"{self.path}: no program named {program}")
        return int(prog)

    def set_autoload(self, program: str, autoload: bool) -> None:
        """Whether load() loads `program` (before loading)."""
        rc = self._lib.bpf_program__set_autoload(self._program(program), autoload)
        if rc != 0:
            raise SensorError(f"program {program}: cannot set autoload: {os.strerror(-rc)}")

    def program_fd(self, program: str) -> int:
        """A loaded program's fd (owned by the object), for a program array."""
        fd = int(self._lib.bpf_program__fd(self._program(program)))
        if fd < 0:
            raise SensorError(f"program {program} has no file descriptor (not loaded?)")
        return fd

    def max_entries(self, name: str) -> int:
        """A map's size as the object declares it (or as set), loaded or not."""
        return int(self._lib.bpf_map__max_entries(self._map(name)))

    def map(self, name: str) -> MapHandle:
        item = self._map(name)
        fd = int(self._lib.bpf_map__fd(item))
        if fd < 0:
            raise SensorError(f"map {name} has no file descriptor (not loaded?)")
        return MapHandle(name, fd, int(self._lib.bpf_map__max_entries(item)))

    def attach(self, program: str) -> None:
        prog = self._lib.bpf_object__find_program_by_name(self._require(), program.encode())
        if not prog:
            raise SensorError(f"{self.path}: no program named {program}")
        self._libbpf.take_log()
        ctypes.set_errno(0)
        link = self._lib.bpf_program__attach(prog)
        if not link:
            err = ctypes.get_errno() or errno.EINVAL
            raise SensorError(
                f"cannot attach {program}: {os.strerror(err)}" + _log_tail(self._libbpf.take_log())
            )
        self._links.append(int(link))

    def attach_cgroup_pinned(self, program: str, cgroup_fd: int, pin: str) -> None:
        """Attach a cgroup program to the cgroup of `cgroup_fd` and pin its link at `pin`.

        The pinned link outlives this object and this process; removing the pin file
        detaches the program."""
        prog = self._lib.bpf_object__find_program_by_name(self._require(), program.encode())
        if not prog:
            raise SensorError(f"{self.path}: no program named {program}")
        self._libbpf.take_log()
        ctypes.set_errno(0)
        link = self._lib.bpf_program__attach_cgroup(prog, cgroup_fd)
        if not link:
            err = ctypes.get_errno() or errno.EINVAL
            raise SensorError(
                f"cannot attach {program} to the cgroup: {os.strerror(err)}"
                + _log_tail(self._libbpf.take_log())
            )
        rc = self._lib.bpf_link__pin(link, os.fsencode(pin))
        if rc != 0:
            self._lib.bpf_link__destroy(link)  # not pinned: destroying it detaches it
            raise SensorError(f"cannot pin {program} at {pin}: {os.strerror(-rc)}")
        # closes our descriptor only: the pin holds the link (disconnecting it first would
        # leak the descriptor, and the link would outlive its pin)
        self._lib.bpf_link__destroy(link)

    def detach(self) -> None:
        """Destroy every link: the programs stop running (the object stays loaded)."""
        while self._links:
            self._lib.bpf_link__destroy(self._links.pop())

    def close(self) -> None:
        """Detach and free everything; idempotent."""
        self.detach()
        if self._obj is not None:
            self._lib.bpf_object__close(self._obj)
            self._obj = None

    # -- map access by fd (maps of any object) ------------------------------------------
    def update(self, handle: MapHandle, key: bytes, value: bytes) -> None:
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value, len(value))
        rc = self._lib.bpf_map_update_elem(handle.fd, k, v, 0)
        if rc != 0:
            err = ctypes.get_errno() or -rc
            raise SensorError(f"map {handle.name}: update failed: {os.strerror(err)}")

    def delete(self, handle: MapHandle, key: bytes) -> None:
        k = ctypes.create_string_buffer(key, len(key))
        rc = self._lib.bpf_map_delete_elem(handle.fd, k)
        if rc != 0:
            err = ctypes.get_errno() or -rc
            if err != errno.ENOENT:
                raise SensorError(f"map {handle.name}: delete failed: {os.strerror(err)}")

    def lookup(self, handle: MapHandle, key: bytes, value_size: int) -> bytes:
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value_size)
        rc = self._lib.bpf_map_lookup_elem(handle.fd, k, v)
        if rc != 0:
            err = ctypes.get_errno() or -rc
            raise SensorError(f"map {handle.name}: lookup failed: {os.strerror(err)}")
        return v.raw


def _log_tail(lines: list[str], keep: int = 16) -> str:
    text = "".join(lines).strip().splitlines()
    if not text:
        return ""
    return "\nlibbpf said:\n  " + "\n  ".join(text[-keep:])
