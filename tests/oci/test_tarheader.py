"""FastTarInfo.frombuf gives what tarfile's own frombuf gives, or raises what it raises.

The headers: every entry of a real Debian root file system packed as a layer (when the
cached debootstrap tree is there), tars written by tarfile in the ustar, GNU and PAX formats
with long names, links, devices and base-256 numbers, and thousands of seeded random
corruptions of those headers.
"""

from __future__ import annotations

import io
import random
import tarfile

import pytest

from skanse.oci._tarheader import FastTarInfo
from skanse.oci.writer import LayerBuilder
from tests._debian import debian_rootfs

FIELDS = "name mode uid gid size mtime chksum type linkname uname gname devmajor devminor".split()
ENCODING, ERRORS = "utf-8", "surrogateescape"


def parsed(parser: type[tarfile.TarInfo], block: bytes) -> object:
    try:
        info = parser.frombuf(block, ENCODING, ERRORS)
    except Exception as exc:  # the error is part of the behaviour compared
        return (type(exc), str(exc))
    assert isinstance(info, parser)
    return {field: getattr(info, field) for field in FIELDS}


def assert_same(block: bytes) -> None:
    assert parsed(FastTarInfo, block) == parsed(tarfile.TarInfo, block)


def headers(tar: bytes) -> list[bytes]:
    """Every 512-byte block that is a header (not file content) of a tar."""
    blocks = []
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        for member in archive.getmembers():
            blocks.append(tar[member.offset : member.offset + 512])
            if member.offset_data - member.offset > 512:  # long name or PAX header blocks
                blocks.append(tar[member.offset_data - 512 : member.offset_data])
    return blocks


def sample_tar(format: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=format) as tar:
        entries = [
            ("etc/motd", tarfile.REGTYPE, b"hello"),
            ("d/" * 60 + "long-name", tarfile.REGTYPE, b"x"),
            ("dir", tarfile.DIRTYPE, b""),
            ("link", tarfile.SYMTYPE, b""),
            ("hard", tarfile.LNKTYPE, b""),
            ("dev/null", tarfile.CHRTYPE, b""),
            ("dev/sda", tarfile.BLKTYPE, b""),
            ("fifo", tarfile.FIFOTYPE, b""),
            ("caf\u00e9/\udcff", tarfile.REGTYPE, b"e"),
        ]
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data)
            info.mode = 0o4755
            info.mtime = 1_700_000_000
            info.linkname = "etc/motd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            info.devmajor, info.devminor = (8, 1) if kind == tarfile.BLKTYPE else (1, 3)
            if format == tarfile.GNU_FORMAT and name == "fifo":
                info.uid = 8**8  # too big for octal: base-256
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_same_as_tarfile_on_written_headers(format: int) -> None:
    blocks = headers(sample_tar(format))
    assert len(blocks) >= 9
    for block in blocks:
        assert_same(block)


def test_same_as_tarfile_on_edge_blocks() -> None:
    good = headers(LayerBuilder().add_file("/etc/motd", b"hi").tar_bytes())[0]
    v7_dir = bytearray(good)
    v7_dir[0:100] = b"olddir/".ljust(100, b"\0")
    v7_dir[156:157] = b"\0"
    for block in (b"", b"\0" * 512, good[:511], bytes(v7_dir), good):
        assert_same(block)


def test_same_as_tarfile_on_corrupted_headers() -> None:
    rng = random.Random(18)  # noqa: S311 (reproducible corruption, not secrecy)
    blocks = headers(sample_tar(tarfile.GNU_FORMAT)) + headers(sample_tar(tarfile.PAX_FORMAT))
    for _ in range(3000):
        block = bytearray(rng.choice(blocks))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(512)
            block[at] = rng.choice(
                [0, 0x20, 0x1C, 0x80, 0xFF, ord("7"), ord("/"), rng.randrange(256)]
            )
        if rng.random() < 0.7:  # mostly keep a valid checksum so the fields get parsed
            block[148:156] = b" " * 8
            block[148:156] = b"%06o\0 " % sum(block)
        assert_same(bytes(block))


def test_same_as_tarfile_on_a_debian_root_file_system() -> None:
    rootfs = debian_rootfs()
    tar = LayerBuilder().add_host_directory(rootfs).tar_bytes()
    blocks = headers(tar)
    assert len(blocks) > 5000
    for block in blocks:
        assert_same(block)
