"""Build skanse's two images with podman, reproducibly: `make image` and the tests call this.

    python3 tools/images.py [--no-cache] [--base IMAGE]

builds `cli` (the CLI and admission webhook) as localhost/skanse:VERSION and `sensor` as
localhost/skanse-sensor:VERSION from the project's Dockerfile, and prints each name and image
id. The base is the one tools/debian_base.py makes from Debian's packages unless --base (or
$SKANSE_IMAGE_BASE) names another; SOURCE_DATE_EPOCH (file times, creation times) defaults
to a fixed date, so the same sources, base and packages give the same image ids, from
podman's layer cache or not. $SKANSE_BUILD_CA (else $PIP_CERT)
names a CA bundle pip inside the build trusts, as the build secret `pip-ca` (for a
TLS-inspecting proxy; it is not written into the image). Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the sibling module importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.debian_base import EPOCH, PODMAN_RUN_OPTIONS, Unavailable, base_image

PROJECT = Path(__file__).resolve().parent.parent
REPOSITORIES = {"cli": "localhost/skanse", "sensor": "localhost/skanse-sensor"}


@dataclass(frozen=True, slots=True)
class BuiltImage:
    target: str
    name: str
    image_id: str


def version() -> str:
    text = (PROJECT / "src" / "skanse" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if found is None:
        raise Unavailable("no __version__ in src/skanse/__init__.py")
    return found.group(1)


def source_date_epoch() -> int:
    """$SOURCE_DATE_EPOCH, else a fixed date (EPOCH, that of the base).

    Not the last commit's time: podman's layer cache does not key on --timestamp, so a step
    cached under one commit (an ARG, the dependencies' layer) kept that commit's times in a
    build of the next, and the image differed from a --no-cache build of the same sources.
    """
    given = os.environ.get("SOURCE_DATE_EPOCH")
    return int(given) if given else EPOCH


def build(
    target: str,
    *,
    base: str | None = None,
    tag: str | None = None,
    no_cache: bool = False,
    epoch: int | None = None,
    context: Path = PROJECT,
    build_args: Mapping[str, str] | None = None,
) -> BuiltImage:
    """Build one of the Dockerfile's targets; the image id is the config's digest.

    context is a directory with the project's Dockerfile and sources (default: this one);
    build_args are more --build-arg values (SKANSE_BPF=0: compile no BPF object).
    """
    for source in sorted((context / "src" / "skanse" / "runtime" / "bpf").glob("*.bpf.c")):
        built = source.with_name(source.name.removesuffix(".c") + ".o")
        if built.exists() and built.stat().st_mtime < source.stat().st_mtime:
            # the image would carry a kernel program that does not match the sensor's code
            raise Unavailable(f"{built} is older than {source.name}: run `make bpf` first")
    base = base or os.environ.get("SKANSE_IMAGE_BASE") or base_image()
    epoch = source_date_epoch() if epoch is None else epoch
    name = tag or f"{REPOSITORIES[target]}:{version()}"
    argv = [
        "podman",
        "build",
        *PODMAN_RUN_OPTIONS,
        "--network",
        "host",
        "--timestamp",
        str(epoch),
        # no history: a cached step's entry keeps the time and parent id of the build that
        # made it, so with history a cached build differs from a --no-cache one
        "--omit-history",
        "--build-arg",
        f"SOURCE_DATE_EPOCH={epoch}",
        "--build-arg",
        f"BASE={base}",
        "--target",
        target,
        "-t",
        name,
        "-f",
        str(context / "Dockerfile"),
    ]
    for key, value in (build_args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    ca_bundle = os.environ.get("SKANSE_BUILD_CA") or os.environ.get("PIP_CERT")
    if ca_bundle and Path(ca_bundle).is_file():
        argv += ["--secret", f"id=pip-ca,src={ca_bundle}"]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(context))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"podman build --target {target} did not finish in 30 minutes") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        raise Unavailable(f"podman build --target {target} failed: {' | '.join(tail)}")
    inspect = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return BuiltImage(target, name, "sha256:" + inspect.stdout.strip().removeprefix("sha256:"))


def main() -> int:
    parser = argparse.ArgumentParser(description="Build skanse's images with podman.")
    parser.add_argument("--base", help="base image (default: the local Debian base)")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help="cli and/or sensor (default: both)"
    )
    args = parser.parse_args()
    unknown = set(args.targets) - set(REPOSITORIES)
    if unknown:
        parser.error(f"unknown target {sorted(unknown)[0]!r} (cli, sensor)")
    try:
        for target in args.targets or sorted(REPOSITORIES):
            built = build(target, base=args.base, no_cache=args.no_cache)
            print(f"{built.name} {built.image_id}")
    except Unavailable as error:
        print(f"images: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
