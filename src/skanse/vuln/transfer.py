"""Move a database into an air-gapped network: one file out, checked on the way in.

`export_database` writes a zstd-compressed tar with exactly two members, `manifest.json`
first (format, schema version, build time, sources, and the SHA-256 and size of the
database) and `vuln.db`. `import_database` reads it as a stream: the manifest must be
first and well formed, the database is written to a temporary file next to the
destination while it is hashed, and it is renamed into place only if its SHA-256 and size
are the manifest's and it opens as a database of this schema. Nothing else in the archive
is accepted, and nothing is ever extracted by the name the archive gives.

The manifest travels inside the archive, so it proves nothing about who made it: anyone can
change the database and write a matching manifest. What does is a signature. `export_database`
with a key writes `<FILE>.sigstore.json` beside the archive, a Sigstore bundle over the
archive's SHA-256 made by skanse's Cosign-compatible signing (`cosign verify-blob --key
cosign.pub --bundle FILE.sigstore.json --insecure-ignore-tlog FILE` accepts it).
`import_database` with public keys checks the bundle first and then that the bytes it reads
hash to what was signed; without keys it refuses, unless told `insecure_unsigned`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from skanse.errors import DatabaseError, TransferError
from skanse.files import output_problem
from skanse.printable import printable
from skanse.signing._common import Rejected
from skanse.signing.bundle import MAX_BUNDLE_BYTES, build_blob_bundle, verify_blob_digest
from skanse.signing.keys import PublicKey, SigningKey
from skanse.vuln.db import SCHEMA_VERSION, Database

__all__ = [
    "BUNDLE_SUFFIX",
    "FORMAT",
    "Exported",
    "bundle_path",
    "export_database",
    "import_database",
]

BUNDLE_SUFFIX = ".sigstore.json"

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
    bundle: Path | None = None  # the signature bundle, when signed


def bundle_path(archive: Path) -> Path:
    """Where the signature of an exported archive is: `<archive>.sigstore.json`."""
    return archive.with_name(archive.name + BUNDLE_SUFFIX)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def export_database(db_path: Path, out: Path, key: SigningKey | None = None) -> Exported:
    """Write the archive; with `key`, also its signature bundle (see the module docstring)."""
    import zstandard

    problem = output_problem(out)  # before the work, not as the rename fails
    if problem is not None:
        raise TransferError(problem)
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
    sha256 = _hash_file(out)[0]
    if key is None:
        bundle_path(out).unlink(missing_ok=True)  # an old signature would not cover this file
        return Exported(out, sha256, manifest)
    signed = bundle_path(out)
    data = build_blob_bundle(key, bytes.fromhex(sha256))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{signed.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, signed)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Exported(out, sha256, manifest, signed)


class _HashingReader:
    """The archive as read, hashed on the way: what was unpacked is what gets checked."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> bytes:
        while self.read(_CHUNK):
            pass
        return self.digest.digest()


def _signed_digest(archive: Path, bundle: Path | None, keys: Sequence[PublicKey]) -> bytes:
    """The SHA-256 the bundle signs, once a key verifies it; `TransferError` otherwise."""
    signed = bundle or bundle_path(archive)
    try:
        with open(signed, "rb") as handle:
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError:
        raise TransferError(
            f"no signature bundle {signed.name} beside it: export with `skanse db export "
            "--key`, or pass --bundle (--insecure-unsigned imports without checking who made it)",
            path=str(archive),
        ) from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise TransferError(f"cannot read {signed}: {reason}", path=str(archive)) from None
    try:
        doc = json.loads(data)
        digest = doc["messageSignature"]["messageDigest"]["digest"]
        claimed = base64.b64decode(digest, validate=True)
        verify_blob_digest(data, claimed, keys)
    except Rejected as exc:
        raise TransferError(f"signature not verified: {exc}", path=str(archive)) from None
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"malformed signature bundle {signed.name}: {exc}"
        raise TransferError(reason, path=str(archive)) from None
    return claimed


