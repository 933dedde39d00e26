"""`skanse db build|info|export|import`: the offline vulnerability database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="the database file (default: $SKANSE_DB, else vuln.db in ~/.cache/skanse)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build, inspect and move skanse's vulnerability database (one SQLite file).\n\n"
        "  skanse db build osv-all.zip alpine-secdb/ debian-tracker.json\n"
        "  skanse db build osv:advisories/ alpine-secdb:v3.19/main.json\n"
        "  skanse db build debian-tracker.json nvd:nvd/ epss:epss_scores.csv.gz kev:kev.json\n"
        "  skanse db info\n"
        "  skanse db export vuln-db.tar.zst --key cosign.key   # + vuln-db.tar.zst.sigstore.json\n"
        "  skanse db import vuln-db.tar.zst --key cosign.pub   # signature, then SHA-256s"
    )
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build",
        help="import advisory sources into a new database (replaced only on success)",
        description="Sources: OSV JSON/YAML (a directory, a file, or osv.dev's all.zip), "
        "GitHub's advisory database (OSV), Alpine secdb JSON/YAML, the Debian security "
        "tracker JSON, Grype's vunnel OS records; and severity data: NVD CVE API 2.0 JSON "
        "(CVSS v4.0/v3.1), FIRST's EPSS CSV (.csv or .csv.gz), CISA's KEV catalogue JSON. "
        "Each file is recognised by its shape; prefix KIND: to force one (osv, ghsa, "
        "alpine-secdb, debian-tracker, vunnel, nvd, epss, kev). A source that gives no "
        "records at all fails the build and keeps the previous database.",
    )
    build.add_argument("sources", nargs="+", metavar="[KIND:]PATH")
    build.add_argument(
        "-v", "--verbose", action="store_true", help="list every rejected and ignored file"
    )
    build.add_argument(
        "--allow-partial",
        action="store_true",
        help="build even when a source gives no records at all (a typo, a file rejected "
        "whole) or is incomplete (an archive over its cap, missing NVD pages); by default "
        "such a build fails and the previous database is kept",
    )
    _add_db_option(build)
    info = sub.add_parser("info", help="sources, record counts and build time")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    _add_db_option(info)
    export = sub.add_parser(
        "export",
        help="write the database and its SHA-256 manifest to FILE (signed with --key)",
        description="Write FILE (zstd tar: manifest.json, vuln.db). With --key, also "
        "FILE.sigstore.json: a Sigstore bundle over FILE's SHA-256, signed with a Cosign key "
        "(password from SKANSE_PASSWORD or COSIGN_PASSWORD, else asked).",
    )
    export.add_argument("file", metavar="FILE")
    export.add_argument("--key", metavar="PRIVATE_KEY", help="Cosign private key to sign with")
    _add_db_option(export)
    imp = sub.add_parser(
        "import",
        help="check an exported FILE's signature and digests, then install its database",
        description="Verify FILE.sigstore.json (or --bundle) with --key, then that FILE hashes "
        "to what was signed and the database to its manifest; install it only then. An "
        "unsigned FILE is refused unless --insecure-unsigned, and a database built before "
        "the installed one unless --allow-older.",
    )
    imp.add_argument("file", metavar="FILE")
    imp.add_argument(
        "--key",
        metavar="PUBLIC_KEY",
        action="append",
        default=[],
        help="Cosign public key the export must be signed with; repeatable (any one)",
    )
    imp.add_argument("--bundle", metavar="PATH", help="the signature (default: FILE.sigstore.json)")
    imp.add_argument(
        "--insecure-unsigned",
        action="store_true",
        help="import without checking who made FILE (its manifest still catches damage)",
    )
    imp.add_argument(
        "--allow-older",
        action="store_true",
        help="install FILE even if it was built before the installed database (a rollback)",
    )
    _add_db_option(imp)


def _db_path(args: argparse.Namespace) -> Path:
    from skanse.vuln.db import default_database_path

    return Path(args.db) if args.db else default_database_path()


def _sources(values: list[str]) -> list[Any]:
    from skanse.errors import UsageError
    from skanse.vuln.db import Source
    from skanse.vuln.importers import KINDS

    sources = []
    for value in values:
        kind, sep, rest = value.partition(":")
        if sep and kind in KINDS:
            sources.append(Source(Path(rest), kind))
        elif not Path(value).exists():
            raise UsageError(f"{value}: no such file or directory")
        else:
            sources.append(Source(Path(value)))
    return sources


def run(args: argparse.Namespace) -> int:
    action = args.db_command
    if action == "build":
        return _build(args)
    if action == "info":
        return _info(args)
    if action == "export":
        return _export(args)
    return _import(args)


def _build(args: argparse.Namespace) -> int:
    from skanse.printable import printable as p
    from skanse.vuln.db import build_database

    dest = _db_path(args)
    sources = _sources(args.sources)
    err = sys.stderr
    result = build_database(
        dest,
        sources,
        on_source=lambda s: print(f"importing {p(s)}", file=err) if err.isatty() else None,
        allow_partial=args.allow_partial,
    )
    rejected = 0
    for summary in result.sources:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary.kinds.items())) or "none"
        line = f"{p(summary.location)}: {summary.advisories} advisories ({kinds})"
        extras = []
        if summary.withdrawn:
            extras.append(f"{summary.withdrawn} withdrawn (kept, never matched)")
        if summary.replaced:
            extras.append(f"{summary.replaced} duplicate ids (newest kept)")
        if summary.rejected:
            extras.append(f"{len(summary.rejected)} rejected")
        if any(r.partial for r in summary.rejected):
            extras.append("INCOMPLETE")
        if summary.skipped:
            extras.append(
                ", ".join(f"{n} skipped: {p(why)}" for why, n in summary.skipped.most_common())
            )
        if summary.ignored:
            extras.append(f"{len(summary.ignored)} files are not advisory data")
        print(line + (f"; {'; '.join(extras)}" if extras else ""))
        rejected += len(summary.rejected)
        shown = summary.rejected if args.verbose else summary.rejected[:20]
        for item in shown:
            print(f"  rejected {p(item.origin)}: {p(item.reason)}", file=sys.stderr)
        if len(shown) < len(summary.rejected):
            print(
                f"  ... and {len(summary.rejected) - len(shown)} more (-v lists them all)",
                file=sys.stderr,
            )
        if args.verbose:
            for origin in summary.ignored:
                print(f"  ignored {p(origin)}: not advisory data", file=sys.stderr)
    print(
        f"built {p(str(result.path))}: {result.advisories} advisories, {result.affected} affected "
        f"package entries, {rejected} rejected, in {result.seconds:.1f} s"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from skanse.printable import printable as p
    from skanse.vuln.db import Database

    with Database.open(_db_path(args)) as db:
        info = db.info()
    if args.json:
        document = dataclasses.asdict(info)
        document["path"] = str(info.path)
        document["ecosystems"] = dict(info.ecosystems)
        print(json.dumps(document, indent=2))
        return 0
    # the database may come from elsewhere (`db import`): its texts are shown escaped
    print(
        f"Database:   {p(str(info.path))} ({info.size / 1e6:.1f} MB, schema {info.schema_version})"
    )
    print(f"Built:      {p(str(info.built))} by skanse {p(str(info.skanse_version))}")
    print(
        f"Records:    {info.advisories} advisories ({info.withdrawn} withdrawn), "
        f"{info.affected} affected package entries"
    )
    print("Sources:")
    for s in info.sources:
        print(
            f"  {p(s.location)}  [{p(s.kind)}]  {s.advisories} advisories, {s.rejected} rejected, "
            f"{s.skipped} skipped, {s.ignored} ignored files"
        )
    print("Ecosystems (affected entries):")
    for name, count in info.ecosystems[:30]:
        print(f"  {count:>8}  {p(name)}")
    if len(info.ecosystems) > 30:
        print(f"  ... and {len(info.ecosystems) - 30} more")
    return 0


def _export(args: argparse.Namespace) -> int:
    from skanse.printable import printable as p
    from skanse.vuln.transfer import export_database

    key = None
    if args.key:
        from skanse._cli._signing import read_password
        from skanse.signing.keys import read_private_key

        key = read_private_key(args.key, read_password())
    exported = export_database(_db_path(args), Path(args.file), key)
    manifest = exported.manifest
    print(
        f"exported {p(str(exported.path))}: {manifest['advisories']} advisories, built "
        f"{p(str(manifest['built']))}, database sha256 {manifest['database']['sha256']}"
    )
    name = p(exported.path.name)
    print(f"sha256 of {name}: {exported.sha256}  (compare it after the transfer)")
    if exported.bundle is not None:
        print(f"signed: {p(str(exported.bundle))} (carry it with the file)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from skanse.printable import printable as p
    from skanse.vuln.transfer import import_database

    dest = _db_path(args)
    keys = []
    if args.key:
        from skanse._cli._signing import load_public_keys

        keys = load_public_keys(args.key)
    manifest = import_database(
        Path(args.file),
        dest,
        keys,
        bundle=Path(args.bundle) if args.bundle else None,
        insecure_unsigned=args.insecure_unsigned,
        allow_older=args.allow_older,
    )
    origin = (
        f"signature verified with {', '.join(args.key)}"
        if keys
        else "UNSIGNED (--insecure-unsigned: origin not checked)"
    )
    # the manifest's fields are the archive's word: shown escaped
    advisories, built = manifest.get("advisories", "?"), manifest.get("built", "?")
    print(
        f"imported {p(str(dest))}: {p(str(advisories))} advisories, built {p(str(built))}; "
        f"sha256 {p(str(manifest['database']['sha256']))} matches its manifest; {p(origin)}"
    )
    return 0
