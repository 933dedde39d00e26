"""Verify an image's signatures or attestations with one or more keys and a threshold.

    result = verify_signatures(client, ref, [read_public_key("a.pub"), read_public_key("b.pub")],
                               threshold=2)
    result.verified, result.reason, result.verified_keys, result.checks

Every signature found (bundles through the referrers API or the fallback tag, then the legacy
`.sig` tag) becomes a `SignatureCheck` saying which key verified it, or why none did. The image
is verified when at least `threshold` distinct keys each verified a signature whose claims hold:
the payload's digest is the image's digest, its type is Cosign's, and, if asked, its
`docker-reference` names the repository and the annotations are in the payload. Nothing that
goes wrong is a pass: an unreadable place, a hostile manifest, a malformed payload each give
"not verified" with the reason.

Time is bounded for the whole verification, not only for each request: with `deadline`, all
the registry's answers (resolving the tag, the places, every payload) must be in within that
many seconds together, or the verification is "could not check". A registry that answers each
request just inside its own deadline would otherwise hold the verifier for their sum.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from skanse.oci.reference import Reference
from skanse.oci.registry import Deadline, RegistryClient
from skanse.signing import simplesigning
from skanse.signing._common import OtherPredicate, Rejected
from skanse.signing.attach import Attached, Limits, find_bundles, find_legacy_signatures, resolve
from skanse.signing.bundle import SIGN_PREDICATE_TYPE, Statement, verify_image_bundle
from skanse.signing.keys import PublicKey
from skanse.signing.simplesigning import same_repository

__all__ = [
    "DEADLINE",
    "SignatureCheck",
    "Verification",
    "check_attached",
    "deadline_problem",
    "verify_attestations",
    "verify_signatures",
]


# Seconds one image's verification may take, all its registry requests together, unless the
# caller says otherwise: minutes for a person at a terminal (a healthy registry answers in
# seconds), not the hours 1,000 signatures each answered just inside the per-request deadline
# would take. The admission webhook passes a far shorter one (its answer is due in seconds).
DEADLINE = 300.0


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One signature (or attestation) and what became of it."""

    where: str
    format: str  # "simple-signing" or "bundle"
    verified: bool
    reason: str
    key: str | None = None  # the key whose signature it is, when one verified it
    predicate_type: str | None = None
    docker_reference: str | None = None
    unread: bool = False  # the registry could not be read for it (`Attached.unread`)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome for one image: verified or not, and why."""

    image: str
    digest: str
    what: str  # "signature", or "attestation <predicate type>"
    keys: tuple[str, ...]
    threshold: int
    checks: tuple[SignatureCheck, ...]
    problems: tuple[str, ...] = ()

    @property
    def verified_keys(self) -> tuple[str, ...]:
        """Distinct keys that verified at least one signature whose claims hold."""
        seen = {c.key for c in self.checks if c.verified and c.key is not None}
        return tuple(k for k in self.keys if k in seen)

    @property
    def complete(self) -> bool:
        """False when a place or a signature could not be read: a denial then may not be the
        final word (a signature whose download failed may verify on the next try)."""
        return not self.problems and not any(c.unread for c in self.checks)

    @property
    def verified(self) -> bool:
        return self.threshold >= 1 and len(self.verified_keys) >= self.threshold

    @property
    def reason(self) -> str:
        keys = self.verified_keys
        if self.verified:
            return (
                f"{self.what} verified by {len(keys)} key(s), threshold {self.threshold}: "
                + ", ".join(keys)
            )
        parts = []
        if not self.checks and self.problems:
            return "not verified: could not check: " + "; ".join(self.problems)
        if not self.checks:
            parts.append(f"no {self.what} found for {self.digest}")
        elif keys:
            parts.append(
                f"only {len(keys)} of the {self.threshold} required keys verified a "
                f"{self.what} ({', '.join(keys)})"
            )
        else:
            reasons = sorted({c.reason for c in self.checks if not c.verified})
            parts.append(f"no valid {self.what}: " + "; ".join(reasons[:5]))
        parts.extend(self.problems)
        return "not verified: " + "; ".join(parts)


