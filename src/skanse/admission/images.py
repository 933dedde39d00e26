"""Image signature rules (image glob -> keys) and the interface a verifier implements.

The webhook does not verify signatures itself: the signing layer (`skanse.signing`) provides
the verifier, and `default_verifier()` is the one place that will return it once it lands.
Until then the default verifier answers "could not check" for every image a rule selects,
and the webhook treats that as a failure in enforce mode (an unchecked image is never a
pass). Tests use a double of `ImageVerifier` only.

Rules select repositories by glob over the normalised reference without tag or digest
(`docker.io/library/nginx`): `*` matches within one path component, `**` across them, `?`
one character. Every rule that selects an image must be satisfied.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ImageOutcome",
    "ImageRule",
    "ImageVerdict",
    "ImageVerifier",
    "UnavailableVerifier",
    "default_verifier",
    "normalize_image",
    "repository_of",
    "verify_images",
]

_DEFAULT_REGISTRY = "docker.io"


def normalize_image(image: str) -> str:
    """The fully qualified reference: `nginx:1` -> `docker.io/library/nginx:1`."""
    name, at, digest = image.strip().partition("@")
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > last_slash:
        name, tag = name[:colon], name[colon:]
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first.lower(), rest
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = _DEFAULT_REGISTRY
    else:
        registry, path = _DEFAULT_REGISTRY, name
    if registry == _DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return f"{registry}/{path}{tag}{at}{digest}"


def repository_of(image: str) -> str:
    """The normalised repository without tag or digest: what rules match."""
    full = normalize_image(image).partition("@")[0]
    colon = full.rfind(":")
    return full[:colon] if colon > full.rfind("/") else full


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class ImageRule:
    """Images whose repository matches `pattern` must be signed by one of `keys`."""

    pattern: str
    keys: tuple[str, ...]
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", _glob_regex(self.pattern))

    def matches(self, image: str) -> bool:
        return self._regex.fullmatch(repository_of(image)) is not None


class ImageOutcome(enum.StrEnum):
    VERIFIED = "verified"  # a signature by one of the rule's keys was found and is valid
    REJECTED = "rejected"  # no valid signature by those keys
    COULD_NOT_CHECK = "could-not-check"  # registry unreachable, verifier missing, ...


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    image: str
    outcome: ImageOutcome
    reason: str
    rule: str = ""  # the rule's pattern

    @property
    def passed(self) -> bool:
        return self.outcome is ImageOutcome.VERIFIED


class ImageVerifier(Protocol):
    """Decides whether `image` carries a valid signature by one of `rule.keys`.

    Called off the event loop (it may reach a registry); must not raise for a bad image or
    an unreachable registry: that is a verdict (REJECTED or COULD_NOT_CHECK) with a reason.
    """

    def verify(self, image: str, rule: ImageRule) -> ImageVerdict: ...


class UnavailableVerifier:
    """The verifier of a build without the signing layer: every selected image is unchecked."""

    def verify(self, image: str, rule: ImageRule) -> ImageVerdict:
        return ImageVerdict(
            image,
            ImageOutcome.COULD_NOT_CHECK,
            "signature verification is not available in this build of skanse "
            "(the signing layer is missing)",
            rule.pattern,
        )


def default_verifier() -> ImageVerifier:
    """The verifier the server uses: the signing layer's, once it is part of skanse."""
    return UnavailableVerifier()


def verify_images(
    images: Iterable[str], rules: Iterable[ImageRule], verifier: ImageVerifier
) -> Iterator[ImageVerdict]:
    """One verdict per (image, rule that selects it); images no rule selects yield nothing."""
    rules = tuple(rules)
    seen: set[str] = set()
    for image in images:
        if image in seen:
            continue
        seen.add(image)
        for rule in rules:
            if rule.matches(image):
                try:
                    yield verifier.verify(image, rule)
                except Exception as exc:  # a verifier bug must not admit the image
                    yield ImageVerdict(
                        image,
                        ImageOutcome.COULD_NOT_CHECK,
                        f"the verifier failed: {type(exc).__name__}: {exc}",
                        rule.pattern,
                    )
