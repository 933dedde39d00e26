"""Sigstore bundles v0.3 with a DSSE envelope over an in-toto statement (Cosign v3's format).

A signature in this format is a statement

    {"_type":"https://in-toto.io/Statement/v1",
     "subject":[{"digest":{"sha256":"<image digest hex>"}}],
     "predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}

signed as DSSE (the signature covers PAE = `DSSEv1 <len> <payloadType> <len> <payload>`, not
the payload alone) and wrapped in a bundle whose `verificationMaterial.publicKey.hint` names
the key. An attestation is the same with another predicate type and a predicate (an SBOM).

Verification here is key-based and offline: the DSSE signature must verify with one of the
given keys, the payload type must be in-toto, the statement well formed, one subject must
carry the image's sha256, and the predicate type must be the one asked for. Transparency log
entries and timestamps in a bundle are not checked (bundles made with a key and no Rekor have
none); certificate (keyless) bundles are refused. `messageSignature` bundles over a file
(sigstore-conformance's managed-key cases) are verified by `verify_blob_bundle`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skanse.signing._common import OtherPredicate, Rejected, b64decode, strict_json
from skanse.signing.keys import PublicKey, SigningKey

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "INTOTO_PAYLOAD_TYPE",
    "SIGN_PREDICATE_TYPE",
    "Statement",
    "Subject",
    "build_blob_bundle",
    "build_bundle",
    "build_statement",
    "pae",
    "parse_statement",
    "verify_blob_bundle",
    "verify_blob_digest",
    "verify_image_bundle",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# the other spelling protobuf-specs allows for v0.3
_BUNDLE_MEDIA_TYPES = frozenset(
    {BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"}
)
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
_STATEMENT_TYPES = frozenset({STATEMENT_V1, "https://in-toto.io/Statement/v0.1"})
SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
_MAX_DSSE_SIGNATURES = 16
_MAX_SUBJECTS = 1024


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def build_statement(
    digest: str,
    predicate_type: str,
    predicate: Any,
    *,
    name: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An in-toto Statement v1 about the image `digest` (sha256:<hex>)."""
    algorithm, _, hexpart = digest.partition(":")
    subject: dict[str, Any] = {}
    if name:
        subject["name"] = name
    subject["digest"] = {algorithm: hexpart}
    if annotations:
        subject["annotations"] = dict(annotations)
    statement = {
        "_type": STATEMENT_V1,
        "subject": [subject],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def build_bundle(key: SigningKey, statement: bytes) -> bytes:
    """A bundle v0.3: DSSE envelope over `statement`, signed by `key`, with its key hint."""
    signature = key.sign(pae(INTOTO_PAYLOAD_TYPE, statement))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key.public_key().hint},
            "tlogEntries": [],
            "timestampVerificationData": {},
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(statement).decode(),
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Subject:
    """One statement subject: its digests, and the name and annotations it may carry."""

    digest: Mapping[str, str]
    name: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Statement:
    """The parts of an in-toto statement that verification and policies look at."""

    type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Any

    def subjects_for(self, digest: str) -> list[Subject]:
        algorithm, _, hexpart = digest.partition(":")
        return [s for s in self.subjects if s.digest.get(algorithm) == hexpart]

    def names_digest(self, digest: str) -> bool:
        return bool(self.subjects_for(digest))


def parse_statement(payload: bytes) -> Statement:
    doc = strict_json(payload, "in-toto statement", cap=MAX_BUNDLE_BYTES)
    kind = doc.get("_type")
    if kind not in _STATEMENT_TYPES:
        raise Rejected(f"statement _type is {kind!r}, not an in-toto statement")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise Rejected("statement has no subject")
    if len(subjects) > _MAX_SUBJECTS:
        raise Rejected(f"statement has {len(subjects)} subjects, over the cap of {_MAX_SUBJECTS}")
    parsed = []
    for i, subject in enumerate(subjects):
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), dict):
            raise Rejected(f"statement subject {i} is not an object with a digest")
        name = subject.get("name")
        annotations = subject.get("annotations")
        parsed.append(
            Subject(
                {str(k): v for k, v in subject["digest"].items() if isinstance(v, str)},
                name if isinstance(name, str) else None,
                {str(k): str(v) for k, v in annotations.items()}
                if isinstance(annotations, dict)
                else {},
            )
        )
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise Rejected("statement has no predicateType")
    return Statement(str(kind), tuple(parsed), predicate_type, doc.get("predicate"))


