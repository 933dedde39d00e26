"""`skanse verify --key cosign.pub REF...`: check an image's Cosign signatures."""

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
        "Verify Cosign signatures of images, in both places Cosign puts them: Sigstore\n"
        "bundles (OCI 1.1 referrers, or the referrers fallback tag) and the legacy\n"
        "sha256-<hex>.sig tag. Exit 0 when every image verified, 1 when one did not,\n"
        "2 on errors (an image that cannot be resolved, an unreadable key).\n\n"
        "  skanse verify --key cosign.pub host/team/app:1.0\n"
        "  skanse verify --key old.pub --key new.pub host/team/app:1.0          # rotation\n"
        "  skanse verify --key a.pub --key b.pub --key c.pub --threshold 2 REF  # 2 of 3\n"
        "  skanse verify --key cosign.pub --require-reference -f json REF\n\n"
        "Keys are checked offline; transparency-log entries are not looked up (like\n"
        "cosign verify --insecure-ignore-tlog). Without --require-reference a signature made\n"
        "for another repository verifies for the same digest here, as with Cosign."
    )
    parser.add_argument("targets", metavar="REF", nargs="+", help="images to verify")
    parser.add_argument(
        "--key",
        metavar="FILE",
        action="append",
        default=[],
        help="a public key (PKIX PEM, cosign.pub); repeatable",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=1,
        metavar="N",
        help="distinct keys that must each have signed (default: 1)",
    )
    parser.add_argument(
        "--require-reference",
        action="store_true",
        help="the signed docker-reference must name the image's repository",
    )
    parser.add_argument(
        "-a",
        "--annotation",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="the signed payload must carry this annotation; repeatable",
    )
    add_output_options(parser)
    add_registry_options(parser)
    add_deadline_option(parser)


def run(args: argparse.Namespace) -> int:
    from skanse._cli._images import registry_client
    from skanse._cli._signing import (
        check_threshold,
        load_public_keys,
        parse_annotations,
        render_verifications,
    )
    from skanse.oci.reference import parse_reference
    from skanse.signing.verify import verify_signatures

    keys = load_public_keys(args.key)
    check_threshold(args.threshold, len({k.name for k in keys}))
    annotations = parse_annotations(args.annotation)
    refs = [parse_reference(t) for t in args.targets]
    client = registry_client(args)
    try:
        results = [
            verify_signatures(
                client,
                ref,
                keys,
                threshold=args.threshold,
                require_reference=args.require_reference,
                annotations=annotations,
                deadline=args.deadline,
            )
            for ref in refs
        ]
    finally:
        client.close()
    return render_verifications(results, args)
