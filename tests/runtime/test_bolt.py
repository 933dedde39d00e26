"""The bbolt reader (containerd's metadata database) on files that are not well formed: each
gives BoltError or "no such bucket", quickly, never a crash or an endless walk. The reader on
a real containerd's database is tested in test_live_containers."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from skanse.runtime.bolt import BoltError, read_bucket

PAGE = 4096


def _fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _meta(page_id: int, root: int, txid: int) -> bytes:
    body = struct.pack("<IIIIQQQQQ", 0xED0CDAED, 2, PAGE, 0, root, 0, 2, 8, txid)
    page = struct.pack("<QHHI", page_id, 0x04, 0, 0) + body + struct.pack("<Q", _fnv1a64(body))
    return page.ljust(PAGE, b"\0")


def _leaf(page_id: int, items: list[tuple[int, bytes, bytes]]) -> bytes:
    """A leaf page of (flags, key, value) elements, laid out as bbolt lays them out."""
    header = struct.pack("<QHHI", page_id, 0x02, len(items), 0)
    elements, data = b"", b""
    for index, (flags, key, value) in enumerate(items):
        position = (len(items) - index) * 16 + len(data)
        elements += struct.pack("<IIII", flags, position, len(key), len(value))
        data += key + value
    return (header + elements + data).ljust(PAGE, b"\0")


def _branch(page_id: int, children: list[tuple[bytes, int]]) -> bytes:
    header = struct.pack("<QHHI", page_id, 0x01, len(children), 0)
    elements, data = b"", b""
    for index, (key, child) in enumerate(children):
        position = (len(children) - index) * 16 + len(data)
        elements += struct.pack("<IIQ", position, len(key), child)
        data += key
    return (header + elements + data).ljust(PAGE, b"\0")


def _bucket(root: int, inline: bytes = b"") -> bytes:
    return struct.pack("<QQ", root, 0) + inline


def _database(tmp_path: Path, *pages: bytes, root: int = 2) -> Path:
    path = tmp_path / "meta.db"
    path.write_bytes(_meta(0, root, 1) + _meta(1, root, 2) + b"".join(pages))
    return path


def test_a_hand_made_database_reads_back(tmp_path: Path) -> None:
    """Nested buckets on their own pages, an inline bucket, a branch page: the layout the
    reader expects, written from bbolt's format description (not by the reader)."""
    inline = _leaf(0, [(0, b"image", b"docker.io/library/nginx:1.27")])[: 16 + 16 + 5 + 28]
    db = _database(
        tmp_path,
        _leaf(2, [(1, b"v1", _bucket(3))]),
        _branch(3, [(b"a", 4), (b"m", 5)]),
        _leaf(4, [(0, b"a", b"1"), (0, b"b", b"2")]),
        _leaf(5, [(1, b"m", _bucket(0, inline)), (0, b"z", b"3")]),
    )
    assert read_bucket(db, [b"v1"]) == {b"a": b"1", b"b": b"2", b"z": b"3"}
    assert read_bucket(db, [b"v1", b"m"]) == {b"image": b"docker.io/library/nginx:1.27"}
    assert read_bucket(db, [b"v1", b"b"]) is None  # a value, not a bucket
    assert read_bucket(db, [b"v2"]) is None


