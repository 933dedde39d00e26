"""An OCI image layout packed as a tar (`podman save --format oci-archive`, BuildKit's
`--output type=oci,dest=FILE`, `skopeo copy oci-archive:`) reads as the same layout does
unpacked, with every digest checked, and a bare file without manifest.json is one."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path
from typing import cast

import pytest

from skanse.errors import DigestMismatchError, LayoutError
from skanse.inventory.catalog import catalog_image
from skanse.oci.archives import open_oci_archive
from skanse.oci.image import Image, open_image, parse_spec, read_view
from skanse.oci.writer import LayerBuilder, build_image, write_layout


def _layout(root: Path, tag: str = "t") -> Path:
    base = LayerBuilder()
    base.add_file("/etc/os-release", b"ID=alpine\nVERSION_ID=3.20.0\n")
    base.add_file("/lib/apk/db/installed", b"P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n\n")
    top = LayerBuilder().add_file("/etc/motd", b"packed\n")
    write_layout(build_image([base.build(), top.build("zstd")]), root, tag=tag)
    return root


def _pack(root: Path, path: Path, prefix: str = "") -> Path:
    with tarfile.open(path, "w") as tar:
        for item in sorted(root.rglob("*")):
            tar.add(item, arcname=prefix + str(item.relative_to(root)), recursive=False)
    return path


def _read(image: Image) -> dict[str, bytes]:
    try:
        view = read_view(image, lambda info: lambda data: data)
    finally:
        image.close()
    return {path: cast(bytes, c.value) for path, c in view.captured.items()}


@pytest.mark.parametrize(
    "target", ["oci-archive:{}", "oci-archive:{}:t", "{}", "docker-archive:{}"]
)
def test_a_packed_layout_reads_as_the_layout_does(tmp_path: Path, target: str) -> None:
    root = _layout(tmp_path / "layout")
    packed = _pack(root, tmp_path / "image.tar", prefix="./")  # as `tar -C DIR -cf F .` names
    spec = parse_spec(target.format(packed))
    image = open_image(spec)
    assert image.source == "oci-archive"
    unpacked = open_image(parse_spec(f"oci:{root}:t"))
    assert image.manifest_digest == unpacked.manifest_digest
    assert image.config_digest == unpacked.config_digest
    assert _read(image) == _read(unpacked)
    again = open_image(spec)
    try:
        inventory = catalog_image(again)
    finally:
        again.close()
    assert [(p.name, p.version) for p in inventory.packages] == [("musl", "1.2.5-r0")]


def test_a_tag_the_archive_does_not_hold_is_refused_naming_those_it_does(tmp_path: Path) -> None:
    packed = _pack(_layout(tmp_path / "layout", tag="v1"), tmp_path / "image.tar")
    with pytest.raises(LayoutError, match=r"no image tagged 'v2'.*tags: v1"):
        open_oci_archive(packed, tag="v2")


def test_a_swapped_layer_blob_is_refused(tmp_path: Path) -> None:
    root = _layout(tmp_path / "layout")
    manifest_digest = json.loads((root / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((root / "blobs/sha256" / manifest_digest[7:]).read_bytes())
    layer = root / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    tar = bytearray(gzip.decompress(layer.read_bytes()))
    at = tar.index(b"1.2.5-r0")
    tar[at : at + 8] = b"6.6.6-r0"  # same length: only the digests can tell
    layer.write_bytes(gzip.compress(bytes(tar)))
    image = open_oci_archive(_pack(root, tmp_path / "image.tar"))
    with pytest.raises(DigestMismatchError):
        _read(image)


def test_a_missing_blob_is_refused_when_opened(tmp_path: Path) -> None:
    root = _layout(tmp_path / "layout")
    manifest_digest = json.loads((root / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((root / "blobs/sha256" / manifest_digest[7:]).read_bytes())
    (root / "blobs/sha256" / manifest["layers"][1]["digest"][7:]).unlink()
    with pytest.raises(LayoutError, match="missing from the archive"):
        open_oci_archive(_pack(root, tmp_path / "image.tar"))


def test_members_that_leave_the_archive_are_never_read(tmp_path: Path) -> None:
    # a hostile archive names its index.json `../index.json`: it is not the layout's
    root = _layout(tmp_path / "layout")
    (root / "index.json").rename(tmp_path / "elsewhere.json")
    packed = _pack(root, tmp_path / "image.tar")
    with tarfile.open(packed, "a") as tar:
        tar.add(tmp_path / "elsewhere.json", arcname="../index.json")
    with pytest.raises(LayoutError, match=r"index\.json is missing from the archive"):
        open_oci_archive(packed)


def test_a_tar_that_is_neither_kind_says_what_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info)
    with pytest.raises(LayoutError, match=r"manifest\.json is missing"):
        open_image(parse_spec(str(path)))


@pytest.mark.parametrize("packed", [False, True])
def test_an_image_named_with_colons_and_slashes_is_chosen_by_that_name(
    tmp_path: Path, packed: bool
) -> None:
    # podman and skopeo name the image of a layout `localhost/app:1`, not `1`
    root = _layout(tmp_path / "layout", tag="localhost/app:1")
    target = f"oci-archive:{_pack(root, tmp_path / 'image.tar')}" if packed else f"oci:{root}"
    spec = parse_spec(f"{target}:localhost/app:1")
    assert spec.tag == "localhost/app:1"
    image = open_image(spec)
    assert _read(image)["/etc/motd"] == b"packed\n"
    with pytest.raises(LayoutError, match=r"tags: localhost/app:1"):
        open_image(parse_spec(f"{target}:1"))
