"""Every digest algorithm skanse accepts is verified; any other is refused.

OCI allows sha512 (and skanse sha384) besides sha256. A layer named by a sha512 digest in an
OCI layout whose bytes were swapped must be refused exactly as a sha256 one is, under the same
manifest digest a signature would cover.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from skanse.errors import DigestMismatchError, ManifestError, SkanseError
from skanse.inventory.catalog import catalog_image
from skanse.oci.image import open_image, parse_spec
from skanse.oci.manifest import compute_digest, validate_digest, verify_digest
from skanse.oci.writer import LayerBuilder, build_image, write_layout


def _layout_with_layer_digest(
    tmp_path: Path, algorithm: str, swap: bool, compressed: bool = True
) -> Path:
    """A one-layer layout whose manifest names the layer by `algorithm`, maybe swapped."""
    genuine = LayerBuilder()
    genuine.add_file("/etc/os-release", b"ID=alpine\nVERSION_ID=3.20.0\n")
    genuine.add_file("/lib/apk/db/installed", b"P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n\n")
    image = build_image([genuine.build()])
    root = tmp_path / "layout"
    write_layout(image, root, tag="t")
    index = json.loads((root / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((root / "blobs" / "sha256" / manifest_digest[7:]).read_bytes())
    layer = manifest["layers"][0]
    data = (root / "blobs" / "sha256" / layer["digest"][7:]).read_bytes()
    tar = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    if not compressed:  # an uncompressed layer: the blob is the tar, one hash for both
        data = tar
        layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
    new_digest = f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()
    if swap:  # a different, well-formed layer at the path the genuine digest names
        hostile = LayerBuilder()
        hostile.add_file("/etc/os-release", b"ID=alpine\nVERSION_ID=3.20.0\n")
        hostile.add_file("/lib/apk/db/installed", b"P:evil\nV:6.6.6-r0\nA:x86_64\no:evil\n\n")
        data = hostile.build().blob
        if not compressed:
            data = gzip.decompress(data)
    blob_dir = root / "blobs" / algorithm
    blob_dir.mkdir(exist_ok=True)
    (blob_dir / new_digest.split(":", 1)[1]).write_bytes(data)
    layer["digest"] = new_digest
    layer["size"] = len(data)
    # the config names the genuine uncompressed layer by the same algorithm, so no sha256
    # check anywhere stands in for the one under test
    config = json.loads((root / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    config["rootfs"]["diff_ids"] = [f"{algorithm}:" + hashlib.new(algorithm, tar).hexdigest()]
    config_bytes = json.dumps(config).encode()
    config_digest = compute_digest(config_bytes)
    (root / "blobs" / "sha256" / config_digest[7:]).write_bytes(config_bytes)
    manifest["config"].update(digest=config_digest, size=len(config_bytes))
    manifest_bytes = json.dumps(manifest).encode()
    new_manifest = compute_digest(manifest_bytes)
    (root / "blobs" / "sha256" / new_manifest[7:]).write_bytes(manifest_bytes)
    index["manifests"][0].update(digest=new_manifest, size=len(manifest_bytes))
    (root / "index.json").write_text(json.dumps(index))
    return root


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_a_genuine_layer_reads_under_every_algorithm(
    tmp_path: Path, algorithm: str, compressed: bool
) -> None:
    root = _layout_with_layer_digest(tmp_path, algorithm, swap=False, compressed=compressed)
    inventory = catalog_image(open_image(parse_spec(f"oci:{root}:t")))
    assert [p.name for p in inventory.packages] == ["musl"]


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_a_swapped_layer_is_refused_under_every_algorithm(
    tmp_path: Path, algorithm: str, compressed: bool
) -> None:
    root = _layout_with_layer_digest(tmp_path, algorithm, swap=True, compressed=compressed)
    with pytest.raises(DigestMismatchError):
        catalog_image(open_image(parse_spec(f"oci:{root}:t")))


@pytest.mark.parametrize(
    "digest",
    ["md5:" + "0" * 32, "sha1:" + "0" * 40, "sha256:" + "0" * 63, "SHA256:" + "0" * 64, "sha3:0"],
)
def test_other_algorithms_are_refused(digest: str) -> None:
    with pytest.raises(ManifestError):
        validate_digest(digest)
    with pytest.raises(SkanseError):
        verify_digest(b"x", digest, what="blob")


def test_verify_digest_checks_sha384_and_sha512() -> None:
    for algorithm in ("sha384", "sha512"):
        good = f"{algorithm}:" + hashlib.new(algorithm, b"data").hexdigest()
        verify_digest(b"data", good, what="blob")
        with pytest.raises(DigestMismatchError):
            verify_digest(b"other", good, what="blob")
