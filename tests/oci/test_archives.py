"""docker-save archives and raw layer streams: malformed, truncated and hostile input."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from skanse.errors import DigestMismatchError, LayerError, LayoutError, ManifestError
from skanse.oci.archives import open_docker_archive
from skanse.oci.image import Image, open_image, parse_spec, read_directory, read_view
from skanse.oci.layers import apply_layer
from skanse.oci.vfs import FileView, ViewLimits
from skanse.oci.writer import LayerBuilder, build_image, write_docker_archive


def archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _read_all(opened: Image) -> FileView:
    """The image's view with every file captured, the image closed after."""
    try:
        return read_view(opened, lambda info: lambda data: data)
    finally:
        opened.close()


def test_writer_archive_round_trip(tmp_path: Path) -> None:
    image = build_image([LayerBuilder().add_file("/etc/motd", b"hi").build("zstd")])
    write_docker_archive(image, tmp_path / "a.tar", repo_tag="demo:1")
    opened = open_docker_archive(tmp_path / "a.tar")
    view = _read_all(opened)
    assert opened.config_digest == image.config_digest
    assert view.captured["/etc/motd"].value == b"hi"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "manifest.json is missing"),
        ({"manifest.json": b"[]"}, "lists no images"),
        ({"manifest.json": b"{not json"}, "manifest.json is not valid JSON"),
        ({"manifest.json": json.dumps([{"Config": "c.json"}]).encode()}, "no Config or Layers"),
        (
            {"manifest.json": json.dumps([{"Config": "c.json", "Layers": []}] * 2).encode()},
            "holds 2 images",
        ),
        (
            {
                "manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode(),
                "c.json": json.dumps({"rootfs": {"diff_ids": ["sha256:" + "0" * 64]}}).encode(),
            },
            "layer l.tar is missing",
        ),
        (
            {
                "manifest.json": json.dumps(
                    [{"Config": "../../etc/passwd", "Layers": []}]
                ).encode(),
            },
            "is missing from the archive",
        ),
        ({"manifest.json": b"[" * 3000 + b"]" * 3000}, "manifest.json is nested too deeply"),
    ],
)
def test_malformed_archives_are_clear_errors(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    path = archive(tmp_path / "bad.tar", members)
    with pytest.raises((LayoutError, ManifestError), match=message) as caught:
        open_docker_archive(path)
    assert str(path) in caught.value.diagnostics()


@pytest.mark.parametrize("name", ["manifest.json", "../outside", "a/../../outside"])
def test_the_member_cap_counts_every_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    import skanse.oci.archives as archives

    monkeypatch.setattr(archives, "_MAX_MEMBERS", 10)
    path = tmp_path / "many.tar"
    with tarfile.open(path, "w") as tar:
        for _ in range(11):  # one name over and over, or names that are never kept
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    with pytest.raises(LayoutError, match="more than 10 members"):
        open_docker_archive(path)


def test_not_a_tar_at_all(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(LayoutError, match=r"not a readable tar archive|manifest\.json is missing"):
        open_docker_archive(path)


def test_truncated_layer_is_refused_and_changes_nothing() -> None:
    tar = LayerBuilder().add_file("/a", b"x" * 100_000).add_file("/b", b"y").tar_bytes()
    view = FileView()
    with pytest.raises(LayerError, match=r"truncated|malformed tar"):
        apply_layer(
            view, io.BytesIO(tar[:60_000]), index=0, wants=lambda info: None, limits=ViewLimits()
        )
    assert view.nodes == {} and view.layers == []


def test_garbage_layer_is_refused() -> None:
    with pytest.raises(LayerError):
        apply_layer(
            FileView(),
            io.BytesIO(b"\x1f\x8b" + b"junk" * 100),
            index=0,
            wants=lambda info: None,
            limits=ViewLimits(),
        )


def test_entry_count_cap() -> None:
    layer = LayerBuilder()
    for i in range(50):
        layer.add_file(f"/f{i}", b"")
    with pytest.raises(LayerError, match="more than 20 entries"):
        apply_layer(
            FileView(),
            io.BytesIO(layer.tar_bytes()),
            index=0,
            wants=lambda info: None,
            limits=ViewLimits(max_entries=20),
        )


def test_file_over_the_read_cap_is_reported_not_read() -> None:
    tar = LayerBuilder().add_file("/var/lib/dpkg/status", b"P" * 5000).tar_bytes()
    view = FileView()
    apply_layer(
        view,
        io.BytesIO(tar),
        index=0,
        wants=lambda info: lambda data: data,
        limits=ViewLimits(max_capture_bytes=1000),
    )
    assert "/var/lib/dpkg/status" in view.nodes and view.captured == {}
    assert any("over the 1000-byte read cap" in p for p in view.problems)


def test_docker_archive_layer_altered_in_unread_content_is_refused(tmp_path: Path) -> None:
    # the layer is read in place and its unread file contents are skipped, not read: the
    # diff_id must still cover every byte
    image = build_image([LayerBuilder().add_file("/a", b"A" * 5000).add_file("/b", b"b").build()])
    path = tmp_path / "a.tar"
    write_docker_archive(image, path, repo_tag="demo:1")
    opened = open_docker_archive(path)
    try:
        intact = read_view(opened, lambda info: lambda data: data)
    finally:
        opened.close()
    assert intact.captured["/a"].value == b"A" * 5000
    data = bytearray(path.read_bytes())
    at = data.index(b"A" * 5000)
    data[at + 2500] = ord("B")
    path.write_bytes(bytes(data))
    _assert_diff_id_refused(path)


def test_docker_archive_truncated_layer_is_refused(tmp_path: Path) -> None:
    layer = LayerBuilder().add_file("/a", b"x" * 100_000).add_file("/b", b"y").tar_bytes()
    cut = layer[:60_000]
    diff_id = "sha256:" + hashlib.sha256(cut).hexdigest()
    path = archive(
        tmp_path / "cut.tar",
        {
            "manifest.json": json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode(),
            "c.json": json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                }
            ).encode(),
            "l.tar": cut,
        },
    )
    opened = open_docker_archive(path)
    try:
        with pytest.raises(LayerError, match=r"truncated|malformed tar"):
            read_view(opened, lambda info: lambda data: data)
    finally:
        opened.close()