def _bytes_reader(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def _add(tar: tarfile.TarFile, name: str, size: int, handle: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, handle)


def import_database(
    archive: Path,
    dest: Path,
    keys: Sequence[PublicKey] = (),
    *,
    bundle: Path | None = None,
    insecure_unsigned: bool = False,
    allow_older: bool = False,
) -> dict[str, Any]:
    """Check and install an exported database at `dest`; returns its manifest.

    With `keys`, the archive's signature bundle must verify with one of them and the archive
    read must hash to what it signs. Without keys the import is refused unless
    `insecure_unsigned`: the manifest inside proves integrity in transit, not origin. A
    database built before the installed one is refused unless `allow_older`: a genuine,
    signed but old export would otherwise roll back every advisory published since.
    """
    import zstandard

    if dest.is_dir():
        raise TransferError("is a directory (name the database file)", path=str(dest))
    if keys:
        expected: bytes | None = _signed_digest(archive, bundle, keys)
    elif insecure_unsigned:
        expected = None
    else:
        raise TransferError(
            "refusing an import that is not checked against a public key: give --key "
            "cosign.pub (the export must be signed with `skanse db export --key`), or "
            "--insecure-unsigned to trust the file as it is",
            path=str(archive),
        )

    try:
        raw = open(archive, "rb")
    except OSError as exc:
        raise TransferError(f"cannot read: {exc.strerror or exc}", path=str(archive)) from None
    if expected is not None:
        _check_signed(raw, expected, str(archive))
    directory = dest.parent if str(dest.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"cannot create {directory}: {exc.strerror or exc}"
        raise TransferError(reason, path=str(dest)) from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".importing", dir=directory)
    tmp = Path(tmp_name)
    try:
        with raw, os.fdopen(fd, "wb") as out:
            hashing = _HashingReader(raw)
            reader = zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], hashing))
            try:
                manifest = _unpack(reader, out, str(archive))
            except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
                raise TransferError(
                    f"not a database exported by `skanse db export`: {exc}", path=str(archive)
                ) from None
            # hashed again as unpacked: the file may have changed since it was checked
            if expected is not None and hashing.finish() != expected:
                raise TransferError(
                    "the archive is not the one that was signed (its SHA-256 differs)",
                    path=str(archive),
                )
            out.flush()
            os.fsync(out.fileno())
        try:
            with Database.open(tmp) as imported:
                built = imported.meta().get("built", "")
        except DatabaseError as exc:
            raise TransferError(
                f"the database inside does not open: {exc}", path=str(archive)
            ) from None
        if not allow_older:
            _refuse_rollback(built, dest, str(archive))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def _built_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _refuse_rollback(built: str, dest: Path, where: str) -> None:
    """The database to install was built no earlier than the installed one. An installed
    database that does not open (damaged, another schema) is no reference: it is replaced."""
    try:
        with Database.open(dest) as installed:
            current = installed.meta().get("built", "")
    except (DatabaseError, OSError):
        return
    installed_at = _built_time(current)
    if installed_at is None:
        return
    new_at = _built_time(built)
    if new_at is None or new_at < installed_at:
        raise TransferError(
            f"it was built {printable(built)}, before the installed database "
            f"({printable(current)}): importing it would roll back the advisories published "
            "since; give --allow-older to install it anyway",
            path=where,
        )


def _check_signed(raw: IO[bytes], expected: bytes, where: str) -> None:
    """The archive is the one that was signed, before any of it is decompressed: an
    unsigned archive never gets to write (a 65 KB zstd bomb had written 2 GB)."""
    digest = hashlib.sha256()
    try:
        while chunk := raw.read(_CHUNK):
            digest.update(chunk)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise TransferError(f"cannot read: {exc.strerror or exc}", path=where) from None
    if digest.digest() != expected:
        raw.close()
        raise TransferError(
            "the archive is not the one that was signed (its SHA-256 differs)", path=where
        )


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
