"""`vuln` on a Debian image made by debootstrap: its own SBOMs read back, device files as
inventory, and every output format written.

The image carries the real dpkg database, os-release and copyright files of the cached
bookworm minbase tree (tests/_debian.py) plus the device nodes debootstrap makes in /dev
(`/dev/null`, `/dev/zero`...), which the writer's host-directory walk leaves out, so they are
added as the character devices they are.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from skanse.oci.writer import LayerBuilder, build_image, write_layout
from skanse.vuln.db import Source, build_database
from tests._debian import debian_rootfs
from tests.vuln.test_severities import SCORES, _tracker

_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "tty": (5, 0)}


@pytest.fixture(scope="module")
def debian_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = debian_rootfs()
    layer = LayerBuilder()
    layer.add_file("/etc/os-release", (root / "usr/lib/os-release").read_bytes())
    layer.add_file("/var/lib/dpkg/status", (root / "var/lib/dpkg/status").read_bytes())
    for doc in sorted((root / "usr/share/doc").iterdir()):
        if doc.is_symlink():
            layer.add_symlink(f"/usr/share/doc/{doc.name}", str(doc.readlink()))
        elif (doc / "copyright").is_file():
            layer.add_file(f"/usr/share/doc/{doc.name}/copyright", (doc / "copyright").read_bytes())
    layer.add_directory("/dev")
    for name, (major, minor) in _DEVICES.items():
        info = tarfile.TarInfo(f"dev/{name}")
        info.type = tarfile.CHRTYPE
        info.mode = 0o666
        info.devmajor, info.devminor = major, minor
        layer.add_raw(info)
    info = tarfile.TarInfo("dev/initctl")
    info.type = tarfile.FIFOTYPE
    layer.add_raw(info)
    layout = tmp_path_factory.mktemp("debian") / "layout"
    write_layout(build_image([layer.build()]), layout, tag="bookworm")
    return layout


@pytest.fixture
def debian_db(tmp_path: Path) -> Path:
    dest = tmp_path / "vuln.db"
    build_database(dest, [Source(_tracker(tmp_path)), Source(SCORES / "nvd", "nvd")])
    return dest


def test_device_files_are_inventory_not_could_not_check(
    cli, debian_layout: Path, debian_db: Path
) -> None:
    target = f"oci:{debian_layout}:bookworm"
    run = cli("vuln", target, "--db", str(debian_db), "--strict", "-f", "json")
    document = json.loads(run.stdout)
    assert document["problems"] == [], document["problems"]
    assert run.code in (0, 1), run.stderr  # findings or none; never an input error
    assert document["summary"]["packages"] > 80


@pytest.mark.parametrize("fmt", ["json", "cyclonedx-json", "spdx-json"])
def test_vuln_reads_the_sboms_skanse_writes(
    cli, debian_layout: Path, debian_db: Path, tmp_path: Path, fmt: str
) -> None:
    target = f"oci:{debian_layout}:bookworm"
    sbom = tmp_path / f"sbom.{fmt}"
    made = cli("sbom", target, "-o", f"{fmt}={sbom}")
    assert made.code == 0, made.stderr
    direct = json.loads(cli("vuln", target, "--db", str(debian_db), "-f", "json").stdout)
    via = cli("vuln", str(sbom), "--db", str(debian_db), "-f", "json", "--strict")
    assert via.code in (0, 1), via.stderr
    read = json.loads(via.stdout)

    def found(doc: dict) -> set[tuple[str, str, str]]:
        return {(m["id"], m["package"]["name"], m["package"]["version"]) for m in doc["matches"]}

    assert found(read) == found(direct)
    assert read["summary"]["packages"] == direct["summary"]["packages"]


def test_vuln_cyclonedx_output_on_the_debian_image_is_valid(
    cli, debian_layout: Path, debian_db: Path
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    run = cli("vuln", f"oci:{debian_layout}:bookworm", "--db", str(debian_db), "-f", "cyclonedx")
    assert run.code in (0, 1), run.stderr
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(run.stdout) is None
