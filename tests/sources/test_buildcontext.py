"""ADD sources in the build context: archives known by their content, as Docker knows them."""

from __future__ import annotations

import io
import tarfile

from skanse.sources.buildcontext import looks_like_archive


def _v7_header() -> bytes:
    """A tar header without the `ustar` magic (v7), which Go's tar reader still accepts."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("app")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    block = bytearray(out.getvalue()[:512])
    block[257:265] = bytes(8)  # no magic, no version
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def test_archives_are_known_by_their_first_bytes_not_their_name() -> None:
    v7 = _v7_header()
    assert v7[257:262] != b"ustar" and looks_like_archive(v7)
    assert looks_like_archive(b"\x28\xb5\x2f\xfd" + bytes(20))  # zstd: moby decompresses it too
    assert looks_like_archive(b"\x1f\x8b\x08" + bytes(20))
    assert not looks_like_archive(b"listen 8080\n" * 60)
    assert not looks_like_archive(bytes(512))  # an end-of-archive block alone holds no entry
    corrupted = bytearray(v7)
    corrupted[0] ^= 1
    assert not looks_like_archive(bytes(corrupted))
