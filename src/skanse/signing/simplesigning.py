"""Cosign's simple-signing payload: what a legacy (`.sig` tag) signature covers.

    {"critical":{"identity":{"docker-reference":"<repo>"},
                 "image":{"docker-manifest-digest":"sha256:<hex>"},
                 "type":"cosign container image signature"},
     "optional":null}

The bytes are those of Go's `json.Marshal` (see `gojson`), so a payload made here is the one
Cosign makes for the same image and annotations. `docker-reference` is the repository with its
registry, Docker Hub spelled `index.docker.io` (go-containerregistry's `Repository.Name()`).

Reading is strict where Cosign is lax: Cosign's verifier does not look at `critical.type` or
`docker-reference`; skanse requires the type and, when asked (`require_reference`), a
reference naming the verified repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skanse.errors import ImageReferenceError
from skanse.oci.reference import DOCKER_HUB, Reference, parse_reference
from skanse.signing._common import Rejected, strict_json
from skanse.signing.gojson import marshal

__all__ = [
    "MEDIA_TYPE",
    "SIGNATURE_TYPE",
    "SimpleSigning",
    "build_payload",
    "docker_reference",
    "parse_payload",
]

MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 1024 * 1024


def docker_reference(ref: Reference) -> str:
    """The repository as Cosign writes it into `docker-reference`."""
    domain = "index.docker.io" if ref.domain == DOCKER_HUB else ref.domain
    return f"{domain}/{ref.path}"


def build_payload(
    reference: str, digest: str, annotations: Mapping[str, Any] | None = None
) -> bytes:
    """The payload bytes Cosign signs for `digest` (annotations go to `optional`)."""
    return marshal(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": SIGNATURE_TYPE,
            },
            "optional": dict(annotations) if annotations else None,
        }
    )


@dataclass(frozen=True, slots=True)
class SimpleSigning:
    """A parsed payload; `type` is already checked."""

    docker_reference: str
    digest: str
    optional: Mapping[str, Any] = field(default_factory=dict)

    def check(
        self,
        digest: str,
        *,
        repository: Reference | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Raise `Rejected` unless the payload claims `digest` (and the rest that is asked)."""
        if self.digest != digest:
            raise Rejected(f"the signature is for {self.digest}, not {digest}")
        if repository is not None and not same_repository(self.docker_reference, repository):
            raise Rejected(
                f"the signature names {self.docker_reference!r}, not {repository.repository!r} "
                "(--require-reference)"
            )
        for key, value in (annotations or {}).items():
            if str(self.optional.get(key, "\0missing")) != value:
                raise Rejected(f"annotation {key}={value} is not in the signed payload")


def same_repository(claimed: str, repository: Reference) -> bool:
    """True when `claimed` (a docker-reference) names `repository`'s registry and path."""
    try:
        parsed = parse_reference(claimed, default_tag=None)
    except ImageReferenceError:
        return False
    return parsed.repository == repository.repository


def parse_payload(data: bytes) -> SimpleSigning:
    """Read a payload strictly; `Rejected` names what is wrong."""
    doc = strict_json(data, "simple-signing payload", cap=MAX_PAYLOAD_BYTES)
    critical = doc.get("critical")
    if not isinstance(critical, dict):
        raise Rejected("simple-signing payload has no 'critical' object")
    kind = critical.get("type")
    if kind != SIGNATURE_TYPE:
        raise Rejected(f"payload type is {kind!r}, not {SIGNATURE_TYPE!r}")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str) or not digest:
        raise Rejected("payload has no critical.image.docker-manifest-digest")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    if not isinstance(reference, str):
        raise Rejected("payload has no critical.identity.docker-reference")
    optional = doc.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise Rejected("payload 'optional' is neither null nor an object")
    return SimpleSigning(reference, digest, optional or {})
