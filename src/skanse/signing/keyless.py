"""Keyless (Fulcio certificate + Rekor) verification of Sigstore bundles, by sigstore-python.

    identity = verify_keyless_blob(artifact, bundle_bytes, Identity(...), trusted_root=path)

skanse verifies key-based signatures itself (`skanse.signing.bundle`); a keyless bundle is
handed to sigstore-python's `Verifier`, which checks what the Sigstore client spec asks:
the signing certificate chains to a Fulcio CA of the trusted root at the time the log
recorded, its embedded SCT verifies against a CT log key, its identity (SAN) and OIDC issuer
are the ones asked for, the Rekor entry's inclusion proof and signed checkpoint (and its
signed entry timestamp) verify against the log's key, the entry describes this artifact and
this signature (CVE-2022-36056), and the signature verifies over the artifact. The trusted
root is a `trusted_root.json` given by the user (offline), or else the Sigstore public-good
root through TUF (network). sigstore-python is optional: `pip install skanse[keyless]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skanse.errors import SigningError
from skanse.signing._common import Rejected

__all__ = ["Identity", "KeylessResult", "verify_keyless_blob"]

MAX_TRUSTED_ROOT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Identity:
    """Who must have signed: the certificate's SAN and the OIDC issuer that vouched for it."""

    identity: str
    issuer: str


@dataclass(frozen=True, slots=True)
class KeylessResult:
    identity: str
    issuer: str
    log_index: int | None


def _sigstore() -> Any:
    try:
        import sigstore.verify
    except ImportError:
        raise SigningError(
            "keyless verification needs sigstore-python: pip install 'skanse[keyless]'"
        ) from None
    return sigstore


def _verifier(trusted_root: Path | None) -> Any:
    _sigstore()
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    try:
        if trusted_root is None:
            return Verifier.production()
        size = trusted_root.stat().st_size
        if size > MAX_TRUSTED_ROOT_BYTES:
            raise SigningError(f"{trusted_root}: {size:,} bytes is too large for a trusted root")
        return Verifier(trusted_root=TrustedRoot.from_file(str(trusted_root)))
    except OSError as exc:
        raise SigningError(f"{trusted_root}: cannot read: {exc.strerror or exc}") from None
    except (SigstoreError, ValueError, KeyError, TypeError) as exc:
        where = trusted_root or "the Sigstore public-good trusted root"
        raise SigningError(f"{where}: not a usable trusted root: {exc}") from None


def verify_keyless_blob(
    artifact: bytes,
    bundle: bytes,
    identity: Identity,
    *,
    trusted_root: Path | None = None,
) -> KeylessResult:
    """Verify a keyless bundle over `artifact`; `Rejected` with why when it does not verify.

    `SigningError` when verification could not run (no sigstore-python, no usable trusted
    root): a check that could not run never passes.
    """
    verifier = _verifier(trusted_root)
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle
    from sigstore.verify.policy import Identity as IdentityPolicy

    try:
        parsed = Bundle.from_json(bundle)
    except (SigstoreError, ValueError, KeyError, TypeError) as exc:  # InvalidBundle is one
        raise Rejected(f"not a usable Sigstore bundle: {exc}") from None
    policy = IdentityPolicy(identity=identity.identity, issuer=identity.issuer)
    try:
        verifier.verify_artifact(artifact, parsed, policy)
    except VerificationError as exc:
        raise Rejected(str(exc)) from None
    except (SigstoreError, ValueError) as exc:  # malformed parts the parser let through
        raise Rejected(f"cannot be verified: {exc}") from None
    index = getattr(parsed.log_entry._inner, "log_index", None)
    return KeylessResult(
        identity.identity, identity.issuer, int(index) if index is not None else None
    )
