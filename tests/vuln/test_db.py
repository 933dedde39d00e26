"""The database: building from the corpus, bad and hostile input, atomic replacement,
schema versions, export and import across an air gap."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from skanse.errors import DatabaseError, DatabaseSchemaError, TransferError
from skanse.vuln import db as dbmod
from skanse.vuln.db import Database, Source, build_database
from skanse.vuln.model import Rejected
from skanse.vuln.transfer import export_database, import_database
from tests.conftest import corpus_path
from tests.vuln.helpers import osv, write_json


@pytest.mark.corpus
def test_build_from_the_corpus_counts_every_record(tmp_path: Path) -> None:
    root = corpus_path("vulndb")
    result = build_database(
        tmp_path / "vuln.db",
        [Source(root / "osv-pypi"), Source(root / "osv-rustsec"), Source(root / "alpine-secdb")],
    )
    pypi, rustsec, secdb = result.sources
    assert (pypi.kinds["osv"], pypi.withdrawn, pypi.rejected) == (2661, 10, [])
    assert (rustsec.kinds["osv"], rustsec.withdrawn, rustsec.rejected) == (1206, 13, [])
    assert secdb.kinds["alpine-secdb"] > 0 and secdb.rejected == []
    with Database.open(tmp_path / "vuln.db") as db:
        info = db.info()
        assert info.advisories == result.advisories
        assert info.withdrawn == 23
        ecosystems = dict(info.ecosystems)
        assert {"pypi", "crates.io", "alpine:3.10", "alpine:3.11"} <= set(ecosystems)
        assert db.resolve("CVE-2018-18074") == ["CVE-2018-18074", "PYSEC-2018-28"]


@pytest.mark.corpus
def test_grype_fixtures_import_with_unsupported_formats_named(tmp_path: Path) -> None:
    result = build_database(tmp_path / "v.db", [Source(corpus_path("vulndb", "grype-fixtures"))])
    [summary] = result.sources
    assert summary.kinds["vunnel"] == 19 and summary.kinds["osv"] == 20
    [rejected] = summary.rejected
    assert rejected.origin.endswith("archlinux.json[0]")
    assert "pacman" in rejected.reason
    assert any(name.endswith("db.yaml") for name in summary.ignored)  # not advisory data


def test_corrupt_truncated_and_malformed_files_are_named_and_skipped(tmp_path: Path) -> None:
    good = osv("PYSEC-TEST-1", "PyPI", "demo", [{"introduced": "0"}, {"fixed": "2.0"}])
    src = tmp_path / "src"
    write_json(src / "good.json", good)
    text = json.dumps(good)
    (src / "truncated.json").write_text(text[: len(text) // 2])
    (src / "binary.json").write_bytes(b"\x00\xff\xfe garbage")
    bad_event = dict(good, id="PYSEC-TEST-2")
    bad_event["affected"] = [
        {
            "package": {"ecosystem": "PyPI", "name": "x"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}],
        }
    ]
    write_json(src / "two-kinds-in-one-event.json", bad_event)
    (src / "float.yaml").write_text(
        "id: PYSEC-TEST-3\nmodified: '2024-01-01'\naffected:\n"
        "- package: {name: x, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '0'\n    - fixed: 1.10\n"
    )
    # a billion laughs: ten aliases of ten aliases ... nine levels deep
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(8):
        previous, name = chr(97 + i), chr(98 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    (src / "alias-bomb.yaml").write_text("\n".join(lines) + "\n")
    (src / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    result = build_database(tmp_path / "v.db", [Source(src)])
    [summary] = result.sources
    assert summary.advisories == 1
    reasons = {Path(r.origin).name: r.reason for r in summary.rejected}
    assert set(reasons) == {
        "truncated.json",
        "binary.json",
        "two-kinds-in-one-event.json",
        "float.yaml",
        "alias-bomb.yaml",
        "deep.json",
    }
    assert reasons["truncated.json"].startswith("not valid JSON")
    assert "exactly one of" in reasons["two-kinds-in-one-event.json"]
    assert "YAML number 1.1" in reasons["float.yaml"]
    assert "nodes" in reasons["alias-bomb.yaml"]


def test_osv_all_zip_is_read_in_memory_with_caps(tmp_path: Path, monkeypatch) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(
                f"PYSEC-Z-{i}.json",
                json.dumps(osv(f"PYSEC-Z-{i}", "PyPI", "demo", [{"introduced": "0"}])),
            )
        zf.writestr(
            "../../escape.json", json.dumps(osv("PYSEC-Z-9", "PyPI", "demo", [{"introduced": "0"}]))
        )
        zf.writestr("big.json", b" " * 4096 + b"{}")
        zf.writestr("README.txt", "not a record")
    monkeypatch.setattr("skanse.vuln.importers.MAX_MEMBER_BYTES", 2048)
    result = build_database(tmp_path / "v.db", [Source(archive)])
    [summary] = result.sources
    assert summary.advisories == 4  # the odd name is read, never used as a path
    assert [r.origin.rsplit(":", 1)[1] for r in summary.rejected] == ["big.json"]
    assert not (tmp_path.parent / "escape.json").exists()
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DatabaseError, match="not a readable zip"):
        build_database(tmp_path / "w.db", [Source(tmp_path / "broken.zip")])
    assert not (tmp_path / "w.db").exists()


def _flag_second_member(archive: Path, *, encrypted: bool = False, method: int = 0) -> None:
    """Mark the second member of `archive` encrypted, or as compressed with `method`, in its
    local and central headers (as a zip tool that encrypts or uses AES, method 99, would)."""
    data = bytearray(archive.read_bytes())
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        first = data.find(signature)
        second = data.find(signature, first + 4)
        if encrypted:
            data[second + flags] |= 0x1
        if method:
            data[second + flags + 2 : second + flags + 4] = method.to_bytes(2, "little")
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("encrypted", "method", "reason"),
    [
        (True, 0, "encrypted (skanse reads no encrypted members)"),
        (False, 99, "compression method 99 is not supported"),  # AES
        (False, 98, "compression method 98 is not supported"),  # PPMd
    ],
)
def test_a_zip_member_skanse_cannot_unpack_is_rejected_by_name(
    tmp_path: Path, encrypted: bool, method: int, reason: str
) -> None:
    # zipfile raises RuntimeError or NotImplementedError for these: the whole build had
    # ended as an internal error
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            record = osv(f"PYSEC-Z-{i}", "PyPI", "demo", [{"introduced": "0"}])
            zf.writestr(f"PYSEC-Z-{i}.json", json.dumps(record))
    _flag_second_member(archive, encrypted=encrypted, method=method)
    result = build_database(tmp_path / "v.db", [Source(archive)])
    [summary] = result.sources
    assert summary.advisories == 2
    assert [(r.origin, r.reason) for r in summary.rejected] == [
        (f"{archive}:PYSEC-Z-1.json", reason)
    ]


def test_a_zip_member_with_a_damaged_deflate_stream_is_rejected_by_name(tmp_path: Path) -> None:
    # zlib.error is not an OSError: it had ended the build as an internal error too
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(2):
            record = osv(f"PYSEC-Z-{i}", "PyPI", "demo", [{"introduced": "0"}])
            zf.writestr(f"PYSEC-Z-{i}.json", json.dumps(record))
    data = bytearray(archive.read_bytes())
    start = 30 + len("PYSEC-Z-0.json")  # the first member's data, after its local header
    data[start : start + 2] = b"\xff\xff"  # an invalid deflate block type
    archive.write_bytes(bytes(data))
    [summary] = build_database(tmp_path / "v.db", [Source(archive)]).sources
    assert summary.advisories == 1
    [rejected] = summary.rejected
    assert rejected.origin == f"{archive}:PYSEC-Z-0.json"
    assert rejected.reason.startswith("cannot be read from the archive: Error -3")


def _built_from_one_source(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A database built from one advisory in tmp_path/src: the advisory's file, the
    database's path and its bytes, for a test that a failed build keeps them."""
    good = write_json(
        tmp_path / "src" / "a.json", osv("PYSEC-T-1", "PyPI", "demo", [{"introduced": "0"}])
    )
    dest = tmp_path / "db" / "vuln.db"
    build_database(dest, [Source(good.parent)])
    return good, dest, dest.read_bytes()


