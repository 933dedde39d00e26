"""A real Debian minbase image, end to end.

debootstrap builds bookworm minbase from the Debian mirror (about 40 s and 200 MB, cached
between runs by tests/_debian.py), the writer packs it into one layer and pushes it to the
local docker-registry, and the SBOM read
back from the registry must list exactly the packages `dpkg-query` (Debian's own tool)
reports for that root file system, each with a debian-12 purl. SKANSE_DEBOOTSTRAP_ROOTFS=DIR
reuses a tree made elsewhere.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from skanse.inventory.catalog import catalog_directory, catalog_image
from skanse.oci.image import open_registry_image
from skanse.oci.writer import LayerBuilder, build_image, push_image
from tests._debian import debian_rootfs as cached_debian_rootfs
from tests._registry import LocalRegistry

pytestmark = [pytest.mark.registry]


@pytest.fixture(scope="module")
def debian_rootfs() -> Path:
    return cached_debian_rootfs()


def dpkg_query(rootfs: Path) -> set[tuple[str, str]]:
    done = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={rootfs}/var/lib/dpkg",
            "-W",
            "-f",
            "${Package} ${Version} ${db:Status-Abbrev}\\n",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    return {(row[0], row[1]) for row in rows if row[2].startswith("ii")}


def test_debian_minbase_from_the_registry_matches_dpkg(
    debian_rootfs: Path, registry: LocalRegistry, tmp_path: Path
) -> None:
    if shutil.which("dpkg-query") is None:
        pytest.skip("dpkg-query is not installed")
    expected = dpkg_query(debian_rootfs)
    assert len(expected) > 80
    image = build_image([LayerBuilder().add_host_directory(debian_rootfs).build()])
    client = registry.client(tmp_path / "cache")
    ref = registry.ref("slow/debian:bookworm")
    assert push_image(client, ref, image) == image.digest
    inventory = catalog_image(open_registry_image(client, ref))
    debs = {(p.name, p.version) for p in inventory.packages if p.type == "deb"}
    assert debs == expected
    assert inventory.distro is not None and inventory.distro.purl_qualifier == "debian-12"
    assert all("distro=debian-12" in p.purl for p in inventory.packages if p.type == "deb")
    # the directory source agrees with the image source
    directory = {
        (p.name, p.version) for p in catalog_directory(debian_rootfs).packages if p.type == "deb"
    }
    assert directory == debs
