"""RPM databases: SQLite (`rpmdb.sqlite`, RHEL 9+, Fedora 33+), Berkeley DB (`Packages`,
older RHEL/CentOS/Amazon Linux) and NDB (`Packages.db`, SUSE).

All three store one header blob per package. The Berkeley DB hash file is walked page by
page: values of hash pages that point to overflow pages (HOFFPAGE) are the header blobs,
read by following the overflow chain (with a loop guard). NDB (rpm's `lib/backend/ndb`) is
a 32-byte header, slot pages of 16-byte slots ("Slot", package index, block offset, block
count) and blobs at block offset x 16 ("BlbS", package index, checksum, length).
Header blobs are parsed with every offset bounds-checked. Versions and purls as Syft:
`[epoch:]version-release`, `pkg:rpm/<distro>/<name>@<version>-<release>?arch=..&epoch=..
&upstream=<source rpm>&distro=..` (the namespace `redhat` for RHEL).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from skanse.errors import SourceError
from skanse.inventory.catalogers._base import Environment, make_purl
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = [
    "RpmCataloger",
    "RpmHeader",
    "parse_header_blob",
    "read_bdb_values",
    "read_ndb_values",
    "read_sqlite_blobs",
]

_DB_PATH = re.compile(
    r".*/(?:var/lib|usr/share|usr/lib/sysimage)/rpm/(Packages|Packages\.db|rpmdb\.sqlite)$"
)

# header tags and types (rpm's rpmtag.h)
_NAME, _VERSION, _RELEASE, _EPOCH, _LICENSE, _ARCH, _SOURCERPM = (
    1000,
    1001,
    1002,
    1003,
    1014,
    1022,
    1044,
)
_DIRINDEXES, _BASENAMES, _DIRNAMES, _MODULARITY = 1116, 1117, 1118, 5096
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9
_MAX_INDEX = 1_000_000


@dataclass(frozen=True, slots=True)
class RpmHeader:
    name: str
    version: str
    release: str
    epoch: int | None
    arch: str
    source_rpm: str
    license: str
    modularity: str
    files: frozenset[str]


_PATH_BUDGET_PER_BYTE = 8
_PATH_BUDGET_FLOOR = 64 * 1024


def parse_header_blob(blob: bytes) -> RpmHeader:
    """Parse one header blob as stored in an rpmdb (no lead, no magic)."""
    if len(blob) < 8:
        raise SourceError("rpm header blob is shorter than 8 bytes")
    count, data_length = struct.unpack_from(">II", blob, 0)
    store = 8 + 16 * count
    if count > _MAX_INDEX or store + data_length > len(blob):
        raise SourceError("rpm header index does not fit the blob")
    entries: dict[int, tuple[int, int, int]] = {}
    for i in range(count):
        tag, type_, offset, n = struct.unpack_from(">IIiI", blob, 8 + 16 * i)
        if 0 <= offset < data_length:
            entries[tag] = (type_, store + offset, n)
    end = store + data_length

    def strings(tag: int) -> list[str]:
        if tag not in entries:
            return []
        type_, start, n = entries[tag]
        if type_ not in (_STRING, _STRING_ARRAY, _I18NSTRING):
            return []
        values = []
        position = start
        for _ in range(1 if type_ == _STRING else min(n, _MAX_INDEX)):
            stop = blob.find(b"\0", position, end)
            if stop < 0:
                raise SourceError(f"rpm header tag {tag}: unterminated string")
            values.append(blob[position:stop].decode("utf-8", errors="replace"))
            position = stop + 1
        return values

    def ints(tag: int) -> list[int]:
        if tag not in entries:
            return []
        type_, start, n = entries[tag]
        if type_ != _INT32 or start + 4 * n > end:
            return []
        return list(struct.unpack_from(f">{n}i", blob, start))

    def one(tag: int) -> str:
        values = strings(tag)
        return values[0] if values else ""

    epochs = ints(_EPOCH)
    basenames, dirnames, dirindexes = strings(_BASENAMES), strings(_DIRNAMES), ints(_DIRINDEXES)
    # each base name is joined to the directory it indexes: one long directory named by many
    # short entries would multiply the blob, as the apk database's F:/R: lines could (real
    # headers hold far more per file than its path: sizes, modes, digests, owners)
    budget = _PATH_BUDGET_FLOOR + _PATH_BUDGET_PER_BYTE * len(blob)
    joined: list[str] = []
    for b, d in zip(basenames, dirindexes, strict=False):
        if 0 <= d < len(dirnames):
            budget -= len(dirnames[d]) + len(b)
            if budget < 0:
                raise SourceError(
                    f"rpm header's file list names more than {_PATH_BUDGET_PER_BYTE} times "
                    "its size in paths (a long directory named by many entries)"
                )
            joined.append(dirnames[d] + b)
    files = frozenset(joined)
    return RpmHeader(
        one(_NAME),
        one(_VERSION),
        one(_RELEASE),
        epochs[0] if epochs else None,
        one(_ARCH),
        one(_SOURCERPM),
        one(_LICENSE),
        one(_MODULARITY),
        files,
    )


def read_sqlite_blobs(data: bytes) -> Iterator[bytes]:
    """Header blobs of an rpmdb.sqlite, read from memory (never written to disk)."""
    import sqlite3  # here: only rpm images have this database

    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        for (blob,) in connection.execute("SELECT blob FROM Packages"):
            if isinstance(blob, bytes):
                yield blob
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"not an rpm SQLite database: {exc}") from None
    finally:
        connection.close()


_PAGE_SIZES = {512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}
_HASH_MAGIC = 0x061561
_PAGE_HEADER = 26
_HASH_PAGE, _HASH_UNSORTED, _OVERFLOW, _HOFFPAGE = 13, 2, 7, 3


def read_bdb_values(data: bytes) -> Iterator[bytes]:
    """The off-page values of a Berkeley DB hash database (rpm's `Packages`)."""
    if len(data) < 512:
        raise SourceError("Berkeley DB file is shorter than its metadata page")
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", data, 12)
        if magic == _HASH_MAGIC:
            break
    else:
        raise SourceError("not a Berkeley DB hash database (bad magic)")
    (page_size,) = struct.unpack_from(order + "I", data, 20)
    (last_page,) = struct.unpack_from(order + "I", data, 32)
    if page_size not in _PAGE_SIZES:
        raise SourceError(f"unexpected Berkeley DB page size {page_size}")
    pages = min(last_page + 1, len(data) // page_size)
    # each overflow page belongs to one value: a chain reached again (every slot of a page
    # can point at one item) is the value already read, and a page in two chains is
    # corrupt; without this a 70 KB file gave 262 MB of values, quadratic in its size
    chains: set[int] = set()
    taken: set[int] = set()
    for number in range(pages):
        base = number * page_size
        page_type = data[base + 25]
        if page_type not in (_HASH_PAGE, _HASH_UNSORTED):
            continue
        (entries,) = struct.unpack_from(order + "H", data, base + 20)
        if entries % 2 or _PAGE_HEADER + 2 * entries > page_size:
            raise SourceError(f"Berkeley DB page {number}: corrupt entry table")
        for i in range(1, entries, 2):  # keys at even slots, values at odd ones
            (offset,) = struct.unpack_from(order + "H", data, base + _PAGE_HEADER + 2 * i)
            if offset + 12 > page_size or data[base + offset] != _HOFFPAGE:
                continue
            (first, total) = struct.unpack_from(order + "II", data, base + offset + 4)
            if first in chains:
                continue
            chains.add(first)
            yield _overflow_chain(data, order, page_size, pages, first, total, taken)


_NDB_MAGIC, _NDB_SLOT, _NDB_BLOB = (
    int.from_bytes(tag, "little") for tag in (b"RpmP", b"Slot", b"BlbS")
)
_NDB_MAX_SLOT_PAGES = 2048
_NDB_SLOTS_PER_PAGE = 4096 // 16


def read_ndb_values(data: bytes) -> Iterator[bytes]:
    """Header blobs of an NDB `Packages.db`."""
    if len(data) < 32:
        raise SourceError("NDB file is shorter than its header")
    magic, version, _generation, slot_pages = struct.unpack_from("<IIII", data, 0)
    if magic != _NDB_MAGIC or version != 0 or slot_pages == 0:
        raise SourceError("not an rpm NDB database (bad magic or version)")
    if slot_pages > _NDB_MAX_SLOT_PAGES:
        raise SourceError(f"NDB declares {slot_pages} slot pages, over {_NDB_MAX_SLOT_PAGES}")
    slots = slot_pages * _NDB_SLOTS_PER_PAGE - 2  # the header takes the first two slots
    if 32 + 16 * slots > len(data):
        raise SourceError("NDB slot pages run past the end of the file")
    # blobs do not overlap: a block that another slot named is the blob already read, and
    # blobs that together run longer than the file overlap (nested headers inside one
    # long blob gave each slot a copy of most of the file, quadratic in its size)
    blocks: set[int] = set()
    read = 0
    for i in range(slots):
        slot_magic, package, block, _count = struct.unpack_from("<IIII", data, 32 + 16 * i)
        if slot_magic != _NDB_SLOT:
            raise SourceError(f"NDB slot {i}: bad magic")
        if package == 0:
            continue  # a free slot
        start = block * 16
        if start + 16 > len(data):
            raise SourceError(f"NDB slot {i}: blob offset past the end of the file")
        blob_magic, blob_package, _checksum, length = struct.unpack_from("<IIII", data, start)
        if blob_magic != _NDB_BLOB or blob_package != package:
            raise SourceError(f"NDB package {package}: no blob at its offset")
        if start + 16 + length > len(data):
            raise SourceError(f"NDB package {package}: blob runs past the end of the file")
        if block in blocks:
            continue
        blocks.add(block)
        read += 16 + length
        if read > len(data):
            raise SourceError(f"NDB package {package}: its blob overlaps another")
        yield data[start + 16 : start + 16 + length]


def _overflow_chain(
    data: bytes, order: str, page_size: int, pages: int, first: int, total: int, taken: set[int]
) -> bytes:
    """The value whose overflow pages start at `first`; `taken` holds the pages of every
    chain read so far, so that a loop, or a page two values share, is an error."""
    chunks: list[bytes] = []
    current = first
    while current:
        if current in taken or current >= pages:
            raise SourceError(
                "Berkeley DB overflow chain loops, leaves the file or shares a page with another"
            )
        taken.add(current)
        base = current * page_size
        if data[base + 25] != _OVERFLOW:
            raise SourceError(f"Berkeley DB page {current} is not an overflow page")
        (next_page,) = struct.unpack_from(order + "I", data, base + 16)
        (used,) = struct.unpack_from(order + "H", data, base + 22)
        if next_page == 0:
            chunks.append(data[base + _PAGE_HEADER : base + _PAGE_HEADER + used])
        else:
            chunks.append(data[base + _PAGE_HEADER : base + page_size])
        current = next_page
    value = b"".join(chunks)
    return value[:total] if total else value


def _parse_db(path: str) -> Capture:
    def parse(data: bytes) -> list[RpmHeader]:
        if path.endswith(".sqlite"):
            blobs = read_sqlite_blobs(data)
        elif path.endswith(".db"):
            blobs = read_ndb_values(data)
        else:
            blobs = read_bdb_values(data)
        headers = []
        for blob in blobs:
            try:
                header = parse_header_blob(blob)
            except SourceError:
                continue  # not a package header (rpm keeps other values too)
            if header.name:
                headers.append(header)
        return headers

    return parse


def el_version(epoch: int | None, version: str, release: str) -> str:
    text = f"{version}-{release}" if release else version
    return f"{epoch}:{text}" if epoch is not None else text


class RpmCataloger:
    name = "rpm-db-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        return _parse_db(info.path) if _DB_PATH.fullmatch(info.path) else None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        distro = env.distro
        namespace = ""
        if distro is not None:
            namespace = "redhat" if distro.id in ("rhel", "hummingbird") else distro.id
            if namespace.startswith("opensuse"):
                namespace = "opensuse"
        packages = []
        for captured in found:
            headers = captured.value
            assert isinstance(headers, list)
            for h in headers:
                if h.name == "gpg-pubkey":
                    continue  # imported signing keys, not software
                purl = make_purl(
                    "rpm",
                    namespace,
                    h.name,
                    f"{h.version}-{h.release}",
                    {
                        "arch": h.arch,
                        "epoch": str(h.epoch) if h.epoch is not None else "",
                        "upstream": h.source_rpm,
                        "distro": distro.purl_qualifier if distro else "",
                        "rpmmod": h.modularity,
                    },
                )
                source_name = None
                if h.source_rpm.endswith(".src.rpm"):
                    source_name = h.source_rpm.removesuffix(".src.rpm").rsplit("-", 2)[0]
                packages.append(
                    Package(
                        name=h.name,
                        version=el_version(h.epoch, h.version, h.release),
                        type="rpm",
                        purl=purl,
                        cataloger=self.name,
                        locations=(env.location(captured.info),),
                        licenses=(h.license,) if h.license else (),
                        source_name=source_name,
                        source_version=el_version(h.epoch, h.version, h.release)
                        if source_name
                        else None,
                        arch=h.arch or None,
                        files=h.files,
                    )
                )
        return packages
