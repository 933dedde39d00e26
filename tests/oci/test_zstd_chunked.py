"""zstd layers as podman writes them: diff_ids verified as for gzip, and the zstd:chunked
layers of containers/storage before v1.52 (podman 4.3 to 4.8), whose tar lacks the zero
padding after its end that the diff_id covers, read as what they are.

Those layers are made here from a tar the way that writer made them (the tar cut after its
two end blocks), and by this machine's podman where it can run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import zstandard

from skanse.errors import DigestMismatchError
from skanse.oci.image import open_image, parse_spec, read_view
from skanse.oci.vfs import FileView
from skanse.oci.writer import BuiltLayer, LayerBuilder, build_image, write_layout

_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _padded_tar(padding_records: int = 1) -> tuple[bytes, int]:
    """A layer tar padded with zeros past its end, as tar writers pad it; (tar, where its two
    end blocks end)."""
    tar = LayerBuilder().add_file("/etc/os-release", b"ID=alpine\n").add_file("/a", b"A" * 3000)
    data = tar.tar_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.getmembers()
        end = archive.offset + 1024  # past the two zero blocks that end the archive
    data += bytes(10240 * (padding_records - 1))
    assert len(data) > end and not data[end - 1024 :].strip(b"\0")  # padding exists
    return data, end


def _read(tmp_path: Path, layer: BuiltLayer) -> FileView:
    write_layout(build_image([layer]), tmp_path / "layout", tag="v1")
    image = open_image(parse_spec(f"oci:{tmp_path / 'layout'}:v1"))
    try:
        return read_view(image, lambda info: lambda data: data)
    finally:
        image.close()


def _layer(stream: bytes, media_type: str, diff_id_of: bytes) -> BuiltLayer:
    if media_type == _ZSTD:
        blob = zstandard.ZstdCompressor().compress(stream)
    else:
        import gzip

        blob = gzip.compress(stream)
    return BuiltLayer(blob, media_type, "sha256:" + hashlib.sha256(diff_id_of).hexdigest())


def test_a_zstd_layer_is_verified_against_its_diff_id(tmp_path: Path) -> None:
    data, _end = _padded_tar()
    altered = data.replace(b"A" * 3000, b"A" * 2999 + b"B")
    with pytest.raises(DigestMismatchError, match="expected diff_id"):
        _read(tmp_path, _layer(altered, _ZSTD, data))


def test_a_zstd_chunked_layer_without_the_tar_padding_is_read_as_its_diff_id(
    tmp_path: Path,
) -> None:
    # what containers/storage#1771 wrote: the tar up to its end blocks, its diff_id over the
    # padded tar that podman stored; refused before ("uncompressed digest is ...")
    data, end = _padded_tar()
    layer = _layer(data[:end], _ZSTD, data)
    view = _read(tmp_path, layer)
    assert view.captured["/a"].value == b"A" * 3000
    assert view.layers[0].diff_id == layer.diff_id


@pytest.mark.parametrize(
    ("case", "media_type"),
    [
        ("gzip", _GZIP),  # no writer drops it there: refused as Docker refuses it
        ("one end block", _ZSTD),  # not a complete tar
        ("altered", _ZSTD),
        ("padding past the cap", _ZSTD),
    ],
)
def test_only_the_padding_a_zstd_layer_dropped_is_restored(
    tmp_path: Path, case: str, media_type: str
) -> None:
    data, end = _padded_tar(padding_records=120 if case == "padding past the cap" else 1)
    stream = data[:end]
    if case == "one end block":
        stream = data[: end - 512]
    elif case == "altered":
        stream = stream.replace(b"A" * 3000, b"A" * 2999 + b"B")
    with pytest.raises(DigestMismatchError, match="expected diff_id"):
        _read(tmp_path, _layer(stream, media_type, data))


def _podman(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *argv], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize("compression", ["zstd", "zstd:chunked"])
def test_podman_zstd_pushes_read_as_the_gzip_one(tmp_path: Path, compression: str) -> None:
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("needs podman, as root")
    # an image of its own (random content, a name of its own): a zstd push records its blobs
    # in podman's blob-info cache, which must not hand them to another image's gzip push
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text("ID=alpine\nVERSION_ID=3.19.0\n")
    (root / "blob").write_bytes(os.urandom(100_000))
    with tarfile.open(tmp_path / "root.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(root, arcname=".")
    name = f"localhost/skanse-zstd-test-{uuid.uuid4().hex[:12]}:1"
    imported = _podman("import", str(tmp_path / "root.tar"), name)
    if imported.returncode != 0:
        pytest.skip(f"podman cannot import here: {imported.stderr.strip()[-300:]}")
    try:
        views = {}
        for form in ("gzip", compression):
            target = tmp_path / form.replace(":", "-")
            pushed = _podman("push", "--compression-format", form, name, f"oci:{target}:v1")
            assert pushed.returncode == 0, pushed.stderr
            index = json.loads((target / "index.json").read_text())
            manifest_digest = index["manifests"][0]["digest"].split(":")[1]
            manifest = json.loads((target / "blobs" / "sha256" / manifest_digest).read_text())
            assert manifest["layers"][0]["mediaType"] == (_GZIP if form == "gzip" else _ZSTD)
            image = open_image(parse_spec(f"oci:{target}:v1"))
            try:
                views[form] = read_view(image, lambda info: lambda data: data)
            finally:
                image.close()
    finally:
        _podman("rmi", "--force", name)
    plain, other = views["gzip"], views[compression]
    assert other.captured["/blob"].value == (root / "blob").read_bytes()
    assert {p: c.value for p, c in other.captured.items()} == {
        p: c.value for p, c in plain.captured.items()
    }
    assert [layer.diff_id for layer in other.layers] == [layer.diff_id for layer in plain.layers]
