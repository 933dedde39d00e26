"""Sigstore bundles: the conformance cases, the bundle made elsewhere, and hostile ones."""

from __future__ import annotations

import hashlib
import json

import pytest

from skanse.signing import bundle
from skanse.signing._common import OtherPredicate, Rejected
from skanse.signing.keys import PublicKey, read_public_key
from tests.signing.helpers import b64, new_key, public, vectors

pytestmark = pytest.mark.corpus

SUBJECT = "sha256:916da1302e37715fe2514388d59419dfe0e821873fe66c1d0868deac22a93548"


def _conformance(case: str, name: str) -> bytes:
    return vectors("conformance", case, name).read_bytes()


@pytest.mark.parametrize("case", ["managed-key-happy-path", "managed-key-and-trusted-root"])
def test_conformance_managed_key_bundles_verify(case: str) -> None:
    key = read_public_key(vectors("conformance", case, "key.pub"))
    artifact = vectors("conformance", "a.txt").read_bytes()
    signer = bundle.verify_blob_bundle(_conformance(case, "bundle.sigstore.json"), artifact, [key])
    assert signer is key
    # the hint in the bundle is the key's, computed as Sigstore does
    doc = json.loads(_conformance(case, "bundle.sigstore.json"))
    assert doc["verificationMaterial"]["publicKey"]["hint"] == key.hint


def test_conformance_happy_path_fails_for_another_artifact() -> None:
    case = "managed-key-happy-path"
    key = read_public_key(vectors("conformance", case, "key.pub"))
    with pytest.raises(Rejected, match="message digest is not the artifact's sha256"):
        bundle.verify_blob_bundle(_conformance(case, "bundle.sigstore.json"), b"other", [key])


def test_conformance_no_key_fails() -> None:
    data = _conformance("managed-key-no-key_fail", "bundle.sigstore.json")
    artifact = vectors("conformance", "a.txt").read_bytes()
    with pytest.raises(Rejected, match="no key"):
        bundle.verify_blob_bundle(data, artifact, [])


def test_conformance_wrong_key_fails_with_another_valid_key() -> None:
    # the case's own key.pub is broken (see test_keys); a real but different key must fail too
    data = _conformance("managed-key-wrong-key_fail", "bundle.sigstore.json")
    artifact = vectors("conformance", "a.txt").read_bytes()
    with pytest.raises(Rejected, match="does not verify"):
        bundle.verify_blob_bundle(data, artifact, [public(new_key(), "other")])