def test_an_archive_whose_last_member_claims_more_than_the_file_holds_names_it(
    tmp_path: Path,
) -> None:
    # a cut download: the last layer's header is whole, its content is not
    image = build_image([LayerBuilder().add_file("/f", b"x" * 300_000).build()])
    path = tmp_path / "a.tar"
    write_docker_archive(image, path, repo_tag="demo:1")
    with tarfile.open(path) as tar:
        layer = next(m for m in tar if m.name.endswith("layer.tar"))
    os.truncate(path, layer.offset_data + 100_001)
    with pytest.raises(LayoutError, match="malformed archive") as caught:
        open_docker_archive(path)
    assert (
        f"member '{layer.name}' claims {layer.size} bytes, the file ends 100001 bytes into it"
        in str(caught.value)
    )


# Run as its own process: on failure the process dies of SIGBUS, which pytest cannot survive.
_TRUNCATE_WHILE_HASHING = """
import os, sys, tarfile
from skanse.errors import SkanseError
from skanse.oci import _regions
from skanse.oci.archives import open_docker_archive
from skanse.oci.image import read_view

path = sys.argv[1]
with tarfile.open(path) as tar:
    layer = next(m for m in tar if m.name.endswith("layer.tar"))
_regions._READ_PIECE = 1024 * 1024  # so that the 4 MiB layer is read in several pieces


class Truncating:
    # a running hash whose first update finds the file cut by another process: the bytes it
    # is given were read (or mapped) before, the rest of the layer is gone
    def __init__(self, real):
        self._real = real

    def update(self, data):
        os.truncate(path, layer.offset_data + 4096)
        self._real.update(data)

    def __getattr__(self, name):
        return getattr(self._real, name)


made = _regions.RegionHashes.__init__


def truncating(self, region, algorithms):
    made(self, region, algorithms)
    self.hashes = {name: Truncating(h) for name, h in self.hashes.items()}


_regions.RegionHashes.__init__ = truncating
opened = open_docker_archive(__import__("pathlib").Path(path))
try:
    read_view(opened, lambda info: lambda data: data)
except SkanseError as exc:
    print(exc.diagnostics())
    sys.exit(3)
finally:
    opened.close()
print("read")
"""


