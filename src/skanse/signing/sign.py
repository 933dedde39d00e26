"""Sign an image, or attest something about it, and attach the result in its registry.

    key = read_private_key("cosign.key", password)
    result = sign_image(client, parse_reference("host/app:1.0"), key)           # legacy .sig
    result = sign_image(client, ref, key, bundle=True)                          # Cosign v3
    result = attest_image(client, ref, key, CYCLONEDX, json.loads(sbom_text))   # in-toto

A tag is resolved to a digest once, first, and everything after works on that digest: what is
signed is the image the tag named at that moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skanse.errors import SigningError
from skanse.oci.reference import Reference
from skanse.oci.registry import RegistryClient
from skanse.signing import simplesigning
from skanse.signing.attach import append_legacy_signature, resolve, write_referrer
from skanse.signing.bundle import (
    MAX_BUNDLE_BYTES,
    SIGN_PREDICATE_TYPE,
    build_bundle,
    build_statement,
)
from skanse.signing.keys import SigningKey

__all__ = ["PREDICATE_TYPES", "SignResult", "attest_image", "predicate_type_for", "sign_image"]

# `--type` names as Cosign spells them, and their predicate type URIs.
PREDICATE_TYPES: Mapping[str, str] = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "cyclonedx": "https://cyclonedx.org/bom",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}


def predicate_type_for(name: str) -> str:
    """A `--type` name (cyclonedx, spdxjson, ...) or a predicate type URI itself."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if name.startswith(("https://", "http://")):
        return name
    raise ValueError(
        f"unknown attestation type {name!r}: use one of {', '.join(sorted(PREDICATE_TYPES))} "
        "or a predicate type URI"
    )


@dataclass(frozen=True, slots=True)
class SignResult:
    """What was signed and where the signature went."""

    image: str
    digest: str
    format: str  # "simple-signing" or "bundle"
    location: str  # the tag, or the referrer manifest and how it is listed
    added: bool = True  # False: the same key had already signed the same payload
    signatures: int = 1  # layers now at the .sig tag (legacy format)


def sign_image(
    client: RegistryClient,
    ref: Reference,
    key: SigningKey,
    *,
    annotations: Mapping[str, str] | None = None,
    bundle: bool = False,
    identity: str | None = None,
) -> SignResult:
    """Sign what `ref` names now. `identity` overrides `docker-reference` (Cosign's
    `--sign-container-identity`)."""
    # a digest reference is fetched too: it must exist and its content hash to it
    subject = resolve(client, ref)
    digest = subject.digest
    pinned = ref.with_digest(digest)
    if bundle:
        # Cosign leaves the subject unnamed; the name lets --require-reference check bundles
        statement = build_statement(
            digest,
            SIGN_PREDICATE_TYPE,
            {},
            name=identity or simplesigning.docker_reference(ref),
            annotations=annotations,
        )
        manifest_digest, listed = write_referrer(
            client, ref, subject, build_bundle(key, statement), SIGN_PREDICATE_TYPE
        )
        return SignResult(str(pinned), digest, "bundle", f"referrer {manifest_digest} ({listed})")
    payload = simplesigning.build_payload(
        identity or simplesigning.docker_reference(ref), digest, annotations
    )
    signature = key.sign(payload)
    tag, count, added = append_legacy_signature(
        client, ref, digest, payload, signature, verifier=key.public_key()
    )
    return SignResult(
        str(pinned), digest, "simple-signing", f"{ref.repository}:{tag}", added, count
    )


def attest_image(
    client: RegistryClient,
    ref: Reference,
    key: SigningKey,
    predicate_type: str,
    predicate: Any,
) -> SignResult:
    """Attach a signed in-toto statement (`predicate_type`, `predicate`) about `ref`."""
    subject = resolve(client, ref)
    statement = build_statement(
        subject.digest, predicate_type, predicate, name=simplesigning.docker_reference(ref)
    )
    bundle = build_bundle(key, statement)
    if len(bundle) > MAX_BUNDLE_BYTES:
        # base64 makes the statement a third larger: refused here, not by every verifier
        raise SigningError(
            f"the attestation bundle would be {len(bundle)} bytes, over the "
            f"{MAX_BUNDLE_BYTES}-byte cap verifiers read (the predicate is too large)"
        )
    manifest_digest, listed = write_referrer(client, ref, subject, bundle, predicate_type)
    return SignResult(
        str(ref.with_digest(subject.digest)),
        subject.digest,
        "bundle",
        f"referrer {manifest_digest} ({listed})",
    )