def test_the_dsse_bundle_made_elsewhere_verifies_for_its_subject() -> None:
    key = read_public_key(vectors("keys", "pemsigstorekey.pub"))
    data = vectors("made-here", "v3-dsse-key-bundle.sigstore.json").read_bytes()
    signer, statement = bundle.verify_image_bundle(data, SUBJECT, [key], bundle.SIGN_PREDICATE_TYPE)
    assert signer is key
    assert statement.predicate_type == bundle.SIGN_PREDICATE_TYPE
    # and its subject is the manifest the legacy vector signed
    manifest = vectors("made-here", "subject-image-manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == SUBJECT
    with pytest.raises(Rejected, match="no statement subject is sha256:0000"):
        bundle.verify_image_bundle(data, "sha256:" + "0" * 64, [key], bundle.SIGN_PREDICATE_TYPE)


def _made(statement: bytes, key=None) -> tuple[bytes, PublicKey]:
    key = key or new_key()
    return bundle.build_bundle(key, statement), public(key, "k")


def _statement(**change) -> bytes:
    doc = {
        "_type": bundle.STATEMENT_V1,
        "subject": [{"digest": {"sha256": SUBJECT.split(":")[1]}}],
        "predicateType": bundle.SIGN_PREDICATE_TYPE,
        "predicate": {},
    }
    doc.update(change)
    return json.dumps(doc).encode()


def _edit(data: bytes, edit) -> bytes:
    doc = json.loads(data)
    edit(doc)
    return json.dumps(doc).encode()


def test_our_bundle_round_trips() -> None:
    data, key = _made(bundle.build_statement(SUBJECT, bundle.SIGN_PREDICATE_TYPE, {}))
    signer, statement = bundle.verify_image_bundle(data, SUBJECT, [key], bundle.SIGN_PREDICATE_TYPE)
    assert signer is key
    assert statement.names_digest(SUBJECT)
    doc = json.loads(data)
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["verificationMaterial"]["publicKey"]["hint"] == key.hint
    assert doc["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"


def test_pae_is_dsse_v1() -> None:
    assert bundle.pae("a/b", b"hello") == b"DSSEv1 3 a/b 5 hello"
    assert bundle.pae("t", "é".encode()) == "DSSEv1 1 t 2 é".encode()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        # tampered payload: the signature no longer covers it
        (
            lambda d: d["dsseEnvelope"].update(payload=b64(_statement(predicate={"x": 1}))),
            "does not verify",
        ),
        # tampered signature
        (
            lambda d: d["dsseEnvelope"]["signatures"][0].update(
                sig=b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")
            ),
            "does not verify",
        ),
        # the DSSE payload type is not in-toto
        (
            lambda d: d["dsseEnvelope"].update(payloadType="application/json"),
            "DSSE payload type is 'application/json'",
        ),
        (lambda d: d["dsseEnvelope"].update(payload="%%%"), "DSSE payload is not valid base64"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "no signatures"),
        (lambda d: d["dsseEnvelope"].update(signatures=[{"sig": "AA=="}] * 17), "over the cap"),
        (
            lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle.v0.1+json"),
            "not a Sigstore bundle v0.3",
        ),
        (lambda d: d.pop("verificationMaterial"), "no verificationMaterial"),
        (
            lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AA=="}),
            "keyless",
        ),
        (lambda d: d.update(messageSignature={}), "exactly one of"),
    ],
)
def test_bad_bundles_are_rejected(edit, fragment: str) -> None:
    data, key = _made(_statement())
    with pytest.raises(Rejected, match=fragment):
        bundle.verify_image_bundle(_edit(data, edit), SUBJECT, [key], bundle.SIGN_PREDICATE_TYPE)


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        (_statement(subject=[{"digest": {"sha256": "ab" * 32}}]), "no statement subject"),
        (_statement(subject=[None]), "subject 0 is not an object"),  # cosign#5016
        (_statement(subject=[]), "no subject"),
        (_statement(_type="https://example.com/Statement"), "not an in-toto statement"),
        (_statement(predicateType=None), "no predicateType"),
        (b"not json", "not valid JSON"),
        (b'{"_type":"https://in-toto.io/Statement/v1","_type":"x"}', "duplicate key"),
    ],
)
def test_signed_but_wrong_statements_are_rejected(statement: bytes, fragment: str) -> None:
    data, key = _made(statement)
    with pytest.raises(Rejected, match=fragment):
        bundle.verify_image_bundle(data, SUBJECT, [key], bundle.SIGN_PREDICATE_TYPE)


def test_another_predicate_type_does_not_count() -> None:
    data, key = _made(_statement(predicateType="https://slsa.dev/provenance/v1"))
    with pytest.raises(OtherPredicate) as info:
        bundle.verify_image_bundle(data, SUBJECT, [key], "https://cyclonedx.org/bom")
    assert info.value.predicate_type == "https://slsa.dev/provenance/v1"


def test_a_key_among_several_is_found() -> None:
    signer = new_key()
    data, _ = _made(_statement(), signer)
    keys = [public(new_key(), "a"), public(signer, "b"), public(new_key(), "c")]
    found, _ = bundle.verify_image_bundle(data, SUBJECT, keys, bundle.SIGN_PREDICATE_TYPE)
    assert found.name == "b"


def test_huge_bundle_is_refused_before_parsing() -> None:
    with pytest.raises(Rejected, match="over the"):
        bundle.verify_image_bundle(
            b" " * (bundle.MAX_BUNDLE_BYTES + 1), SUBJECT, [], bundle.SIGN_PREDICATE_TYPE
        )


def test_statement_subject_digest_algorithms_are_kept_apart() -> None:
    statement = bundle.parse_statement(
        _statement(subject=[{"digest": {"sha512": SUBJECT.split(":")[1]}}])
    )
    assert not statement.names_digest(SUBJECT)
