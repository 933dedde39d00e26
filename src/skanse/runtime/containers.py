"""Container context: which container a process is in, and what is known about it.

The container id comes from the cgroup path, as Falco's container plugin reads it: a
64-hex id in one of the runtimes' layouts, checked against the cgroups real runtimes write
(`docker-<id>.scope`, `/docker/<id>`, `cri-containerd-<id>.scope`, `:cri-containerd:<id>`,
`crio-<id>`, podman's `libpod-<id>.scope` (systemd manager) and `/libpod_parent/libpod-<id>`
(cgroupfs manager), kubepods' `pod<uid>/<id>`, containerd's `ctr run` `/<namespace>/<id>`,
plain runc's `/<id>`), reported as its first 12 hex characters. The BPF records carry the
cgroup v2 id (the inode of the cgroup directory); `CgroupPaths` maps it back to a path by a
file handle (open_by_handle_at, O(1)) or, failing that, a scan of the hierarchy.

Metadata (name, image, digest, Kubernetes namespace and pod, privileged, mounts) is read
from each runtime's own state:
  docker      <docker root>/containers/<id>/config.v2.json and hostconfig.json
  containerd  <containerd state>/io.containerd.runtime.v2.task/<namespace>/<id>/config.json
              (the OCI spec; CRI writes io.kubernetes.cri.* annotations)
  podman,     containers-storage's overlay-containers/containers.json (name, image),
  CRI-O       overlay-images/images.json (digest), overlay-containers/<id>/userdata/
              config.json (io.kubernetes.pod.*, io.kubernetes.cri-o.*, io.podman.*
              annotations); podman's labels from its REST API socket when it listens
  runc        <runc root>/<id>/state.json
Whatever is not found stays missing (`<NA>` in outputs, null in JSON), as in Falco while
metadata is not yet resolved. The CRI socket (gRPC) is not used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skanse.runtime.bolt import BoltError, open_database

__all__ = [
    "CgroupPaths",
    "ContainerMetadata",
    "ContainerRef",
    "RuntimeRoots",
    "cgroup1_freezer_mount",
    "cgroup2_mount",
    "container_cgroup",
    "container_from_cgroup",
    "container_from_proc_cgroup",
    "mounts",
]

_HEX64 = "[0-9a-f]{64}"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"/docker-({_HEX64})\.scope(?:/|$)"), "docker"),
    (re.compile(rf"/docker/({_HEX64})(?:/|$)"), "docker"),
    (re.compile(rf"/cri-containerd-({_HEX64})\.scope(?:/|$)"), "containerd"),
    (re.compile(rf":cri-containerd:({_HEX64})(?:/|$)"), "containerd"),
    (re.compile(rf"/crio-({_HEX64})(?:\.scope)?(?:/|$)"), "cri-o"),
    # podman: systemd manager `machine.slice/libpod-<id>.scope[/container]`, cgroupfs
    # manager `/libpod_parent/libpod-<id>` (never `libpod-conmon-<id>`: that is conmon's)
    (re.compile(rf"/libpod-({_HEX64})(?:\.scope)?(?:/container)?(?:/|$)"), "podman"),
    (re.compile(rf"/kubepods[^/]*/(?:[^/]+/)?pod[0-9a-f_-]+/({_HEX64})(?:/|$)"), "cri"),
    (
        re.compile(rf"/kubepods[^/]*/(?:[^/]+/)?pod[0-9a-f_-]+\.slice/[a-z-]*?({_HEX64})\.scope"),
        "cri",
    ),
    # containerd's `ctr run` (cgroupfs): /<namespace>/<id>, with the ids Kubernetes uses
    (re.compile(rf"^/[a-z0-9][a-z0-9._-]*/({_HEX64})(?:/|$)"), "containerd"),
    # plain `runc run <id>` (cgroupfs, no cgroupsPath in the spec): /<id>
    (re.compile(rf"^/({_HEX64})(?:/|$)"), "runc"),
)


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """A container found in a cgroup path."""

    full_id: str  # 64 hex
    type: str  # docker, containerd, cri-o, podman, cri
    cgroup: str  # the cgroup path it was found in

    @property
    def id(self) -> str:
        return self.full_id[:12]


def container_from_cgroup(path: str) -> ContainerRef | None:
    """The container of a cgroup path, or None for a host process."""
    for pattern, kind in _PATTERNS:
        match = pattern.search(path)
        if match:
            return ContainerRef(match.group(1), kind, path)
    return None


def container_cgroup(path: str, container_id: str) -> str | None:
    """The cgroup of the container `container_id` (its 12-hex short id) that `path` lies in:
    the path up to the component holding the id (`/system.slice/docker-<id>.scope` for
    `/system.slice/docker-<id>.scope/sub`), or None when `path` is not that container's.

    A response acts on this cgroup, not on the process's own: a process that moved itself
    into a sub-cgroup it made (a container with its cgroup tree writable: systemd in a
    container, a delegated cgroup) would otherwise have only that sub-cgroup frozen or
    isolated, and a sibling of the container would move it back out.
    """
    for pattern, _kind in _PATTERNS:  # the first match, as container_from_cgroup
        match = pattern.search(path)
        if match:
            if match.group(1)[:12] != container_id:
                return None
            end = path.find("/", match.end(1))
            return path if end < 0 else path[:end]
    return None


def container_from_proc_cgroup(text: str) -> ContainerRef | None:
    """The container of a process from /proc/<pid>/cgroup (any hierarchy)."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        found = container_from_cgroup(path)
        if found:
            return found
    return None


