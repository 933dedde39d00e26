"""Advisory sources in their published formats -> `Advisory` records, bad files named.

    for item in read_source(Path("osv-pypi/vulns")):   # or all.zip, secdb, tracker JSON
        ...  # Advisory, Rejected (file and reason) or Skipped (a reason)

A source is a file, a directory (walked, `.json`/`.json.gz`/`.yaml`/`.yml`/`.csv`/`.csv.gz`,
hidden directories skipped) or an OSV `all.zip` (read member by member in memory, never extracted).
Each file is recognised by its shape: an OSV record (GitHub's advisory database is OSV too),
an Alpine secdb, the Debian security tracker JSON, Grype's vunnel OS records, or the
severity data of `scores`: NVD CVE API 2.0 JSON, a CISA KEV catalogue, an EPSS CSV; a file
of none of these is not advisory data and is ignored (counted); a file that does not parse,
or a record in the wrong shape, is rejected with its name and the reason. Nothing is
trusted: sizes are capped, JSON nesting is bounded by the parser, YAML goes through
`skanse.sources.yamlpos` (no aliases bombs, no tags).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import lzma
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from skanse.errors import YamlError
from skanse.sources.yamlpos import Limits, YamlDocument, load_documents
from skanse.vuln.importers._common import RecordError
from skanse.vuln.importers.alpine import looks_like_secdb, secdb_advisories
from skanse.vuln.importers.debian import Skipped, looks_like_debian_tracker, tracker_advisories
from skanse.vuln.importers.osv import looks_like_osv, osv_advisory
from skanse.vuln.importers.scores import (
    CveRating,
    EpssScore,
    KevEntry,
    NvdPage,
    epss_rows,
    kev_entries,
    looks_like_kev,
    looks_like_nvd,
    nvd_gaps,
    nvd_page,
    nvd_ratings,
)
from skanse.vuln.importers.vunnel import looks_like_vunnel, vunnel_advisories
from skanse.vuln.model import Advisory, Rejected

__all__ = ["KINDS", "CveRating", "EpssScore", "Ignored", "KevEntry", "Skipped", "read_source"]

KINDS = ("osv", "ghsa", "alpine-secdb", "debian-tracker", "vunnel", "nvd", "epss", "kev")
_SUFFIXES = (".json", ".yaml", ".yml", ".csv", ".csv.gz")
MAX_FILE_BYTES = 1024 * 1024 * 1024  # the Debian tracker JSON is ~ 80 MB today
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # one OSV record in a zip
# A gzipped JSON or YAML file (an NVD `.json.gz`), expanded, is parsed whole like any file, so
# it may expand to what an uncompressed file may hold; what a decompression bomb could cost is
# bounded by its ratio instead: past a grace that an NVD CVE API 2.0 page (2,000 CVEs, 10 to 30
# MB) never reaches, the expansion may be at most MAX_EXPANSION_RATIO times the gzip read so
# far. NVD's yearly 2.0 feeds are 200 to 400 MiB expanded from gzip files of a tenth to a
# twentieth of that; gzip can reach 1,000x, so a file over the ratio is rejected by name after
# the grace, never expanded further (a 1 GiB expansion needs 10 MB of gzip, as a 1 GiB JSON
# file needs 1 GiB: the cost follows the input). It had been a flat 128 MiB, which refused
# every yearly feed.
MAX_EXPANDED_BYTES = MAX_FILE_BYTES
EXPANSION_GRACE = 128 * 1024 * 1024
MAX_EXPANSION_RATIO = 100
_EXPAND_CHUNK = 1024 * 1024
MAX_MEMBERS = 5_000_000
# all members of one archive, expanded: osv.dev's all.zip is 1 to 2 GB expanded today; 8 GiB
# leaves room for years of growth and stops an archive of many capped members (5 million x
# 64 MB) from being expanded for days
MAX_ARCHIVE_EXPANDED_BYTES = 8 * 1024 * 1024 * 1024
# what zipfile can read; anything else (AES, method 99; PPMd...) is rejected by name
_ZIP_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_YAML_LIMITS = Limits(max_depth=64, max_nodes=2_000_000, max_documents=1)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A file that parsed but is not advisory data (a README in JSON, a metadata file)."""

    origin: str


Item = Advisory | Rejected | Skipped | Ignored | CveRating | EpssScore | KevEntry
_Read = Item | NvdPage  # what the readers yield; the pages are checked here, not passed on