@pytest.mark.parametrize("allow_partial", [False, True])
def test_an_archive_over_the_total_cap_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow_partial: bool
) -> None:
    # each member was capped, the archive was not: 5 million members of 64 MB each would
    # all have been expanded; past the total cap the source is incomplete, and the build
    # fails and keeps the previous database unless --allow-partial
    good, dest, before = _built_from_one_source(tmp_path)
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(40):
            record = osv(f"PYSEC-Z-{i}", "PyPI", "demo", [{"introduced": "0"}])
            zf.writestr(f"PYSEC-Z-{i}.json", json.dumps(record) + " " * 1000)
    monkeypatch.setattr("skanse.vuln.importers.MAX_ARCHIVE_EXPANDED_BYTES", 20_000, raising=False)
    limit = "expands to over the 20,000 byte limit of an archive (its headers say)"
    if allow_partial:
        result = build_database(dest, [Source(good.parent), Source(archive)], allow_partial=True)
        assert result.sources[1].rejected == [Rejected(str(archive), limit, partial=True)]
    else:
        with pytest.raises(DatabaseError, match=r"all\.zip: incomplete; rejected .*20,000 byte"):
            build_database(dest, [Source(good.parent), Source(archive)])
        assert dest.read_bytes() == before


def test_newer_duplicates_are_replaced_in_one_pass(tmp_path: Path, monkeypatch) -> None:
    # a later source with newer copies of the same ids: the older rows go in one DELETE per
    # table, not one table scan per duplicate (16,000 newer copies had taken 23 s)
    n = 300
    for name, modified in (("a", "2024-01-01T00:00:00Z"), ("b", "2024-06-01T00:00:00Z")):
        for i in range(n):
            record = osv(
                f"GHSA-{i:04x}", "PyPI", f"pkg{i}", [{"introduced": "0"}], aliases=[f"CVE-2024-{i}"]
            )
            record["modified"] = modified
            write_json(tmp_path / name / f"{i}.json", record)
    statements: list[str] = []
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    build_database(tmp_path / "vuln.db", [Source(tmp_path / "a"), Source(tmp_path / "b")])
    monkeypatch.undo()
    assert sum(s.lstrip().upper().startswith("DELETE") for s in statements) <= 3
    with Database.open(tmp_path / "vuln.db") as db:
        rows = db.conn.execute("SELECT count(*), min(modified) FROM advisories").fetchone()
        assert rows == (n, "2024-06-01T00:00:00Z")
        assert db.conn.execute("SELECT count(*) FROM affected").fetchone() == (n,)
        assert db.conn.execute("SELECT count(*) FROM aliases").fetchone() == (n,)


