"""Options shared by the image commands (`image inspect`, `sbom`, `vuln`) and opening a target;
registry access, shared with the signing commands too."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["add_image_options", "add_registry_arguments", "image_target", "registry_client"]


def add_registry_arguments(group: argparse._ArgumentGroup) -> None:
    """--plain-http, --ca-certs and --docker-config: how to reach a registry."""
    group.add_argument(
        "--plain-http",
        metavar="HOST[:PORT]",
        action="append",
        default=[],
        help="talk to this registry over plain HTTP (loopback registries always are); repeatable",
    )
    group.add_argument("--ca-certs", metavar="PEM", default=None, help="CA bundle for registry TLS")
    group.add_argument(
        "--docker-config",
        metavar="FILE",
        default=None,
        help="registry credentials (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)",
    )


def registry_client(args: argparse.Namespace, cache: Any = None) -> Any:
    """A `RegistryClient` for the options `add_registry_arguments` added."""
    from skanse.oci.registry import RegistryClient, RegistryOptions

    return RegistryClient(
        RegistryOptions(
            plain_http=frozenset(args.plain_http),
            ca_certs=args.ca_certs,
            docker_config=args.docker_config,
        ),
        cache=cache,
    )


def add_image_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("image access")
    group.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        default=None,
        help="which image of a multi-arch index (default: linux/amd64)",
    )
    add_registry_arguments(group)
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="blob cache (default: $SKANSE_CACHE_DIR or ~/.cache/skanse)",
    )
    group.add_argument(
        "--no-cache", action="store_true", help="download blobs into a temporary cache"
    )


@contextlib.contextmanager
def image_target(args: argparse.Namespace, target: str) -> Iterator[tuple[Any, Any]]:
    """(ImageSpec, Image or None for a directory); closed, temporary cache removed, after."""
    from skanse.oci.cache import BlobCache, default_cache_dir
    from skanse.oci.image import open_image, parse_spec
    from skanse.oci.manifest import parse_platform

    spec = parse_spec(target)
    if spec.kind == "dir":
        yield spec, None
        return
    platform = parse_platform(args.platform) if args.platform else None
    client = None
    temporary = None
    if spec.kind == "registry":
        if args.no_cache:
            cache_root = temporary = tempfile.mkdtemp(prefix="skanse-cache-")
        else:
            cache_root = args.cache_dir or str(default_cache_dir())
        os.makedirs(cache_root, exist_ok=True, mode=0o700)
        client = registry_client(args, cache=BlobCache(cache_root))
    try:
        image = open_image(spec, platform=platform, client=client)
        try:
            yield spec, image
        finally:
            image.close()
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
