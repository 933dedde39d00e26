"""plain_members lists what tarfile lists, or gives up (None) so that tarfile reads the layer.

The archives: tars written by tarfile in the ustar, GNU and PAX formats (long names through
GNU and PAX headers, links, devices, base-256 numbers), a real Debian root file system
packed as a layer, every cut of a small tar, and thousands of seeded corruptions. Where
plain_members answers, each member must be the one tarfile reads at the same offset.
"""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from pathlib import Path

import pytest

from skanse.errors import DigestMismatchError, LayerError
from skanse.oci import _regions, layers
from skanse.oci._regions import RegionHashes
from skanse.oci._tarwalk import plain_members
from skanse.oci.archives import open_docker_archive
from skanse.oci.image import read_view
from skanse.oci.layers import FileRegion
from skanse.oci.writer import LayerBuilder, build_image, write_docker_archive
from tests._debian import debian_rootfs
from tests.oci.test_tarheader import sample_tar

FIELDS = (
    "name mode uid gid size mtime chksum type linkname uname gname devmajor devminor "
    "offset offset_data pax_headers sparse"
).split()
NO_LIMIT = 10**9


def described(members: list[tarfile.TarInfo]) -> list[dict[str, object]]:
    return [{field: getattr(m, field) for field in FIELDS} for m in members]


def tarfile_reads(tar: bytes) -> list[dict[str, object]] | None:
    """What tarfile lists, None where tarfile raises."""
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            return described(archive.getmembers())
    except (tarfile.TarError, EOFError):
        return None


def walk(tar: bytes, limit: int = NO_LIMIT) -> list[dict[str, object]] | None:
    def read(count: int, at: int) -> bytes:
        return tar[at : at + count]

    members = plain_members(read, len(tar), io.BytesIO(tar), limit=limit)
    return None if members is None else described(members)


def assert_same_or_given_up(tar: bytes) -> bool:
    """True when plain_members answered (and agreed with tarfile)."""
    walked = walk(tar)
    if walked is None:
        return False
    assert walked == tarfile_reads(tar)
    return True


