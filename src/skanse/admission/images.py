"""Image signatures at admission: the signing layer's image policy decides.

The webhook's policy names an image policy file (`image-policy:`, the format of
`skanse.signing.policy`: image globs -> keys, thresholds, required attestations, exemptions,
a default for images no glob matches). `SigningVerifier` asks `verify_image()` about every
image of the object and turns its `Decision` into a verdict; `verify_image` never raises and
caches decisions by digest, so this stays cheap on the webhook's hot path.

"Could not check" (a registry that cannot be reached, a signature store that cannot be read,
a registry too slow to answer within the review's deadline) is its own outcome, and it denies
in enforce mode like a rejection: an unchecked image is never a pass.

Time: the images of one review share one deadline (`DEADLINE`, `admission serve
--image-deadline`), below the API server's `timeoutSeconds`. Each registry request has its
own deadline too, but a hostile registry answering each just inside it would hold a decision
thread for their sum, minutes per image: a few such Pods fill the thread pool, every other
review queues past the API server's timeout and, with `failurePolicy: Fail`, no Pod can be
created anywhere in the cluster.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from skanse.oci.reference import split_reference
from skanse.oci.registry import RegistryClient
from skanse.signing.policy import Policy as ImagePolicy
from skanse.signing.policy import verify_image

__all__ = [
    "DEADLINE",
    "ImageOutcome",
    "ImageVerdict",
    "ImageVerifier",
    "SigningVerifier",
    "verify_images",
]

_COULD_NOT_CHECK = "could not check"
# Seconds the image verification of one review may take, all its registry requests together:
# the API server gives up on the webhook after `timeoutSeconds` (5 in deploy/), and the rest
# of the answer (TLS, the checks, a wait for a decision thread) needs some of that.
DEADLINE = 3.0


class ImageOutcome(enum.StrEnum):
    VERIFIED = "verified"  # admitted by the image policy (signed as required, or exempt)
    REJECTED = "rejected"  # no valid signature as the policy requires, or denied by default
    COULD_NOT_CHECK = "could-not-check"  # registry unreachable, signatures unreadable, ...


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    image: str
    outcome: ImageOutcome
    reason: str
    rule: str = ""  # the glob of the rule that decided ("" for the policy's default)
    digest: str | None = None  # what was verified (a tag resolved at that moment)
    signed: bool = False  # a signature rule verified it (not an exemption or the default)

    @property
    def passed(self) -> bool:
        return self.outcome is ImageOutcome.VERIFIED

    @property
    def pinned(self) -> bool:
        """The reference names a digest, so what runs is what was verified."""
        return split_reference(self.image)[2] is not None

    @property
    def pinned_image(self) -> str | None:
        """`image@digest` for a signed tag (Kyverno's mutateDigest), or None."""
        if not (self.passed and self.signed and self.digest) or self.pinned:
            return None
        return f"{self.image}@{self.digest}"


class ImageVerifier(Protocol):
    """Decides whether `image` may run. Called off the event loop (it may reach a registry);
    must not raise for a bad image or an unreachable registry: that is a verdict. `deadline`
    is the seconds it may take (what is left of the review's); past it, "could not check"."""

    def verify(self, image: str, *, deadline: float = DEADLINE) -> ImageVerdict: ...


class SigningVerifier:
    """The verifier the server uses: `skanse.signing.policy.verify_image` over an image policy.

    `client` is for tests and special registries; by default the policy keeps one registry
    client per thread (credentials from the Docker config).
    """

    def __init__(self, policy: ImagePolicy, client: RegistryClient | None = None) -> None:
        self.policy = policy
        self.client = client

    def verify(self, image: str, *, deadline: float = DEADLINE) -> ImageVerdict:
        decision = verify_image(image, self.policy, client=self.client, deadline=deadline)
        if decision.allowed:
            outcome = ImageOutcome.VERIFIED
        elif decision.could_not_check or decision.reason.startswith(_COULD_NOT_CHECK):
            outcome = ImageOutcome.COULD_NOT_CHECK
        else:
            outcome = ImageOutcome.REJECTED
        return ImageVerdict(
            image,
            outcome,
            decision.reason,
            decision.rule or "",
            decision.digest,
            signed=bool(decision.verified_keys),
        )


def verify_images(
    images: Iterable[str], verifier: ImageVerifier, *, deadline: float = DEADLINE
) -> Iterator[ImageVerdict]:
    """One verdict per distinct image; a verifier that raises yields "could not check".

    All of them within `deadline` seconds: each image gets what the ones before it left (an
    image reached with none left is still decided if that needs no registry, a digest the
    policy's cache knows, and is "could not check" otherwise)."""
    end = time.monotonic() + deadline
    for image in dict.fromkeys(images):
        try:
            yield verifier.verify(image, deadline=max(0.0, end - time.monotonic()))
        except Exception as exc:  # a verifier bug must not admit the image
            yield ImageVerdict(
                image,
                ImageOutcome.COULD_NOT_CHECK,
                f"the verifier failed: {type(exc).__name__}: {exc}",
            )