def _parse_bundle(data: bytes) -> dict[str, Any]:
    doc = strict_json(data, "bundle", cap=MAX_BUNDLE_BYTES)
    media_type = doc.get("mediaType")
    if media_type not in _BUNDLE_MEDIA_TYPES:
        raise Rejected(f"bundle media type {media_type!r} is not a Sigstore bundle v0.3")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise Rejected("bundle has no verificationMaterial")
    if "x509CertificateChain" in material or "certificate" in material:
        raise Rejected(
            "certificate (keyless) bundle: skanse verifies key-based signatures only "
            "(use sigstore-python for keyless ones)"
        )
    if not isinstance(material.get("publicKey"), dict):
        raise Rejected("bundle names no public key (verificationMaterial.publicKey)")
    has_dsse, has_message = "dsseEnvelope" in doc, "messageSignature" in doc
    if has_dsse == has_message:
        raise Rejected("bundle must hold exactly one of dsseEnvelope and messageSignature")
    return doc


def _verify_dsse(envelope: Any, keys: Sequence[PublicKey]) -> tuple[PublicKey, bytes]:
    """(the key that verified, the payload); `Rejected` if none did."""
    if not isinstance(envelope, dict):
        raise Rejected("dsseEnvelope is not an object")
    payload_type = envelope.get("payloadType")
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise Rejected(f"DSSE payload type is {payload_type!r}, not {INTOTO_PAYLOAD_TYPE!r}")
    payload = b64decode(envelope.get("payload"), "DSSE payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise Rejected("DSSE envelope has no signatures")
    if len(signatures) > _MAX_DSSE_SIGNATURES:
        raise Rejected(f"DSSE envelope has {len(signatures)} signatures, over the cap")
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, dict):
            raise Rejected("DSSE signature entry is not an object")
        signature = b64decode(entry.get("sig"), "DSSE signature", cap=8192)
        for key in keys:
            if key.verify(signature, message):
                return key, payload
    raise Rejected(f"the DSSE signature does not verify with {_keys_text(keys)}")


def _keys_text(keys: Sequence[PublicKey]) -> str:
    if not keys:
        return "no key (none given)"
    if len(keys) == 1:
        return f"the key {keys[0].name}"
    return f"any of the {len(keys)} keys"


def verify_image_bundle(
    data: bytes, digest: str, keys: Sequence[PublicKey], predicate_type: str
) -> tuple[PublicKey, Statement]:
    """Check a DSSE bundle for the image `digest`; (key, statement) or `Rejected` with why."""
    doc = _parse_bundle(data)
    if "dsseEnvelope" not in doc:
        raise Rejected("bundle holds a message signature, not a DSSE envelope about an image")
    key, payload = _verify_dsse(doc["dsseEnvelope"], keys)
    statement = parse_statement(payload)
    if not statement.names_digest(digest):
        raise Rejected(f"signed by {key.name}, but no statement subject is {digest}")
    if statement.predicate_type != predicate_type:
        raise OtherPredicate(
            f"signed by {key.name}, but the predicate type is {statement.predicate_type!r}, "
            f"not {predicate_type!r}",
            statement.predicate_type,
        )
    return key, statement


def build_blob_bundle(key: SigningKey, sha256: bytes) -> bytes:
    """A bundle v0.3 `messageSignature` over a file whose SHA-256 is `sha256`.

    What `cosign sign-blob --key K --bundle B FILE` writes when no transparency log is used;
    `cosign verify-blob --key cosign.pub --bundle B --insecure-ignore-tlog FILE` accepts it.
    """
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key.public_key().hint},
            "tlogEntries": [],
            "timestampVerificationData": {},
        },
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(sha256).decode(),
            },
            "signature": base64.b64encode(key.sign_digest(sha256)).decode(),
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def verify_blob_bundle(data: bytes, artifact: bytes, keys: Sequence[PublicKey]) -> PublicKey:
    """Check a `messageSignature` bundle over `artifact`; the key, or `Rejected` with why."""
    return verify_blob_digest(data, hashlib.sha256(artifact).digest(), keys)


def verify_blob_digest(data: bytes, sha256: bytes, keys: Sequence[PublicKey]) -> PublicKey:
    """`verify_blob_bundle` for a file known by its SHA-256 (hashed while it was read)."""
    doc = _parse_bundle(data)
    signed = doc.get("messageSignature")
    if not isinstance(signed, dict):
        raise Rejected("bundle holds a DSSE envelope, not a message signature")
    message_digest = signed.get("messageDigest")
    if isinstance(message_digest, dict):
        if message_digest.get("algorithm") != "SHA2_256":
            raise Rejected(f"unsupported message digest {message_digest.get('algorithm')!r}")
        claimed = b64decode(message_digest.get("digest"), "message digest", cap=128)
        if claimed != sha256:
            raise Rejected("the bundle's message digest is not the artifact's sha256")
    signature = b64decode(signed.get("signature"), "message signature", cap=8192)
    for key in keys:
        if key.verify_digest(signature, sha256):
            return key
    raise Rejected(f"the message signature does not verify with {_keys_text(keys)}")
