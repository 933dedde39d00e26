"""One image, three ways in: registry, OCI layout, docker archive -> the same SBOM.

The image is built by skanse's writer and pushed to the local docker-registry; skopeo (an
independent implementation) then copies it into an OCI layout and a docker-archive tar.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from skanse.inventory.catalog import catalog_image
from skanse.inventory.model import Inventory
from skanse.oci.image import open_image, open_registry_image, parse_spec
from skanse.oci.writer import BuiltImage, LayerBuilder, build_image, push_image
from tests._registry import LocalRegistry
from tests.conftest import corpus_path

pytestmark = [pytest.mark.registry, pytest.mark.corpus]


def tiny_image() -> BuiltImage:
    fixtures = corpus_path("sbom-fixtures", "tiny-image-sboms")
    base = LayerBuilder()
    base.add_file(
        "/etc/os-release",
        b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    )
    base.add_file("/var/lib/dpkg/status", (fixtures / "input-dpkg-status").read_bytes())
    base.add_file("/lib/apk/db/installed", (fixtures / "input-apk-installed").read_bytes())
    app = LayerBuilder()
    app.add_file(
        "/usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n",
    )
    app.add_file(
        "/app/node_modules/lodash/package.json",
        b'{"name":"lodash","version":"4.17.20","license":"MIT"}',
    )
    # gzip: skopeo cannot write zstd layers into a docker archive
    return build_image([base.build(), app.build()], cmd=["/bin/sh"])


def summary(inventory: Inventory) -> list[tuple[object, ...]]:
    return sorted(
        (p.type, p.name, p.version, p.purl, tuple(loc.path for loc in p.locations))
        for p in inventory.packages
    )


def test_registry_layout_and_archive_give_the_same_sbom(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo; make test does)")
    client = registry.client(tmp_path / "cache")
    ref = registry.ref("agree/tiny:v1")
    image = tiny_image()
    pushed = push_image(client, ref, image)
    source = f"docker://{registry.host}/agree/tiny:v1"
    for destination in (
        f"oci:{tmp_path}/layout:v1",
        f"docker-archive:{tmp_path}/tiny.tar:agree/tiny:v1",
    ):
        subprocess.run(
            [skopeo, "copy", "--quiet", "--src-tls-verify=false", source, destination],
            check=True,
            capture_output=True,
            timeout=120,
        )
    from_registry = open_registry_image(client, ref)
    from_layout = open_image(parse_spec(f"oci:{tmp_path}/layout:v1"))
    from_archive = open_image(parse_spec(f"docker-archive:{tmp_path}/tiny.tar"))
    try:
        inventories = [catalog_image(i) for i in (from_registry, from_layout, from_archive)]
    finally:
        from_archive.close()
    assert from_registry.manifest_digest == pushed == from_layout.manifest_digest
    assert (
        from_registry.config.diff_ids == from_layout.config.diff_ids == from_archive.config.diff_ids
    )
    assert summary(inventories[0]) == summary(inventories[1]) == summary(inventories[2])
    names = {(t, n) for t, n, *_ in summary(inventories[0])}
    assert names == {
        ("deb", "busybox-static"),
        ("apk", "musl"),
        ("apk", "zlib"),
        ("python", "requests"),
        ("npm", "lodash"),
    }
    # the layer each package came from is reported by its diff_id
    lodash = next(p for p in inventories[1].packages if p.name == "lodash")
    assert lodash.locations[0].layer == 1
    assert lodash.locations[0].layer_digest == image.layers[1].diff_id
