"""Hostile layers pushed to a real registry: each one rejected or neutralised, host untouched.

Every case builds its attack with `LayerBuilder.add_raw` (tar entries exactly as an attacker
writes them), pushes the image to the local docker-registry, then reads it back the way
`skanse sbom` does. Reading never writes the image's files anywhere; the tests also check
that the paths an extracting tool would have written do not exist.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from skanse.errors import DigestMismatchError, LayerError
from skanse.oci.image import open_registry_image, read_view
from skanse.oci.manifest import compute_digest
from skanse.oci.vfs import NodeKind, ViewLimits
from skanse.oci.writer import BuiltLayer, LayerBuilder, build_image, compress_layer, push_image
from tests._registry import LocalRegistry

pytestmark = pytest.mark.registry


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "", size: int = 0
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = size
    info.mode = 0o644
    return info


def read_all(
    registry: LocalRegistry, tmp_path: Path, name: str, layers: list[BuiltLayer], limits=None
):
    client = registry.client(tmp_path / "cache")
    ref = registry.ref(f"hostile/{name}:v1")
    push_image(client, ref, build_image(layers))
    image = open_registry_image(client, ref)
    return read_view(image, lambda info: lambda data: data, limits)


def test_dotdot_paths_are_skipped(registry: LocalRegistry, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    payload = b"owned"
    layer = LayerBuilder()
    layer.add_raw(entry(f"../../../../../../..{target}", size=len(payload)), payload)
    layer.add_raw(entry("etc/../../escape", size=len(payload)), payload)
    layer.add_file("/etc/ok", b"fine")
    view = read_all(registry, tmp_path, "dotdot", [layer.build()])
    assert set(view.nodes) == {"/etc", "/etc/ok"}
    assert sum("climbs out of the image" in p for p in view.problems) == 2
    assert not target.exists()


def test_absolute_member_paths_stay_inside_the_image(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    target = tmp_path / "absolute"
    layer = LayerBuilder().add_raw(entry(str(target), size=3), b"abc")
    view = read_all(registry, tmp_path, "absolute", [layer.build()])
    assert str(target) in view.nodes  # taken relative to the image root
    assert not target.exists()


def test_symlinks_resolve_inside_the_image_only(registry: LocalRegistry, tmp_path: Path) -> None:
    layer = LayerBuilder()
    layer.add_file("/etc/shadow", b"image shadow")
    layer.add_raw(entry("evil-abs", tarfile.SYMTYPE, link="/etc/shadow"))
    layer.add_raw(entry("evil-up", tarfile.SYMTYPE, link="../../../../../etc/shadow"))
    layer.add_raw(entry("hop1", tarfile.SYMTYPE, link="../.."))
    layer.add_raw(entry("hop2", tarfile.SYMTYPE, link="hop1/../../etc"))
    layer.add_raw(entry("loop-a", tarfile.SYMTYPE, link="loop-b"))
    layer.add_raw(entry("loop-b", tarfile.SYMTYPE, link="loop-a"))
    view = read_all(registry, tmp_path, "symlinks", [layer.build()])
    assert view.nodes["/evil-abs"].kind is NodeKind.SYMLINK
    # absolute and climbing targets land on the image's own /etc/shadow, never the host's
    assert view.resolve("/evil-abs") == "/etc/shadow"
    assert view.resolve("/evil-up") == "/etc/shadow"
    assert view.resolve("/hop2/shadow") == "/etc/shadow"
    assert view.resolve("/hop1") == "/"
    assert view.resolve("/loop-a") is None  # a loop ends after 40 hops, like ELOOP


def test_hardlinks_to_outside_are_dropped(registry: LocalRegistry, tmp_path: Path) -> None:
    layer = LayerBuilder()
    layer.add_file("/etc/passwd", b"root:x:0:0")
    layer.add_raw(entry("etc/inside", tarfile.LNKTYPE, link="etc/passwd"))
    layer.add_raw(entry("etc/outside", tarfile.LNKTYPE, link="../../../etc/shadow"))
    layer.add_raw(entry("etc/missing", tarfile.LNKTYPE, link="etc/shadow"))
    view = read_all(registry, tmp_path, "hardlinks", [layer.build()])
    assert view.nodes["/etc/inside"].kind is NodeKind.FILE
    assert view.captured["/etc/inside"].value == b"root:x:0:0"
    assert "/etc/outside" not in view.nodes and "/etc/missing" not in view.nodes
    assert any("climbs out" in p for p in view.problems)
    assert any("no such file in the image" in p for p in view.problems)


def test_many_hardlinks_are_read_in_linear_time(registry: LocalRegistry, tmp_path: Path) -> None:
    # each hard link finds its captured target by path, not by scanning the layer so far
    count = 40_000
    layer = LayerBuilder()
    for i in range(count):
        layer.add_raw(entry(f"usr/lib/f{i}", size=len(str(i))), str(i).encode())
    for i in range(count):
        layer.add_raw(entry(f"usr/lib/h{i}", tarfile.LNKTYPE, link=f"usr/lib/f{i}"))
    client = registry.client(tmp_path / "cache")
    ref = registry.ref("hostile/many-hardlinks:v1")
    push_image(client, ref, build_image([layer.build()]))
    image = open_registry_image(client, ref)
    started = time.process_time()
    view = read_view(image, lambda info: lambda data: data)
    elapsed = time.process_time() - started
    # about 2.5 s of CPU here; scanning the layer for each link took 48 s. The bound is a
    # hostile-input bound (linear, not quadratic) with room for a slower machine, not a
    # speed target.
    assert elapsed < 20, f"{elapsed:.1f} s of CPU for {count} hard links"
    assert len(view.captured) == 2 * count
    assert view.captured["/usr/lib/h0"].value == b"0"
    assert view.captured[f"/usr/lib/h{count - 1}"].value == str(count - 1).encode()


def test_a_file_replacing_a_directory_hides_what_was_under_it(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    lower = LayerBuilder().add_file("/opt/app/bin/run", b"1").add_file("/opt/keep", b"2")
    upper = LayerBuilder()
    upper.add_raw(entry("srv/site", tarfile.DIRTYPE))
    upper.add_raw(entry("srv/site/index", size=1), b"3")  # same layer, before the file
    upper.add_raw(entry("srv/site", size=1), b"4")
    upper.add_raw(entry("opt/app", size=1), b"5")
    upper.add_raw(entry("opt/new", tarfile.DIRTYPE))
    upper.add_raw(entry("opt/new/conf", size=1), b"6")
    view = read_all(registry, tmp_path, "file-over-dir", [lower.build(), upper.build()])
    files = {p for p, n in view.nodes.items() if n.kind is NodeKind.FILE}
    assert files == {"/opt/app", "/opt/keep", "/srv/site", "/opt/new/conf"}
    assert view.captured["/opt/app"].value == b"5"
    assert "/opt/app/bin" not in view.nodes and "/opt/app/bin/run" not in view.captured


def test_many_directories_replaced_by_files_take_linear_time(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    count = 20_000
    lower = LayerBuilder()
    for i in range(count):
        lower.add_raw(entry(f"d{i}", tarfile.DIRTYPE))
        lower.add_raw(entry(f"d{i}/f", size=1), b"x")
    upper = LayerBuilder()
    for i in range(count):
        upper.add_raw(entry(f"d{i}", size=1), b"y")
    client = registry.client(tmp_path / "cache")
    ref = registry.ref("hostile/files-over-dirs:v1")
    push_image(client, ref, build_image([lower.build(), upper.build()]))
    image = open_registry_image(client, ref)
    started = time.process_time()
    view = read_view(image, lambda info: None)
    elapsed = time.process_time() - started
    # about 1 s of CPU here; scanning the view at each replacement took over 30 s
    assert elapsed < 10, f"{elapsed:.1f} s of CPU for {count} replaced directories"
    assert len(view.nodes) == count
    assert all(node.kind is NodeKind.FILE for node in view.nodes.values())


def test_device_files_are_recorded_never_read(registry: LocalRegistry, tmp_path: Path) -> None:
    layer = LayerBuilder()
    dev = entry("dev/sda", tarfile.BLKTYPE)
    dev.devmajor, dev.devminor = 8, 0
    layer.add_raw(dev)
    layer.add_raw(entry("dev/mem", tarfile.CHRTYPE))
    layer.add_raw(entry("run/fifo", tarfile.FIFOTYPE))
    asked: list[str] = []

    def wants(info):
        asked.append(info.path)
        return lambda data: data

    client = registry.client(tmp_path / "cache")
    ref = registry.ref("hostile/devices:v1")
    push_image(client, ref, build_image([layer.build()]))
    view = read_view(open_registry_image(client, ref), wants)
    assert view.nodes["/dev/sda"].kind is NodeKind.DEVICE
    assert view.nodes["/run/fifo"].kind is NodeKind.FIFO
    assert not view.captured  # nothing was read from a device or fifo
    assert asked == []


def _zero_bomb(expanded: int, compression: str) -> BuiltLayer:
    """A tar holding one file of zeros, compressed without ever holding it in memory."""
    header = entry("bomb", size=expanded)
    head = header.tobuf(format=tarfile.PAX_FORMAT)
    padding = (512 - expanded % 512) % 512
    chunk = bytes(1024 * 1024)
    if compression == "gzip":
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [compressor.compress(head)]
        parts += [compressor.compress(chunk) for _ in range(expanded // len(chunk))]
        parts += [compressor.compress(bytes(padding + 1024)), compressor.flush()]
        blob = b"".join(parts)
        media = "application/vnd.oci.image.layer.v1.tar+gzip"
    else:
        import zstandard

        out = io.BytesIO()
        with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as writer:
            writer.write(head)
            for _ in range(expanded // len(chunk)):
                writer.write(chunk)
            writer.write(bytes(padding + 1024))
        blob = out.getvalue()
        media = "application/vnd.oci.image.layer.v1.tar+zstd"
    # the diff_id a real image would declare (so only the caps can stop the read)
    tar_hash = __import__("hashlib").sha256(head)
    for _ in range(expanded // len(chunk)):
        tar_hash.update(chunk)
    tar_hash.update(bytes(padding + 1024))
    return BuiltLayer(blob, media, "sha256:" + tar_hash.hexdigest())


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_decompression_bombs_stop_at_the_ratio_cap(
    registry: LocalRegistry, tmp_path: Path, compression: str
) -> None:
    bomb = _zero_bomb(256 * 1024 * 1024, compression)
    assert len(bomb.blob) < 1024 * 1024  # 256 MiB of tar in well under 1 MiB
    with pytest.raises(LayerError, match="decompression bomb"):
        read_all(registry, tmp_path, f"bomb-{compression}", [bomb])


def test_expanded_size_cap_applies_across_layers(registry: LocalRegistry, tmp_path: Path) -> None:
    big = LayerBuilder().add_file("/a", bytes(600_000)).build()
    again = LayerBuilder().add_file("/b", bytes(600_000)).build()
    with pytest.raises(LayerError, match="expands past 1000000 bytes"):
        read_all(
            registry, tmp_path, "total", [big, again], ViewLimits(max_expanded_bytes=1_000_000)
        )


def test_plain_gzip_and_zstd_layers_apply_in_order_with_whiteouts(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    base = (
        LayerBuilder().add_file("/etc/a", b"1").add_file("/etc/b", b"2").add_file("/opt/x/y", b"3")
    )
    middle = LayerBuilder().add_whiteout("/etc/a").add_opaque("/opt/x").add_file("/opt/x/z", b"4")
    top = LayerBuilder().add_file("/etc/b", b"replaced").add_file("/etc/.wh.b2", b"")
    view = read_all(
        registry, tmp_path, "mixed", [base.build(""), middle.build("gzip"), top.build("zstd")]
    )
    files = {p for p, n in view.nodes.items() if n.kind is NodeKind.FILE}
    assert files == {"/etc/b", "/opt/x/z"}
    assert view.captured["/etc/b"].value == b"replaced"
    assert view.nodes["/etc/b"].layer == 2
    assert [layer.expanded > 0 for layer in view.layers] == [True, True, True]


def test_a_layer_whose_content_does_not_match_its_diff_id_is_refused(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    honest = LayerBuilder().add_file("/etc/os-release", b"ID=debian\n").build()
    forged = BuiltLayer(honest.blob, honest.media_type, compute_digest(b"something else"))
    with pytest.raises(DigestMismatchError, match="layer refused"):
        read_all(registry, tmp_path, "diffid", [forged])


def test_corrupt_gzip_is_a_clear_error(registry: LocalRegistry, tmp_path: Path) -> None:
    good = gzip.compress(LayerBuilder().add_file("/x", b"y" * 5000).tar_bytes())
    broken = good[:20] + bytes(len(good) - 28) + good[-8:]
    layer = BuiltLayer(broken, "application/vnd.oci.image.layer.v1.tar+gzip", compute_digest(b""))
    with pytest.raises(LayerError, match="gzip"):
        read_all(registry, tmp_path, "corrupt", [layer])


def test_layout_blob_with_wrong_content_is_refused(tmp_path: Path) -> None:
    from skanse.oci.image import open_layout_image
    from skanse.oci.writer import write_layout

    image = build_image([LayerBuilder().add_file("/etc/motd", b"hi").build()])
    write_layout(image, tmp_path / "layout", tag="v1")
    layer_digest = json.loads(image.manifest)["layers"][0]["digest"]
    blob = tmp_path / "layout" / "blobs" / "sha256" / layer_digest.split(":")[1]
    blob.write_bytes(compress_layer(LayerBuilder().add_file("/etc/motd", b"evil").tar_bytes()).blob)
    opened = open_layout_image(tmp_path / "layout", tag="v1")
    with pytest.raises(DigestMismatchError, match="blob digest"):
        read_view(opened, lambda info: None)


def test_a_layout_whose_json_is_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    from skanse.errors import LayoutError, ManifestError
    from skanse.oci.image import open_layout_image
    from skanse.oci.writer import write_layout

    image = build_image([LayerBuilder().add_file("/etc/motd", b"hi").build()])
    write_layout(image, tmp_path / "layout", tag="v1")
    deep = b"[" * 1500 + b"]" * 1500  # under the file's 4 KiB cap
    (tmp_path / "layout" / "oci-layout").write_bytes(deep)
    with pytest.raises(LayoutError, match="no imageLayoutVersion"):
        open_layout_image(tmp_path / "layout", tag="v1")
    (tmp_path / "layout" / "oci-layout").write_bytes(b'{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "layout" / "index.json").write_bytes(b'{"x": ' + deep + b"}")
    with pytest.raises(ManifestError, match="nested too deeply"):
        open_layout_image(tmp_path / "layout", tag="v1")


def test_writing_through_a_symlink_of_a_lower_layer_stays_in_the_view(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    # the classic extraction escape: layer 0 makes `out` a link to a host directory,
    # layer 1 writes `out/pwned`; a reader that extracts would write onto the host
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    lower = LayerBuilder().add_raw(entry("out", tarfile.SYMTYPE, link=str(host_dir)))
    upper = LayerBuilder().add_raw(entry("out/pwned", size=5), b"owned")
    view = read_all(registry, tmp_path, "through-symlink", [lower.build(), upper.build()])
    assert view.nodes["/out"].kind is NodeKind.SYMLINK
    assert view.captured["/out/pwned"].value == b"owned"  # kept as data, in the view only
    assert view.resolve("/out/pwned") is None  # the link's target is not in the image
    assert list(host_dir.iterdir()) == []
