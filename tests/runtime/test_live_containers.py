"""Container detection against real runtimes: the cgroups and state they really write.

The patterns of the first version were written from documentation; a real podman container
(cgroupfs manager: /libpod_parent/libpod-<64 hex>) was reported as the host. These tests
start real containers and read back what the sensor's detection makes of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from skanse.runtime.containers import (
    ContainerMetadata,
    RuntimeRoots,
    container_from_proc_cgroup,
)
from tests.runtime.conftest import live, stable_rules
from tests.runtime.containers_real import (
    IMAGE,
    containerd,
    podman_api,
    podman_container,
    runc_container,
    tiny_image,
)


def test_a_podman_container_is_found_with_its_name_image_and_digest() -> None:
    with podman_container() as container:
        cgroup = Path(f"/proc/{container.pid}/cgroup").read_text()
        ref = container_from_proc_cgroup(cgroup)
        assert ref is not None, cgroup
        assert (ref.full_id, ref.id, ref.type) == (container.full_id, container.id, "podman")
        record = ContainerMetadata().lookup(ref)
    assert record["name"] == container.name
    assert record["image"] == IMAGE
    assert record["image_digest"].startswith("sha256:")
    assert record["privileged"] is False
    assert any(m["dest"] == "/etc/hosts" for m in record["mounts"])


def test_podman_pod_labels_come_from_its_api(tmp_path: Path) -> None:
    labels = (
        "--label",
        "io.kubernetes.pod.namespace=payments",
        "--label",
        "io.kubernetes.pod.name=api-7d9f",
    )
    with podman_api(tmp_path) as sock, podman_container(*labels) as container:
        ref = container_from_proc_cgroup(Path(f"/proc/{container.pid}/cgroup").read_text())
        assert ref is not None
        roots = dataclasses.replace(RuntimeRoots(), podman_socket=str(sock))
        record = ContainerMetadata(roots).lookup(ref)
    assert record["k8s"]["ns"] == "payments"
    assert record["k8s"]["pod"] == "api-7d9f"


def test_a_privileged_podman_container_says_so() -> None:
    with podman_container("--privileged") as container:
        ref = container_from_proc_cgroup(Path(f"/proc/{container.pid}/cgroup").read_text())
        assert ref is not None
        assert ContainerMetadata().lookup(ref)["privileged"] is True


@live
def test_the_sensor_names_the_podman_container_of_an_alert(tmp_path: Path, sensors) -> None:
    # the reported case: `cat /etc/shadow` in a podman container alerted as container_id=host
    sensor = sensors(tmp_path, "--rules", str(stable_rules()))
    with podman_container() as container:
        done = container.exec("cat", "/etc/shadow")
        assert done.returncode == 0, done.stderr
        alert = sensor.wait_for(
            lambda a: (
                a["rule"] == "Read sensitive file untrusted"
                and a["output_fields"].get("container.id") != "host"
            ),
            timeout=10,
        )
    sensor.stop()
    assert alert is not None, "no alert from the container"
    fields = alert["output_fields"]
    assert fields["container.id"] == container.id
    assert fields["container.name"] == container.name
    assert fields["container.image.repository"] == IMAGE.rsplit(":", 1)[0]
    assert fields["container.image.tag"] == "bookworm"
    assert fields["container.image.digest"].startswith("sha256:")


def test_containerd_ctr_run_and_cri_shaped_cgroups_are_found(tmp_path: Path) -> None:
    import secrets

    with containerd(tmp_path) as daemon:
        plain_id, cri_id = secrets.token_hex(32), secrets.token_hex(32)
        plain_pid = daemon.run(plain_id)
        cri_pid = daemon.run(
            cri_id,
            f"--cgroup=/kubepods/besteffort/pod0f1e2d3c/{cri_id}",
            "--annotation",
            "io.kubernetes.cri.container-name=api",
            "--annotation",
            "io.kubernetes.cri.image-name=registry.example/api:2.0",
            "--annotation",
            "io.kubernetes.cri.sandbox-namespace=payments",
            "--annotation",
            "io.kubernetes.cri.sandbox-name=api-7d9f",
        )
        roots = dataclasses.replace(RuntimeRoots(), containerd=str(daemon.state))
        plain = container_from_proc_cgroup(Path(f"/proc/{plain_pid}/cgroup").read_text())
        cri = container_from_proc_cgroup(Path(f"/proc/{cri_pid}/cgroup").read_text())
        assert plain is not None and (plain.full_id, plain.type) == (plain_id, "containerd")
        assert cri is not None and cri.full_id == cri_id
        record = ContainerMetadata(roots).lookup(cri)
        plain_record = ContainerMetadata(roots).lookup(plain)
    assert record["name"] == "api"
    assert record["image"] == "registry.example/api:2.0"
    assert record["k8s"] == {"ns": "payments", "pod": "api-7d9f"}
    assert plain_record["type"] == "containerd"
    assert any(m["dest"] == "/proc" for m in plain_record["mounts"])


def test_a_ctr_run_container_has_the_image_from_containerds_database(tmp_path: Path) -> None:
    """`ctr run IMAGE ID` writes no annotations into the task's spec: the image (and its
    digest) are only in containerd's metadata database, which the sensor reads."""
    import secrets

    image = tiny_image()
    with containerd(tmp_path) as daemon:
        daemon.import_image(image, tmp_path)
        full_id = secrets.token_hex(32)
        pid = daemon.run_image(full_id, image)
        images = daemon.ctr("image", "ls").stdout
        ref = container_from_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
        assert ref is not None and ref.full_id == full_id
        roots = dataclasses.replace(
            RuntimeRoots(), containerd=str(daemon.state), containerd_metadata=str(daemon.metadata)
        )
        record = ContainerMetadata(roots).lookup(ref)
        without = ContainerMetadata(
            dataclasses.replace(roots, containerd_metadata=str(tmp_path / "absent.db"))
        ).lookup(ref)
    assert record["image"] == image
    assert record["name"] == full_id  # containerd's containers are named by their ids
    assert record["image_digest"].startswith("sha256:") and record["image_digest"] in images
    assert "image" not in without and "name" not in without  # no database, no guess
    assert without["type"] == "containerd"


def test_a_plain_runc_container_is_found(tmp_path: Path) -> None:
    import secrets

    full_id = secrets.token_hex(32)
    with runc_container(tmp_path, full_id) as (pid, root):
        ref = container_from_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
        assert ref is not None and (ref.full_id, ref.type) == (full_id, "runc")
        roots = dataclasses.replace(RuntimeRoots(), runc=str(root))
        record = ContainerMetadata(roots).lookup(ref)
    assert record["type"] == "runc"
    assert record["name"] == full_id[:12]
