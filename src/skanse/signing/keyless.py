"""Keyless (Fulcio certificate + Rekor) verification of Sigstore bundles, by sigstore-python.

    identity = verify_keyless_blob(artifact, bundle_bytes, Identity(...), trusted_root=path)

skanse verifies key-based signatures itself (`skanse.signing.bundle`); a keyless bundle is
handed to sigstore-python's `Verifier`, which checks what the Sigstore client spec asks:
the signing certificate chains to a Fulcio CA of the trusted root at the time the log
recorded, its embedded SCT verifies against a CT log key, its identity (SAN) and OIDC issuer
are the ones asked for, the Rekor entry's inclusion proof and signed checkpoint (and its
signed entry timestamp) verify against the log's key, the entry describes this artifact and
this signature (CVE-2022-36056), and the signature verifies over the artifact. Beyond
sigstore-python, a CA or log key counts only if the entry's times (integrated, timestamped)
fall within its `validFor`, end included. The trusted
root is a `trusted_root.json` given by the user (offline), or else the Sigstore public-good
root through TUF (network). sigstore-python is optional: `pip install skanse[keyless]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
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


def _trusted_root(trusted_root: Path | None) -> Any:
    _sigstore()
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig, TrustedRoot

    try:
        if trusted_root is None:
            return ClientTrustConfig.production().trusted_root
        size = trusted_root.stat().st_size
        if size > MAX_TRUSTED_ROOT_BYTES:
            raise SigningError(f"{trusted_root}: {size:,} bytes is too large for a trusted root")
        return TrustedRoot.from_file(str(trusted_root))
    except OSError as exc:
        raise SigningError(f"{trusted_root}: cannot read: {exc.strerror or exc}") from None
    except (SigstoreError, ValueError, KeyError, TypeError) as exc:
        where = trusted_root or "the Sigstore public-good trusted root"
        raise SigningError(f"{where}: not a usable trusted root: {exc}") from None


def _claimed_times(bundle: Any) -> list[datetime]:
    """When the bundle says it was logged and timestamped (not verified here: sigstore-python
    verifies the ones it uses; an unverified one can only narrow the root, see `_root_at`)."""
    times = []
    integrated = bundle.log_entry._inner.integrated_time
    if integrated:
        try:
            times.append(datetime.fromtimestamp(int(integrated), tz=UTC))
        except (OverflowError, OSError, ValueError):
            raise Rejected(
                f"the log entry's integrated time {integrated} is out of range"
            ) from None
    material = bundle.verification_material.timestamp_verification_data
    for response in material.rfc3161_timestamps if material else ():
        when = response.tst_info.gen_time
        times.append(when if when.tzinfo else when.replace(tzinfo=UTC))
    return times


def _root_at(root: Any, times: list[datetime]) -> Any:
    """`root` with only the Fulcio CAs and Rekor and CT log keys valid at every one of
    `times`. sigstore-python trusts a CA or log key whose `validFor` has ended for any entry
    (it only asks that the CA or key be valid *now* when signing); a CA or key retired at
    its end, perhaps because it leaked, must not vouch for what was logged after."""
    from sigstore.models import TrustedRoot

    def covers(period: Any) -> bool:
        if period is None:
            return True
        return all(
            period.start <= when and (period.end is None or when <= period.end) for when in times
        )

    inner = root._inner
    kept = {
        "certificate_authorities": [
            ca for ca in inner.certificate_authorities if covers(ca.valid_for)
        ],
        "tlogs": [log for log in inner.tlogs if covers(log.public_key.valid_for)],
        "ctlogs": [log for log in inner.ctlogs if covers(log.public_key.valid_for)],
    }
    for field, what in (
        ("certificate_authorities", "certificate authority"),
        ("tlogs", "transparency log key"),
        ("ctlogs", "certificate transparency log key"),
    ):
        if getattr(inner, field) and not kept[field]:
            stamp = ", ".join(when.strftime("%Y-%m-%dT%H:%M:%SZ") for when in times)
            raise Rejected(f"no {what} of the trusted root was valid at {stamp}")
    return TrustedRoot(inner.model_copy(update=kept))


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
    root = _trusted_root(trusted_root)
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity as IdentityPolicy

    try:
        parsed = Bundle.from_json(bundle)
    except (SigstoreError, ValueError, KeyError, TypeError) as exc:  # InvalidBundle is one
        raise Rejected(f"not a usable Sigstore bundle: {exc}") from None
    policy = IdentityPolicy(identity=identity.identity, issuer=identity.issuer)
    try:
        verifier = Verifier(trusted_root=_root_at(root, _claimed_times(parsed)))
        verifier.verify_artifact(artifact, parsed, policy)
    except Rejected:
        raise
    except VerificationError as exc:
        raise Rejected(str(exc)) from None
    except (SigstoreError, ValueError, OverflowError, OSError) as exc:
        # malformed parts the parser let through; a time past what datetime holds
        raise Rejected(f"cannot be verified: {exc}") from None
    index = getattr(parsed.log_entry._inner, "log_index", None)
    return KeylessResult(
        identity.identity, identity.issuer, int(index) if index is not None else None
    )