def test_a_failed_build_leaves_the_previous_database_in_place(tmp_path: Path, monkeypatch) -> None:
    src, dest, before = _built_from_one_source(tmp_path)

    real = dbmod.read_source  # type: ignore[attr-defined]

    def interrupted(path, kind=None):
        yield from real(path, kind)
        raise KeyboardInterrupt  # the user pressed ^C half-way

    monkeypatch.setattr(dbmod, "read_source", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_database(dest, [Source(src.parent)])
    assert dest.read_bytes() == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vuln.db"]  # no temp left


@pytest.mark.parametrize("allow_partial", [False, True])
def test_a_source_rejected_whole_fails_the_build_and_keeps_the_database(
    tmp_path: Path, allow_partial: bool
) -> None:
    good, dest, before = _built_from_one_source(tmp_path)
    typo = tmp_path / "srcc"  # the path the user meant was src
    with pytest.raises(DatabaseError, match="no such file"):
        build_database(dest, [Source(typo)], allow_partial=allow_partial)  # nothing at all
    assert dest.read_bytes() == before
    other = write_json(tmp_path / "other" / "readme.json", {"not": "advisories"})
    if allow_partial:
        result = build_database(
            dest, [Source(good.parent), Source(other.parent)], allow_partial=True
        )
        assert result.advisories == 1
    else:
        with pytest.raises(DatabaseError, match="allow-partial"):
            build_database(dest, [Source(good.parent), Source(other.parent)])
        assert dest.read_bytes() == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vuln.db"]


def test_cli_db_build_with_a_typo_exits_2_and_vuln_still_has_its_data(cli, tmp_path: Path) -> None:
    good = write_json(
        tmp_path / "src" / "a.json", osv("PYSEC-T-1", "PyPI", "demo", [{"introduced": "0"}])
    )
    db = str(tmp_path / "vuln.db")
    assert cli("db", "build", "--db", db, str(good.parent)).code == 0
    failed = cli("db", "build", "--db", db, f"osv:{tmp_path}/srcc")
    assert failed.code == 2
    assert "previous one is kept" in failed.stderr
    with Database.open(Path(db)) as database:
        assert database.info().advisories == 1
    partial = cli(
        "db", "build", "--db", db, "--allow-partial", str(good.parent), f"osv:{tmp_path}/x"
    )
    assert partial.code == 0


def test_another_schema_version_is_refused_with_rebuild_advice(tmp_path: Path) -> None:
    src = write_json(
        tmp_path / "src" / "a.json", osv("PYSEC-T-1", "PyPI", "demo", [{"introduced": "0"}])
    )
    dest = tmp_path / "vuln.db"
    build_database(dest, [Source(src.parent)])
    with sqlite3.connect(dest) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(DatabaseSchemaError) as caught:
        Database.open(dest)
    message = caught.value.diagnostics()
    assert "schema 999" in message and "skanse db build" in message and str(dest) in message


def test_missing_and_non_sqlite_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="skanse db build"):
        Database.open(tmp_path / "nothing.db")
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(DatabaseError, match="not SQLite"):
        Database.open(tmp_path / "text.db")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(DatabaseError, match="not a skanse vulnerability database"):
        Database.open(other)


