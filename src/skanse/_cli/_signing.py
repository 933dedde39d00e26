"""Options and helpers shared by `sign`, `verify`, `attest` and `verify-attestation`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from skanse._cli._common import number
from skanse._cli._images import add_registry_arguments

__all__ = [
    "add_deadline_option",
    "add_registry_options",
    "load_public_keys",
    "parse_annotations",
    "read_password",
]

PASSWORD_VARIABLES = ("SKANSE_PASSWORD", "COSIGN_PASSWORD")
_MAX_DEADLINE = 86400.0  # a day: past any real verification, short of overflowing a timer


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser.add_argument_group("registry access"))


def add_deadline_option(parser: argparse.ArgumentParser) -> None:
    """--deadline: what one image's verification may take, all its registry requests
    together (`skanse.signing.verify.DEADLINE`)."""
    parser.add_argument(
        "--deadline",
        metavar="SECONDS",
        type=number(0.001, _MAX_DEADLINE, "a number of seconds"),
        default=300.0,  # skanse.signing.verify.DEADLINE, without importing it to parse
        help="time one image's verification may take, every registry request together; "
        "past it what was not read is a problem and the image is not verified "
        "(default: %(default)s)",
    )


def parse_annotations(values: list[str]) -> dict[str, str]:
    from skanse.errors import UsageError

    annotations = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise UsageError(f"-a {value!r}: expected key=value")
        annotations[key] = text
    return annotations


def read_password(*, confirm: bool = False) -> bytes:
    """$SKANSE_PASSWORD, else $COSIGN_PASSWORD (empty is allowed), else a terminal prompt."""
    for name in PASSWORD_VARIABLES:
        if name in os.environ:
            return os.environ[name].encode()
    from skanse.errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError(
            "no password: set SKANSE_PASSWORD or COSIGN_PASSWORD (an empty value is allowed), "
            "or run on a terminal to be asked"
        )
    import getpass

    password = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != password:
        raise UsageError("the passwords do not match")
    return password.encode()


def load_public_keys(paths: list[str]) -> list[Any]:
    from skanse.errors import UsageError
    from skanse.signing.keys import read_public_key

    if not paths:
        raise UsageError("give at least one --key PUBLIC_KEY")
    return [read_public_key(path) for path in paths]


def check_threshold(threshold: int, keys: int) -> None:
    from skanse.errors import UsageError

    if threshold < 1:
        raise UsageError("--threshold must be at least 1")
    if threshold > keys:
        raise UsageError(f"--threshold {threshold} is more than the {keys} key(s) given")


FORMATS = ("text", "json", "sarif", "junit")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default), json (every signature and its key), sarif or junit",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", default=None, help="write the report here (atomically)"
    )


def render_verifications(results: list[Any], args: argparse.Namespace) -> int:
    """Write the report; exit 0 when every image verified, else 1."""
    import json
    from pathlib import Path

    from skanse import __version__
    from skanse.files import write_atomic
    from skanse.report import Format, ReportInfo, render
    from skanse.report._info import find_repo_root
    from skanse.signing.report import to_document, to_scan_result

    code = 0 if all(r.verified for r in results) else 1
    if args.format == "json":
        import datetime as dt

        document = to_document(results, tool_version=__version__, checked=dt.datetime.now(dt.UTC))
        text = json.dumps(document, indent=2) + "\n"
    elif args.format == "text":
        from skanse.printable import printable as p

        # reasons, places and problems quote what the registry sent (tags, annotations,
        # error bodies): escaped, so none repaints the terminal or forges a line of its own
        lines = []
        for r in results:
            mark = "VERIFIED" if r.verified else "NOT VERIFIED"
            lines.append(f"{mark}  {p(r.image.split('@')[0])}@{p(r.digest)}")
            lines.append(f"  {p(r.reason)}")
            for c in r.checks:
                status = "ok  " if c.verified else "fail"
                lines.append(f"  [{status}] {p(c.format):<14} {p(c.where)}: {p(c.reason)}")
            lines.extend(f"  [warn] {p(problem)}" for problem in r.problems)
        text = "\n".join(lines) + "\n"
    else:
        info = ReportInfo(
            tool_version=__version__, source_root=find_repo_root(Path.cwd()), exit_code=code
        )
        text = render(Format(args.format), to_scan_result(results), info)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return code