def mounts(mountinfo: str = "/proc/self/mountinfo") -> Iterator[tuple[str, str, list[str]]]:
    """(mount point, fstype, super options) of each line of a mountinfo file (none if it
    cannot be read)."""
    try:
        text = Path(mountinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = right.split()
        parts = left.split()
        if fields and len(parts) >= 5:
            yield parts[4].replace("\\040", " "), fields[0], fields[-1].split(",")


def _mount_point(mountinfo: str, wanted: Callable[[str, list[str]], bool]) -> str | None:
    """The first mount point in a mountinfo file whose (fstype, super options) are wanted."""
    for point, fstype, options in mounts(mountinfo):
        if wanted(fstype, options):
            return point
    return None


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on hybrid)."""
    return _mount_point(mountinfo, lambda fstype, _options: fstype == "cgroup2")


def cgroup1_freezer_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the cgroup v1 freezer hierarchy is mounted, if it is."""
    return _mount_point(
        mountinfo, lambda fstype, options: fstype == "cgroup" and "freezer" in options
    )


class _FileHandle(ctypes.Structure):
    _fields_ = [
        ("handle_bytes", ctypes.c_uint),
        ("handle_type", ctypes.c_int),
        ("f_handle", ctypes.c_uint64),
    ]


_FILEID_KERNFS = 0xFE
_INCOMPLETE = "_incomplete"  # a reader's record key: a source could not be read, do not cache


class CgroupPaths:
    """cgroup v2 id -> path under the hierarchy (e.g. /system.slice/docker-<id>.scope)."""

    def __init__(self, mount: str | None) -> None:
        self.mount = mount
        self._cache: dict[int, str | None] = {}
        self._mount_fd: int | None = None
        self._open_by_handle: Any = None
        if mount is not None:
            try:
                self._mount_fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                fn = libc.open_by_handle_at
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.c_int, ctypes.POINTER(_FileHandle), ctypes.c_int]
                self._open_by_handle = fn
            except (OSError, AttributeError):
                self._open_by_handle = None

    def close(self) -> None:
        if self._mount_fd is not None:
            os.close(self._mount_fd)
            self._mount_fd = None

    def path(self, cgroup_id: int) -> str | None:
        if cgroup_id in self._cache:
            return self._cache[cgroup_id]
        found = self._by_handle(cgroup_id)
        if found is None:
            found = self._scan(cgroup_id)
        if len(self._cache) > 65536:  # bounded: cgroups come and go
            self._cache.clear()
        if found is not None:
            self._cache[cgroup_id] = found
        return found

    def _by_handle(self, cgroup_id: int) -> str | None:
        if self._open_by_handle is None or self._mount_fd is None:
            return None
        handle = _FileHandle(8, _FILEID_KERNFS, cgroup_id)
        fd = self._open_by_handle(self._mount_fd, ctypes.byref(handle), os.O_RDONLY | os.O_CLOEXEC)
        if fd < 0:
            return None
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        finally:
            os.close(fd)
        if self.mount and target.startswith(self.mount):
            return target[len(self.mount) :] or "/"
        return None

    def _scan(self, cgroup_id: int) -> str | None:
        if self.mount is None:
            return None
        found: str | None = None
        stack = [self.mount]
        visited = 0
        while stack and visited < 200_000:  # bounded walk of the hierarchy
            current = stack.pop()
            visited += 1
            try:
                entries = list(os.scandir(current))
            except OSError:
                continue
            for entry in entries:
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    inode = entry.inode()
                except OSError:
                    continue
                rel = entry.path[len(self.mount) :]
                if len(self._cache) < 65536:
                    self._cache.setdefault(inode, rel)
                if inode == cgroup_id:
                    found = rel
                stack.append(entry.path)
        return found


