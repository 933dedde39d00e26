"""The eBPF sensor: load the CO-RE object, program the syscall filter, read the records.

    sensor = BpfSensor(BpfSensorOptions(event_types={"openat", "execve", "connect"}))
    sensor.start()                       # preflight, open, size, load, configure, attach
    chunk, spans = sensor.read()         # committed records, copied out of the ring buffer
    sensor.counters()                    # produced / dropped, summed over CPUs
    sensor.close()                       # detach and free: nothing stays in the kernel

The syscall filter lives in the kernel: `skn_syscalls[nr]` holds how to read the arguments
of each syscall the loaded rules index on (plus execve/execveat, which keep the process
table), zero for everything else. `preflight()` checks what the kernel program needs and
raises `SensorUnavailableError` naming the first missing requirement.
"""

from __future__ import annotations

import importlib.resources
import os
import platform
import select
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from skanse.errors import SensorError, SensorUnavailableError
from skanse.runtime.enforce import KernelKillPlan, path_hash
from skanse.runtime.libbpf import BpfObject, load_libbpf
from skanse.runtime.records import Record, SyscallClass, parse_record
from skanse.runtime.ringbuf import MergedRings, RingBuffer
from skanse.runtime.syscalls import STATE_SYSCALLS, SYSCALLS

__all__ = [
    "DEFAULT_RING_BYTES",
    "PROGRAMS",
    "WAKEUP_SECONDS",
    "BpfSensor",
    "BpfSensorOptions",
    "Counters",
    "default_object_path",
    "preflight",
]

DEFAULT_RING_BYTES = 16 * 1024 * 1024  # per CPU
# a record wakes the reader only if its CPU's last wakeup is this old (sensor.bpf.c emit):
# the first record after a quiet spell is read at once, and a reader that found records
# must look again within this time itself (Agent.run)
WAKEUP_SECONDS = 0.05
PROGRAMS = ("skn_sys_exit", "skn_exec", "skn_fork", "skn_exit")
# tail-called by skn_sys_exit, never attached: kills the other processes sharing a killed
# opener's file table (sensor.bpf.c); loaded only where the kernel has these kfuncs
SHARERS_PROGRAM = "skn_kill_sharers"
SHARERS_KFUNCS = (
    "bpf_iter_task_new",
    "bpf_iter_task_next",
    "bpf_iter_task_destroy",
    "bpf_task_acquire",
    "bpf_task_release",
    "bpf_send_signal_task",
)
MIN_KERNEL = (5, 17)  # tp_btf, ring buffers, bpf_loop
CHECK_KILL = 0x80  # skn_syscalls value bit: look the opened file up in skn_kill_paths
KILL_HOST = 1  # skn_config.flags
KILL_UPPER_EXEC = 2
_OPEN_NRS = frozenset(
    SYSCALLS[name].nr for name in ("open", "openat", "openat2", "creat") if name in SYSCALLS
)
_CAP_PERFMON = 38
_CAP_BPF = 39
_AUDIT_HINT = "`skanse runtime run --sensor audit` (exec events only, from the audit netlink)"


def default_object_path() -> Path:
    """The compiled object shipped in the package (built by `make bpf`)."""
    override = os.environ.get("SKANSE_BPF_OBJECT")
    if override:
        return Path(override)
    return Path(str(importlib.resources.files("skanse.runtime").joinpath("bpf/sensor.bpf.o")))


@dataclass(frozen=True, slots=True)
class BpfSensorOptions:
    event_types: frozenset[str] = field(default_factory=frozenset)
    ring_bytes: int = DEFAULT_RING_BYTES
    object_path: Path | None = None
    btf_path: str = "/sys/kernel/btf/vmlinux"
    ignore_self: bool = True


