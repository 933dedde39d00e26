"""Container context and /proc: container ids from cgroup paths, runtime metadata, users."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from skanse.runtime import procfs
from skanse.runtime.containers import (
    CgroupPaths,
    ContainerMetadata,
    RuntimeRoots,
    cgroup1_freezer_mount,
    cgroup2_mount,
    container_from_cgroup,
    container_from_proc_cgroup,
)

ID = "3f2a9c1b7d4e" + "5" * 52


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (f"/system.slice/docker-{ID}.scope", "docker"),
        (f"/docker/{ID}", "docker"),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b_3c4d.slice/cri-containerd-{ID}.scope",
            "containerd",
        ),
        (
            f"/system.slice/containerd.service/kubepods-burstable-pod0f1e.slice:cri-containerd:{ID}",
            "containerd",
        ),
        (f"/kubepods.slice/kubepods-pod0f1e.slice/crio-{ID}.scope", "cri-o"),
        (f"/machine.slice/libpod-{ID}.scope/container", "podman"),
        (f"/kubepods/besteffort/pod0f1e2d3c-aaaa-bbbb-cccc-000000000000/{ID}", "cri"),
    ],
)
def test_container_id_is_the_first_12_hex_of_each_runtime_layout(path: str, kind: str) -> None:
    found = container_from_cgroup(path)
    assert found is not None
    assert (found.id, found.full_id, found.type) == ("3f2a9c1b7d4e", ID, kind)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/user.slice/user-0.slice/session-1.scope",
        f"/system.slice/docker-{ID[:40]}.scope",  # too short
        f"/machine.slice/libpod-conmon-{ID}.scope",  # conmon, not the container
        f"/system.slice/crio-conmon-{ID}.scope",
    ],
)
def test_host_cgroups_are_not_containers(path: str) -> None:
    assert container_from_cgroup(path) is None


def test_proc_cgroup_file_any_hierarchy() -> None:
    text = f"12:freezer:/docker/{ID}\n11:memory:/docker/{ID}\n0::/\n"
    found = container_from_proc_cgroup(text)
    assert found is not None and found.id == ID[:12]
    assert container_from_proc_cgroup("0::/init.scope\n") is None


def test_docker_metadata_from_its_state_files(tmp_path: Path) -> None:
    base = tmp_path / "var/lib/docker/containers" / ID
    base.mkdir(parents=True)
    (base / "config.v2.json").write_text(
        json.dumps(
            {
                "ID": ID,
                "Name": "/web",
                "Image": "sha256:" + "ab" * 32,
                "Config": {
                    "Image": "nginx:1.27",
                    "Labels": {
                        "io.kubernetes.pod.namespace": "shop",
                        "io.kubernetes.pod.name": "web-0",
                    },
                },
                "MountPoints": {
                    "/data": {"Source": "/srv/data", "Destination": "/data", "RW": True}
                },
            }
        )
    )
    (base / "hostconfig.json").write_text(json.dumps({"Privileged": True}))
    ref = container_from_cgroup(f"/docker/{ID}")
    assert ref is not None
    record = ContainerMetadata(RuntimeRoots.under(str(tmp_path))).lookup(ref)
    assert record["name"] == "web" and record["image"] == "nginx:1.27"
    assert record["privileged"] is True
    assert record["k8s"] == {"ns": "shop", "pod": "web-0"}
    assert record["mounts"][0]["dest"] == "/data"


def test_containerd_cri_metadata_from_the_oci_spec(tmp_path: Path) -> None:
    spec_dir = tmp_path / "run/containerd/io.containerd.runtime.v2.task/k8s.io" / ID
    spec_dir.mkdir(parents=True)
    (spec_dir / "config.json").write_text(
        json.dumps(
            {
                "ociVersion": "1.1.0",
                "annotations": {
                    "io.kubernetes.cri.container-type": "container",
                    "io.kubernetes.cri.container-name": "api",
                    "io.kubernetes.cri.image-name": "registry.example/api:2.0",
                    "io.kubernetes.cri.sandbox-namespace": "payments",
                    "io.kubernetes.cri.sandbox-name": "api-7d9f",
                    "io.kubernetes.cri.sandbox-uid": "0f1e2d3c",
                },
                "mounts": [
                    {
                        "destination": "/etc/hosts",
                        "source": "/var/lib/x/hosts",
                        "options": ["rbind", "ro"],
                    }
                ],
            }
        )
    )
    ref = container_from_cgroup(f"/kubepods.slice/cri-containerd-{ID}.scope")
    assert ref is not None
    record = ContainerMetadata(RuntimeRoots.under(str(tmp_path))).lookup(ref)
    assert (record["name"], record["image"]) == ("api", "registry.example/api:2.0")
    assert record["k8s"] == {"ns": "payments", "pod": "api-7d9f", "pod_uid": "0f1e2d3c"}
    assert record["mounts"][0]["rw"] is False


def test_unknown_containers_keep_their_id_and_miss_the_rest(tmp_path: Path) -> None:
    ref = container_from_cgroup(f"/docker/{ID}")
    assert ref is not None
    record = ContainerMetadata(RuntimeRoots.under(str(tmp_path))).lookup(ref)
    assert record == {"id": ID[:12], "type": "docker", "full_id": ID}


def test_hostile_state_files_are_ignored(tmp_path: Path) -> None:
    base = tmp_path / "var/lib/docker/containers" / ID
    base.mkdir(parents=True)
    (base / "config.v2.json").write_text("[" * 100_000)  # deep nonsense: not JSON we accept
    ref = container_from_cgroup(f"/docker/{ID}")
    assert ref is not None
    assert "name" not in ContainerMetadata(RuntimeRoots.under(str(tmp_path))).lookup(ref)


def test_cgroup_id_resolves_to_its_path() -> None:
    mount = cgroup2_mount()
    if mount is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup v2 hierarchy")
    path = Path(mount) / f"skanse-test-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        paths = CgroupPaths(mount)
        assert paths.path(path.stat().st_ino) == "/" + path.name
        assert paths._scan(path.stat().st_ino) == "/" + path.name  # the fallback agrees
        paths.close()
    finally:
        path.rmdir()


def test_read_process_of_this_process_matches_the_kernel() -> None:
    data = procfs.read_process(os.getpid(), boot_offset_ns=procfs.boot_epoch_offset_ns())
    assert data is not None
    assert data["pid"] == os.getpid() and data["ppid"] == os.getppid()
    assert data["uid"] == os.geteuid()
    assert data["exepath"] == os.path.realpath(f"/proc/{os.getpid()}/exe")
    assert data["cwd"] == os.getcwd()
    assert data["mntns"] == os.stat("/proc/self/ns/mnt").st_ino


def test_a_vanished_process_is_none_not_an_error() -> None:
    assert procfs.read_process(2**22 + 12345) is None


def test_user_names_come_from_the_host_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nsvc:x:1234:1234::/srv:/bin/false\n"
    )
    (tmp_path / "etc/group").write_text("svc:x:1234:\n")
    names = procfs.UserNames(str(tmp_path))
    assert names.user(1234) == "svc"
    assert names.group(1234) == "svc"
    assert names.user(99999) is None


def test_capability_names() -> None:
    assert procfs.cap_names((1 << 21) | (1 << 0)) == "CAP_CHOWN CAP_SYS_ADMIN"
    assert procfs.cap_names(0) == ""


def _passwd(root: Path, text: str) -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text(text)


def test_user_names_follow_a_containers_files_as_they_change(tmp_path: Path) -> None:
    # mount namespace 7: process 100 execs before its passwd is bind mounted over, then
    # again after; process 101, which ran cat and is gone when its exec is handled, must be
    # named from the files as they are now (the live test of the same is in
    # test_live_detection.py)
    proc = tmp_path / "proc"
    _passwd(proc / "100/root", "root:x:0:0::/root:/bin/sh\n")
    names = procfs.UserNames(str(tmp_path / "host"), proc_root=str(proc))
    names.refresh(7, 100)
    assert names.user(0, mntns=7, pid=100) == "root"
    _passwd(proc / "100/root", "inside-root:x:0:0::/root:/bin/sh\n")
    assert names.user(0, mntns=7, pid=100) == "root"  # cached until the next exec
    names.refresh(7, 100)
    assert names.user(0, mntns=7, pid=100) == "inside-root"
    _passwd(proc / "100/root", "renamed:x:0:0::/root:/bin/sh\n")
    names.refresh(7, 101)  # 101 is gone: its namespace's files seen through 100
    assert names.user(0, mntns=7, pid=101) == "renamed"
    # every process of the namespace gone: the names read while they ran stay
    shutil.rmtree(proc / "100")
    names.refresh(7, 101)
    assert names.user(0, mntns=7, pid=101) == "renamed"


def test_host_user_names_are_read_again_when_the_files_change(tmp_path: Path) -> None:
    host = tmp_path / "host"
    _passwd(host, "svc:x:1234:1234::/srv:/bin/false\n")
    now = [0.0]
    names = procfs.UserNames(str(host), proc_root=str(tmp_path / "proc"), clock=lambda: now[0])
    assert names.user(1234) == "svc"
    _passwd(host, "svc:x:1234:1234::/srv:/bin/false\nnew:x:2345:2345::/:/bin/sh\n")
    names.refresh(None, 1)
    assert names.user(2345) is None  # the host's files are checked at most once a second
    now[0] += 1.5
    names.refresh(None, 1)
    assert names.user(2345) == "new"


def test_cgroup_mount_points_are_read_from_mountinfo(tmp_path: Path) -> None:
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "25 20 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
        "26 25 0:23 / /sys/fs/cgroup/un\\040ified rw shared:10 - cgroup2 cgroup2 rw\n"
        "27 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n"
        "28 25 0:25 / /sys/fs/cgroup/freezer rw shared:12 - cgroup cgroup rw,freezer\n"
    )
    assert cgroup2_mount(str(hybrid)) == "/sys/fs/cgroup/un ified"
    assert cgroup1_freezer_mount(str(hybrid)) == "/sys/fs/cgroup/freezer"
    unified = tmp_path / "unified"
    unified.write_text("30 20 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n")
    assert cgroup2_mount(str(unified)) == "/sys/fs/cgroup"
    assert cgroup1_freezer_mount(str(unified)) is None
    assert cgroup2_mount(str(tmp_path / "missing")) is None


def test_cri_o_metadata_from_containers_storage(tmp_path: Path) -> None:
    # CRI-O (no runtime of it on the test machine): its state as it writes it, the OCI spec
    # with io.kubernetes.* annotations under containers-storage's graph root
    userdata = tmp_path / "var/lib/containers/storage/overlay-containers" / ID / "userdata"
    userdata.mkdir(parents=True)
    (userdata / "config.json").write_text(
        json.dumps(
            {
                "annotations": {
                    "io.kubernetes.container.name": "web",
                    "io.kubernetes.cri-o.ImageName": "quay.example/web:1.4",
                    "io.kubernetes.pod.namespace": "shop",
                    "io.kubernetes.pod.name": "web-0",
                    "io.kubernetes.cri-o.PrivilegedRuntime": "true",
                }
            }
        )
    )
    ref = container_from_cgroup(f"/kubepods.slice/kubepods-pod0f1e.slice/crio-{ID}.scope")
    assert ref is not None
    record = ContainerMetadata(RuntimeRoots.under(str(tmp_path))).lookup(ref)
    assert (record["type"], record["name"], record["image"]) == (
        "cri-o",
        "web",
        "quay.example/web:1.4",
    )
    assert record["k8s"] == {"ns": "shop", "pod": "web-0"}
    assert record["privileged"] is True


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (f"/libpod_parent/libpod-{ID}", "podman"),
        (f"/machine.slice/libpod-{ID}.scope/container", "podman"),
        (f"/default/{ID}", "containerd"),
        (f"/k8s.io/{ID}", "containerd"),
        (f"/{ID}", "runc"),
    ],
)
def test_the_layouts_real_runtimes_write(path: str, kind: str) -> None:
    ref = container_from_cgroup(path)
    assert ref is not None and (ref.full_id, ref.type) == (ID, kind)


def test_conmon_and_pod_parents_are_not_containers() -> None:
    assert container_from_cgroup(f"/libpod_parent/libpod-conmon-{ID}") is None
    assert container_from_cgroup("/libpod_parent") is None


def _containerd_container(tmp_path: Path) -> tuple[RuntimeRoots, Path, bytes]:
    """A `ctr run` container's task spec, and containerd's database naming its image (the
    bytes, not yet written: (roots, where meta.db goes, its bytes))."""
    from tests.runtime.test_bolt import _bucket, _database, _leaf

    spec_dir = tmp_path / "run/containerd/io.containerd.runtime.v2.task/default" / ID
    spec_dir.mkdir(parents=True)
    (spec_dir / "config.json").write_text(json.dumps({"ociVersion": "1.1.0"}))
    roots = RuntimeRoots.under(str(tmp_path))
    meta = Path(roots.containerd_metadata)
    meta.parent.mkdir(parents=True)
    built = _database(
        tmp_path,
        _leaf(2, [(1, b"v1", _bucket(3))]),
        _leaf(3, [(1, b"default", _bucket(4))]),
        _leaf(4, [(1, b"containers", _bucket(5))]),
        _leaf(5, [(1, ID.encode(), _bucket(6))]),
        _leaf(6, [(0, b"image", b"docker.io/library/nginx:1.27")]),
    ).read_bytes()
    return roots, meta, built


def test_a_containerd_database_caught_mid_write_is_read_again_once_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """containerd rewrites meta.db in place: a lookup that met a torn file must not keep the
    container without its image for good, nor read the database again at every event
    while it stays the same."""
    roots, meta, built = _containerd_container(tmp_path)
    ref = container_from_cgroup(f"/default/{ID}")
    assert ref is not None
    metadata = ContainerMetadata(roots)
    reads: list[str] = []
    real = ContainerMetadata._containerd_database

    def counted(self: ContainerMetadata, namespace: str, full_id: str) -> object:
        reads.append(full_id)
        return real(self, namespace, full_id)

    monkeypatch.setattr(ContainerMetadata, "_containerd_database", counted)
    meta.write_bytes(built[: 2 * 4096 + 100])  # torn: the pages after the meta pages missing
    assert "image" not in metadata.lookup(ref)
    assert "image" not in metadata.lookup(ref)
    assert len(reads) == 1  # unchanged: not read again
    meta.write_bytes(built)
    assert metadata.lookup(ref)["image"] == "docker.io/library/nginx:1.27"
    assert metadata.lookup(ref)["image"] == "docker.io/library/nginx:1.27"
    assert len(reads) == 2


def test_a_cgroup_whose_container_was_incomplete_gets_its_record_when_the_source_changes(
    tmp_path: Path,
) -> None:
    """On cgroup v2 a cgroup's container is looked up once; a record left incomplete by a
    torn database is read again when the database changes."""
    from skanse.rules.events import ProcessTable
    from skanse.runtime.state import ProcessState

    roots, meta, built = _containerd_container(tmp_path)

    class OneCgroup(CgroupPaths):
        def path(self, cgroup_id: int) -> str | None:
            return f"/default/{ID}" if cgroup_id == 77 else None

    table = ProcessTable()
    state = ProcessState(
        table,
        users=procfs.UserNames(str(tmp_path), proc_root=str(tmp_path / "no-proc")),
        cgroups=OneCgroup(None),
        metadata=ContainerMetadata(roots),
        boot_offset_ns=0,
    )
    meta.write_bytes(built[: 2 * 4096 + 100])
    cid = state._container_for_cgroup_id(77, pid=1)
    assert cid is not None and table.containers[cid].image is None
    meta.write_bytes(built)
    assert state._container_for_cgroup_id(77, pid=1) == cid
    assert table.containers[cid].image == "docker.io/library/nginx:1.27"
