"""`skanse vuln TARGET`: known vulnerabilities of an image, a root file system or an SBOM."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from skanse._cli._common import (
    Settings,
    add_result_arguments,
    conclude,
    emit,
    load_config_for,
    print_notes,
    report_info,
    result_settings,
)
from skanse._cli._images import add_image_options

__all__ = ["add_arguments", "run"]

FORMATS = ("text", "json", "sarif", "junit", "cyclonedx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Match the packages of an image, a root file system or an SBOM against the offline\n"
        "advisory database (`skanse db build` / `skanse db import`).\n\n"
        "  skanse vuln alpine:3.19\n"
        "  skanse vuln oci:build/layout:v1 --fail-on high --only-fixed\n"
        "  skanse vuln sbom.cdx.json --vex vex.openvex.json -f sarif -o vuln.sarif\n"
        "  skanse vuln dir:/srv/rootfs -f cyclonedx -o bom-with-vulns.json\n\n"
        "OS packages match through their source package and distribution release, never\n"
        "through CPEs. Suppressions: VEX documents (--vex), .skanse.yaml entries (an advisory\n"
        "id or alias, optionally a purl, a reason and an expiry), and the distribution's own\n"
        "'not affected' records; suppressed matches are listed with their reason."
    )
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="REF, oci:DIR[:TAG], docker-archive:FILE[:TAG], oci-archive:FILE[:TAG], dir:DIR, "
        "sbom:FILE, or a path (a layout, an archive, a directory, or a CycloneDX/SPDX/Syft JSON "
        "SBOM)",
    )
    parser.add_argument(
        "--db", metavar="PATH", default=None, help="the database (default: $SKANSE_DB or cache)"
    )
    parser.add_argument(
        "--vex",
        metavar="FILE",
        action="append",
        default=[],
        help="an OpenVEX or CycloneDX VEX document; repeatable",
    )
    parser.add_argument(
        "--only-fixed",
        action="store_true",
        default=None,
        help="report only vulnerabilities that have a fixed version",
    )
    parser.add_argument(
        "--ignore-unfixed",
        action="store_true",
        default=None,
        help="the same as --only-fixed (Trivy's name for it)",
    )
    parser.add_argument(
        "--max-db-age",
        metavar="AGE",
        default="5d",
        type=_age,
        help="a database built longer ago than this (e.g. 36h, 7d) is reported as not "
        "fully checked, which fails --strict (default: 5d, as Grype; 0 turns it off)",
    )
    add_result_arguments(
        parser,
        formats=FORMATS,
        strict_help="exit 2 if any package or file could not be checked",
        severity_help="report findings at or above this severity, or exactly a comma list "
        "(unknown severities count as info; default: info)",
        config_help="settings file",
    )
    add_image_options(parser)


def _inventory(args: argparse.Namespace, target: str) -> Any:
    from skanse.inventory.catalog import catalog_directory, catalog_image
    from skanse.vuln.sbom import looks_like_sbom, read_sbom

    if target.startswith("sbom:"):
        return read_sbom(Path(target[len("sbom:") :]))
    path = Path(target)
    if path.is_file() and looks_like_sbom(path):
        return read_sbom(path)
    from skanse._cli._images import image_target

    with image_target(args, target) as (spec, image):
        if image is None:
            return catalog_directory(spec.location)
        image.read_ahead()  # a docker archive's layers are hashed while the rest loads
        return catalog_image(image)


def run(args: argparse.Namespace) -> int:
    import datetime as dt

    from skanse import __version__
    from skanse.model import CheckID
    from skanse.report import Format, render
    from skanse.vuln.db import Database, default_database_path
    from skanse.vuln.render import render_cyclonedx, render_json, render_text
    from skanse.vuln.scan import VulnScan, scan_inventory, with_final_suppressions
    from skanse.vuln.vex import read_vex

    started = dt.datetime.now(dt.UTC)
    target = args.target
    # settings never come from the thing scanned: a .skanse.yaml inside a root file system
    # or beside an SBOM could otherwise suppress everything; look from the working directory
    loaded = load_config_for(args, ["."])
    settings = Settings(args, os.environ, loaded.file, str(loaded.path))
    results = result_settings(settings)
    severities, output = results.severities, results.output
    fmt = settings.get("format", _format, "text")
    only_fixed = bool(args.only_fixed or args.ignore_unfixed)

    db_path = Path(args.db) if args.db else default_database_path()
    vex = [s for file in args.vex for s in read_vex(Path(file))]
    with Database.open(db_path) as db:
        inventory = _inventory(args, target)
        report, matches, raw = scan_inventory(
            db,
            inventory,
            target=target,
            vex=vex,
            only_fixed=only_fixed,
            started=started,
            max_db_age=args.max_db_age,
        )
        resolve = cast(Callable[[str], list[CheckID]], db.resolve)  # advisory ids are check ids
        conclusion = conclude(raw, loaded, resolve, results)
        meta = db.meta()
    suppressed, outcome = conclusion.suppressed, conclusion.outcome
    final, reported = with_final_suppressions(matches, suppressed, severities)
    database = {
        "path": str(db_path),
        "built": meta.get("built", "?"),
        "schema_version": meta.get("schema_version", "?"),
        "skanse_version": meta.get("skanse_version", "?"),
    }
    scan = VulnScan(target, inventory, report, final, reported, database)
    info = report_info(outcome.exit_code, output, kind="skanse.vuln")
    if fmt == "text":
        document = render_text(scan, color=info.color, width=info.width)
    elif fmt == "json":
        document = render_json(scan, tool_version=__version__, exit_code=outcome.exit_code)
    elif fmt == "cyclonedx":
        document = render_cyclonedx(scan)
    else:
        document = render(Format(fmt), reported, info)
    emit(document, output)
    print_notes(conclusion, quiet=args.quiet)
    return outcome.exit_code


_MAX_AGE_DAYS = 36_500  # a century; larger is a typo (and overflows date arithmetic)


def _age(value: str) -> Any:
    """`36h`, `7d`, `90m` -> a timedelta; `0` -> None (no limit)."""
    import datetime as dt
    import math

    text = value.strip().lower()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if text in ("0", "none", "off"):
        return None
    problem = f"{value!r} is not an age like 36h or 7d (m, h, d, w; 0 for no limit)"
    try:
        amount = float(text[:-1])
        unit = units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise argparse.ArgumentTypeError(problem) from None
    if not math.isfinite(amount) or amount < 0:
        raise argparse.ArgumentTypeError(problem)
    if amount == 0:
        return None
    try:
        age = dt.timedelta(**{unit: amount})
    except OverflowError:
        age = dt.timedelta.max
    if age > dt.timedelta(days=_MAX_AGE_DAYS):
        raise argparse.ArgumentTypeError(
            f"{value!r} is more than {_MAX_AGE_DAYS:,} days (0 turns the age check off)"
        )
    return age


def _format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in FORMATS:
        raise ValueError(f"unknown format {value!r} (choose from {', '.join(FORMATS)})")
    return text
