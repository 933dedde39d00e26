"""A read-only reader of bbolt databases: containerd's metadata store (meta.db).

containerd keeps what `ctr run IMAGE ID` was given (the image name, labels) in its metadata
database, not in the task's OCI spec, so the sensor reads it there, as a file, without
containerd's gRPC API. The format is bbolt's (go.etcd.io/bbolt, version 2):

- two meta pages (0 and 1), each checksummed (FNV-1a 64); the valid one with the larger
  transaction id names the root bucket's page;
- every page starts with a 16-byte header (id, flags, element count, overflow pages);
  branch pages hold (position, key size, child page) elements, leaf pages (flags, position,
  key size, value size) elements, positions counted from the element itself;
- a leaf value flagged as a bucket starts with the bucket's root page and sequence; a root
  of 0 means the bucket is inline: its page follows in the value.

The database is opened once per lookup (open_database, for several buckets), bounds-checked
throughout, and a page tree deeper than MAX_DEPTH is refused (a well-formed tree of this
size is far shallower), so a torn or hostile file gives BoltError, never an endless walk.
containerd writes the file in place while it runs; a read that meets a half-written page
fails with BoltError and the caller simply goes without the metadata.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from skanse.runtime._fnv import fnv1a64

__all__ = ["BoltError", "Database", "open_database", "read_bucket"]

_MAGIC = 0xED0CDAED
_VERSION = 2
_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIIIQQQQQ")  # magic, version, page size, flags, root, sequence,
# freelist, high-water page id, transaction id; the checksum follows
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # position, key size, child page id
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, position, key size, value size
_BUCKET_HEADER = struct.Struct("<QQ")  # root page id, sequence
_BRANCH_PAGE, _LEAF_PAGE = 0x01, 0x02
_BUCKET_LEAF = 0x01
MAX_DEPTH = 64


class BoltError(Exception):
    """The file is not a bbolt database this reader understands, or is damaged."""


def read_bucket(path: Path, bucket: Sequence[bytes]) -> dict[bytes, bytes] | None:
    """The plain key/value pairs of the bucket at `bucket` (a path of nested bucket names),
    or None when a bucket on that path does not exist. Nested buckets are left out."""
    with open_database(path) as database:
        return database.bucket(bucket)


@contextmanager
def open_database(path: Path) -> Iterator[Database]:
    """The database at `path`, opened and its meta pages checked once for several
    `Database.bucket` reads."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise BoltError(f"{path}: {error}") from None
    with handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
        except (OSError, ValueError) as error:  # ValueError: mmap of an empty file
            raise BoltError(f"{path}: {error}") from None
        with data:
            # only opening is translated: an error in the caller's block stays its own
            yield Database(data)


