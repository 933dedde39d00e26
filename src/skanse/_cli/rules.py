"""`skanse rules validate|test|fields`: Falco rules files, checked and tested offline."""

from __future__ import annotations

import argparse
import json
import sys

from skanse._cli import shown
from skanse.printable import printable

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Falco-compatible rules: validate files with every error's line and column, run\n"
        "declarative rule tests, list the fields conditions can use.\n\n"
        "  skanse rules validate falco_rules.yaml my_rules.yaml\n"
        "  skanse rules test tests/shell.yaml\n"
        "  skanse rules fields --source k8s_audit"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    validate = sub.add_parser(
        "validate",
        help="load rules files in order; exit 1 if any has an error",
        description="Load the files in order (later files override earlier ones) and list "
        "every error and warning with file, line and column. Exit 1 if there is an error.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="rules files, loaded in order")
    validate.add_argument("-f", "--format", choices=("text", "json"), default="text")
    validate.add_argument("-q", "--quiet", action="store_true", help="errors only, no warnings")
    test = sub.add_parser(
        "test",
        help="run rule tests (process tree, syscalls, expected alert)",
        description="Run the tests of a tests file (format: docs/rules.md). Exit 1 if any fails.",
    )
    test.add_argument("tests", metavar="TESTS.yaml")
    test.add_argument(
        "--rules",
        nargs="+",
        default=[],
        metavar="FILE",
        help="rules files loaded after those the tests file names",
    )
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    fields = sub.add_parser("fields", help="list the fields a condition or output can use")
    fields.add_argument("--source", choices=("syscall", "k8s_audit"), default="syscall")


def run(args: argparse.Namespace) -> int:
    if args.action == "validate":
        return _validate(args)
    if args.action == "test":
        return _test(args)
    return _fields(args)


def _validate(args: argparse.Namespace) -> int:
    from skanse.rules.loader import load_rules, read_rules_files

    files = read_rules_files(args.files)
    result = load_rules(files)
    listed = result.errors if args.quiet else result.diagnostics
    if args.format == "json":
        document = {
            "ok": result.ok,
            "files": args.files,
            "errors": [_diag(d) for d in result.errors],
            "warnings": [] if args.quiet else [_diag(d) for d in result.warnings],
        }
        if result.ruleset is not None:
            document["counts"] = {
                "rules": len(result.ruleset.rules),
                "enabled": len(result.ruleset.enabled()),
                "macros": len(result.ruleset.macros),
                "lists": len(result.ruleset.lists),
            }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        for diag in listed:
            # names and messages quote the rules file: one line each, nothing that paints
            sys.stdout.write(f"{printable(str(diag))}\n")
        if result.ruleset is not None:
            rs = result.ruleset
            sys.stderr.write(
                f"ok: {len(rs.rules)} rules ({len(rs.enabled())} enabled), {len(rs.macros)} "
                f"macros, {len(rs.lists)} lists; {len(result.warnings)} warning(s)\n"
            )
        else:
            sys.stderr.write(
                f"invalid: {len(result.errors)} error(s), {len(result.warnings)} warning(s); "
                "nothing was loaded\n"
            )
    return 0 if result.ok else 1


def _diag(d: object) -> dict[str, object]:
    from skanse.rules.loader import Diagnostic

    assert isinstance(d, Diagnostic)
    return {
        "code": d.code,
        "message": d.message,
        "item_type": d.item_type,
        "item_name": d.item_name,
        "file": d.file,
        "line": d.line,
        "column": d.column,
    }


def _test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from skanse.rules.testing import run_tests

    outcomes, result = run_tests(Path(args.tests), extra_rules=[Path(p) for p in args.rules])
    failed = [o for o in outcomes if not o.passed]
    for outcome in outcomes:
        if outcome.passed and not args.verbose:
            continue
        label = f"{outcome.name} [{outcome.case}]" if outcome.case else outcome.name
        status = "PASS" if outcome.passed else "FAIL"
        detail = f": {outcome.message}" if outcome.message else ""
        # names and messages come from the tests and rules files: no forged lines or colours
        sys.stdout.write(f"{status} {printable(label)}{printable(detail)}\n")
    names = {o.name for o in outcomes}
    sys.stdout.write(
        f"{len(outcomes) - len(failed)} passed, {len(failed)} failed "
        f"({len(names)} tests, {len(outcomes)} cases)\n"
    )
    if result is not None and result.errors:
        for diag in result.errors:
            sys.stderr.write(f"{shown(str(diag))}\n")
    return 1 if failed else 0


def _fields(args: argparse.Namespace) -> int:
    from skanse.rules.fields import field_names, spec_for

    for name in field_names(args.source):
        spec = spec_for(name, args.source)
        if spec is None:
            continue
        arg = {"required": "[ARG]", "optional": "[ARG?]"}.get(spec.arg.value, "")
        kind = f"list<{spec.type.value}>" if spec.is_list else spec.type.value
        sys.stdout.write(f"{name}{arg:8} {kind:14} {spec.description}\n")
    return 0
