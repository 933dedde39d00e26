"""Signing and verifying against a real registry (Debian's docker-registry on 127.0.0.1).

The round trip of the issue, both signature formats, thresholds, --require-reference,
attestations of an SBOM made from the image, and a hostile registry's tricks: a signature
for another digest, thousands of layers, a 1 GB payload, a tampered payload blob.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from skanse.oci.manifest import OCI_CONFIG, OCI_MANIFEST, Descriptor
from skanse.signing import simplesigning
from skanse.signing.attach import (
    SIGNATURE_ANNOTATION,
    Limits,
    fallback_tag,
    resolve,
    signature_tag,
    write_referrer,
)
from skanse.signing.bundle import BUNDLE_MEDIA_TYPE, SIGN_PREDICATE_TYPE
from skanse.signing.sign import PREDICATE_TYPES, attest_image, sign_image
from skanse.signing.verify import verify_attestations, verify_signatures
from tests._counting import peak_allocation
from tests.signing.helpers import new_key, public, push_test_image

pytestmark = pytest.mark.registry


@pytest.fixture
def client(registry, tmp_path):
    c = registry.client(tmp_path / "cache")
    yield c
    c.close()


@pytest.fixture
def repo(registry, request):
    # a repository per test, so tests do not see each other's signatures
    name = request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")
    return registry.ref(f"signing/{name[:60].strip('-')}:1.0")


def test_round_trip_sign_verify_repush_fail_sign_again(client, repo) -> None:
    key = new_key()
    pub = public(key, "cosign.pub")
    first = push_test_image(client, repo, b"v1")
    signed = sign_image(client, repo, key)
    assert signed.digest == first and signed.format == "simple-signing"
    assert signed.location.endswith(signature_tag(first)) and signed.signatures == 1

    result = verify_signatures(client, repo, [pub])
    assert result.verified, result.reason
    assert result.verified_keys == ("cosign.pub",)
    (check,) = result.checks
    assert check.key == "cosign.pub" and check.docker_reference == repo.repository

    # a changed image pushed under the same tag is not covered by the old signature
    second = push_test_image(client, repo, b"v2")
    assert second != first
    result = verify_signatures(client, repo, [pub])
    assert not result.verified
    assert result.digest == second
    assert "no signature found for" in result.reason

    # signing again signs the new digest; a second signer appends a second layer
    sign_image(client, repo, key)
    assert verify_signatures(client, repo, [pub]).verified
    other = new_key()
    again = sign_image(client, repo, other, annotations={"ci": "build-43"})
    assert again.signatures == 2 and again.added
    result = verify_signatures(client, repo, [pub, public(other, "other.pub")], threshold=2)
    assert result.verified, result.reason
    assert len(result.checks) == 2
    assert {c.key for c in result.checks} == {"cosign.pub", "other.pub"}
    # the old digest still has its own, single signature
    assert len(verify_signatures(client, repo.with_digest(first), [pub]).checks) == 1


def test_signing_the_same_payload_twice_adds_nothing(client, repo) -> None:
    key = new_key()
    push_test_image(client, repo)
    assert sign_image(client, repo, key).added
    again = sign_image(client, repo, key)
    assert not again.added and again.signatures == 1


def test_bundle_format_through_the_fallback_tag(client, repo) -> None:
    key = new_key()
    pub = public(key, "k.pub")
    digest = push_test_image(client, repo)
    signed = sign_image(client, repo, key, bundle=True, annotations={"team": "payments"})
    # distribution 2.8 has no referrers API, so the fallback tag lists the bundle
    assert client.get_referrers(repo, digest) is None
    assert f"tag {fallback_tag(digest)}" in signed.location
    data, _, _ = client.get_manifest(repo, fallback_tag(digest))
    index = json.loads(data)
    (entry,) = index["manifests"]
    assert entry["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == SIGN_PREDICATE_TYPE
    manifest = json.loads(client.get_manifest(repo, entry["digest"])[0])
    assert manifest["subject"]["digest"] == digest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"

    result = verify_signatures(client, repo, [pub])
    assert result.verified, result.reason
    assert result.checks[0].format == "bundle"
    # a second bundle is added to the same index, not replacing the first
    sign_image(client, repo, new_key(), bundle=True)
    assert len(json.loads(client.get_manifest(repo, fallback_tag(digest))[0])["manifests"]) == 2
    assert verify_signatures(client, repo, [pub]).verified


def test_both_formats_count_towards_the_threshold(client, repo) -> None:
    legacy_key, bundle_key, stranger = new_key(), new_key(), new_key()
    push_test_image(client, repo)
    sign_image(client, repo, legacy_key)
    sign_image(client, repo, bundle_key, bundle=True)
    keys = [public(legacy_key, "a"), public(bundle_key, "b"), public(stranger, "c")]
    assert verify_signatures(client, repo, keys, threshold=2).verified
    result = verify_signatures(client, repo, keys, threshold=3)
    assert not result.verified
    assert "only 2 of the 3 required keys" in result.reason
    # the same key signing twice is one key, not two
    only_one = [public(legacy_key, "a"), public(stranger, "c")]
    sign_image(client, repo, legacy_key, annotations={"again": "yes"})
    assert not verify_signatures(client, repo, only_one, threshold=2).verified


def test_wrong_key_is_not_verified(client, repo) -> None:
    push_test_image(client, repo)
    sign_image(client, repo, new_key())
    result = verify_signatures(client, repo, [public(new_key(), "wrong.pub")])
    assert not result.verified
    assert "does not verify with the key wrong.pub" in result.reason


def test_require_reference_catches_a_copy_in_another_repository(client, registry, repo) -> None:
    key = new_key()
    pub = public(key, "k")
    digest = push_test_image(client, repo)
    sign_image(client, repo, key)
    # copy the image and its .sig manifest to another repository, as a registry mirror might
    copy = registry.ref("elsewhere/copied:1.0")
    push_test_image(client, copy)
    data, media_type, _ = client.get_manifest(repo, signature_tag(digest))
    manifest = json.loads(data)
    for blob in [manifest["config"], *manifest["layers"]]:
        descriptor = Descriptor(blob["mediaType"], blob["digest"], blob["size"])
        client.push_blob(copy, client.get_blob_bytes(repo, descriptor, cap=1 << 20))
    client.push_manifest(copy.with_tag(signature_tag(digest)), data, media_type)

    assert verify_signatures(client, copy, [pub]).verified  # as Cosign: identity not checked
    strict = verify_signatures(client, copy, [pub], require_reference=True)
    assert not strict.verified
    assert "--require-reference" in strict.reason
    assert verify_signatures(client, repo, [pub], require_reference=True).verified


def test_annotations_must_be_in_the_signed_payload(client, repo) -> None:
    key = new_key()
    push_test_image(client, repo)
    sign_image(client, repo, key, annotations={"env": "prod"})
    assert verify_signatures(client, repo, [public(key, "k")], annotations={"env": "prod"}).verified
    result = verify_signatures(client, repo, [public(key, "k")], annotations={"env": "dev"})
    assert not result.verified and "annotation env=dev" in result.reason


# --- a hostile registry -----------------------------------------------------------------


def _push_sig_manifest(client, repo, digest: str, layers: list[dict]) -> None:
    config = json.dumps(
        {"rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers[:5]]}}
    ).encode()
    config_digest = client.push_blob(repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
    ).encode()
    client.push_manifest(repo.with_tag(signature_tag(digest)), manifest, OCI_MANIFEST)


def _layer(client, repo, payload: bytes, signature: bytes, **over) -> dict:
    digest = client.push_blob(repo, payload)
    layer = {
        "mediaType": simplesigning.MEDIA_TYPE,
        "digest": digest,
        "size": len(payload),
        "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
    }
    layer.update(over)
    return layer


def test_a_signature_for_another_digest_fails(client, repo) -> None:
    key = new_key()
    d1 = push_test_image(client, repo, b"one")
    other = "sha256:" + "ab" * 32
    payload = simplesigning.build_payload(repo.repository, other)
    _push_sig_manifest(client, repo, d1, [_layer(client, repo, payload, key.sign(payload))])
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified
    assert f"the signature is for {other}, not {d1}" in result.reason
    assert result.checks[0].key == "k"  # the key did sign it: the claim is what fails


def test_a_payload_with_the_wrong_type_fails(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    payload = simplesigning.build_payload(repo.repository, digest).replace(
        b"cosign container image signature", b"atomic container signature"
    )
    _push_sig_manifest(client, repo, digest, [_layer(client, repo, payload, key.sign(payload))])
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified and "payload type is 'atomic container signature'" in result.reason


def test_tampered_payload_and_signature_fail(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    payload = simplesigning.build_payload(repo.repository, digest)
    signature = key.sign(payload)
    tampered = payload.replace(b'"optional":null', b'"optional":{"x":"y"}')
    bad_sig = bytearray(signature)
    bad_sig[-1] ^= 1
    _push_sig_manifest(
        client,
        repo,
        digest,
        [
            _layer(client, repo, tampered, signature),
            _layer(client, repo, payload, bytes(bad_sig)),
            _layer(client, repo, payload, signature, annotations={SIGNATURE_ANNOTATION: "@@@"}),
            _layer(client, repo, payload, signature, mediaType="application/json"),
        ],
    )
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified
    reasons = [c.reason for c in result.checks]
    assert reasons[0].startswith("the signature does not verify")
    assert reasons[1].startswith("the signature does not verify")
    assert reasons[2] == "the signature annotation is not valid base64"
    assert "not a simple-signing payload" in reasons[3]


def test_thousands_of_signature_layers_are_refused_without_reading_them(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    payload = simplesigning.build_payload(repo.repository, digest)
    good = _layer(client, repo, payload, key.sign(payload))
    # 1001 layers that all point at the same (valid) blob: none may be read
    _push_sig_manifest(client, repo, digest, [good] * 1001)
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified
    assert "1001 signature layers, over the cap of 1000" in result.reason
    assert result.checks == ()
    # and at the cap they are read (the cap is a limit, not an off-by-one)
    small = verify_signatures(client, repo, [public(key, "k")], limits=Limits(max_signatures=2000))
    assert small.verified


def test_signatures_are_fetched_and_checked_one_at_a_time(client, repo) -> None:
    # 16 payloads of 512 KiB and 6 bundles of 1 MiB: 14 MiB if they were all held at once
    key = new_key()
    digest = push_test_image(client, repo)
    payload = b'{"critical": {}' + b" " * (512 * 1024) + b"}"
    _push_sig_manifest(
        client, repo, digest, [_layer(client, repo, payload, key.sign(payload))] * 16
    )
    bundle = b'{"mediaType": "%s"%s}' % (BUNDLE_MEDIA_TYPE.encode(), b" " * (1 << 20))
    subject = resolve(client, repo)
    for day in range(1, 7):
        when = dt.datetime(2026, 1, day, tzinfo=dt.UTC)  # a distinct referrer each
        write_referrer(client, repo, subject, bundle, SIGN_PREDICATE_TYPE, now=when)
    result, peak = peak_allocation(lambda: verify_signatures(client, repo, [public(key, "k")]))
    # every signature is still listed with its outcome; only the payloads are gone
    assert len(result.checks) == 22 and not result.verified
    assert sum(c.key == "k" for c in result.checks) == 16
    assert peak < 5 * 1024 * 1024, f"{peak} bytes at the peak"


def test_a_signature_manifest_nested_too_deeply_is_not_verified(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    sign_image(client, repo, key)
    tag = repo.with_tag(signature_tag(digest))
    data, media_type, _ = client.get_manifest(tag)
    # an extra field 3000 arrays deep: more than Python's parser recurses, less than Go's cap
    deep = data[:-1] + b', "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    client.push_manifest(tag, deep, media_type)
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified
    assert "nested too deeply" in result.reason + " ".join(result.problems)


def test_a_declared_gigabyte_payload_is_not_downloaded(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    payload = simplesigning.build_payload(repo.repository, digest)
    layer = _layer(client, repo, payload, key.sign(payload), size=1 << 30)
    _push_sig_manifest(client, repo, digest, [layer])
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified
    assert "declares 1073741824 bytes, over the 1048576-byte cap; not downloaded" in result.reason


def test_a_payload_blob_longer_than_declared_is_refused(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    payload = simplesigning.build_payload(repo.repository, digest)
    layer = _layer(client, repo, payload, key.sign(payload), size=10)  # the body is longer
    _push_sig_manifest(client, repo, digest, [layer])
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified
    assert "over the 10-byte cap" in result.checks[0].reason


def test_a_hostile_fallback_index_pointing_elsewhere_is_not_trusted(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    # a bundle for another image, listed in this image's fallback index
    decoy = repo.with_tag("decoy")
    push_test_image(client, decoy, b"decoy")
    sign_image(client, decoy, key, bundle=True)
    decoy_digest = client.get_manifest(decoy)[2]
    decoy_index, media_type, _ = client.get_manifest(repo, fallback_tag(decoy_digest))
    client.push_manifest(repo.with_tag(fallback_tag(digest)), decoy_index, media_type)
    result = verify_signatures(client, repo, [public(key, "k")])
    assert not result.verified
    assert "its subject is not this image" in result.reason


def test_a_garbage_fallback_tag_is_a_problem_not_a_pass(client, repo) -> None:
    key = new_key()
    digest = push_test_image(client, repo)
    sign_image(client, repo, key)  # a valid legacy signature
    # the fallback tag holds an image, not an index
    push_test_image(client, repo.with_tag(fallback_tag(digest)), b"junk")
    result = verify_signatures(client, repo, [public(key, "k")])
    assert result.verified  # the legacy signature still counts ...
    assert result.problems and "expected an image index" in result.problems[0]  # ... and is said


# --- attestations -----------------------------------------------------------------------


def test_attest_an_sbom_of_the_image_and_verify_it(client, repo) -> None:
    from skanse.inventory.catalog import catalog_image
    from skanse.inventory.formats import render
    from skanse.oci.image import open_registry_image
    from skanse.oci.writer import LayerBuilder, build_image, push_image

    layer = (
        LayerBuilder()
        .add_file("/etc/os-release", b"ID=alpine\nVERSION_ID=3.19.1\nNAME=Alpine Linux\n")
        .add_file(
            "/lib/apk/db/installed",
            b"P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:zlib\nV:1.3-r2\nA:x86_64\n"
            b"L:Zlib\no:zlib\n\n",
        )
        .build()
    )
    push_image(client, repo, build_image([layer]))
    image = open_registry_image(client, repo)
    sbom = json.loads(render("cyclonedx-json", catalog_image(image)))
    image.close()
    assert {c["name"] for c in sbom["components"]} >= {"musl", "zlib"}

    key = new_key()
    pub = public(key, "k")
    attest_image(client, repo, key, PREDICATE_TYPES["cyclonedx"], sbom)
    result = verify_attestations(client, repo, [pub], PREDICATE_TYPES["cyclonedx"])
    assert result.verified, result.reason
    # an attestation is not a signature
    assert not verify_signatures(client, repo, [pub]).verified
    # CVE-2022-35929: asking for a type that is not there fails, whatever else is there
    missing = verify_attestations(client, repo, [pub], PREDICATE_TYPES["vuln"])
    assert not missing.verified
    assert "no attestation https://cosign.sigstore.dev/attestation/vuln/v1 found" in missing.reason
    # ... also when the index does not label the bundle's predicate type (read, then refused)
    digest = missing.digest
    index = json.loads(client.get_manifest(repo, fallback_tag(digest))[0])
    for entry in index["manifests"]:
        entry.pop("annotations", None)
    client.push_manifest(
        repo.with_tag(fallback_tag(digest)),
        json.dumps(index).encode(),
        "application/vnd.oci.image.index.v1+json",
    )
    unlabelled = verify_attestations(client, repo, [pub], PREDICATE_TYPES["vuln"])
    assert not unlabelled.verified
    assert "but the predicate type is 'https://cyclonedx.org/bom'" in unlabelled.reason
    assert verify_attestations(client, repo, [pub], PREDICATE_TYPES["cyclonedx"]).verified
    # another key's attestation of the right type does not count either
    assert not verify_attestations(
        client, repo, [public(new_key(), "x")], PREDICATE_TYPES["cyclonedx"]
    ).verified


def test_signing_by_digest_requires_the_digest_to_exist(client, repo) -> None:
    from skanse.errors import NotFoundError

    push_test_image(client, repo)
    with pytest.raises(NotFoundError):
        sign_image(client, repo.with_digest("sha256:" + "cd" * 32), new_key())


def test_signing_refuses_to_overwrite_a_foreign_sig_tag(client, repo) -> None:
    from skanse.errors import SigningError

    digest = push_test_image(client, repo)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
        }
    ).encode()
    client.push_manifest(
        repo.with_tag(signature_tag(digest)), index, "application/vnd.oci.image.index.v1+json"
    )
    with pytest.raises(SigningError, match="not a signature manifest"):
        sign_image(client, repo, new_key())
    assert client.get_manifest(repo, signature_tag(digest))[0] == index


def test_bundle_claims_annotations_and_reference(client, registry, repo) -> None:
    key = new_key()
    pub = public(key, "k")
    push_test_image(client, repo)
    sign_image(client, repo, key, bundle=True, annotations={"env": "prod"})
    assert verify_signatures(client, repo, [pub], annotations={"env": "prod"}).verified
    wrong = verify_signatures(client, repo, [pub], annotations={"env": "dev"})
    assert not wrong.verified
    assert "annotation env=dev is not in the signed statement" in wrong.reason
    strict = verify_signatures(client, repo, [pub], require_reference=True)
    assert strict.verified, strict.reason
    assert strict.checks[0].docker_reference == repo.repository


def test_require_reference_refuses_a_bundle_that_names_no_repository(client, repo) -> None:
    from skanse.signing.attach import resolve, write_referrer
    from skanse.signing.bundle import build_bundle, build_statement

    key = new_key()
    push_test_image(client, repo)
    subject = resolve(client, repo)
    # as Cosign v3 writes it: the statement subject has a digest and no name
    statement = build_statement(subject.digest, SIGN_PREDICATE_TYPE, {})
    write_referrer(client, repo, subject, build_bundle(key, statement), SIGN_PREDICATE_TYPE)
    assert verify_signatures(client, repo, [public(key, "k")]).verified
    strict = verify_signatures(client, repo, [public(key, "k")], require_reference=True)
    assert not strict.verified
    assert "names no repository" in strict.reason


def test_a_registry_dribbling_the_signature_manifest_is_could_not_check() -> None:
    # a byte every 50 ms never trips the per-read timeout: only the request deadline ends it
    from skanse.oci.reference import parse_reference
    from skanse.oci.registry import RegistryClient, RegistryOptions
    from tests.oci.test_registry_errors import STATUS, Server, dribbling, padded_headers

    digest = "sha256:" + "ab" * 32
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
    server = Server()
    try:
        server.routes[f"GET /v2/team/app/manifests/{signature_tag(digest)}"] = dribbling(
            STATUS + padded_headers(len(manifest)), manifest
        )
        client = RegistryClient(RegistryOptions(timeout=5, request_deadline=0.5))
        ref = parse_reference(f"{server.host}/team/app@{digest}")
        result = verify_signatures(client, ref, [public(new_key(), "k")])
    finally:
        server.close()
    assert not result.verified and not result.complete
    assert result.reason.startswith("not verified: could not check")
    assert "not complete within 0.5 s" in result.reason


def test_payloads_each_dribbled_inside_the_request_deadline_end_at_the_verification_one() -> None:
    # reported: every request of a verification was bounded, their sum was not; 8 payloads
    # each just inside the 0.5 s request deadline took about 3.2 s (1,000 of them, at the
    # default 60 s, would be 16 hours)
    import time

    from skanse.oci.reference import parse_reference
    from skanse.oci.registry import RegistryClient, RegistryOptions
    from tests.oci.test_registry_errors import Server
    from tests.signing.helpers import dribbled_signatures

    digest = "sha256:" + "ab" * 32
    server = Server()
    try:
        dribbled_signatures(server, digest, 8)
        client = RegistryClient(RegistryOptions(timeout=5, request_deadline=0.5))
        ref = parse_reference(f"{server.host}/team/app@{digest}")
        start = time.monotonic()
        result = verify_signatures(client, ref, [public(new_key(), "k")], deadline=1.0)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert not result.verified and not result.complete
    assert "the registry did not answer within the 1 s the whole verification may take" in (
        result.reason
    )
    assert "within the 1 s given to all requests together" in result.reason
    assert elapsed < 3 * 1.0  # a bound on a timeout, generous for a loaded machine


def test_a_signature_the_registry_failed_to_serve_leaves_the_denial_open() -> None:
    # the payload's download failed (HTTP 500): the denial was complete, so the webhook
    # cached it as final although the signature may verify on the next try
    from skanse.oci.reference import parse_reference
    from skanse.oci.registry import RegistryClient, RegistryOptions
    from tests.oci.test_registry_errors import Server, reply

    digest = "sha256:" + "ab" * 32
    payload_digest = "sha256:" + "cd" * 32
    layer = {
        "mediaType": simplesigning.MEDIA_TYPE,
        "digest": payload_digest,
        "size": 100,
        "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(b"sig").decode()},
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + "ef" * 32, "size": 2},
            "layers": [layer],
        }
    ).encode()
    server = Server()
    try:
        server.routes[f"GET /v2/team/app/manifests/{signature_tag(digest)}"] = reply(
            200, manifest, {"Content-Type": OCI_MANIFEST}
        )
        server.routes[f"GET /v2/team/app/blobs/{payload_digest}"] = reply(500, b"busy")
        client = RegistryClient(RegistryOptions(timeout=5))
        ref = parse_reference(f"{server.host}/team/app@{digest}")
        failed = verify_signatures(client, ref, [public(new_key(), "k")])
        # a payload that arrives but is not the one named (another digest): final
        server.routes[f"GET /v2/team/app/blobs/{payload_digest}"] = reply(200, b"x" * 100)
        wrong = verify_signatures(client, ref, [public(new_key(), "k")])
    finally:
        server.close()
    assert not failed.verified and not failed.complete
    assert failed.checks[0].unread and "500" in failed.checks[0].reason
    assert not wrong.verified and wrong.complete and not wrong.checks[0].unread