def test_an_archive_truncated_while_its_layer_is_hashed_is_refused_not_a_crash(
    tmp_path: Path,
) -> None:
    # the layer was hashed through maps of the file: a page cut off by another process while
    # mapped killed skanse with SIGBUS, no message and no exit code a gate understands
    filler = os.urandom(4 * 1024 * 1024)
    image = build_image([LayerBuilder().add_file("/f", filler).build()])
    path = tmp_path / "a.tar"
    write_docker_archive(image, path, repo_tag="demo:1")
    child = subprocess.run(
        [sys.executable, "-c", _TRUNCATE_WHILE_HASHING, str(path)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 3, (child.returncode, child.stderr.decode()[-2000:])
    assert b"truncated" in child.stdout or b"unexpected end of data" in child.stdout


def test_docker_archive_sparse_layer_member_is_read_expanded(tmp_path: Path) -> None:
    # a PAX 1.0 sparse member whose zero-filled file content is a hole: its stored bytes are
    # not the layer, so reading them in place would refuse a genuine layer
    layer = (
        LayerBuilder().add_file("/zeros", bytes(4096)).add_file("/etc/motd", b"hello").tar_bytes()
    )
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        hole = tar.getmember("zeros").offset_data
    after = hole + 4096
    sparse_map = f"2\n0\n{hole}\n{after}\n{len(layer) - after}\n".encode().ljust(512, b"\0")
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}
    config["rootfs"]["diff_ids"] = [diff_id]  # type: ignore[index]
    path = tmp_path / "sparse.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (
            ("manifest.json", json.dumps([{"Config": "c.json", "Layers": ["l.tar"]}]).encode()),
            ("c.json", json.dumps(config).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("GNUSparseFile.0/l.tar")
        info.pax_headers = {
            "GNU.sparse.major": "1",
            "GNU.sparse.minor": "0",
            "GNU.sparse.name": "l.tar",
            "GNU.sparse.realsize": str(len(layer)),
        }
        data = sparse_map + layer[:hole] + layer[after:]
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    opened = open_docker_archive(path)
    view = _read_all(opened)
    assert "/etc/motd" in view.nodes and "/zeros" in view.nodes
    assert view.layers[0].diff_id == diff_id


def _linked_archive(path: Path, layer: bytes, links: dict[str, tuple[bytes, str]]) -> Path:
    """A docker archive whose manifest lists `a/layer.tar` then each key of `links`, stored
    as a link member (tarfile.SYMTYPE or LNKTYPE, target), all with the layer's diff_id."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    names = ["a/layer.tar", *links]
    manifest = json.dumps([{"Config": "c.json", "Layers": names}]).encode()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": [diff_id] * len(names)}}
    ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", manifest), ("c.json", config), (names[0], layer)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return path


@pytest.mark.parametrize(
    "links",
    [
        {"b/layer.tar": (tarfile.SYMTYPE, "../a/layer.tar")},  # what docker save writes
        {"b/layer.tar": (tarfile.LNKTYPE, "a/layer.tar")},
        {  # a chain of both kinds
            "b/layer.tar": (tarfile.SYMTYPE, "../c/layer.tar"),
            "c/layer.tar": (tarfile.LNKTYPE, "a/layer.tar"),
        },
    ],
)
def test_a_layer_docker_save_stored_as_a_link_to_the_same_layer_is_read(
    tmp_path: Path, links: dict[str, tuple[bytes, str]]
) -> None:
    # `docker save` stores a layer once and links every later layer with the same diff_id
    # to it (an image with two identical layers, such as two empty ones)
    layer = LayerBuilder().add_file("/etc/motd", b"hi").tar_bytes()
    opened = open_docker_archive(_linked_archive(tmp_path / "a.tar", layer, links))
    view = _read_all(opened)
    assert len(view.layers) == len(links) + 1
    assert view.captured["/etc/motd"].value == b"hi"


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({"b/layer.tar": (tarfile.SYMTYPE, "/etc/passwd")}, "symlink to '/etc/passwd', outside"),
        ({"b/layer.tar": (tarfile.SYMTYPE, "../../etc/passwd")}, "outside the archive"),
        ({"b/layer.tar": (tarfile.LNKTYPE, "../x")}, "outside the archive"),
        (
            {
                "b/layer.tar": (tarfile.SYMTYPE, "../c/layer.tar"),
                "c/layer.tar": (tarfile.SYMTYPE, "../b/layer.tar"),
            },
            "loops",
        ),
        ({"b/layer.tar": (tarfile.SYMTYPE, "../nowhere.tar")}, "missing from the archive"),
        ({"b/layer.tar": (tarfile.SYMTYPE, "../..")}, "outside the archive"),
    ],
)
def test_a_layer_link_that_leaves_the_archive_loops_or_names_nothing_is_refused(
    tmp_path: Path, links: dict[str, tuple[bytes, str]], message: str
) -> None:
    layer = LayerBuilder().add_file("/etc/motd", b"hi").tar_bytes()
    with pytest.raises(LayoutError, match=message):
        open_docker_archive(_linked_archive(tmp_path / "a.tar", layer, links))


def test_a_layer_linked_to_a_layer_of_another_diff_id_is_refused(tmp_path: Path) -> None:
    first = LayerBuilder().add_file("/etc/motd", b"first").tar_bytes()
    second = LayerBuilder().add_file("/etc/motd", b"second").tar_bytes()
    ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in (first, second)]
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (
            ("manifest.json", json.dumps([{"Config": "c.json", "Layers": ["a", "b"]}]).encode()),
            ("c.json", json.dumps({"rootfs": {"diff_ids": ids}}).encode()),
            ("a", first),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("b")
        info.type, info.linkname = tarfile.SYMTYPE, "a"  # claims the second diff_id
        tar.addfile(info)
    _assert_diff_id_refused(path)


def _assert_diff_id_refused(path: Path) -> None:
    opened = open_docker_archive(path)
    try:
        with pytest.raises(DigestMismatchError, match="expected diff_id"):
            read_view(opened, lambda info: None)
    finally:
        opened.close()


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_compressed_archive_reads_as_the_plain_one(tmp_path: Path, compression: str) -> None:
    # `docker save app | gzip > app.tar.gz` is how archives are often kept
    image = build_image([LayerBuilder().add_file("/etc/motd", b"packed").build()])
    plain = tmp_path / "a.tar"
    write_docker_archive(image, plain, repo_tag="demo:1")
    if compression == "gzip":
        packed = gzip.compress(plain.read_bytes())
    else:
        import zstandard

        packed = zstandard.ZstdCompressor().compress(plain.read_bytes())
    path = tmp_path / f"a.tar.{compression}"
    path.write_bytes(packed)
    opened = open_image(parse_spec(str(path)))
    view = _read_all(opened)
    assert opened.config_digest == image.config_digest
    assert view.captured["/etc/motd"].value == b"packed"


def test_a_compressed_archive_that_expands_past_the_caps_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        chunk = bytes(1024 * 1024)
        for _ in range(80):  # 80 MiB of zeros in about 80 KB: past 200 times, past 64 MiB
            out.write(chunk)
    with pytest.raises(LayoutError, match="expands more than 200x"):
        open_image(parse_spec(f"docker-archive:{bomb}"))


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_compressed_archive_is_refused(
    tmp_path: Path, compression: str, keep: float
) -> None:
    # gzip says the stream was cut; python-zstandard's reader ends quietly at a cut frame, so
    # there the tar index or the layer's own size and diff_id refuse what came out
    import os

    import zstandard

    image = build_image([LayerBuilder().add_file("/etc/motd", os.urandom(100_000)).build()])
    plain = tmp_path / "a.tar"
    write_docker_archive(image, plain, repo_tag="demo:1")
    data = plain.read_bytes()
    packed = gzip.compress(data) if compression == "gzip" else zstandard.compress(data)
    path = tmp_path / "a.tar.z"
    path.write_bytes(packed[: int(len(packed) * keep)])
    with pytest.raises((LayoutError, LayerError, DigestMismatchError)) as refused:
        _read_all(open_image(parse_spec(str(path))))
    if compression == "gzip":
        assert "not a readable gzip-compressed archive" in str(refused.value)


def _two_image_archive(tmp_path: Path) -> Path:
    """`docker save demo:1 demo:2`: one archive, two images, each named in manifest.json."""
    entries, members = [], {}
    for number in (1, 2):
        image = build_image([LayerBuilder().add_file("/etc/motd", f"{number}".encode()).build()])
        single = tmp_path / f"{number}.tar"
        write_docker_archive(image, single, repo_tag=f"demo:{number}")
        with tarfile.open(single) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                if member.name == "manifest.json" and handle is not None:
                    entries += json.loads(handle.read())
                elif handle is not None:
                    members[member.name] = handle.read()
    members["manifest.json"] = json.dumps(entries).encode()
    return archive(tmp_path / "both.tar", members)


@pytest.mark.parametrize(
    ("tag", "motd"), [("demo:1", b"1"), ("demo:2", b"2"), ("docker.io/library/demo:2", b"2")]
)
def test_an_image_of_a_multi_image_archive_is_chosen_by_its_tag(
    tmp_path: Path, tag: str, motd: bytes
) -> None:
    path = _two_image_archive(tmp_path)
    spec = parse_spec(f"docker-archive:{path}:{tag}")
    assert spec.tag == tag
    opened = open_image(spec)
    view = _read_all(opened)
    assert view.captured["/etc/motd"].value == motd


@pytest.mark.parametrize(
    ("suffix", "message"),
    [("", r"holds 2 images; name one .*tags: demo:1, demo:2"), (":demo:3", "no image tagged")],
)
def test_a_multi_image_archive_without_a_known_tag_names_its_tags(
    tmp_path: Path, suffix: str, message: str
) -> None:
    path = _two_image_archive(tmp_path)
    with pytest.raises(LayoutError, match=message):
        open_image(parse_spec(f"docker-archive:{path}{suffix}"))


def test_a_directory_holding_an_image_is_refused_not_read_as_an_empty_root(
    tmp_path: Path,
) -> None:
    # walked as a root file system, an image's blobs hold no package: an empty SBOM and a
    # clean vulnerability report for an image nobody looked into
    image = build_image([LayerBuilder().add_file("/etc/motd", b"hi").build()])
    write_docker_archive(image, tmp_path / "a.tar", repo_tag="demo:1")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tmp_path / "a.tar") as tar:
        tar.extractall(unpacked, filter="data")
    skopeo = tmp_path / "skopeo"
    skopeo.mkdir()
    (skopeo / "version").write_text("Directory Transport Version: 1.1\n")
    (skopeo / "manifest.json").write_text("{}")
    for directory, message in ((unpacked, "unpacked docker save"), (skopeo, "skopeo's dir")):
        with pytest.raises(LayoutError, match=message):
            read_directory(directory, lambda info: None)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "manifest.json").write_text('{"name": "an app file"}')
    (rootfs / "version").write_text("1.0\n")
    assert "/manifest.json" in read_directory(rootfs, lambda info: None).nodes


def test_a_docker_archive_listing_more_layers_than_a_manifest_may_is_refused(
    tmp_path: Path,
) -> None:
    # a registry's or a layout's manifest is capped at 10,000 layers; manifest.json was not,
    # and 110,000 entries naming one small layer fit the config's 8 MiB (about 35 s of work)
    from skanse.oci.manifest import MAX_DESCRIPTORS

    layer = LayerBuilder().add_file("/etc/motd", b"hi").tar_bytes()
    count = MAX_DESCRIPTORS + 1
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    path = archive(
        tmp_path / "many.tar",
        {
            "manifest.json": json.dumps(
                [{"Config": "c.json", "Layers": ["l.tar"] * count}]
            ).encode(),
            "c.json": json.dumps({"rootfs": {"diff_ids": [diff_id] * count}}).encode(),
            "l.tar": layer,
        },
    )
    with pytest.raises(LayoutError, match="10001 layers, over the cap of 10000"):
        open_docker_archive(path)


def test_a_layer_listed_over_and_over_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # a small archive listing its one layer many times would cost one read per listing:
    # repeats may re-read as much as the distinct layers hold (64 MiB at least), not more
    layer = LayerBuilder().add_file("/big", hashlib.sha256(b"x").digest() * 32768).build()
    write_docker_archive(build_image([layer] * 70), tmp_path / "many.tar", repo_tag="a:1")
    opened = open_docker_archive(tmp_path / "many.tar")
    read = {"n": 0}
    opener = opened.opener

    def counting(descriptor):
        read["n"] += 1
        return opener(descriptor)

    object.__setattr__(opened, "opener", counting)
    with pytest.raises(ManifestError, match="70 layers, 1 of them distinct"):
        read_view(opened, lambda info: None)
    assert read["n"] == 0
    opened.close()
    # listed twice, it is read twice, as its place in the order asks
    write_docker_archive(build_image([layer] * 2), tmp_path / "two.tar", repo_tag="a:1")
    view = _read_all(open_docker_archive(tmp_path / "two.tar"))
    assert view.nodes["/big"].size == 1 << 20
