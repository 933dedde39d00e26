"""`skanse verify-blob FILE --bundle B (--key K | --certificate-identity I ...)`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

MAX_ARTIFACT_BYTES = 4 * 1024 * 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Verify a Sigstore bundle over a file, as `cosign verify-blob` does.\n\n"
        "  skanse verify-blob a.txt --bundle a.txt.sigstore.json --key cosign.pub\n"
        "  skanse verify-blob dist.whl --bundle dist.whl.sigstore.json \\\n"
        "      --certificate-identity \\\n"
        "        https://github.com/org/repo/.github/workflows/rel.yml@refs/heads/main \\\n"
        "      --certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n"
        "      --trusted-root trusted_root.json\n\n"
        "With --key the signature is checked offline by skanse (transparency-log entries are\n"
        "not looked up, like cosign --insecure-ignore-tlog). Without a key the bundle is\n"
        "keyless: sigstore-python checks the Fulcio certificate chain, its SCT, identity and\n"
        "issuer, and the Rekor inclusion proof, checkpoint and signed entry timestamp against\n"
        "--trusted-root (offline), or the Sigstore public-good root fetched through TUF.\n"
        "Exit 0 verified, 1 not verified, 2 when it could not be checked."
    )
    parser.add_argument("file", metavar="FILE", help="the signed file")
    parser.add_argument(
        "--bundle", metavar="PATH", required=True, help="the Sigstore bundle (.sigstore.json)"
    )
    parser.add_argument(
        "--key",
        metavar="PUBLIC_KEY",
        action="append",
        default=[],
        help="a public key (cosign.pub); repeatable, any one verifies",
    )
    parser.add_argument(
        "--certificate-identity", metavar="ID", help="keyless: the signer's identity (SAN)"
    )
    parser.add_argument(
        "--certificate-oidc-issuer", metavar="URL", help="keyless: the OIDC issuer of the identity"
    )
    parser.add_argument(
        "--trusted-root",
        metavar="PATH",
        help="keyless: trusted_root.json (Fulcio CAs, CT logs, Rekor keys) for offline use",
    )


def _read(path: str, what: str) -> bytes:
    from skanse.errors import InputError

    try:
        size = Path(path).stat().st_size
        if size > MAX_ARTIFACT_BYTES:
            raise InputError(f"{path}: {size:,} bytes is over the {what} limit")
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    from skanse.errors import UsageError
    from skanse.signing._common import Rejected

    keyless = args.certificate_identity or args.certificate_oidc_issuer
    if args.key and (keyless or args.trusted_root):
        raise UsageError("give either --key or the keyless flags (--certificate-*), not both")
    if not args.key and not (args.certificate_identity and args.certificate_oidc_issuer):
        raise UsageError(
            "give --key PUBLIC_KEY, or --certificate-identity and --certificate-oidc-issuer "
            "for a keyless bundle: nothing is verified against nothing"
        )
    artifact = _read(args.file, "file")
    bundle = _read(args.bundle, "bundle")
    try:
        if args.key:
            from skanse._cli._signing import load_public_keys
            from skanse.signing.bundle import verify_blob_bundle

            key = verify_blob_bundle(bundle, artifact, load_public_keys(args.key))
            print(f"Verified OK: {args.file} signed by {key.name} (key hint {key.hint})")
            return 0
        from skanse.signing.keyless import Identity, verify_keyless_blob

        result = verify_keyless_blob(
            artifact,
            bundle,
            Identity(args.certificate_identity, args.certificate_oidc_issuer),
            trusted_root=Path(args.trusted_root) if args.trusted_root else None,
        )
    except Rejected as exc:
        print(f"Not verified: {args.file}: {exc}", file=sys.stderr)
        return 1
    entry = f", Rekor log index {result.log_index}" if result.log_index is not None else ""
    print(f"Verified OK: {args.file} signed by {result.identity} ({result.issuer}){entry}")
    return 0
