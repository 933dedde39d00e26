"""Catalogers against an image built to make them slow, swell or stay silent.

Each test gives an input that the code before its fix needed minutes (or gigabytes) for, or
that it left out of the SBOM without a word; none asserts on elapsed time.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from skanse.errors import SourceError
from skanse.inventory.catalog import catalog_directory
from skanse.inventory.catalogers._base import Environment
from skanse.inventory.catalogers.apk import parse_apk_installed
from skanse.inventory.catalogers.binaries import parse_dep_v0
from skanse.inventory.catalogers.dpkg import DpkgCataloger, parse_dpkg_status
from skanse.inventory.catalogers.java import _manifest, parse_java_archive
from skanse.inventory.catalogers.python import parse_metadata
from skanse.inventory.catalogers.rpm import parse_header_blob, read_bdb_values, read_ndb_values
from skanse.oci.vfs import Captured, FileInfo, NodeKind
from tests._counting import peak_allocation
from tests.inventory.test_catalogers import header_blob, rpm_header

# --- folded (continuation) lines ------------------------------------------------------------

# 1,400,000 continuation lines, about 4 MiB (the METADATA cap): each was added to the field
# by copying the field so far, about 3.5 minutes per file before the fix
_FOLDED_LINES = 1_400_000


def test_dpkg_field_of_many_continuation_lines_is_read_whole() -> None:
    text = "Package: a\nVersion: 1\nDescription: d\n" + " x\n" * _FOLDED_LINES + "\n"
    text += "Package: b\nVersion: 2\n\n"
    records = parse_dpkg_status(text)
    assert [(r.package, r.version) for r in records] == [("a", "1"), ("b", "2")]


def test_python_metadata_header_of_many_continuation_lines_is_read_whole() -> None:
    text = "Name: a\nVersion: 1\nLicense: MIT\n" + " x\n" * _FOLDED_LINES + "Classifier: c\n"
    fields = parse_metadata(text)
    assert fields["name"] == ["a"] and fields["classifier"] == ["c"]
    assert fields["license"] == ["MIT" + "\nx" * _FOLDED_LINES]


def test_python_metadata_continuation_goes_to_the_last_of_repeated_headers() -> None:
    fields = parse_metadata("Classifier: a\nClassifier: b\n  more\nName: n\n\nbody: x\n")
    assert fields == {"classifier": ["a", "b\nmore"], "name": ["n"]}


def test_jar_manifest_attribute_of_many_continuation_lines_is_read_whole() -> None:
    text = "Manifest-Version: 1.0\nImplementation-Title: t\n" + " x\n" * _FOLDED_LINES
    text += "Implementation-Version: 1.2\n"
    fields = _manifest(text)
    assert fields["Implementation-Title"] == "t" + "x" * _FOLDED_LINES
    assert fields["Implementation-Version"] == "1.2"


# --- cargo-auditable section of an ELF -------------------------------------------------------

TRUE = shutil.which("true") or "/bin/true"  # any small real ELF executable
_DECLARED = 256 * 1024 * 1024


def _elf_with_dep_v0(tmp_path: Path, contents: bytes) -> bytearray:
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.skip("objcopy (binutils) is not installed")
    (tmp_path / "section").write_bytes(contents)
    out = tmp_path / "out"
    subprocess.run(
        [objcopy, "--add-section", f".dep-v0={tmp_path / 'section'}", TRUE, str(out)], check=True
    )
    return bytearray(out.read_bytes())


def _patch_dep_v0(
    data: bytearray,
    *,
    sh_type: int | None = None,
    flags: int | None = None,
    size: int | None = None,
) -> bytes:
    """Rewrite fields of the .dep-v0 section header (64-bit little-endian, as `true` is)."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(bytes(data)))
    assert elf.elfclass == 64 and elf.little_endian
    for index, section in enumerate(elf.iter_sections()):
        if section.name == ".dep-v0":
            at = elf["e_shoff"] + index * elf["e_shentsize"]
            if sh_type is not None:
                struct.pack_into("<I", data, at + 4, sh_type)
            if flags is not None:
                struct.pack_into("<Q", data, at + 8, flags)
            if size is not None:
                struct.pack_into("<Q", data, at + 32, size)
    return bytes(data)


def _peak_allocation(data: bytes) -> tuple[int, BaseException | None]:
    def parse() -> BaseException | None:
        try:
            parse_dep_v0(data)
        except Exception as exc:  # what each version raises is asserted by the caller
            return exc
        return None

    raised, peak = peak_allocation(parse)
    return peak, raised