@pytest.fixture
def small_db(tmp_path: Path) -> Path:
    src = write_json(
        tmp_path / "src" / "a.json", osv("PYSEC-T-1", "PyPI", "demo", [{"introduced": "0"}])
    )
    dest = tmp_path / "vuln.db"
    build_database(dest, [Source(src.parent)])
    return dest


def test_export_then_import_gives_the_same_database(small_db: Path, tmp_path: Path) -> None:
    exported = export_database(small_db, tmp_path / "out.tar.zst")
    assert exported.manifest["database"]["size"] == small_db.stat().st_size
    target = tmp_path / "airgap" / "vuln.db"
    manifest = import_database(exported.path, target, insecure_unsigned=True)
    assert target.read_bytes() == small_db.read_bytes()
    assert manifest["database"]["sha256"] == exported.manifest["database"]["sha256"]
    with Database.open(target) as db:
        assert [c.advisory.id for c in db.candidates("pypi", "demo")] == ["PYSEC-T-1"]


def _with_built(db: Path, built: str) -> Path:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'built'", (built,))
    conn.close()
    return db


def test_an_older_database_is_not_installed_over_a_newer_one(
    small_db: Path, tmp_path: Path
) -> None:
    # a genuine, signed export from last month would roll back every advisory since
    target = tmp_path / "airgap" / "vuln.db"
    target.parent.mkdir()
    shutil.copy(small_db, target)
    _with_built(target, "2026-12-01T00:00:00+00:00")
    old = export_database(_with_built(small_db, "2026-11-01T00:00:00+00:00"), tmp_path / "o.zst")
    before = target.read_bytes()
    with pytest.raises(TransferError, match="before the installed database"):
        import_database(old.path, target, insecure_unsigned=True)
    assert target.read_bytes() == before
    assert sorted(os.listdir(target.parent)) == ["vuln.db"]
    import_database(old.path, target, insecure_unsigned=True, allow_older=True)
    with Database.open(target) as db:
        assert db.info().built == "2026-11-01T00:00:00+00:00"
    import_database(old.path, target, insecure_unsigned=True)  # the same build again


