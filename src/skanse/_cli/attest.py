"""`skanse attest --key cosign.key --predicate FILE --type TYPE REF`: attach an attestation."""

from __future__ import annotations

import argparse

from skanse._cli._signing import add_registry_options

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Sign an in-toto statement about an image (an SBOM, provenance, a VEX document) and\n"
        "attach it as a Sigstore bundle (OCI 1.1 referrer, or the referrers fallback tag).\n\n"
        "  skanse sbom host/team/app:1.0 -o cyclonedx-json=app.cdx.json\n"
        "  skanse attest --key cosign.key --predicate app.cdx.json --type cyclonedx "
        "host/team/app:1.0\n\n"
        "Types: cyclonedx, spdxjson (spdx), slsaprovenance (v0.2), slsaprovenance1, vuln,\n"
        "openvex, custom, or a predicate type URI."
    )
    parser.add_argument("target", metavar="REF", help="the image the statement is about")
    parser.add_argument("--key", metavar="FILE", required=True, help="the private key")
    parser.add_argument(
        "--predicate", metavar="FILE", required=True, help="the predicate, a JSON document"
    )
    parser.add_argument(
        "--type", default="custom", help="predicate type name or URI (default: custom)"
    )
    add_registry_options(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from skanse._cli._images import registry_client
    from skanse._cli._signing import read_password
    from skanse.errors import InputError, UsageError
    from skanse.oci.reference import parse_reference
    from skanse.signing._common import Rejected, strict_json
    from skanse.signing.keys import read_private_key
    from skanse.signing.sign import attest_image, predicate_type_for

    try:
        predicate_type = predicate_type_for(args.type)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        with open(args.predicate, "rb") as handle:
            data = handle.read(64 * 1024 * 1024 + 1)
    except OSError as exc:
        raise InputError(f"{args.predicate}: {exc.strerror or exc}") from None
    if len(data) > 64 * 1024 * 1024:
        raise InputError(f"{args.predicate}: over 64 MiB")
    # read as `verify-attestation` reads the statement, so nothing is signed that the
    # verifier (skanse's or another's) would refuse or read differently
    try:
        predicate = strict_json(data, args.predicate, cap=64 * 1024 * 1024)
        json.dumps(predicate, ensure_ascii=False).encode("utf-8")
    except Rejected as exc:
        raise InputError(str(exc)) from None
    except UnicodeEncodeError:
        raise InputError(
            f"{args.predicate}: a string holds a lone surrogate escape (\\ud800-\\udfff), "
            "which UTF-8 cannot carry"
        ) from None
    ref = parse_reference(args.target)
    key = read_private_key(args.key, read_password())
    client = registry_client(args)
    try:
        result = attest_image(client, ref, key, predicate_type, predicate)
    finally:
        client.close()
    print(f"Attested {result.image} ({predicate_type}): bundle at {result.location}")
    return 0