def test_dep_v0_without_contents_allocates_nothing_it_claims(tmp_path: Path) -> None:
    # SHT_NOBITS of 256 MiB in a 35 KB file: pyelftools' data() made sh_size zero bytes
    data = _patch_dep_v0(
        _elf_with_dep_v0(tmp_path, zlib.compress(b"{}")), sh_type=8, size=_DECLARED
    )
    peak, raised = _peak_allocation(data)
    assert peak < 16 * 1024 * 1024
    assert isinstance(raised, ValueError) and "without contents" in str(raised)


def test_dep_v0_compressed_by_the_elf_is_not_inflated(tmp_path: Path) -> None:
    # SHF_COMPRESSED: pyelftools inflated the whole section (to its claimed size) before the
    # 8 MiB cap on the JSON could act; 256 MiB from a 260 KB file
    chdr = struct.pack("<IIQQ", 1, 0, _DECLARED, 1)  # ELFCOMPRESS_ZLIB, size, alignment
    bomb = zlib.compress(bytes(_DECLARED), 9)
    data = _patch_dep_v0(_elf_with_dep_v0(tmp_path, chdr + bomb), flags=0x800)
    del bomb
    peak, raised = _peak_allocation(data)
    assert peak < 16 * 1024 * 1024
    assert isinstance(raised, ValueError) and "ELF-compressed" in str(raised)


# --- Java archives ---------------------------------------------------------------------------


def _zip_declaring(name: str, raw_deflate: bytes, declared: int) -> bytes:
    """A zip of one deflated member whose entries declare `declared` bytes, CRC 0."""
    member = name.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, 0, len(raw_deflate), declared, len(member), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        0,
        8,
        0,
        0,
        0,
        len(raw_deflate),
        declared,
        len(member),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    body = local + member + raw_deflate
    directory = central + member
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


def test_java_member_is_inflated_no_further_than_it_declares() -> None:
    # 256 MiB of deflate in 256 KB, declared as 100 bytes: ZipFile.read inflated all of it
    # (up to 2 GiB a member) and cut it to 100 bytes afterwards
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = squeeze.compress(bytes(_DECLARED)) + squeeze.flush()
    data = _zip_declaring("META-INF/maven/g/a/pom.properties", raw, 100)
    del raw

    def read() -> None:
        with pytest.raises(zipfile.BadZipFile, match="CRC"):  # 100 bytes of it do not match
            parse_java_archive(data)

    _, peak = peak_allocation(read)
    assert peak < 16 * 1024 * 1024


def test_java_member_in_a_method_java_cannot_read_is_refused() -> None:
    # bzip2 (and LZMA) members inflate without an output cap at all; the JVM reads neither
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "META-INF/maven/g/a/pom.properties",
            b"groupId=g\nartifactId=a\nversion=1\n",
            compress_type=zipfile.ZIP_BZIP2,
        )
    with pytest.raises(ValueError, match="compression method 12"):
        parse_java_archive(buffer.getvalue())


# --- names no purl can hold ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "contents"),
    [
        ("/app/node_modules/x/package.json", b'{"name": "/", "version": "1"}'),
        ("/app/node_modules/y/package.json", b'{"name": " ", "version": "1"}'),
        ("/usr/lib/python3/site-packages/a-1.dist-info/METADATA", b"Name: /\nVersion: 1\n"),
    ],
)
def test_a_name_no_purl_can_hold_does_not_end_the_catalogue(
    tmp_path: Path, path: str, contents: bytes
) -> None:
    for name, data in (
        (path, contents),
        ("/app/node_modules/lodash/package.json", b'{"name": "lodash", "version": "4.17.20"}'),
    ):
        target = tmp_path / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    packages = {(p.name, p.purl) for p in catalog_directory(tmp_path).packages}
    assert ("lodash", "pkg:npm/lodash@4.17.20") in packages
    assert len(packages) == 2 and any(purl == "" for _, purl in packages)


# --- rpm databases ---------------------------------------------------------------------------

_PAGE = 4096


