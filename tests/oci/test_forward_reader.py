"""`ForwardReader`: tarfile's seekable mode over a stream handed over in chunks."""

from __future__ import annotations

import io
import itertools
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skanse.oci._forward import ForwardReader


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _reader(chunks: list[bytes]) -> ForwardReader:
    pending = iter(chunks)
    return ForwardReader(lambda: next(pending, b""))


def _archive(members: list[tuple[str, bytes]], tar_format: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format) as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _read_all(fileobj: object, mode: str) -> list[tuple[str, bytes]]:
    got = []
    with tarfile.open(fileobj=fileobj, mode=mode) as archive:  # type: ignore[call-overload]
        for member in archive:
            handle = archive.extractfile(member)
            got.append((member.name, handle.read() if handle is not None else b""))
    return got


@settings(max_examples=150, deadline=None)
@given(
    members=st.lists(
        st.tuples(
            # long names need a GNU or pax extension header: more than one block per member
            st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=300),
            st.binary(max_size=3000),
        ),
        max_size=8,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=12),
    tar_format=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
)
def test_tarfile_reads_the_same_members_over_any_chunking(
    members: list[tuple[str, bytes]], cuts: list[int], tar_format: int
) -> None:
    data = _archive(members, tar_format)
    assert _read_all(_reader(_chunks(data, cuts)), "r:") == _read_all(io.BytesIO(data), "r:")


def test_a_forward_seek_drops_chunks_and_the_block_before_stays_readable() -> None:
    reader = _reader([b"a" * 600, b"b" * 600, b"c" * 600])
    assert reader.seek(1500) == 1500
    assert reader.read(10) == b"c" * 10
    reader.seek(1199)  # the last byte of the chunk before: tarfile checks it before a header
    assert reader.read(2) == b"bc"
    reader.seek(1200 - 512)
    assert reader.read(1) == b"b"
    with pytest.raises(io.UnsupportedOperation, match="cannot seek back"):
        reader.seek(1200 - 513)


def test_reading_past_the_end_returns_what_there_is_then_nothing() -> None:
    reader = _reader([b"abc", b"de"])
    assert reader.read(10) == b"abcde"
    assert reader.read(10) == b""
    assert reader.tell() == 5
    reader.seek(100)
    assert reader.read() == b""


def test_a_failing_source_raises_to_the_reader() -> None:
    def broken() -> bytes:
        raise ValueError("corrupt gzip data")

    with pytest.raises(ValueError, match="corrupt"):
        ForwardReader(broken).read(1)
