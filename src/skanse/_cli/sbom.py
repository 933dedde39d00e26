"""`skanse sbom TARGET -o FORMAT[=FILE] ...`: catalogue an image or directory, write SBOMs."""

from __future__ import annotations

import argparse
import sys

from skanse._cli._images import add_image_options, image_target
from skanse.inventory.formats import FORMATS

__all__ = ["add_arguments", "run"]

FORMAT_NAMES = tuple(FORMATS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the packages in an image or a root file system and write SBOM documents.\n\n"
        "  skanse sbom alpine:3.19\n"
        "  skanse sbom oci:build/layout:v1 -o cyclonedx-json=out.json -o spdx-json=out.spdx.json\n"
        "  skanse sbom docker-archive:app.tar -o json\n"
        "  skanse sbom oci-archive:build/image.tar -o spdx-json=out.spdx.json\n"
        "  skanse sbom dir:/srv/rootfs\n\n"
        f"Formats: {', '.join(FORMAT_NAMES)}. Without =FILE a format goes to standard output."
    )
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="REF, oci:DIR[:TAG], docker-archive:FILE[:TAG], oci-archive:FILE[:TAG], dir:DIR, "
        "or a path (layout, archive, dir)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FORMAT[=FILE]",
        action="append",
        default=[],
        help="a document to write; repeatable (default: table to standard output)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 if any file could not be read or a hostile entry was neutralised",
    )
    add_image_options(parser)


def _outputs(values: list[str]) -> list[tuple[str, str | None]]:
    from skanse.errors import UsageError

    outputs = []
    for value in values or ["table"]:
        name, sep, path = value.partition("=")
        if name not in FORMAT_NAMES:
            raise UsageError(
                f"unknown SBOM format {name!r} (choose from {', '.join(FORMAT_NAMES)})"
            )
        if sep and not path:
            raise UsageError(f"-o {value}: empty file name")
        outputs.append((name, path or None))
    if sum(1 for _, path in outputs if path is None) > 1:
        raise UsageError("only one -o format can go to standard output; give the others =FILE")
    return outputs


def run(args: argparse.Namespace) -> int:
    from skanse._cli import shown
    from skanse.errors import InputError
    from skanse.files import write_atomic

    outputs = _outputs(args.output)
    with image_target(args, args.target) as (spec, image):
        if image is not None:
            image.read_ahead()  # a docker archive's layers are hashed while the rest loads
        from skanse.inventory.catalog import catalog_directory, catalog_image
        from skanse.inventory.formats import render

        if image is None:
            inventory = catalog_directory(spec.location)
        else:
            inventory = catalog_image(image)
    for problem in inventory.problems:
        print(f"skanse: warning: {shown(problem)}", file=sys.stderr)
    for name, path in outputs:
        text = render(name, inventory)
        if path is None:
            sys.stdout.write(text)
        else:
            write_atomic(path, text)
    if args.strict and inventory.problems:
        raise InputError(
            f"{len(inventory.problems)} file(s) could not be read or were neutralised (--strict)"
        )
    return 0