def _bdb(blob: bytes, *, hash_pages: int, firsts: list[int] | None = None) -> bytes:
    """A Berkeley DB hash file whose hash pages point every value slot at an off-page item
    (HOFFPAGE); the items start the overflow chains at `firsts` (default: the one chain
    after the hash pages), which holds `blob`."""
    per_page = _PAGE - 26
    chain_pages = -(-len(blob) // per_page)
    first = 1 + hash_pages
    meta = bytearray(_PAGE)
    struct.pack_into("<III", meta, 12, 0x061561, 0, _PAGE)  # magic, version, page size
    struct.pack_into("<I", meta, 32, hash_pages + chain_pages)  # last page
    pages = [bytes(meta)]
    starts = firsts or [first]
    entries = 2 * ((_PAGE - 26 - 12 * len(starts)) // 4)  # key and value slots
    for _ in range(hash_pages):
        page = bytearray(_PAGE)
        page[25] = 13  # P_HASH
        struct.pack_into("<H", page, 20, entries)
        for slot in range(entries):
            item = _PAGE - 12 * (1 + slot // 2 % len(starts))
            struct.pack_into("<H", page, 26 + 2 * slot, item)
        for index, start in enumerate(starts):
            item = _PAGE - 12 * (1 + index)
            page[item] = 3  # H_OFFPAGE
            struct.pack_into("<II", page, item + 4, start, 0)
        pages.append(bytes(page))
    for k in range(chain_pages):
        page = bytearray(_PAGE)
        page[25] = 7  # P_OVERFLOW
        chunk = blob[k * per_page : (k + 1) * per_page]
        page[26 : 26 + len(chunk)] = chunk
        struct.pack_into("<I", page, 16, first + k + 1 if k + 1 < chain_pages else 0)
        struct.pack_into("<H", page, 22, len(chunk))
        pages.append(bytes(page))
    return b"".join(pages)


def test_rpm_bdb_value_reached_from_every_slot_is_read_once() -> None:
    # one overflow chain named by all 1,016 value slots of each hash page: each slot read
    # the whole chain again (a 70 KB file gave 262 MB of values, 8,112 headers)
    blob = rpm_header("openssl", "3.0.7", "1") + bytes(8 * 4000)
    for hash_pages in (1, 2, 4, 8):
        data = _bdb(blob, hash_pages=hash_pages)
        values = list(read_bdb_values(data))
        assert values == [blob]


def test_rpm_bdb_chains_sharing_pages_are_an_error() -> None:
    # chains entering one another's pages (each starts a page further into the same chain)
    # read the chain's tail once per start: quadratic in the file
    blob = bytes(20 * (_PAGE - 26))
    first = 2  # after the metadata page and the one hash page
    data = _bdb(blob, hash_pages=1, firsts=[first + k for k in range(20)])
    with pytest.raises(SourceError, match="shares a page"):
        sum(len(value) for value in read_bdb_values(data))


def _ndb(records: list[tuple[int, int, bytes]], slots: list[tuple[int, int]]) -> bytes:
    """An NDB Packages.db: one slot page of (package, block) slots, then `records` laid
    out as given: (block, package, blob) with its 16-byte BlbS header."""
    header = struct.pack("<IIII", int.from_bytes(b"RpmP", "little"), 0, 1, 1) + bytes(16)
    slot_magic = int.from_bytes(b"Slot", "little")
    page = b"".join(struct.pack("<IIII", slot_magic, p, b, 1) for p, b in slots)
    page += struct.pack("<IIII", slot_magic, 0, 0, 0) * (_PAGE // 16 - 2 - len(slots))
    area = bytearray()
    for block, package, blob in records:
        at = block * 16 - _PAGE
        record = struct.pack("<IIII", int.from_bytes(b"BlbS", "little"), package, 0, len(blob))
        area[at : at + 16 + len(blob)] = record + blob
        area += bytes(-len(area) % 16)
    return header + page + bytes(area)


def test_rpm_ndb_blob_named_by_many_slots_is_read_once() -> None:
    blob = rpm_header("bash", "4.4", "1")
    base = _PAGE // 16
    data = _ndb([(base, 1, blob)], [(1, base)] * 200)
    assert list(read_ndb_values(data)) == [blob]


def test_rpm_ndb_blobs_nested_in_a_blob_are_an_error() -> None:
    # blob headers inside the previous blob, each blob running to the end of the file: each
    # slot read most of the file again
    base, count = _PAGE // 16, 200
    end = base + count
    records = [(base + i, i + 1, b"") for i in range(count)]
    data = bytearray(_ndb(records, [(i + 1, base + i) for i in range(count)]))
    data += bytes(64 * 1024)
    for i in range(count):  # stretch each blob to the end of the file
        at = (base + i) * 16
        struct.pack_into("<I", data, at + 12, len(data) - at - 16)
    assert end * 16 <= len(data)
    with pytest.raises(SourceError, match="overlaps"):
        sum(len(value) for value in read_ndb_values(bytes(data)))


# --- evidence over a cataloger's size cap ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "head"),
    [
        (
            "/app/node_modules/lodash/package.json",
            b'{"name": "lodash", "version": "4.17.20", "x": "',
        ),
        (
            "/usr/lib/python3/site-packages/requests-2.31.0.dist-info/METADATA",
            b"Name: requests\nVersion: 2.31.0\n\n",
        ),
        ("/app/Pipfile.lock", b'{"default": {"requests": {"version": "==2.31.0"}}, "x": "'),
        ("/app/Cargo.lock", b'[[package]]\nname = "serde"\nversion = "1.0.0"\n# '),
    ],
)
def test_package_evidence_over_the_size_cap_is_a_problem_not_silence(
    tmp_path: Path, path: str, head: bytes
) -> None:
    # padded past 4 MiB, the package was left out of the SBOM with no problem: vuln found
    # nothing and --strict passed (a Pipfile.lock was still passed over so, in directory
    # scans, and a Cargo.lock past its 16 MiB cap)
    target = tmp_path / path.lstrip("/")
    target.parent.mkdir(parents=True)
    if path.endswith("Cargo.lock"):
        head += b"x" * (12 * 1024 * 1024)
    target.write_bytes(
        head + b"x" * (4 * 1024 * 1024) + (b'"}' if path.endswith(("json", "lock")) else b"")
    )
    inventory = catalog_directory(tmp_path)
    assert inventory.packages == ()
    assert [p for p in inventory.problems if path in p and "cap" in p]


@pytest.mark.parametrize(
    "text",
    [b"[]", b'{"_meta": {}, "develop": {"pytest": {"version": "==8.0.0"}}}', b'{"default": []}'],
)
def test_a_pipfile_lock_without_its_default_packages_is_a_problem_not_an_empty_list(
    tmp_path: Path, text: bytes
) -> None:
    # no "default" object: no packages and no problem, an SBOM that looked complete
    (tmp_path / "Pipfile.lock").write_bytes(text)
    inventory = catalog_directory(tmp_path)
    assert inventory.packages == ()
    assert [p for p in inventory.problems if "Pipfile.lock" in p and '"default"' in p]
    (tmp_path / "Pipfile.lock").write_bytes(b'{"_meta": {}, "default": {}, "develop": {}}')
    assert catalog_directory(tmp_path).problems == ()  # nothing installed: nothing to say


# --- dpkg file lists -------------------------------------------------------------------------


def test_many_file_lists_of_one_dpkg_package_are_merged_in_one_pass() -> None:
    # 20,000 `info/libc6:<arch>.list` files of 50 paths: each was united with the package's
    # paths so far (a copy of them), about 3 minutes before the fix (4,000 lists took 7 s)
    lists, per_list = 20_000, 50
    found = [
        Captured(
            FileInfo(f"/var/lib/dpkg/info/libc6:a{i}.list", NodeKind.FILE, 0, 0o644, 0),
            frozenset(f"/f/{i}/{j}" for j in range(per_list)),
        )
        for i in range(lists)
    ]
    status = FileInfo("/var/lib/dpkg/status", NodeKind.FILE, 0, 0o644, 0)
    found.append(Captured(status, parse_dpkg_status("Package: libc6\nVersion: 2.36\n\n")))
    [libc6] = DpkgCataloger().catalog(found, Environment(None))
    assert len(libc6.files) == lists * per_list
    assert "/f/19999/49" in libc6.files


# --- apk file lists ---------------------------------------------------------------------------


def test_an_apk_directory_repeated_over_many_files_is_refused_not_multiplied(
    tmp_path: Path,
) -> None:
    # each R: name was joined to the F: directory before it: a 64 KB directory and 4,000
    # short R: lines (92 KB) made 250 MiB of paths; now the database is refused, and says so
    text = "P:a\nV:1\nF:" + "d" * 65_536 + "\n" + "R:f\n" * 4_000

    def parse() -> None:
        with pytest.raises(SourceError, match="file lists name more than"):
            parse_apk_installed(text)

    _, peak = peak_allocation(parse)
    assert peak < 16 * 1024 * 1024
    target = tmp_path / "lib/apk/db/installed"
    target.parent.mkdir(parents=True)
    target.write_text(text)
    inventory = catalog_directory(tmp_path)
    assert [p for p in inventory.problems if "file lists name more than" in p]


def test_apk_file_lists_of_a_real_database_are_read_whole(corpora: Callable[..., Path]) -> None:
    path = corpora(
        "sbom-fixtures", "syft-testdata", "apk-multiple-2", "lib", "apk", "db", "installed"
    )
    records = parse_apk_installed(path.read_text())
    assert sum(len(r.files) for r in records) == path.read_text().count("\nR:")


def test_an_rpm_directory_named_by_many_files_is_refused_not_multiplied() -> None:
    # the same shape in an rpm header: one 64 KB directory and 20,000 one-letter base names
    # indexing it (about 250 KB of header) made 1.3 GB of paths
    count = 20_000
    blob = header_blob(
        {
            1000: (6, b"a\0", 1),
            1117: (8, b"f\0" * count, count),
            1118: (8, b"/" + b"d" * 65_536 + b"/\0", 1),
            1116: (4, struct.pack(f">{count}i", *([0] * count)), count),
        }
    )

    def parse() -> None:
        with pytest.raises(SourceError, match="file list names more than"):
            parse_header_blob(blob)

    _, peak = peak_allocation(parse)
    assert peak < 32 * 1024 * 1024
    assert parse_header_blob(rpm_header("openssl", "3", "1")).files == frozenset(
        {"/usr/lib64/libssl.so.3", "/usr/bin/openssl"}
    )
