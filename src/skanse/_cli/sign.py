"""`skanse sign`: generate a Cosign key pair, or sign an image in its registry."""

from __future__ import annotations

import argparse
import sys

from skanse._cli._signing import add_registry_options, parse_annotations, read_password

__all__ = ["add_arguments", "run"]

GENERATE = "generate-key-pair"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Sign an image with a Cosign key, or make a key pair.\n\n"
        "  skanse sign generate-key-pair                 # writes cosign.key and cosign.pub\n"
        "  skanse sign --key cosign.key host/team/app:1.0\n"
        "  skanse sign --key cosign.key --bundle -a ci=build-42 host/team/app@sha256:...\n\n"
        "The tag is resolved to a digest first and the digest is signed. The default format is\n"
        "Cosign's legacy one (tag sha256-<hex>.sig; signing again appends a signature); --bundle\n"
        "writes Cosign v3's Sigstore bundle as an OCI 1.1 referrer (or through the referrers\n"
        "fallback tag). The password comes from SKANSE_PASSWORD or COSIGN_PASSWORD, or a prompt.\n"
        f"(To sign an image named {GENERATE}, spell it docker.io/library/{GENERATE}.)"
    )
    parser.add_argument(
        "target", metavar="REF", help=f"the image to sign, or '{GENERATE}' to make keys"
    )
    parser.add_argument("--key", metavar="FILE", help="the private key (cosign.key)")
    parser.add_argument(
        "-a",
        "--annotation",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an annotation to sign with the image (optional in the payload); repeatable",
    )
    parser.add_argument(
        "--bundle",
        action="store_true",
        help="write a Sigstore bundle (DSSE, in-toto) as an OCI 1.1 referrer (Cosign v3)",
    )
    parser.add_argument(
        "--sign-container-identity",
        metavar="REPOSITORY",
        default=None,
        help="the repository to name in the signature (docker-reference, or the bundle's "
        "subject name) instead of the image's",
    )
    parser.add_argument(
        "--output-key-prefix",
        metavar="PREFIX",
        default="cosign",
        help=f"{GENERATE}: write PREFIX.key and PREFIX.pub (default: cosign)",
    )
    parser.add_argument(
        "--force", action="store_true", help=f"{GENERATE}: overwrite existing key files"
    )
    add_registry_options(parser)


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from skanse.errors import UsageError
    from skanse.files import write_atomic
    from skanse.signing.keys import generate_key_pair

    private = Path(f"{args.output_key_prefix}.key")
    public = Path(f"{args.output_key_prefix}.pub")
    for path in (private, public):
        if path.exists() and not args.force:
            raise UsageError(f"{path} exists; remove it or pass --force")
    key_pem, pub_pem = generate_key_pair(read_password(confirm=True))
    write_atomic(private, key_pem, mode=0o600)
    write_atomic(public, pub_pem, mode=0o644)
    print(f"Private key written to {private}", file=sys.stderr)
    print(f"Public key written to {public}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.target == GENERATE:
        return _generate(args)
    from skanse._cli._images import registry_client
    from skanse.errors import UsageError
    from skanse.oci.reference import parse_reference
    from skanse.signing.keys import read_private_key
    from skanse.signing.sign import sign_image

    if not args.key:
        raise UsageError("--key PRIVATE_KEY is required to sign")
    ref = parse_reference(args.target)
    key = read_private_key(args.key, read_password())
    client = registry_client(args)
    try:
        result = sign_image(
            client,
            ref,
            key,
            annotations=parse_annotations(args.annotation),
            bundle=args.bundle,
            identity=args.sign_container_identity,
        )
    finally:
        client.close()
    if not result.added:
        print(
            f"{result.image} is already signed with this key and payload; nothing added "
            f"({result.location}, {result.signatures} signature(s))"
        )
    elif result.format == "bundle":
        print(f"Signed {result.image}: bundle at {result.location}")
    else:
        print(f"Signed {result.image}: {result.location} ({result.signatures} signature(s))")
    return 0
