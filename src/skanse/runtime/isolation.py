"""Network isolation of a container by cgroup BPF programs (bpf/isolate.bpf.c).

    pins = isolate_cgroup("/sys/fs/cgroup/unified/libpod_parent/libpod-<id>", pin_dir)
    release_cgroup(pin_dir)

cgroup_skb ingress and egress drop every packet of the cgroup's sockets that is not
loopback, and cgroup/connect4 and connect6 refuse every connect() that is not to loopback.
They are attached to the container's cgroup v2 directory, so isolation takes effect at
once for every process of the container, including those that start later, and needs no
live process (nsenter into a process's network namespace failed when the offender had
already exited). The links are pinned in bpffs (mounted at /sys/fs/bpf if nothing is
mounted there), so isolation outlives the sensor; unpinning detaches the programs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.resources
import os
from pathlib import Path

from skanse.errors import ResponseError, SensorError
from skanse.runtime.containers import mounts

__all__ = [
    "BPFFS",
    "PROGRAMS",
    "cgroup_id",
    "isolate_cgroup",
    "isolation_object",
    "release_cgroup",
]

BPFFS = "/sys/fs/bpf"
PROGRAMS = (
    "skn_isolate_ingress",
    "skn_isolate_egress",
    "skn_isolate_connect4",
    "skn_isolate_connect6",
)


def isolation_object() -> Path:
    override = os.environ.get("SKANSE_ISOLATE_OBJECT")
    if override:
        return Path(override)
    return Path(str(importlib.resources.files("skanse.runtime").joinpath("bpf/isolate.bpf.o")))


def _ensure_bpffs(root: str = BPFFS) -> None:
    if any(point == root and fstype == "bpf" for point, fstype, _ in mounts()):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.mount(b"bpf", os.fsencode(root), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise ResponseError(f"no bpffs at {root}, and mounting one failed: {os.strerror(err)}")


def cgroup_id(cgroup_dir: str) -> int | None:
    """The cgroup v2 id of a cgroup directory (its inode), or None when it does not exist.

    A container restarted by its runtime gets a new cgroup at the same path: the path alone
    cannot tell that the programs attached to the old one no longer cover it; the id can.
    """
    try:
        return os.stat(cgroup_dir).st_ino
    except OSError:
        return None


def isolate_cgroup(cgroup_dir: str, pin_dir: str, object_path: Path | None = None) -> list[str]:
    """Attach the isolation programs to a cgroup v2 directory; the pinned links' paths."""
    from skanse.runtime.libbpf import BpfObject, load_libbpf

    path = object_path or isolation_object()
    if not path.exists():
        raise ResponseError(f"{path} is not built (make bpf)")
    _ensure_bpffs()
    try:
        cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ResponseError(f"cannot open cgroup {cgroup_dir}: {exc.strerror or exc}") from None
    pinned: list[str] = []
    obj = None
    try:
        os.makedirs(pin_dir, mode=0o700, exist_ok=True)
        obj = BpfObject(load_libbpf(), str(path))
        obj.load()
        for program in PROGRAMS:
            pin = os.path.join(pin_dir, program)
            obj.attach_cgroup_pinned(program, cgroup_fd, pin)
            pinned.append(pin)
    except (SensorError, OSError) as exc:
        for pin in pinned:  # all or nothing: a half-isolated container is not isolated
            _unlink(pin)
        _rmdir(pin_dir)
        raise ResponseError(f"cgroup BPF isolation of {cgroup_dir} failed: {exc}") from None
    finally:
        os.close(cgroup_fd)
        if obj is not None:
            obj.close()
    return pinned


def release_cgroup(pin_dir: str) -> list[str]:
    """Unpin (and so detach) the isolation programs pinned in `pin_dir`."""
    released = []
    for program in PROGRAMS:
        pin = os.path.join(pin_dir, program)
        if _unlink(pin):
            released.append(pin)
    _rmdir(pin_dir)
    return released


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ResponseError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return True


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