@dataclass(frozen=True, slots=True)
class Counters:
    produced: int
    dropped: int
    dropped_busy: int = 0  # of the dropped: the buffer had room, its lock was not taken
    retried: int = 0  # reservations that failed with room left and were retried once
    killed: int = 0  # processes the kernel program sent SIGKILL


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _effective_caps() -> int:
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def preflight(options: BpfSensorOptions) -> Path:
    """Check what loading needs; the object path, or SensorUnavailableError."""
    if platform.system() != "Linux":
        raise SensorUnavailableError(
            f"the eBPF sensor runs on Linux, not {platform.system()}", requirement="Linux"
        )
    if platform.machine() not in ("x86_64", "AMD64"):
        raise SensorUnavailableError(
            f"the eBPF sensor is built for x86-64, this machine is {platform.machine()}",
            requirement="x86-64",
            alternative=_AUDIT_HINT,
        )
    release = platform.release()
    if _kernel_version(release) < MIN_KERNEL:
        raise SensorUnavailableError(
            f"kernel {release} is too old for the eBPF sensor",
            requirement="Linux >= 5.17 (tp_btf programs, BPF ring buffer, bpf_loop)",
            alternative=_AUDIT_HINT,
        )
    if not os.path.exists(options.btf_path):
        raise SensorUnavailableError(
            f"{options.btf_path} does not exist: the kernel has no BTF type information",
            requirement="a kernel built with CONFIG_DEBUG_INFO_BTF=y (/sys/kernel/btf/vmlinux)",
            alternative=_AUDIT_HINT,
        )
    caps = _effective_caps()
    if os.geteuid() != 0 and not (caps >> _CAP_BPF & 1 and caps >> _CAP_PERFMON & 1):
        raise SensorUnavailableError(
            "loading BPF programs needs privileges this process does not have",
            requirement="root, or the capabilities CAP_BPF and CAP_PERFMON",
            alternative=_AUDIT_HINT + " (which needs CAP_AUDIT_CONTROL and CAP_AUDIT_READ)",
        )
    path = options.object_path or default_object_path()
    if not path.is_file():
        raise SensorUnavailableError(
            f"the compiled BPF object {path} is missing",
            requirement="the sensor's BPF object: build it with `make bpf` "
            "(needs clang, llvm and bpftool)",
            alternative=_AUDIT_HINT,
        )
    load_libbpf()
    return path


def syscall_plan(event_types: Iterable[str]) -> tuple[dict[int, SyscallClass], frozenset[str]]:
    """The kernel filter for these event types: {nr: class}, and the types it cannot see."""
    wanted = set(event_types) | STATE_SYSCALLS
    plan: dict[int, SyscallClass] = {}
    unsupported = set()
    for name in wanted:
        info = SYSCALLS.get(name)
        if info is None:
            unsupported.add(name)
            continue
        plan[info.nr] = info.cls
    return plan, frozenset(unsupported)


