"""`skanse config schema`: the JSON Schema of .skanse.yaml, for editors and CI linting."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("schema", help="print the JSON Schema of .skanse.yaml")


def run(args: argparse.Namespace) -> int:
    from skanse.config import ConfigFile

    schema = ConfigFile.model_json_schema(by_alias=True)
    schema["title"] = ".skanse.yaml"
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")
    return 0
