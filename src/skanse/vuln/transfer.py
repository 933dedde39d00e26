"""Move a database into an air-gapped network: one file out, checked on the way in.

`export_database` writes a zstd-compressed tar with exactly two members, `manifest.json`
first (format, schema version, build time, sources, and the SHA-256 and size of the
database) and `vuln.db`. `import_database` reads it as a stream: the manifest must be
first and well formed, the database is written to a temporary file next to the
destination while it is hashed, and it is renamed into place only if its SHA-256 and size
are the manifest's and it opens as a database of this schema. Nothing else in the archive
is accepted, and nothing is ever extracted by the name the archive gives.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skanse.errors import DatabaseError, TransferError
from skanse.vuln.db import SCHEMA_VERSION, Database

__all__ = ["FORMAT", "Exported", "export_database", "import_database"]

FORMAT = "skanse-vuln-db"
_MANIFEST = "manifest.json"
_DATABASE = "vuln.db"
_MAX_MANIFEST = 1024 * 1024
_MAX_DATABASE = 64 * 1024 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Exported:
    path: Path
    sha256: str  # of the exported file itself, to compare out of band
    manifest: dict[str, Any]


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def export_database(db_path: Path, out: Path) -> Exported:
    import zstandard

    with Database.open(db_path) as db:
        info = db.info()
    sha256, size = _hash_file(db_path)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "built": info.built,
        "skanse_version": info.skanse_version,
        "advisories": info.advisories,
        "sources": [s.location for s in info.sources],
        "database": {"name": _DATABASE, "sha256": sha256, "size": size},
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    directory = out.parent if str(out.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            compressor = zstandard.ZstdCompressor(level=10, threads=-1)
            with compressor.stream_writer(raw, closefd=False) as stream:
                with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    _add(tar, _MANIFEST, len(manifest_bytes), _bytes_reader(manifest_bytes))
                    with open(db_path, "rb") as source:
                        _add(tar, _DATABASE, size, source)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Exported(out, _hash_file(out)[0], manifest)


def _bytes_reader(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def _add(tar: tarfile.TarFile, name: str, size: int, handle: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, handle)


def import_database(archive: Path, dest: Path) -> dict[str, Any]:
    """Check and install an exported database at `dest`; returns its manifest."""
    import zstandard

    try:
        raw = open(archive, "rb")
    except OSError as exc:
        raise TransferError(f"cannot read: {exc.strerror or exc}", path=str(archive)) from None
    directory = dest.parent if str(dest.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".importing", dir=directory)
    tmp = Path(tmp_name)
    try:
        with raw, os.fdopen(fd, "wb") as out:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            try:
                manifest = _unpack(reader, out, str(archive))
            except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
                raise TransferError(
                    f"not a database exported by `skanse db export`: {exc}", path=str(archive)
                ) from None
            out.flush()
            os.fsync(out.fileno())
        try:
            Database.open(tmp).close()
        except DatabaseError as exc:
            raise TransferError(
                f"the database inside does not open: {exc}", path=str(archive)
            ) from None
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def _unpack(reader: Any, out: Any, where: str) -> dict[str, Any]:
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        members = iter(tar)
        first = next(members, None)
        if first is None or first.name != _MANIFEST or not first.isfile():
            raise TransferError(f"the first member must be {_MANIFEST}", path=where)
        if first.size > _MAX_MANIFEST:
            raise TransferError("the manifest is too large", path=where)
        handle = tar.extractfile(first)
        assert handle is not None
        try:
            manifest = json.loads(handle.read(_MAX_MANIFEST + 1))
            expected = manifest["database"]
            sha256, size = str(expected["sha256"]), int(expected["size"])
            fmt, schema = manifest["format"], int(manifest["schema_version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TransferError(f"malformed manifest: {exc}", path=where) from None
        if fmt != FORMAT:
            raise TransferError(f"manifest format {fmt!r} is not {FORMAT}", path=where)
        if schema != SCHEMA_VERSION:
            raise TransferError(
                f"exported with database schema {schema}; this skanse reads schema "
                f"{SCHEMA_VERSION}. Export it again with a matching skanse, or rebuild it",
                path=where,
            )
        if not 0 < size <= _MAX_DATABASE:
            raise TransferError(f"manifest size {size} is out of range", path=where)
        second = next(members, None)
        if second is None or second.name != _DATABASE or not second.isfile():
            raise TransferError(f"the second member must be {_DATABASE}", path=where)
        if second.size != size:
            raise TransferError(
                f"{_DATABASE} is {second.size:,} bytes; the manifest says {size:,}", path=where
            )
        body = tar.extractfile(second)
        assert body is not None
        digest = hashlib.sha256()
        written = 0
        while chunk := body.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            written += len(chunk)
        if written != size or digest.hexdigest() != sha256:
            raise TransferError(
                f"{_DATABASE} does not match the manifest: SHA-256 {digest.hexdigest()}, "
                f"manifest {sha256}; the file was damaged or changed in transit",
                path=where,
            )
        if next(members, None) is not None:
            raise TransferError("unexpected members after the database", path=where)
    return dict(manifest)