def check_attached(
    item: Attached,
    digest: str,
    keys: Sequence[PublicKey],
    *,
    predicate_type: str = SIGN_PREDICATE_TYPE,
    repository: Reference | None = None,
    annotations: Mapping[str, str] | None = None,
) -> SignatureCheck:
    """Verify one found signature or bundle; never raises for bad content."""
    if item.error is not None:
        return SignatureCheck(item.where, item.format, False, item.error, unread=item.unread)
    if item.format == "bundle":
        try:
            key, statement = verify_image_bundle(item.payload, digest, keys, predicate_type)
        except OtherPredicate as exc:
            return SignatureCheck(
                item.where, item.format, False, str(exc), predicate_type=exc.predicate_type
            )
        except Rejected as exc:
            return SignatureCheck(item.where, item.format, False, str(exc))
        try:
            _check_subject(statement, digest, repository, annotations)
        except Rejected as exc:
            return SignatureCheck(
                item.where, item.format, False, f"signed by {key.name}, but {exc}", key.name
            )
        subject = statement.subjects_for(digest)[0]
        return SignatureCheck(
            item.where,
            item.format,
            True,
            f"valid, signed by {key.name}",
            key.name,
            statement.predicate_type,
            subject.name,
        )
    signer = next((k for k in keys if k.verify(item.signature, item.payload)), None)
    if signer is None:
        reason = "the signature does not verify with " + (
            f"the key {keys[0].name}" if len(keys) == 1 else f"any of the {len(keys)} keys"
        )
        return SignatureCheck(item.where, item.format, False, reason)
    try:
        payload = simplesigning.parse_payload(item.payload)
        payload.check(digest, repository=repository, annotations=annotations)
    except Rejected as exc:
        return SignatureCheck(
            item.where, item.format, False, f"signed by {signer.name}, but {exc}", signer.name
        )
    return SignatureCheck(
        item.where,
        item.format,
        True,
        f"valid, signed by {signer.name}",
        signer.name,
        docker_reference=payload.docker_reference,
    )


def _check_subject(
    statement: Statement,
    digest: str,
    repository: Reference | None,
    annotations: Mapping[str, str] | None,
) -> None:
    """The simple-signing claims, for a bundle: a subject of `digest` that names the
    repository (when asked) and carries the annotations. A bundle without a subject name
    cannot show its repository, so --require-reference refuses it."""
    subjects = statement.subjects_for(digest)
    if repository is not None:
        named = [s for s in subjects if s.name and same_repository(s.name, repository)]
        if not named:
            names = sorted({s.name for s in subjects if s.name})
            raise Rejected(
                f"the statement names {', '.join(map(repr, names)) or 'no repository'}, not "
                f"{repository.repository!r} (--require-reference)"
            )
        subjects = named
    for key, value in (annotations or {}).items():
        if not any(s.annotations.get(key) == value for s in subjects):
            raise Rejected(f"annotation {key}={value} is not in the signed statement")


def _check_each(
    items: Iterator[Attached], check: Callable[[Attached], SignatureCheck]
) -> Iterator[SignatureCheck]:
    """Check what was found one item at a time: each payload (up to 64 MiB for a bundle) is
    dropped before the next is fetched, so memory holds one, not all of them. Every item is
    checked, as the report lists each signature with its outcome."""
    for item in items:
        result = check(item)
        del item  # before the loop fetches the next one
        yield result


@contextlib.contextmanager
def _bounded(client: RegistryClient, seconds: float | None) -> Iterator[Deadline | None]:
    if seconds is None:
        yield None
        return
    with client.deadline(seconds) as deadline:
        yield deadline


def deadline_problem(deadline: Deadline) -> str:
    """Why a verification whose deadline passed is "could not check"."""
    return (
        f"the registry did not answer within the {round(deadline.seconds, 3):g} s the whole "
        "verification may take; what was not read may verify on the next try"
    )


