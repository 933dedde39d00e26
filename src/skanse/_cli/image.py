"""`skanse image inspect REF`: manifest digest, config, layers and history of an image."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from skanse._cli._images import add_image_options, image_target

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show what an image is made of, without running or extracting it.\n\n"
        "  skanse image inspect alpine:3.19\n"
        "  skanse image inspect oci:build/layout:v1 --format json\n"
        "  skanse image inspect docker-archive:app.tar"
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="manifest digest, config, layers and history",
        description="REF: a registry reference, oci:DIR[:TAG], docker-archive:FILE[:TAG], "
        "oci-archive:FILE[:TAG], or a path",
    )
    inspect.add_argument("target", metavar="REF")
    inspect.add_argument("-f", "--format", choices=("text", "json"), default="text")
    add_image_options(inspect)


def _describe(image: Any) -> dict[str, Any]:
    config = image.config
    return {
        "name": image.name,
        "source": image.source,
        "reference": str(image.reference) if image.reference else None,
        "manifest_digest": image.manifest_digest,
        "index_digest": image.index_digest,
        "media_type": image.manifest.media_type if image.manifest else None,
        "config_digest": image.config_digest,
        "platform": str(config.platform),
        "created": config.created,
        "user": config.user,
        "entrypoint": list(config.entrypoint),
        "cmd": list(config.cmd),
        "env": list(config.env),
        "labels": dict(config.labels),
        "layers": [
            {
                "digest": layer.digest,
                "diff_id": diff_id,
                "size": layer.size,
                "media_type": layer.media_type,
            }
            for layer, diff_id in zip(image.layers, config.diff_ids, strict=True)
        ],
        "history": [
            {"created": h.created, "created_by": h.created_by, "empty_layer": h.empty_layer}
            for h in config.history
        ],
    }


def run(args: argparse.Namespace) -> int:
    from skanse.errors import UsageError

    with image_target(args, args.target) as (_spec, image):
        if image is None:
            raise UsageError(f"{args.target} is a directory, not an image (use skanse sbom)")
        info = _describe(image)
    if args.format == "json":
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return 0
    from skanse.printable import printable

    def line(text: str) -> None:
        # the config and manifest are the image author's text: shown, never obeyed
        sys.stdout.write(printable(text) + "\n")

    line(f"Image:     {info['name']}")
    if info["manifest_digest"]:
        line(f"Digest:    {info['manifest_digest']}")
    if info["index_digest"]:
        line(f"Index:     {info['index_digest']}")
    if info["media_type"]:
        line(f"Type:      {info['media_type']}")
    line(f"Image ID:  {info['config_digest']}")
    line(f"Platform:  {info['platform']}")
    if info["created"]:
        line(f"Created:   {info['created']}")
    if info["user"]:
        line(f"User:      {info['user']}")
    if info["entrypoint"] or info["cmd"]:
        line(f"Command:   {json.dumps(info['entrypoint'] + info['cmd'])}")
    line(f"Layers:    {len(info['layers'])}")
    for i, layer in enumerate(info["layers"]):
        line(f"  {i:>3}  {layer['digest']}  {layer['size']:>12}  {layer['media_type']}")
    if info["history"]:
        line("History:")
        for step in info["history"]:
            marker = " " if step["empty_layer"] else "+"
            line(f"  {marker} {step['created_by'] or ''}")
    return 0