def _rewrite(archive: Path, out: Path, change) -> None:
    """Decompress, let `change` alter the (manifest, database) members, recompress."""
    with archive.open("rb") as handle:
        raw = zstandard.ZstdDecompressor().stream_reader(handle).read()
    members = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            members.append((member.name, extracted.read()))
    members = change(members)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        (
            "flipped-byte",
            lambda m: [m[0], (m[1][0], m[1][1][:100] + bytes([m[1][1][100] ^ 1]) + m[1][1][101:])],
            "does not match the manifest",
        ),
        ("no-manifest", lambda m: [m[1]], "first member must be manifest.json"),
        ("extra-member", lambda m: [*m, ("../../etc/x", b"boo")], "unexpected members"),
        (
            "wrong-size",
            lambda m: [m[0], (m[1][0], m[1][1] + b"x")],
            "the manifest says",
        ),
        (
            "bad-manifest",
            lambda m: [("manifest.json", b"{not json"), m[1]],
            "malformed manifest",
        ),
        (
            "old-schema",
            lambda m: [
                (
                    "manifest.json",
                    json.dumps({**json.loads(m[0][1]), "schema_version": 0}).encode(),
                ),
                m[1],
            ],
            "schema 0",
        ),
    ],
)
def test_import_refuses_a_damaged_export_and_keeps_the_old_database(
    small_db: Path, tmp_path: Path, name, change, message
) -> None:
    exported = export_database(small_db, tmp_path / "out.tar.zst")
    damaged = tmp_path / f"{name}.tar.zst"
    _rewrite(exported.path, damaged, change)
    target = tmp_path / "airgap" / "vuln.db"
    target.parent.mkdir()
    target.write_bytes(b"previous")
    with pytest.raises(TransferError, match=message):
        import_database(damaged, target, insecure_unsigned=True)
    assert target.read_bytes() == b"previous"
    assert sorted(os.listdir(target.parent)) == ["vuln.db"]