def _cut(result: Verification, deadline: Deadline | None) -> Verification:
    """A verification its deadline ended: the missing answers are a problem, so it is not
    complete (never final) and says why."""
    if deadline is None or not deadline.passed():
        return result
    return replace(result, problems=(*result.problems, deadline_problem(deadline)))


def _names(keys: Sequence[PublicKey]) -> tuple[str, ...]:
    names: list[str] = []
    for key in keys:
        if key.name not in names:
            names.append(key.name)
    return tuple(names)


def verify_signatures(
    client: RegistryClient,
    ref: Reference,
    keys: Sequence[PublicKey],
    *,
    threshold: int = 1,
    require_reference: bool = False,
    annotations: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    digest: str | None = None,
    deadline: float | None = DEADLINE,
) -> Verification:
    """Verify the image's signatures. Raises only when the image itself cannot be resolved.

    `deadline`: seconds all its registry requests may take together; past it what was not
    read is a problem, so the result is not `complete` (None: for a caller that bounds the
    whole itself, as `verify_image` does)."""
    with _bounded(client, deadline) as bound:
        return _cut(
            _verify_signatures(
                client, ref, keys, threshold, require_reference, annotations, limits, digest
            ),
            bound,
        )


def _verify_signatures(
    client: RegistryClient,
    ref: Reference,
    keys: Sequence[PublicKey],
    threshold: int,
    require_reference: bool,
    annotations: Mapping[str, str] | None,
    limits: Limits | None,
    digest: str | None,
) -> Verification:
    limits = limits or Limits()
    digest = digest or ref.digest or resolve(client, ref).digest
    bundles, bundle_problems = find_bundles(
        client, ref, digest, limits, predicate_type=SIGN_PREDICATE_TYPE
    )
    legacy, legacy_problems = find_legacy_signatures(client, ref, digest, limits)
    checked = _check_each(
        itertools.chain(bundles, legacy),
        lambda item: check_attached(
            item,
            digest,
            keys,
            repository=ref if require_reference else None,
            annotations=annotations,
        ),
    )
    # a bundle made by `skanse attest` is an attestation, not a signature: left out here
    checks = [c for c in checked if c.predicate_type in (None, SIGN_PREDICATE_TYPE)]
    return Verification(
        str(ref),
        digest,
        "signature",
        _names(keys),
        threshold,
        tuple(checks),
        tuple(bundle_problems + legacy_problems),
    )


def verify_attestations(
    client: RegistryClient,
    ref: Reference,
    keys: Sequence[PublicKey],
    predicate_type: str,
    *,
    threshold: int = 1,
    limits: Limits | None = None,
    digest: str | None = None,
    deadline: float | None = DEADLINE,
) -> Verification:
    """Verify attestations of `predicate_type` (bundles only; Cosign v3's format).

    Attestations of other types do not count, whatever their signature (CVE-2022-35929).
    `deadline` as for `verify_signatures`.
    """
    with _bounded(client, deadline) as bound:
        return _cut(
            _verify_attestations(client, ref, keys, predicate_type, threshold, limits, digest),
            bound,
        )


def _verify_attestations(
    client: RegistryClient,
    ref: Reference,
    keys: Sequence[PublicKey],
    predicate_type: str,
    threshold: int,
    limits: Limits | None,
    digest: str | None,
) -> Verification:
    limits = limits or Limits()
    digest = digest or ref.digest or resolve(client, ref).digest
    bundles, problems = find_bundles(client, ref, digest, limits, predicate_type=predicate_type)
    checks = tuple(
        _check_each(
            bundles, lambda item: check_attached(item, digest, keys, predicate_type=predicate_type)
        )
    )
    return Verification(
        str(ref),
        digest,
        f"attestation {predicate_type}",
        _names(keys),
        threshold,
        checks,
        tuple(problems),
    )
