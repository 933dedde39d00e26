"""`skanse checks list` and `skanse checks show ID`."""

from __future__ import annotations

import argparse
import json
import sys

from skanse._cli.scan import PROFILES

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="list every check with its severity and profiles")
    listing.add_argument(
        "--profile",
        default=None,
        choices=PROFILES,
        help="only the checks this profile runs (PSS at latest)",
    )
    listing.add_argument("-f", "--format", choices=("text", "json"), default="text")
    show = sub.add_parser("show", help="show a check: description, fix, references, examples")
    show.add_argument("check_id", metavar="ID", help="a check id or a peer's alias (KSV-0017)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from skanse.checks._all import REGISTRY
    from skanse.checks.kubernetes.pss_policy import parse_policy
    from skanse.checks.profiles import Profile, default_pss_level, profiles_of, select_checks
    from skanse.errors import UsageError

    console = Console(highlight=False)
    if args.action == "list":
        checks = list(REGISTRY.all())
        if args.profile:
            profile = Profile(args.profile)
            checks = select_checks(REGISTRY, profile, parse_policy(default_pss_level(profile)))
        if args.format == "json":
            rows = [
                {
                    "id": c.id,
                    "title": c.meta.title,
                    "severity": c.meta.severity.value,
                    "profiles": sorted(profiles_of(c.meta)),
                    "pss_control": c.meta.pss_control,
                    "aliases": list(c.meta.aliases),
                }
                for c in checks
            ]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return 0
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("ID", "SEVERITY", "TITLE", "PROFILES", "ALIASES"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(
                c.id,
                c.meta.severity.value,
                Text(c.meta.title),
                ", ".join(sorted(profiles_of(c.meta))),
                ", ".join(c.meta.aliases),
            )
        console.print(table)
        return 0

    ids = REGISTRY.resolve(args.check_id)
    if not ids:
        raise UsageError(f"no check or alias {args.check_id!r} (see skanse checks list)")
    for check_id in ids:
        check = REGISTRY.get(check_id)
        meta = check.meta
        # check text is printed as it is: rich markup would eat "[egress]"-like words
        console.print(Text.assemble((meta.id, "bold"), f"  {meta.title}  ({meta.severity.value})"))
        if meta.pss_control:
            console.print(
                f"Pod Security {meta.pss_level} control: {meta.pss_control}", markup=False
            )
        console.print(f"profiles: {', '.join(sorted(profiles_of(meta)))}", markup=False)
        if meta.aliases:
            console.print(f"aliases: {', '.join(meta.aliases)}", markup=False)
        console.print()
        console.print(meta.description, markup=False)
        console.print()
        console.print(Text.assemble(("Fix:", "bold"), f" {meta.remediation}"))
        for ref in meta.references:
            console.print(f"  {ref}", markup=False)
        examples = REGISTRY.examples(check)
        for label, texts in (("passes", examples.good), ("fails", examples.bad)):
            for text in texts:
                console.print(Text(f"\nExample that {label}:", style="bold"))
                console.print(text.rstrip(), markup=False)
    return 0