def _forged(exported: Path, out: Path) -> None:
    """What an attacker on the path does: delete the advisories, write a matching manifest."""

    def change(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        (manifest_name, manifest_bytes), (db_name, db_bytes) = members
        scratch = out.parent / "scratch.db"
        scratch.write_bytes(db_bytes)
        with sqlite3.connect(scratch) as conn:
            conn.execute("DELETE FROM affected")
        forged_db = scratch.read_bytes()
        manifest = json.loads(manifest_bytes)
        manifest["database"] = {
            "name": db_name,
            "sha256": hashlib.sha256(forged_db).hexdigest(),
            "size": len(forged_db),
        }
        return [(manifest_name, json.dumps(manifest).encode()), (db_name, forged_db)]

    _rewrite(exported, out, change)


def test_a_regenerated_manifest_is_caught_by_the_signature(small_db: Path, tmp_path: Path) -> None:
    from tests.signing.helpers import new_key, public

    key = new_key()
    exported = export_database(small_db, tmp_path / "out.tar.zst", key)
    assert exported.bundle == tmp_path / "out.tar.zst.sigstore.json"
    target = tmp_path / "airgap" / "vuln.db"
    import_database(exported.path, target, [public(key, "cosign.pub")])
    assert target.read_bytes() == small_db.read_bytes()
    forged = tmp_path / "forged.tar.zst"
    _forged(exported.path, forged)
    (tmp_path / "forged.tar.zst.sigstore.json").write_bytes(exported.bundle.read_bytes())
    # the manifest is self-consistent, so only the signature can tell
    import_database(forged, tmp_path / "unsigned.db", insecure_unsigned=True)
    with pytest.raises(TransferError, match="not the one that was signed"):
        import_database(forged, target, [public(key, "cosign.pub")])
    assert target.read_bytes() == small_db.read_bytes()
    with pytest.raises(TransferError, match="signature not verified"):
        import_database(exported.path, target, [public(new_key(), "other.pub")])
    with pytest.raises(TransferError, match="refusing an import"):
        import_database(exported.path, target)
    exported.bundle.unlink()
    with pytest.raises(TransferError, match="no signature bundle"):
        import_database(exported.path, target, [public(key, "cosign.pub")])


def test_a_signed_import_checks_the_signature_before_decompressing(
    small_db: Path, tmp_path: Path, monkeypatch
) -> None:
    # a decompression bomb beside a real bundle of another archive: refused on the archive's
    # hash, without unpacking a byte (it had written the whole bomb to disk first)
    from skanse.vuln import transfer
    from tests.signing.helpers import new_key, public

    key = new_key()
    exported = export_database(small_db, tmp_path / "out.tar.zst", key)
    assert exported.bundle is not None
    manifest = {
        "format": "skanse-vuln-db",
        "schema_version": 2,
        "database": {"name": "vuln.db", "sha256": "0" * 64, "size": 1 << 24},
    }
    bomb = tmp_path / "bomb.tar.zst"
    with open(bomb, "wb") as handle:
        with zstandard.ZstdCompressor().stream_writer(handle, closefd=False) as z:
            with tarfile.open(fileobj=z, mode="w|") as tar:
                for name, data in (
                    ("manifest.json", json.dumps(manifest).encode()),
                    ("vuln.db", bytes(1 << 24)),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    (tmp_path / "bomb.tar.zst.sigstore.json").write_bytes(exported.bundle.read_bytes())

    def unpack(*_: object) -> None:
        raise AssertionError("decompressed before the signature was checked")

    monkeypatch.setattr(transfer, "_unpack", unpack)
    target = tmp_path / "airgap" / "vuln.db"
    with pytest.raises(TransferError, match="not the one that was signed"):
        import_database(bomb, target, [public(key, "cosign.pub")])
    assert not target.parent.exists() or os.listdir(target.parent) == []


def test_cli_db_build_and_import_show_hostile_texts_escaped(
    cli, small_db: Path, tmp_path: Path
) -> None:
    # a rejected file's name and reason, and an imported manifest's fields, come from the
    # data: an escape sequence in them had reached the terminal raw
    evil = "\x1b]0;PWNED\x07\x1b[2J"
    good = write_json(
        tmp_path / "feed" / "a.json", osv("PYSEC-T-2", "PyPI", "x", [{"introduced": "0"}])
    )
    (good.parent / f"b{evil}.json").write_text("{not json" + evil)
    built = cli("db", "build", f"osv:{good.parent}", "--db", str(tmp_path / "b.db"))
    assert built.code == 0, built.stderr
    assert "rejected" in built.stderr and "\\x1b" in built.stderr
    assert "\x1b" not in built.stdout + built.stderr

    def change(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        (manifest_name, manifest_bytes), database = members
        manifest = json.loads(manifest_bytes)
        manifest["built"] = manifest["advisories"] = evil
        return [(manifest_name, json.dumps(manifest).encode()), database]

    exported = export_database(small_db, tmp_path / "out.tar.zst")
    _rewrite(exported.path, tmp_path / "evil.tar.zst", change)
    imported = cli(
        "db",
        "import",
        str(tmp_path / "evil.tar.zst"),
        "--db",
        str(tmp_path / "i.db"),
        "--insecure-unsigned",
    )
    assert imported.code == 0, imported.stderr
    assert "\x1b" not in imported.stdout and "\\x1b]0;PWNED" in imported.stdout


def test_export_bundle_verifies_as_cosign_verify_blob_would(small_db: Path, tmp_path: Path) -> None:
    # the bundle is a messageSignature over the archive: skanse's blob verifier (checked
    # against sigstore-conformance's managed-key bundles in tests/signing) accepts it
    from skanse.signing.bundle import verify_blob_bundle
    from tests.signing.helpers import new_key, public

    key = new_key()
    exported = export_database(small_db, tmp_path / "out.tar.zst", key)
    assert exported.bundle is not None
    signer = public(key, "cosign.pub")
    archive = exported.path.read_bytes()
    assert verify_blob_bundle(exported.bundle.read_bytes(), archive, [signer]) is signer
    # exporting again unsigned removes the signature that no longer covers the file
    export_database(small_db, exported.path)
    assert not exported.bundle.exists()


def test_import_of_something_else_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.tar.zst").write_bytes(b"hello, not zstd")
    with pytest.raises(TransferError, match="not a database exported"):
        import_database(tmp_path / "x.tar.zst", tmp_path / "vuln.db", insecure_unsigned=True)
    assert not (tmp_path / "vuln.db").exists()


@pytest.mark.corpus
def test_secdb_json_as_published_today_reads_like_the_yaml(tmp_path: Path) -> None:
    # secdb.alpinelinux.org publishes the same structure as JSON (v3.x/main.json)
    from skanse.sources.yamlpos import load_documents

    source = corpus_path("vulndb", "alpine-secdb", "v3.11", "main.yaml")
    [document] = list(load_documents(source.read_bytes()))
    as_json = write_json(tmp_path / "json" / "main.json", document.data)  # type: ignore[union-attr]
    from_yaml = build_database(tmp_path / "y.db", [Source(source)]).sources[0]
    from_json = build_database(tmp_path / "j.db", [Source(as_json)]).sources[0]
    assert from_json.advisories == from_yaml.advisories > 0
    assert from_json.rejected == from_yaml.rejected == []