@pytest.mark.parametrize("format", [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_written_archives_are_read_as_tarfile_reads_them(format: int) -> None:
    tar = sample_tar(format)
    assert assert_same_or_given_up(tar)  # PAX long names and "café" go through tarfile


def test_gnu_long_names_are_read_and_base256_numbers_left_to_tarfile() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in ("d/" * 60 + "long-name", "short"):
            info = tarfile.TarInfo(name)
            info.linkname = "l/" * 60 + "target"
            info.type = tarfile.SYMTYPE
            tar.addfile(info)
    assert assert_same_or_given_up(out.getvalue())
    # the sample's GNU fifo has a uid too big for octal: the whole tar is tarfile's
    assert walk(sample_tar(tarfile.GNU_FORMAT)) is None


def test_a_debian_root_file_system_is_read_as_tarfile_reads_it() -> None:
    tar = LayerBuilder().add_host_directory(debian_rootfs()).tar_bytes()
    walked = walk(tar)
    assert walked is not None and len(walked) > 5000
    assert walked == tarfile_reads(tar)


def test_every_cut_of_a_tar_is_read_as_tarfile_reads_it_or_left_to_it() -> None:
    layer = LayerBuilder().add_file("/a", b"a" * 700).add_file("/b", b"").add_directory("/c")
    tar = layer.tar_bytes()
    for cut in range(0, len(tar) + 1, 97):
        assert_same_or_given_up(tar[:cut])
    for cut in range(0, len(tar) + 1, 512):
        assert_same_or_given_up(tar[:cut])


def test_corrupted_archives_are_read_as_tarfile_reads_them_or_left_to_it() -> None:
    rng = random.Random(1818)  # noqa: S311 (reproducible corruption, not secrecy)
    sources = [sample_tar(tarfile.USTAR_FORMAT), sample_tar(tarfile.PAX_FORMAT)]
    answered = 0
    for _ in range(2000):
        tar = bytearray(rng.choice(sources))
        headers = [m.offset for m in tarfile.open(fileobj=io.BytesIO(tar)).getmembers()]
        at = rng.choice(headers)
        for _ in range(rng.randint(1, 3)):
            spot = at + rng.randrange(512)
            tar[spot] = rng.choice([0, 0x20, 0x80, 0xFF, ord("0"), ord("7"), ord("x"), ord("L")])
        if rng.random() < 0.7:  # mostly keep a valid checksum so the fields get parsed
            tar[at + 148 : at + 156] = b" " * 8
            tar[at + 148 : at + 156] = b"%06o\0 " % sum(bytes(tar[at : at + 512]))
        answered += assert_same_or_given_up(bytes(tar))
    assert answered > 500  # the comparison covered parsed headers, not only refusals


def test_what_plain_members_leaves_to_tarfile() -> None:
    def pax(headers: dict[str, str], *, global_header: bool = False) -> bytes:
        out = io.BytesIO()
        with tarfile.open(
            fileobj=out,
            mode="w",
            format=tarfile.PAX_FORMAT,
            pax_headers=headers if global_header else None,
        ) as tar:
            info = tarfile.TarInfo("f")
            if not global_header:
                info.pax_headers = headers
            tar.addfile(info, io.BytesIO(b""))
        return out.getvalue()

    plain = LayerBuilder().add_file("/a", b"x").add_file("/b", b"y").tar_bytes()
    # PAX headers on a few members are read through tarfile, on most the layer is tarfile's
    few = pax({"path": "p" * 200})
    assert walk(few) is not None and walk(few) == tarfile_reads(few)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for index in range(65):
            tar.addfile(tarfile.TarInfo(f"{index:03}-" + "n" * 120))
    assert walk(out.getvalue()) is None
    assert walk(plain) is not None
    assert walk(plain, limit=1) is None  # more members than allowed: tarfile raises the cap
    assert walk(pax({"comment": "all"}, global_header=True)) is None
    assert walk(pax({"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})) is None
    assert walk(plain.rstrip(b"\0")) is None  # no end-of-archive block
    fifo_with_data = bytearray(plain)
    fifo_with_data[156:157] = b"Z"  # an unknown type
    assert walk(bytes(fifo_with_data)) is None


def archive_view(path: Path, *, ahead: bool = False) -> object:
    """Everything read_view gives for a docker archive, every file's content captured."""
    opened = open_docker_archive(path)
    try:
        if ahead:
            opened.read_ahead()
        view = read_view(opened, lambda info: lambda data: data)
    finally:
        opened.close()
    return (
        sorted(view.nodes.items()),
        sorted((k, c.value) for k, c in view.captured.items()),
        view.problems,
    )


def docker_archive(tmp_path: Path, layer: LayerBuilder) -> Path:
    path = tmp_path / "image.tar"
    write_docker_archive(build_image([layer.build("")]), path)
    return path


def hardlink(path: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.linkname = tarfile.LNKTYPE, target.lstrip("/")
    return info


def test_docker_archive_reads_the_same_view_with_and_without_plain_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = (
        LayerBuilder()
        .add_file("/etc/os-release", b"ID=debian\n")
        .add_file("/usr/bin/" + "x" * 150, b"\x7fELF", mode=0o755)
        .add_symlink("/bin", "usr/bin")
        .add_raw(hardlink("/etc/os-release.hard", "/etc/os-release"))
        .add_directory("/var/empty")
    )
    path = docker_archive(tmp_path, layer)
    walked = archive_view(path)
    monkeypatch.setattr(layers, "plain_members", lambda *args, **kwargs: None)
    assert archive_view(path) == walked


def test_docker_archive_member_cut_short_by_a_shrunk_file_is_refused(tmp_path: Path) -> None:
    layer = LayerBuilder().add_file("/a", b"a" * 50_000).add_file("/z", b"z")
    path = docker_archive(tmp_path, layer)
    opened = open_docker_archive(path)
    try:
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.truncate(size - 40_000)  # shrinks under the opened archive
        with pytest.raises(LayerError, match=r"truncated|malformed tar"):
            read_view(opened, lambda info: lambda data: data)
    finally:
        opened.close()


def test_region_digests_cover_the_region_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(range(256)) * 400  # 102,400 bytes
    path = tmp_path / "blob"
    path.write_bytes(data)
    monkeypatch.setattr(_regions, "_READ_PIECE", 8192)  # several pieces, one part-filled
    with path.open("rb") as handle:
        for offset, size in ((0, len(data)), (513, 70_001), (4096, 8192), (100, 0)):
            job = RegionHashes(FileRegion(handle.fileno(), offset, size), {"sha256", "sha512"})
            job.run()
            assert job.error is None and not job.short
            for name, digest in job.hashes.items():
                assert (
                    digest.hexdigest()
                    == hashlib.new(name, data[offset : offset + size]).hexdigest()
                )
        short = RegionHashes(FileRegion(handle.fileno(), 100_000, 5_000), {"sha256"})
        short.run()
        assert short.short


def two_layer_archive(tmp_path: Path, *, same: bool = False) -> Path:
    first = LayerBuilder().add_file("/etc/os-release", b"ID=debian\n").add_file("/a", b"A" * 9000)
    second = first if same else LayerBuilder().add_file("/b", b"B" * 9000)
    path = tmp_path / "two.tar"
    write_docker_archive(build_image([first.build(""), second.build("")]), path)
    return path


@pytest.mark.parametrize("same", [False, True])
def test_layers_hashed_ahead_read_as_layers_hashed_alongside(tmp_path: Path, same: bool) -> None:
    path = two_layer_archive(tmp_path, same=same)  # same: one diff_id twice, one member
    assert archive_view(path, ahead=True) == archive_view(path)


def test_a_layer_hashed_ahead_is_still_verified(tmp_path: Path) -> None:
    path = two_layer_archive(tmp_path)
    data = bytearray(path.read_bytes())
    data[data.index(b"B" * 5000) + 10] = ord("C")
    path.write_bytes(bytes(data))
    opened = open_docker_archive(path)
    try:
        opened.read_ahead()
        with pytest.raises(DigestMismatchError, match="expected diff_id"):
            read_view(opened, lambda info: None)
    finally:
        opened.close()


def test_closing_an_archive_ends_its_hashing_ahead(tmp_path: Path) -> None:
    import threading

    path = two_layer_archive(tmp_path)
    opened = open_docker_archive(path)
    opened.read_ahead()
    opened.close()  # before any layer was read: the thread stops and is joined
    assert not [t for t in threading.enumerate() if t.name == "layer-digests-ahead"]


def test_a_layer_given_up_after_a_member_read_by_tarfile_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a long (PAX) name, read through tarfile, then an entry plain_members leaves to tarfile:
    # the whole layer is tarfile's, from its first member
    sparse = tarfile.TarInfo("var/sparse")
    sparse.type = tarfile.GNUTYPE_SPARSE
    layer = (
        LayerBuilder()
        .add_file("/etc/os-release", b"ID=debian\n")
        .add_file("/usr/lib/" + "l" * 150, b"long")
        .add_raw(sparse)
        .add_file("/z", b"last")
    )
    path = docker_archive(tmp_path, layer)
    walked = archive_view(path)
    assert {"/etc/os-release", "/z"} <= {path for path, _ in walked[0]}  # type: ignore[index]
    monkeypatch.setattr(layers, "plain_members", lambda *args, **kwargs: None)
    assert archive_view(path) == walked


def test_member_paths_normalise_component_by_component() -> None:
    # every name made of these pieces, up to five of them: empty and `.` components dropped,
    # `..` refused, as a component-by-component reading of the name gives
    from itertools import product

    from skanse.oci.vfs import normalise_member_path

    def by_components(name: str) -> str | None:
        kept = []
        for part in name.split("/"):
            if part == "..":
                return None
            if part not in ("", "."):
                kept.append(part)
        return "/" + "/".join(kept)

    pieces = ["a", "/", ".", "..", "//", "./", "../", ".wh.b", "x.y"]
    for count in range(6):
        for combination in product(pieces, repeat=count):
            name = "".join(combination)
            assert normalise_member_path(name) == by_components(name), name