class BpfSensor:
    """One loaded and attached instance of the kernel program."""

    name = "ebpf"

    def __init__(self, options: BpfSensorOptions) -> None:
        if options.ring_bytes < 4096 or options.ring_bytes & (options.ring_bytes - 1):
            raise SensorError(
                f"ring buffer size {options.ring_bytes} must be a power of two >= 4096"
            )
        self.options = options
        self.plan, self.unsupported = syscall_plan(options.event_types)
        self._object: BpfObject | None = None
        self._rings: MergedRings | None = None
        self._ring_fds: list[int] = []
        self._cpus = 1
        self._draining = False
        self._epoll: select.epoll | None = None
        self.delivered = 0
        self.kill_plan = KernelKillPlan()
        self._kill_hashes: set[int] = set()
        self._kill_cgroups: set[int] = set()
        self._config = (0, 0)
        # whether an in-kernel kill also reaches the processes sharing the opener's file
        # table (clone with CLONE_FILES): needs the kernel's task iterator and
        # bpf_send_signal_task (Linux 6.13)
        self.kills_file_table_sharers = False

    @property
    def running(self) -> bool:
        return self._rings is not None

    def start(self) -> None:
        path = preflight(self.options)
        libbpf = load_libbpf()
        self._cpus = libbpf.num_possible_cpus()
        size = self.options.ring_bytes
        obj = BpfObject(libbpf, str(path))
        rings: list[RingBuffer] = []
        try:
            obj.set_max_entries("skn_scratch", self._cpus)
            obj.set_max_entries("skn_rings", self._cpus)
            for cpu in range(self._cpus):
                self._ring_fds.append(obj.create_ringbuf(f"skn_ring_{cpu}", size))
            obj.set_inner_map("skn_rings", self._ring_fds[0])
            kill_sharers = libbpf.kernel_functions(SHARERS_KFUNCS) == set(SHARERS_KFUNCS)
            obj.set_autoload(SHARERS_PROGRAM, kill_sharers)
            obj.load()
            if kill_sharers:
                tail = obj.map("skn_tail")
                fd = obj.program_fd(SHARERS_PROGRAM)
                obj.update(tail, struct.pack("<I", 0), struct.pack("<I", fd))
            self.kills_file_table_sharers = kill_sharers
            config = obj.map("skn_config")
            self_tgid = os.getpid() if self.options.ignore_self else 0
            wakeup_ns = int(WAKEUP_SECONDS * 1e9)
            self._config = (self_tgid, wakeup_ns)
            obj.update(config, struct.pack("<I", 0), self._config_value())
            syscalls = obj.map("skn_syscalls")
            for nr, cls in sorted(self.plan.items()):
                obj.update(syscalls, struct.pack("<I", nr), bytes([self._class_value(nr, cls)]))
            self._write_kill_plan(obj)
            outer = obj.map("skn_rings")
            for cpu, fd in enumerate(self._ring_fds):
                obj.update(outer, struct.pack("<I", cpu), struct.pack("<I", fd))
                rings.append(RingBuffer(fd, size))
            epoll = select.epoll()
            for fd in self._ring_fds:
                epoll.register(fd, select.EPOLLIN)  # readable when its ring holds records
            self._epoll = epoll
            for program in PROGRAMS:
                obj.attach(program)
        except BaseException:
            for ring in rings:
                ring.close()
            self._close_epoll()
            self._close_fds()
            obj.close()
            raise
        self._object = obj
        self._rings = MergedRings(rings)

    def set_event_types(self, event_types: Iterable[str]) -> None:
        """Reprogram the in-kernel syscall filter (a rules reload): one map write per change."""
        plan, unsupported = syscall_plan(event_types)
        if self._object is not None:
            obj = self._object
            syscalls = obj.map("skn_syscalls")
            for nr in sorted(set(self.plan) | set(plan)):
                if self.plan.get(nr) != plan.get(nr):
                    value = self._class_value(nr, plan[nr]) if nr in plan else 0
                    obj.update(syscalls, struct.pack("<I", nr), bytes([value]))
        self.plan, self.unsupported = plan, unsupported

    # -- in-kernel kills (skanse.runtime.enforce) -------------------------------------
    def _class_value(self, nr: int, cls: SyscallClass) -> int:
        value = int(cls)
        if self.kill_plan.paths and nr in _OPEN_NRS:
            value |= CHECK_KILL
        return value

    def _config_value(self) -> bytes:
        self_tgid, wakeup_ns = self._config
        plan = self.kill_plan
        flags = (KILL_HOST if plan.allow_host else 0) | (
            KILL_UPPER_EXEC if plan.upper_exec_rule is not None else 0
        )
        rule = plan.upper_exec_rule if plan.upper_exec_rule is not None else 0
        return struct.pack("<IIQII", self_tgid, flags, wakeup_ns, rule, 0)

    def _write_kill_plan(self, obj: BpfObject) -> None:
        paths = obj.map("skn_kill_paths")
        wanted = {path_hash(path): target for path, target in self.kill_plan.paths.items()}
        for stale in self._kill_hashes - set(wanted):
            obj.delete(paths, struct.pack("<Q", stale))
        for key, (fmode, rule) in wanted.items():
            obj.update(paths, struct.pack("<Q", key), struct.pack("<II", fmode, rule))
        self._kill_hashes = set(wanted)

    def set_kill_plan(self, plan: KernelKillPlan) -> None:
        """What the kernel program kills by itself (a kill plan replaces the previous one)."""
        self.kill_plan = plan
        obj = self._object
        if obj is None:
            return
        self._write_kill_plan(obj)
        obj.update(obj.map("skn_config"), struct.pack("<I", 0), self._config_value())
        syscalls = obj.map("skn_syscalls")
        for nr, cls in sorted(self.plan.items()):
            if nr in _OPEN_NRS:
                obj.update(syscalls, struct.pack("<I", nr), bytes([self._class_value(nr, cls)]))

    def add_container_cgroup(self, cgroup_id: int) -> None:
        """In-kernel kills may act in this cgroup (a container's, as userspace found it)."""
        if self._object is None or cgroup_id in self._kill_cgroups:
            return
        obj = self._object
        if len(self._kill_cgroups) >= obj.map("skn_kill_cgroups").max_entries:
            # the kernel's LRU map drops the cgroups of containers long gone; this memo of
            # what was written only saves map writes, so it starts again
            self._kill_cgroups.clear()
        obj.update(obj.map("skn_kill_cgroups"), struct.pack("<Q", cgroup_id), b"\x01")
        self._kill_cgroups.add(cgroup_id)

    def _close_fds(self) -> None:
        while self._ring_fds:
            os.close(self._ring_fds.pop())

    def _close_epoll(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    def wait(self, timeout: float) -> bool:
        """True when records can be taken; otherwise block until the kernel wakes the
        reader (see WAKEUP_SECONDS) or `timeout`, and no longer than WAKEUP_SECONDS while
        records are held back (too young to be merged). Not sooner: under a steady load
        there always is a young record, and chasing each would wake the reader every few
        milliseconds."""
        rings = self._require_rings()
        if rings.ready():
            return True
        if rings.holding():
            timeout = min(timeout, WAKEUP_SECONDS)
        if self._epoll is not None:
            self._epoll.poll(max(timeout, 0.0))
        return rings.ready()

    def _require_rings(self) -> MergedRings:
        if self._rings is None:
            raise SensorError("the sensor is not running")
        return self._rings

    def records(self, max_records: int = 65536) -> Iterator[Record | None]:
        """The records ready now, oldest first across CPUs (None for a malformed one)."""
        rings = self._require_rings()
        for chunk, offset, length in rings.take(max_records, drain=self._draining):
            self.delivered += 1
            yield parse_record(chunk, offset, length)

    def drops(self) -> tuple[int, int]:
        """(produced, dropped) as the kernel counted them."""
        counters = self.counters()
        return counters.produced, counters.dropped

    def pending_bytes(self) -> int:
        return self._rings.pending() if self._rings is not None else 0

    def counters(self) -> Counters:
        if self._object is None:
            return Counters(0, 0)
        handle = self._object.map("skn_counters")
        values = []
        for index in (0, 1, 2, 3, 4):
            raw = self._object.lookup(handle, struct.pack("<I", index), 8 * self._cpus)
            values.append(sum(struct.unpack(f"<{self._cpus}Q", raw)))
        return Counters(*values)

    def attach(self) -> None:
        """Attach the programs again after stop(): records flow from now on. (The bench
        alternates runs with and without them in one loaded sensor.)"""
        if self._object is None:
            raise SensorError("the sensor is not running")
        for program in PROGRAMS:
            self._object.attach(program)
        self._draining = False

    def stop(self) -> None:
        """Detach the programs (no new records); what is buffered can still be read, all
        of it: nothing older can arrive any more, so nothing is held back."""
        if self._object is not None:
            self._object.detach()
        self._draining = True

    def close(self) -> None:
        """Detach, release the ring buffer mappings and free the object. Idempotent."""
        rings, self._rings = self._rings, None
        obj, self._object = self._object, None
        if rings is not None:
            rings.close()
        self._close_epoll()
        self._close_fds()
        if obj is not None:
            obj.close()

    def describe(self) -> dict[str, object]:
        """What `--dry-run` prints: the object, programs, maps and syscall filter."""
        path = self.options.object_path or default_object_path()
        by_nr = {info.nr: info.name for info in SYSCALLS.values()}
        return {
            "sensor": "ebpf",
            "object": str(path),
            "programs": {
                "skn_sys_exit": "tp_btf/sys_exit",
                "skn_exec": "tp_btf/sched_process_exec",
                "skn_fork": "tp_btf/sched_process_fork",
                "skn_exit": "tp_btf/sched_process_exit",
            },
            "maps": {
                "skn_rings": f"array of one ringbuf per CPU, {self.options.ring_bytes} bytes each",
                "skn_syscalls": "array[512] of u8: the in-kernel syscall filter",
                "skn_counters": "percpu_array[4]: produced, dropped, dropped with room, retried",
                "skn_config": "array[1]: the sensor's own pid (not traced), wakeup interval",
                "skn_wakeup": "percpu_array[1]: when each CPU last woke the reader",
                "skn_scratch": "array[CPUs] of 64 KiB: record assembly",
            },
            "syscalls": {
                by_nr[nr]: {"nr": nr, "class": cls.name.lower()}
                for nr, cls in sorted(self.plan.items())
            },
            "unsupported_event_types": sorted(self.unsupported),
        }