def read_source(path: Path, kind: str | None = None) -> Iterator[Item]:
    """Every record under `path`; `kind` forces one format instead of recognising each file.

    NVD pages that leave results out (by `startIndex` and `totalResults`) end the source with
    a rejection that makes it incomplete, as does a KEV catalogue whose `count` is not the
    number of its entries."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r} (one of {', '.join(KINDS)})")
    if kind == "ghsa":  # github/advisory-database publishes OSV records
        kind = "osv"
    pages: list[NvdPage] = []
    for item in _read_path(path, kind):
        if isinstance(item, NvdPage):
            pages.append(item)
        else:
            yield item
    if (gap := nvd_gaps(pages, str(path))) is not None:
        yield gap


def _read_path(path: Path, kind: str | None) -> Iterator[_Read]:
    if path.is_dir():
        for file in _walk(path):
            yield from _read_file(file, str(file), kind)
    elif path.is_file() and path.suffix.lower() == ".zip":
        yield from _read_zip(path, kind)
    elif path.is_file():
        yield from _read_file(path, str(path), kind)
    else:
        yield Rejected(str(path), "no such file or directory")


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith((*_SUFFIXES, ".json.gz")) and not name.startswith("."):
                yield Path(directory) / name


def _read_file(path: Path, origin: str, kind: str | None) -> Iterator[_Read]:
    try:
        if path.is_symlink() or not path.is_file():
            yield Rejected(origin, "not a regular file")
            return
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            yield Rejected(origin, f"{size:,} bytes is over the {MAX_FILE_BYTES:,} byte limit")
            return
        data = path.read_bytes()
    except OSError as exc:
        yield Rejected(origin, f"cannot read: {exc.strerror or exc}")
        return
    lowered = origin.lower()
    if lowered.removesuffix(".gz").endswith(".csv") or kind == "epss":
        yield from _read_csv(data, origin, kind)
        return
    if lowered.endswith(".gz"):
        # an NVD feed may come gzipped: expanded in chunks up to its own cap, far below a
        # file's (it had been expanded up to 1 GiB at once: 256 KB of gzip, 1 GB of memory)
        try:
            expanded = _expand(data)
        except (OSError, EOFError) as exc:
            yield Rejected(origin, f"not a readable gzip file: {exc}")
            return
        if isinstance(expanded, str):
            yield Rejected(origin, expanded)
            return
        yield from _records(expanded, origin, kind)
        return
    yield from _records(data, origin, kind)


def _expand(data: bytes) -> bytearray | str:
    """The gzip `data` expanded, or why it was not: over `MAX_EXPANDED_BYTES`, or past
    `EXPANSION_GRACE` at more than `MAX_EXPANSION_RATIO` times the gzip read (the rest is never
    expanded)."""
    expanded = bytearray()  # grown in place: no list of chunks joined into a second copy
    raw = io.BytesIO(data)
    with gzip.GzipFile(fileobj=raw) as handle:
        while chunk := handle.read(_EXPAND_CHUNK):
            expanded += chunk
            total = len(expanded)
            if total > MAX_EXPANDED_BYTES:
                return f"expands to over the {MAX_EXPANDED_BYTES:,} byte limit of a compressed file"
            if total > EXPANSION_GRACE and total > MAX_EXPANSION_RATIO * max(raw.tell(), 1):
                return (
                    f"expands more than {MAX_EXPANSION_RATIO}x ({raw.tell():,} bytes of gzip to "
                    f"{total:,}+ bytes) past {EXPANSION_GRACE:,} bytes: a decompression bomb"
                )
    return expanded  # json.loads takes it as it is; a copy to bytes would double the peak


def _read_csv(data: bytes, origin: str, kind: str | None) -> Iterator[Item]:
    """An EPSS CSV (`.csv`, or `.csv.gz` as published), decompressed and read line by line:
    a few hundred kilobytes of gzip expand to a gigabyte of blank lines, which had been
    expanded whole and split into a list of every line (a 65 KB file of 64 Mi blank lines:
    668 MB peak; 522 KB: 5.1 GB; now 20 MB whatever the size)."""
    if kind not in (None, "epss"):
        yield Rejected(origin, f"a CSV file is not {kind} data")
        return
    gzipped = origin.lower().endswith(".gz")
    raw = io.BytesIO(data)
    stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if gzipped else raw
    with stream:
        lines = _lines(stream)
        try:
            head = list(itertools.islice(lines, _CSV_HEAD_LINES))
            if kind is None and "cve,epss,percentile" not in "".join(head)[:4096]:
                yield Ignored(origin)  # some other CSV in a directory of advisories
                return
            yield from epss_rows(itertools.chain(head, lines), origin)
        except (OSError, EOFError) as exc:
            yield Rejected(origin, f"not a readable gzip file: {exc}")
        except RecordError as exc:
            yield Rejected(origin, str(exc))


_CSV_HEAD_LINES = 4  # EPSS: a `#model_version` comment, then the header
_MAX_CSV_LINE = 4096  # an EPSS row is ~40 bytes


def _lines(stream: io.BufferedIOBase) -> Iterator[str]:
    """Text lines of a CSV, each and all of them capped (`RecordError` past a cap)."""
    total = 0
    while line := stream.readline(_MAX_CSV_LINE + 1):
        total += len(line)
        if len(line) > _MAX_CSV_LINE:
            raise RecordError(f"a line longer than {_MAX_CSV_LINE:,} bytes: not a CSV of scores")
        if total > MAX_FILE_BYTES:
            raise RecordError(f"expands to over the {MAX_FILE_BYTES:,} byte limit")
        yield line.decode("utf-8", errors="replace")


def _read_zip(path: Path, kind: str | None) -> Iterator[_Read]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        yield Rejected(str(path), f"not a readable zip archive: {exc}")
        return
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_MEMBERS:
            yield Rejected(str(path), f"{len(members):,} members is over the limit")
            return
        members = [m for m in members if m.filename.lower().endswith(_SUFFIXES)]
        over = f"expands to over the {MAX_ARCHIVE_EXPANDED_BYTES:,} byte limit of an archive"
        if sum(m.file_size for m in members) > MAX_ARCHIVE_EXPANDED_BYTES:
            yield Rejected(str(path), f"{over} (its headers say)", partial=True)
            return
        total = 0
        for member in members:
            origin = f"{path}:{member.filename}"
            if member.file_size > MAX_MEMBER_BYTES:
                yield Rejected(origin, f"{member.file_size:,} bytes is over the limit")
                continue
            if member.flag_bits & 0x1:
                yield Rejected(origin, "encrypted (skanse reads no encrypted members)")
                continue
            if member.compress_type not in _ZIP_METHODS:
                yield Rejected(
                    origin, f"compression method {member.compress_type} is not supported"
                )
                continue
            try:
                with archive.open(member) as handle:
                    # the header's size may lie: never read more than the cap
                    data = handle.read(MAX_MEMBER_BYTES + 1)
            # RuntimeError and NotImplementedError: what zipfile raises for an encrypted
            # member or an unknown method the checks above did not see; zlib and lzma
            # errors: a damaged stream. Each had ended the whole build as an internal error.
            except (
                OSError,
                zipfile.BadZipFile,
                EOFError,
                ValueError,
                RuntimeError,
                zlib.error,
                lzma.LZMAError,
            ) as exc:
                yield Rejected(origin, f"cannot be read from the archive: {exc}")
                continue
            if len(data) > MAX_MEMBER_BYTES:
                yield Rejected(origin, "larger than its header says, and over the limit")
                continue
            total += len(data)
            if total > MAX_ARCHIVE_EXPANDED_BYTES:  # headers that lie about their sizes
                yield Rejected(str(path), f"{over}; the rest is not read", partial=True)
                return
            yield from _records(data, origin, kind or "osv")


def _parse(data: bytes | bytearray, origin: str) -> object:
    # the format is the name's without the compression suffix: `.json.gz` is JSON (it had
    # gone to the YAML reader, which refuses what JSON allows, such as a repeated key)
    if origin.lower().removesuffix(".gz").endswith(".json"):
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RecordError(f"not valid JSON: {str(exc)[:200]}") from None
    try:
        documents = list(load_documents(bytes(data), limits=_YAML_LIMITS))
    except YamlError as exc:
        raise RecordError(f"not valid YAML: {exc.diagnostics()}") from None
    for document in documents:
        if isinstance(document, YamlError):
            raise RecordError(f"not valid YAML: {document.diagnostics()}")
    found = [d for d in documents if isinstance(d, YamlDocument)]
    return found[0].data if found else None


def _records(data: bytes | bytearray, origin: str, kind: str | None) -> Iterator[_Read]:
    try:
        parsed = _parse(data, origin)
    except RecordError as exc:
        yield Rejected(origin, str(exc))
        return
    detected = kind or _recognise(parsed)
    if detected is None:
        yield Ignored(origin)
        return
    try:
        if detected == "osv":
            if isinstance(parsed, list):  # some exports put several records in one file
                for i, record in enumerate(parsed):
                    try:
                        yield osv_advisory(record)
                    except RecordError as exc:
                        yield Rejected(f"{origin}[{i}]", str(exc))
            else:
                yield osv_advisory(parsed)
        elif detected == "alpine-secdb":
            yield from secdb_advisories(parsed, origin)
        elif detected == "debian-tracker":
            yield from tracker_advisories(parsed, origin)
        elif detected in ("nvd", "kev"):
            if not isinstance(parsed, Mapping) or not (
                looks_like_nvd(parsed) if detected == "nvd" else looks_like_kev(parsed)
            ):
                yield Rejected(origin, f"not {detected} data")
            elif detected == "nvd":
                if (page := nvd_page(parsed, origin)) is not None:
                    yield page
                yield from nvd_ratings(parsed, origin)
            else:
                yield from kev_entries(parsed, origin)
        else:
            yield from vunnel_advisories(parsed, origin)
    except RecordError as exc:
        yield Rejected(origin, str(exc))


def _recognise(data: object) -> str | None:
    if looks_like_nvd(data):
        return "nvd"
    if looks_like_kev(data):
        return "kev"
    if looks_like_osv(data):
        return "osv"
    if looks_like_secdb(data):
        return "alpine-secdb"
    if looks_like_vunnel(data):
        return "vunnel"
    if looks_like_debian_tracker(data):
        return "debian-tracker"
    return None