@dataclass(frozen=True, slots=True)
class RuntimeRoots:
    """Where the container runtimes keep their state (under a host root in a DaemonSet)."""

    docker: str = "/var/lib/docker"
    containerd: str = "/run/containerd"
    # containerd's metadata database: the image and labels `ctr run` was given
    containerd_metadata: str = "/var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"
    containers_storage: str = "/run/containers/storage"  # run root (CRI-O, podman)
    containers_graph: str = "/var/lib/containers/storage"  # graph root (CRI-O, podman)
    podman_socket: str = "/run/podman/podman.sock"
    runc: str = "/run/runc"

    @classmethod
    def under(cls, host_root: str) -> RuntimeRoots:
        root = Path(host_root)
        return cls(
            docker=str(root / "var/lib/docker"),
            containerd=str(root / "run/containerd"),
            containerd_metadata=str(
                root / "var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"
            ),
            containers_storage=str(root / "run/containers/storage"),
            containers_graph=str(root / "var/lib/containers/storage"),
            podman_socket=str(root / "run/podman/podman.sock"),
            runc=str(root / "run/runc"),
        )


@dataclass(slots=True)
class ContainerMetadata:
    """Reads and caches container records (the `container` object of the event schema).

    Each runtime's own state is read, as Falco's container plugin reads it: docker's
    config.v2.json, containerd's task spec, containers-storage's containers.json and
    images.json plus the OCI spec (podman, CRI-O), runc's state.json; podman's labels
    (the Kubernetes pod and namespace of `podman kube play` and of `--label`) live only
    in its database, so they are asked of its API socket when that is listening.
    """

    roots: RuntimeRoots = field(default_factory=RuntimeRoots)
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    _storage: dict[str, tuple[int, dict[str, Mapping[str, Any]]]] = field(default_factory=dict)
    # incomplete records (containerd's database could not be read): the database's stamp
    # then; the record is looked up again only once the database has changed
    _incomplete: dict[str, tuple[int, int] | None] = field(default_factory=dict)

    def lookup(self, ref: ContainerRef) -> dict[str, Any]:
        cached = self._cache.get(ref.full_id)
        if cached is not None and not self.stale(ref.full_id):
            return cached
        record: dict[str, Any] = {"id": ref.id, "type": ref.type, "full_id": ref.full_id}
        full_id = ref.full_id
        readers: tuple[Callable[[str], dict[str, Any] | None], ...] = (
            self._docker,
            self._containerd,
            self._containers_storage,
            self._runc,
        )
        if ref.type == "podman":
            readers = (self._containers_storage, *readers)
        found = None
        for reader in readers:
            found = reader(full_id)
            if found:
                break
        if found:
            # a source that could not be read this time (containerd's database caught
            # mid-write, or unreadable) leaves the record incomplete: it is looked up again
            # once the database has changed, not at every event
            if found.pop(_INCOMPLETE, False):
                self._incomplete[full_id] = self._containerd_stamp()
            else:
                self._incomplete.pop(full_id, None)
            record.update(found)
            if len(self._cache) > 16384:
                self._cache.clear()
                self._incomplete.clear()
            self._cache[ref.full_id] = record
        return record

    def incomplete(self, full_id: str) -> bool:
        """Whether the record kept for `full_id` lacks what an unreadable source holds."""
        return full_id in self._incomplete

    def stale(self, full_id: str) -> bool:
        """Whether the record kept for `full_id` is incomplete and its source has changed
        since (a lookup would read it again)."""
        return full_id in self._incomplete and self._incomplete[full_id] != self._containerd_stamp()

    def _containerd_stamp(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.roots.containerd_metadata)
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size

    def forget(self, full_id: str) -> None:
        self._cache.pop(full_id, None)
        self._incomplete.pop(full_id, None)

    def _docker(self, full_id: str) -> dict[str, Any] | None:
        base = Path(self.roots.docker, "containers", full_id)
        config = _json_file(base / "config.v2.json")
        if config is None:
            return None
        record: dict[str, Any] = {"type": "docker"}
        name = config.get("Name")
        if isinstance(name, str):
            record["name"] = name.lstrip("/")
        raw_conf = config.get("Config")
        conf: Mapping[str, Any] = raw_conf if isinstance(raw_conf, Mapping) else {}
        image = conf.get("Image")
        if isinstance(image, str):
            record["image"] = image
        image_id = config.get("Image")
        if isinstance(image_id, str):
            record["image_id"] = image_id.removeprefix("sha256:")[:12]
        raw_labels = conf.get("Labels")
        k8s = _k8s_from_labels(raw_labels if isinstance(raw_labels, Mapping) else {})
        if k8s:
            record["k8s"] = k8s
        host = _json_file(base / "hostconfig.json")
        if host is not None and isinstance(host.get("Privileged"), bool):
            record["privileged"] = host["Privileged"]
        mounts = config.get("MountPoints")
        if isinstance(mounts, Mapping):
            record["mounts"] = [
                {
                    "source": m.get("Source"),
                    "dest": m.get("Destination"),
                    "mode": m.get("Mode", ""),
                    "rw": bool(m.get("RW")),
                    "propagation": m.get("Propagation", ""),
                }
                for m in mounts.values()
                if isinstance(m, Mapping)
            ]
        return record

    def _containerd(self, full_id: str) -> dict[str, Any] | None:
        tasks = Path(self.roots.containerd, "io.containerd.runtime.v2.task")
        try:
            namespaces = [p for p in tasks.iterdir() if p.is_dir()]
        except OSError:
            return None
        for namespace in namespaces:
            spec = _json_file(namespace / full_id / "config.json")
            if spec is not None:
                record = _from_oci_spec(spec, "containerd")
                record.setdefault("type", "containerd")
                if "image" not in record:  # not CRI: `ctr run`, nerdctl
                    stored = self._containerd_database(namespace.name, full_id)
                    if stored is None:
                        record[_INCOMPLETE] = True
                    else:
                        record.update(stored)
                return record
        return None

    def _containerd_database(self, namespace: str, full_id: str) -> dict[str, Any] | None:
        """Image, image digest and name of a containerd container from containerd's metadata
        database. containerd has no container names apart from ids (`ctr run IMAGE ID`): the
        name is nerdctl's `nerdctl/name` label when there is one, else the id. None when the
        database could not be read (containerd writes it in place: try again later)."""
        container = (b"v1", namespace.encode(), b"containers", full_id.encode())
        try:
            with open_database(Path(self.roots.containerd_metadata)) as database:
                fields = database.bucket(container)
                if not fields:
                    return {}
                labels = database.bucket((*container, b"labels")) or {}
                image = fields.get(b"image")
                target = None
                if image:
                    images = (b"v1", namespace.encode(), b"images")
                    with suppress(BoltError):  # the name without its digest
                        target = database.bucket((*images, image, b"target"))
        except BoltError:
            return None
        record: dict[str, Any] = {"name": full_id}
        name = labels.get(b"nerdctl/name")
        if name:
            record["name"] = name.decode("utf-8", "replace")
        if image:
            record["image"] = image.decode("utf-8", "replace")
            digest = (target or {}).get(b"digest", b"").decode("ascii", "replace")
            if re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
                record["image_digest"] = digest
        return record

    def _storage_index(self, name: str) -> dict[str, Mapping[str, Any]]:
        """containers-storage's containers.json or images.json by id, re-read on change."""
        path = Path(self.roots.containers_graph, name)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return {}
        cached = self._storage.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        entries = _json_value(path, limit=64 * 1024 * 1024)
        index = {
            str(e["id"]): e
            for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, Mapping) and isinstance(e.get("id"), str)
        }
        self._storage[name] = (stamp, index)
        return index

    def _containers_storage(self, full_id: str) -> dict[str, Any] | None:
        """podman and CRI-O: containers-storage's records plus the container's OCI spec."""
        spec = None
        for root in (self.roots.containers_graph, self.roots.containers_storage):
            spec = _json_file(Path(root, "overlay-containers", full_id, "userdata", "config.json"))
            if spec is not None:
                break
        entry = self._storage_index("overlay-containers/containers.json").get(full_id)
        if spec is None and entry is None:
            return None
        notes = spec.get("annotations") if spec is not None else None
        podman = isinstance(notes, Mapping) and notes.get("io.container.manager") == "libpod"
        record = _from_oci_spec(spec or {}, "podman" if podman else "cri-o")
        if entry is not None:
            names = entry.get("names")
            if "name" not in record and isinstance(names, list) and names:
                record["name"] = str(names[0])
            meta = _json_text(entry.get("metadata"))
            image_name = meta.get("image-name") if meta else None
            if "image" not in record and isinstance(image_name, str):
                record["image"] = image_name
            image_id = entry.get("image")
            if isinstance(image_id, str):
                record["image_id"] = image_id[:12]
                image = self._storage_index("overlay-images/images.json").get(image_id)
                digest = image.get("digest") if image else None
                if isinstance(digest, str):
                    record["image_digest"] = digest
        if podman:
            if isinstance(notes, Mapping):
                flag = notes.get("io.podman.annotations.privileged")
                if isinstance(flag, str):
                    record["privileged"] = flag.upper() == "TRUE"
            labels = _podman_labels(self.roots.podman_socket, full_id)
            k8s = _k8s_from_labels(labels)
            if k8s:
                record["k8s"] = k8s
        return record

    def _runc(self, full_id: str) -> dict[str, Any] | None:
        state = _json_file(Path(self.roots.runc, full_id, "state.json"))
        if state is None:
            return None
        record: dict[str, Any] = {"type": "runc", "name": full_id[:12]}
        config = state.get("config")
        labels = config.get("labels") if isinstance(config, Mapping) else None
        if isinstance(labels, list):
            pairs = dict(str(x).split("=", 1) for x in labels if "=" in str(x))
            k8s = _k8s_from_labels(pairs)
            if k8s:
                record["k8s"] = k8s
        return record