class Database:
    """An open bbolt database (see open_database)."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        first = self._meta(0)
        # page 1 is one page later; when page 0 is torn, bbolt falls back to the OS page size
        second = self._meta(first[0] if first is not None else mmap.PAGESIZE)
        valid = [meta for meta in (first, second) if meta is not None]
        if not valid:
            raise BoltError("no valid meta page (not a bbolt database, or damaged)")
        self.page_size, self.root, _txid = max(valid, key=lambda meta: meta[2])

    def _meta(self, offset: int) -> tuple[int, int, int] | None:
        start = offset + _PAGE_HEADER.size
        end = start + _META.size
        if end + 8 > len(self.data):
            return None
        magic, version, page_size, _flags, root, _seq, _free, _pgid, txid = _META.unpack_from(
            self.data, start
        )
        (checksum,) = struct.unpack_from("<Q", self.data, end)
        if magic != _MAGIC or version != _VERSION or page_size < 512 or page_size > 1 << 20:
            return None
        if fnv1a64(self.data[start:end]) != checksum:
            return None
        return page_size, root, txid

    def _page(self, page_id: int) -> int:
        offset = page_id * self.page_size
        if page_id < 2 or offset + _PAGE_HEADER.size > len(self.data):
            raise BoltError(f"page {page_id} is outside the file")
        return offset

    def _slice(self, buffer: bytes | mmap.mmap, start: int, size: int) -> bytes:
        if start < 0 or size < 0 or start + size > len(buffer):
            raise BoltError("an element points outside its page")
        return bytes(buffer[start : start + size])

    def bucket(self, names: Sequence[bytes]) -> dict[bytes, bytes] | None:
        buffer: bytes | mmap.mmap = self.data
        page = self._page(self.root)
        for name in names:
            found = self._find(buffer, page, name)
            if found is None or not found[0] & _BUCKET_LEAF:
                return None
            root, _seq = _BUCKET_HEADER.unpack_from(self._slice(found[1], 0, 16))
            if root == 0:  # inline: the bucket's one page follows its header
                buffer, page = found[1][_BUCKET_HEADER.size :], 0
            else:
                buffer, page = self.data, self._page(root)
        return {
            key: value
            for flags, key, value in self._leaves(buffer, page)
            if not flags & _BUCKET_LEAF
        }

    def _elements(self, buffer: bytes | mmap.mmap, page: int) -> _Page:
        if page + _PAGE_HEADER.size > len(buffer):
            raise BoltError("a page header lies outside the file")
        _id, flags, count, overflow = _PAGE_HEADER.unpack_from(buffer, page)
        # a page in the file spans itself and its overflow pages; an inline bucket's page
        # is the rest of its value
        extent = len(buffer) if buffer is not self.data else self.page_size * (overflow + 1)
        return _Page(flags, count, page + _PAGE_HEADER.size, min(len(buffer), page + extent))

    def _branch_children(
        self, buffer: bytes | mmap.mmap, page: _Page
    ) -> Iterator[tuple[bytes, int]]:
        """(first key, child page id) of each element of a branch page."""
        for index in range(page.count):
            at = page.base + index * _BRANCH_ELEMENT.size
            position, ksize, page_id = _BRANCH_ELEMENT.unpack_from(
                page.slice(buffer, at, _BRANCH_ELEMENT.size)
            )
            yield page.slice(buffer, at + position, ksize, element=True), page_id

    def _leaf_elements(
        self, buffer: bytes | mmap.mmap, page: _Page, key: bytes | None = None
    ) -> Iterator[tuple[int, bytes, bytes]]:
        """(flags, key, value) of each element of a leaf page; only the element whose key is
        `key` when one is given (other keys and values are not copied)."""
        for index in range(page.count):
            at = page.base + index * _LEAF_ELEMENT.size
            flags, position, ksize, vsize = _LEAF_ELEMENT.unpack_from(
                page.slice(buffer, at, _LEAF_ELEMENT.size)
            )
            key_at = at + position
            page.charge(key_at, ksize + vsize)
            if key is not None and ksize != len(key):
                continue
            element_key = page.slice(buffer, key_at, ksize)
            if key is not None and element_key != key:
                continue
            yield flags, element_key, page.slice(buffer, key_at + ksize, vsize)

    def _find(self, buffer: bytes | mmap.mmap, page: int, key: bytes) -> tuple[int, bytes] | None:
        seen: set[int] = set()
        for _depth in range(MAX_DEPTH):
            elements = self._elements(buffer, page)
            if elements.flags & _BRANCH_PAGE:
                child = None
                for first_key, page_id in self._branch_children(buffer, elements):
                    # the last child whose first key <= key
                    if first_key > key and child is not None:
                        break
                    child = page_id
                if child is None:
                    return None
                if child in seen:
                    raise BoltError(f"page {child} is its own descendant")
                seen.add(child)
                page = self._page(child)
                buffer = self.data
                continue
            if not elements.flags & _LEAF_PAGE:
                raise BoltError(f"page flags {elements.flags:#x} are neither branch nor leaf")
            for eflags, _key, value in self._leaf_elements(buffer, elements, key):
                return eflags, value
            return None
        raise BoltError(f"the page tree is deeper than {MAX_DEPTH}")

    def _leaves(self, buffer: bytes | mmap.mmap, page: int) -> list[tuple[int, bytes, bytes]]:
        """Every leaf element under `page`, each page of the file read once: a page listed
        twice, or one whose overflow pages run over another page's (as in a damaged or hostile
        file: N pages each claiming the rest of the file would cost N times its size), is
        refused rather than read again."""
        out: list[tuple[int, bytes, bytes]] = []
        pending: list[tuple[bytes | mmap.mmap, int]] = [(buffer, page)]
        seen: set[int] = set()
        covered: set[int] = set()  # the file's pages read so far, overflow pages included
        while pending:
            buffer, page = pending.pop()
            elements = self._elements(buffer, page)
            if buffer is self.data:
                first = page // self.page_size
                spans = range(first, max(first, (elements.end - 1) // self.page_size) + 1)
                if not covered.isdisjoint(spans):
                    raise BoltError(f"page {first} overlaps a page already read")
                covered.update(spans)
            if elements.flags & _BRANCH_PAGE:
                children = []
                for _first_key, page_id in self._branch_children(buffer, elements):
                    if page_id in seen:
                        raise BoltError(f"page {page_id} is referenced twice")
                    seen.add(page_id)
                    children.append((self.data, self._page(page_id)))
                pending += reversed(children)  # in key order
                continue
            if not elements.flags & _LEAF_PAGE:
                raise BoltError(f"page flags {elements.flags:#x} are neither branch nor leaf")
            out.extend(self._leaf_elements(buffer, elements))
        return out


class _Page:
    """One page's elements: where they start, where the page ends, and how many of its
    bytes the elements' keys and values have claimed. bbolt lays keys and values out one
    after another inside their page; an element reaching outside it, or elements claiming
    more bytes than the page holds (many elements naming the same large region, to make a
    reader copy it again and again), is refused, so reading a page costs at most its size."""

    __slots__ = ("base", "claimed", "count", "end", "flags")

    def __init__(self, flags: int, count: int, base: int, end: int) -> None:
        self.flags, self.count, self.base, self.end = flags, count, base, end
        self.claimed = 0
        element_size = _BRANCH_ELEMENT.size if flags & _BRANCH_PAGE else _LEAF_ELEMENT.size
        if base + count * element_size > end:
            raise BoltError(f"{count} elements do not fit in their page")

    def slice(
        self, buffer: bytes | mmap.mmap, start: int, size: int, *, element: bool = False
    ) -> bytes:
        if element:
            self.charge(start, size)
        if start < self.base or size < 0 or start + size > self.end:
            raise BoltError("an element points outside its page")
        return bytes(buffer[start : start + size])

    def charge(self, start: int, size: int) -> None:
        if start < self.base or size < 0 or start + size > self.end:
            raise BoltError("an element points outside its page")
        self.claimed += size
        if self.claimed > self.end - self.base:
            raise BoltError("the elements of a page claim more bytes than it holds")