@pytest.mark.parametrize(
    "content",
    [b"", b"\0" * 100, b"x" * (3 * PAGE), _meta(0, 2, 1)[:64]],
    ids=["empty", "short", "not bbolt", "torn meta"],
)
def test_files_that_are_not_bbolt_databases(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "meta.db"
    path.write_bytes(content)
    with pytest.raises(BoltError):
        read_bucket(path, [b"v1"])


def test_a_wrong_checksum_makes_the_reader_take_the_other_meta_page(tmp_path: Path) -> None:
    good_root, bad_root = 2, 3
    broken = bytearray(_meta(1, bad_root, 9))
    broken[40] ^= 0xFF  # the checksum no longer matches: page 1 is ignored despite its txid
    path = tmp_path / "meta.db"
    path.write_bytes(
        _meta(0, good_root, 1) + bytes(broken) + _leaf(2, [(0, b"k", b"v")]) + b"\0" * PAGE
    )
    assert read_bucket(path, []) == {b"k": b"v"}


def test_pages_and_elements_pointing_outside_the_file(tmp_path: Path) -> None:
    outside = _database(tmp_path, _leaf(2, [(1, b"v1", _bucket(999))]))
    with pytest.raises(BoltError):
        read_bucket(outside, [b"v1"])
    element = bytearray(_leaf(2, [(0, b"k", b"v")]))
    struct.pack_into("<I", element, 16 + 4, 10 * PAGE)  # the key's position
    (tmp_path / "2").mkdir()
    with pytest.raises(BoltError):
        read_bucket(_database(tmp_path / "2", bytes(element)), [])
    meta_page = _database(tmp_path, _leaf(2, [(1, b"v1", _bucket(1))]))
    with pytest.raises(BoltError):  # a meta page is no bucket's root
        read_bucket(meta_page, [b"v1"])


def test_a_branch_page_that_lists_itself_is_refused(tmp_path: Path) -> None:
    """A cycle (a page its own child) and a page listed 200 times: refused, not walked 200
    times or forever."""
    cycle = _database(tmp_path, _branch(2, [(b"a", 2)]))
    with pytest.raises(BoltError):
        read_bucket(cycle, [])
    with pytest.raises(BoltError):
        read_bucket(cycle, [b"a"])
    (tmp_path / "wide").mkdir()
    wide = _database(
        tmp_path / "wide",
        _branch(2, [(bytes([i % 256, i // 256]), 3) for i in range(200)]),
        _leaf(3, [(0, b"k", b"v")]),
    )
    with pytest.raises(BoltError):
        read_bucket(wide, [])


def _shared_key_page(page_id: int, count: int, size: int, overflow: int) -> bytes:
    """A leaf page of `count` elements whose keys all name the same `size` bytes after
    them: each element stays inside the page, together they claim count x size bytes."""
    header = struct.pack("<QHHI", page_id, 0x02, count, overflow)
    region = 16 + count * 16  # where the shared bytes start, from the page start
    elements = b"".join(
        struct.pack("<IIII", 0, region - (16 + index * 16), size, 0) for index in range(count)
    )
    return header + elements + b"k" * size


@pytest.mark.parametrize("names", [[b"missing"], []])
def test_elements_sharing_one_region_are_refused_not_copied_again_and_again(
    tmp_path: Path, names: list[bytes]
) -> None:
    """200 elements naming the same 1 MB in an 1 MB page would have the reader copy 200 MB
    (a 16 MB file of this shape: minutes and gigabytes); they claim more than the page
    holds, which a bbolt page never does."""
    size = 1 << 20
    page = _shared_key_page(2, 200, size, overflow=size // PAGE + 1)
    db = _database(tmp_path, page)
    with pytest.raises(BoltError, match="claim more bytes"):
        read_bucket(db, names)


def test_elements_beyond_their_page_are_refused_even_inside_the_file(tmp_path: Path) -> None:
    """A page without overflow pages is one page long: an element reaching into the next
    page (still inside the file) is out of bounds."""
    page = _shared_key_page(2, 1, 5000, overflow=0)
    db = _database(tmp_path, page.ljust(3 * PAGE, b"\0"))
    with pytest.raises(BoltError, match="outside its page"):
        read_bucket(db, [])


def test_pages_whose_overflow_runs_over_other_pages_are_refused(tmp_path: Path) -> None:
    """A branch page lists 50 leaf pages, each claiming (through its overflow count) the rest
    of the file for one value: read page by page that is 50 copies of most of the file (a
    16 MB file of this shape: tens of gigabytes). bbolt's pages never overlap."""
    children, tail = 50, 20
    total = 3 + children + tail  # meta, meta, branch, leaves, pages the values run over
    branch = _branch(2, [(b"a%03d" % index, 3 + index) for index in range(children)])
    leaves = []
    for page_id in range(3, 3 + children):
        value_size = (total - page_id) * PAGE - 16 - 16 - 1  # to the end of the file
        header = struct.pack("<QHHI", page_id, 0x02, 1, total - 1 - page_id)
        element = struct.pack("<IIII", 0, 16, 1, value_size)
        leaves.append((header + element + b"k").ljust(PAGE, b"\0"))
    db = _database(tmp_path, branch, *leaves, b"v" * (tail * PAGE))
    with pytest.raises(BoltError, match="overlaps a page already read"):
        read_bucket(db, [])
