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
from tests.runtime.containers_real import IMAGE, podman_api, podman_container


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