def _podman_labels(socket_path: str, full_id: str, timeout: float = 2.0) -> Mapping[str, Any]:
    """A container's labels from podman's REST API on its unix socket ({} if not there)."""
    import http.client
    import socket

    if not os.path.exists(socket_path):
        return {}

    class _UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(socket_path)
            self.sock = sock

    connection = _UnixConnection("localhost", timeout=timeout)
    try:
        connection.request("GET", f"/v4.0.0/libpod/containers/{full_id}/json")
        response = connection.getresponse()
        body = response.read(8 * 1024 * 1024 + 1)
        if response.status != 200 or len(body) > 8 * 1024 * 1024:
            return {}
        data = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError, RecursionError):
        return {}
    finally:
        connection.close()
    config = data.get("Config") if isinstance(data, dict) else None
    labels = config.get("Labels") if isinstance(config, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def _json_text(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _from_oci_spec(spec: Mapping[str, Any], kind: str) -> dict[str, Any]:
    annotations = spec.get("annotations")
    notes: Mapping[str, Any] = annotations if isinstance(annotations, Mapping) else {}
    record: dict[str, Any] = {"type": kind}
    # containerd's CRI plugin
    name = notes.get("io.kubernetes.cri.container-name") or notes.get(
        "io.kubernetes.container.name"
    )
    if isinstance(name, str):
        record["name"] = name
    image = notes.get("io.kubernetes.cri.image-name") or notes.get("io.kubernetes.cri-o.ImageName")
    if isinstance(image, str):
        record["image"] = image
    k8s: dict[str, Any] = {}
    ns = notes.get("io.kubernetes.cri.sandbox-namespace") or notes.get(
        "io.kubernetes.pod.namespace"
    )
    pod = notes.get("io.kubernetes.cri.sandbox-name") or notes.get("io.kubernetes.pod.name")
    uid = notes.get("io.kubernetes.cri.sandbox-uid") or notes.get("io.kubernetes.pod.uid")
    if isinstance(ns, str):
        k8s["ns"] = ns
    if isinstance(pod, str):
        k8s["pod"] = pod
    if isinstance(uid, str):
        k8s["pod_uid"] = uid
    if k8s:
        record["k8s"] = k8s
    privileged = notes.get("io.kubernetes.cri-o.PrivilegedRuntime")
    if isinstance(privileged, str):
        record["privileged"] = privileged == "true"
    mounts = spec.get("mounts")
    if isinstance(mounts, list):
        record["mounts"] = [
            {
                "source": m.get("source"),
                "dest": m.get("destination"),
                "mode": ",".join(m.get("options") or []),
                "rw": "ro" not in (m.get("options") or []),
                "propagation": next(
                    (
                        o
                        for o in (m.get("options") or [])
                        if "private" in o or "shared" in o or "slave" in o
                    ),
                    "",
                ),
            }
            for m in mounts
            if isinstance(m, Mapping)
        ]
    return record


def _k8s_from_labels(labels: Mapping[str, Any]) -> dict[str, Any]:
    k8s: dict[str, Any] = {}
    for key, target in (
        ("io.kubernetes.pod.namespace", "ns"),
        ("io.kubernetes.pod.name", "pod"),
        ("io.kubernetes.pod.uid", "pod_uid"),
    ):
        value = labels.get(key)
        if isinstance(value, str):
            k8s[target] = value
    return k8s


def _json_value(path: Path, limit: int = 8 * 1024 * 1024) -> Any:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting
        return None


def _json_file(path: Path, limit: int = 8 * 1024 * 1024) -> dict[str, Any] | None:
    value = _json_value(path, limit)
    return value if isinstance(value, dict) else None
