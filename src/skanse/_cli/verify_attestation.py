"""`skanse verify-attestation --key cosign.pub --type TYPE REF...`: check attestations."""

from __future__ import annotations

import argparse

from skanse._cli._signing import (
    add_deadline_option,
    add_output_options,
    add_registry_options,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Verify in-toto attestations of a predicate type attached as Sigstore bundles\n"
        "(Cosign v3's format). Attestations of other types never count.\n\n"
        "  skanse verify-attestation --key cosign.pub --type cyclonedx host/team/app:1.0"
    )
    parser.add_argument("targets", metavar="REF", nargs="+", help="images to verify")
    parser.add_argument(
        "--key", metavar="FILE", action="append", default=[], help="a public key; repeatable"
    )
    parser.add_argument(
        "--type", default="custom", help="predicate type name or URI (default: custom)"
    )
    parser.add_argument(
        "--threshold", type=int, default=1, metavar="N", help="distinct keys required"
    )
    add_output_options(parser)
    add_registry_options(parser)
    add_deadline_option(parser)


def run(args: argparse.Namespace) -> int:
    from skanse._cli._images import registry_client
    from skanse._cli._signing import (
        check_threshold,
        load_public_keys,
        render_verifications,
    )
    from skanse.errors import UsageError
    from skanse.oci.reference import parse_reference
    from skanse.signing.sign import predicate_type_for
    from skanse.signing.verify import verify_attestations

    try:
        predicate_type = predicate_type_for(args.type)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    keys = load_public_keys(args.key)
    check_threshold(args.threshold, len({k.name for k in keys}))
    refs = [parse_reference(t) for t in args.targets]
    client = registry_client(args)
    try:
        results = [
            verify_attestations(
                client,
                ref,
                keys,
                predicate_type,
                threshold=args.threshold,
                deadline=args.deadline,
            )
            for ref in refs
        ]
    finally:
        client.close()
    return render_verifications(results, args)
