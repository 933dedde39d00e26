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
        "  skanse db info\n"
        "  skanse db export vuln-db.tar.zst      # carry one file into the air gap\n"
        "  skanse db import vuln-db.tar.zst      # checks its SHA-256 manifest first"
    )
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build",
        help="import advisory sources into a new database (replaced only on success)",
        description="Sources: OSV JSON/YAML (a directory, a file, or osv.dev's all.zip), "
        "Alpine secdb JSON/YAML, the Debian security tracker JSON, Grype's vunnel OS "
        "records. Each file is recognised by its shape; prefix KIND: to force one "
        "(osv, alpine-secdb, debian-tracker, vunnel).",
    )
    build.add_argument("sources", nargs="+", metavar="[KIND:]PATH")
    build.add_argument(
        "-v", "--verbose", action="store_true", help="list every rejected and ignored file"
    )
    build.add_argument(
        "--allow-partial",
        action="store_true",
        help="build even when a source gives no records at all (a typo, a file rejected "
        "whole); by default such a build fails and the previous database is kept",
    )
    _add_db_option(build)
    info = sub.add_parser("info", help="sources, record counts and build time")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    _add_db_option(info)
    export = sub.add_parser("export", help="write the database and its SHA-256 manifest to FILE")
    export.add_argument("file", metavar="FILE")
    _add_db_option(export)
    imp = sub.add_parser("import", help="check an exported FILE and install its database")
    imp.add_argument("file", metavar="FILE")
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
    from skanse.vuln.db import build_database

    dest = _db_path(args)
    sources = _sources(args.sources)
    err = sys.stderr
    result = build_database(
        dest,
        sources,
        on_source=lambda p: print(f"importing {p}", file=err) if err.isatty() else None,
        allow_partial=args.allow_partial,
    )
    rejected = 0
    for summary in result.sources:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(summary.kinds.items())) or "none"
        line = f"{summary.location}: {summary.advisories} advisories ({kinds})"
        extras = []
        if summary.withdrawn:
            extras.append(f"{summary.withdrawn} withdrawn (kept, never matched)")
        if summary.replaced:
            extras.append(f"{summary.replaced} duplicate ids (newest kept)")
        if summary.rejected:
            extras.append(f"{len(summary.rejected)} rejected")
        if summary.skipped:
            extras.append(
                ", ".join(f"{n} skipped: {why}" for why, n in summary.skipped.most_common())
            )
        if summary.ignored:
            extras.append(f"{len(summary.ignored)} files are not advisory data")
        print(line + (f"; {'; '.join(extras)}" if extras else ""))
        rejected += len(summary.rejected)
        shown = summary.rejected if args.verbose else summary.rejected[:20]
        for item in shown:
            print(f"  rejected {item.origin}: {item.reason}", file=sys.stderr)
        if len(shown) < len(summary.rejected):
            print(
                f"  ... and {len(summary.rejected) - len(shown)} more (-v lists them all)",
                file=sys.stderr,
            )
        if args.verbose:
            for origin in summary.ignored:
                print(f"  ignored {origin}: not advisory data", file=sys.stderr)
    print(
        f"built {result.path}: {result.advisories} advisories, {result.affected} affected "
        f"package entries, {rejected} rejected, in {result.seconds:.1f} s"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from skanse.vuln.db import Database

    with Database.open(_db_path(args)) as db:
        info = db.info()
    if args.json:
        document = dataclasses.asdict(info)
        document["path"] = str(info.path)
        document["ecosystems"] = dict(info.ecosystems)
        print(json.dumps(document, indent=2))
        return 0
    print(f"Database:   {info.path} ({info.size / 1e6:.1f} MB, schema {info.schema_version})")
    print(f"Built:      {info.built} by skanse {info.skanse_version}")
    print(
        f"Records:    {info.advisories} advisories ({info.withdrawn} withdrawn), "
        f"{info.affected} affected package entries"
    )
    print("Sources:")
    for s in info.sources:
        print(
            f"  {s.location}  [{s.kind}]  {s.advisories} advisories, {s.rejected} rejected, "
            f"{s.skipped} skipped, {s.ignored} ignored files"
        )
    print("Ecosystems (affected entries):")
    for name, count in info.ecosystems[:30]:
        print(f"  {count:>8}  {name}")
    if len(info.ecosystems) > 30:
        print(f"  ... and {len(info.ecosystems) - 30} more")
    return 0


def _export(args: argparse.Namespace) -> int:
    from skanse.vuln.transfer import export_database

    exported = export_database(_db_path(args), Path(args.file))
    manifest = exported.manifest
    print(
        f"exported {exported.path}: {manifest['advisories']} advisories, built "
        f"{manifest['built']}, database sha256 {manifest['database']['sha256']}"
    )
    print(f"sha256 of {exported.path.name}: {exported.sha256}  (compare it after the transfer)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from skanse.vuln.transfer import import_database

    dest = _db_path(args)
    manifest = import_database(Path(args.file), dest)
    print(
        f"imported {dest}: {manifest.get('advisories', '?')} advisories, built "
        f"{manifest.get('built', '?')}; sha256 {manifest['database']['sha256']} verified"
    )
    return 0
