"""`skanse vuln TARGET`: known vulnerabilities of an image, a root file system or an SBOM."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

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
        help="REF, oci:DIR[:TAG], docker-archive:FILE, dir:DIR, sbom:FILE, or a path "
        "(a layout, an archive, a directory, or a CycloneDX/SPDX/Syft JSON SBOM)",
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
        "--severity",
        metavar="SEVERITY",
        default=None,
        help="report findings at or above this severity, or exactly a comma list "
        "(unknown severities count as info; default: info)",
    )
    parser.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        default=None,
        help="exit 1 only for unsuppressed findings at or above this severity "
        "(default: any reported finding)",
    )
    parser.add_argument(
        "--exit-zero", action="store_true", default=None, help="exit 0 even when findings fail"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="exit 2 if any package or file could not be checked",
    )
    parser.add_argument(
        "-f", "--format", choices=FORMATS, default=None, help="output format (default: text)"
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", default=None, help="write the report to FILE"
    )
    config = parser.add_mutually_exclusive_group()
    config.add_argument("--config", metavar="FILE", default=None, help="settings file")
    config.add_argument("--no-config", action="store_true", help="ignore .skanse.yaml")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no warnings or notes on standard error"
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
        return catalog_image(image)


def run(args: argparse.Namespace) -> int:
    import datetime as dt

    from rich.console import Console

    from skanse import __version__
    from skanse._cli.scan import _bool, _load_config, _Settings
    from skanse.config import parse_severities
    from skanse.files import write_atomic
    from skanse.model import CheckID, Severity
    from skanse.report import Format, ReportInfo, render
    from skanse.report._info import find_repo_root
    from skanse.results import apply_suppressions, decide
    from skanse.vuln.db import Database, default_database_path
    from skanse.vuln.render import render_cyclonedx, render_json, render_text
    from skanse.vuln.scan import VulnScan, scan_inventory, with_final_suppressions
    from skanse.vuln.vex import read_vex

    started = dt.datetime.now(dt.UTC)
    target = args.target
    start = target.removeprefix("sbom:").removeprefix("dir:")
    loaded = _load_config(args, [start if os.path.exists(start) else "."])
    settings = _Settings(args, os.environ, loaded.file, str(loaded.path))
    severities = settings.get("severity", parse_severities, frozenset(Severity))
    fail_on = settings.get("fail-on", Severity.parse, None)
    exit_zero = settings.get("exit-zero", _bool, False)
    strict = settings.get("strict", _bool, False)
    fmt = settings.get("format", _format, "text")
    output = settings.get("output", str, None)
    only_fixed = bool(args.only_fixed or args.ignore_unfixed)

    db_path = Path(args.db) if args.db else default_database_path()
    vex = [s for file in args.vex for s in read_vex(Path(file))]
    with Database.open(db_path) as db:
        inventory = _inventory(args, target)
        report, matches, raw = scan_inventory(
            db, inventory, target=target, vex=vex, only_fixed=only_fixed, started=started
        )
        today = dt.date.today()
        resolve = cast(Callable[[str], list[CheckID]], db.resolve)  # advisory ids are check ids
        suppressed = apply_suppressions(raw, loaded.suppressions, resolve, today)
        meta = db.meta()
    final, reported = with_final_suppressions(matches, suppressed, severities)
    outcome = decide(
        suppressed, severities=severities, fail_on=fail_on, exit_zero=exit_zero, strict=strict
    )
    database = {
        "path": str(db_path),
        "built": meta.get("built", "?"),
        "schema_version": meta.get("schema_version", "?"),
        "skanse_version": meta.get("skanse_version", "?"),
    }
    scan = VulnScan(target, inventory, report, final, reported, database)
    to_terminal = output is None and sys.stdout.isatty()
    if fmt == "text":
        width = max(100, Console().width) if to_terminal else 160
        color = to_terminal and not os.environ.get("NO_COLOR")
        document = render_text(scan, color=color, width=width)
    elif fmt == "json":
        document = render_json(scan, tool_version=__version__, exit_code=outcome.exit_code)
    elif fmt == "cyclonedx":
        document = render_cyclonedx(scan)
    else:
        info = ReportInfo(
            tool_version=__version__,
            source_root=find_repo_root(Path.cwd()),
            exit_code=outcome.exit_code,
        )
        document = render(Format(fmt), reported, info)
    if output:
        write_atomic(output, document)
    else:
        sys.stdout.write(document)
        sys.stdout.flush()
    if not args.quiet:
        err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        for warning in suppressed.warnings:
            err.print(f"warning: {warning}", markup=False, style="yellow")
        if outcome.hidden_failing:
            err.print(
                f"note: {outcome.hidden_failing} finding(s) below --severity fail the run "
                "through --fail-on",
                markup=False,
            )
        if outcome.exit_code == 2:
            err.print(f"error: {outcome.reason}", markup=False, style="red")
    return outcome.exit_code


def _format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in FORMATS:
        raise ValueError(f"unknown format {value!r} (choose from {', '.join(FORMATS)})")
    return text
