"""Simple-signing payloads byte for byte (Go's encoder), and strict reading of hostile ones."""

from __future__ import annotations

import json

import pytest

from skanse.oci.reference import parse_reference
from skanse.signing import simplesigning
from skanse.signing._common import Rejected
from skanse.signing.gojson import marshal
from tests.signing.helpers import vectors

DIGEST = "sha256:" + "d34db33f" * 8


@pytest.mark.corpus
def test_the_four_upstream_payloads_are_reproduced_byte_for_byte() -> None:
    expected = json.loads(vectors("simplesigning-payloads.json").read_text())
    cases = [
        ("example.com/test/image", None),
        ("example.com/atomic/test/image", {"creator": "atomic", "timestamp": 1458239713}),
        (
            "example.com/cosign/test/image",
            {
                "creator": "anyone",
                "some_struct": {"foo": "bar", "false": True, "nothing": None},
                "CamelCase WithSpace": 8.314,
            },
        ),
        ("docker.io/library/test:1.2.3", None),  # a --sign-container-identity override
    ]
    made = [simplesigning.build_payload(ref, DIGEST, opt) for ref, opt in cases]
    assert [m.decode() for m in made] == expected["marshal_expected_bytes"]


@pytest.mark.corpus
def test_the_upstream_wrong_type_payload_is_rejected() -> None:
    expected = json.loads(vectors("simplesigning-payloads.json").read_text())
    (bad,) = expected["unmarshal_must_reject"]
    with pytest.raises(Rejected, match="payload type is 'atomic container signature'"):
        simplesigning.parse_payload(bad.encode())


def test_docker_reference_is_written_as_cosign_writes_it() -> None:
    assert simplesigning.docker_reference(parse_reference("alpine:3.19")) == (
        "index.docker.io/library/alpine"
    )
    assert simplesigning.docker_reference(parse_reference("127.0.0.1:5000/a/b:1")) == (
        "127.0.0.1:5000/a/b"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a & b>", '"\\u003ca \\u0026 b\\u003e"'),
        ("line\nbreak\ttab\r", '"line\\nbreak\\ttab\\r"'),
        ("\b\f\x01\x1f", '"\\b\\f\\u0001\\u001f"'),
        ('quote" back\\slash', '"quote\\" back\\\\slash"'),
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ("grüße €", '"grüße €"'),  # non-ASCII raw, as Go writes it
        ("\ud800", '"\ufffd"'),  # invalid UTF-8 becomes U+FFFD
        (1.0, "1"),
        (8.314, "8.314"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-07"),
        (0.000001, "0.000001"),
        (-0.0, "-0"),
        ({"b": 1, "a": [True, None, "x"]}, '{"a":[true,null,"x"],"b":1}'),
        ({"é": 1, "z": 2, "Z": 3}, '{"Z":3,"z":2,"é":1}'),  # keys sorted by UTF-8 bytes
    ],
)
def test_go_encoder_details(value, expected: str) -> None:
    assert marshal(value).decode() == expected


def test_go_encoder_refuses_what_json_cannot_say() -> None:
    with pytest.raises(ValueError):
        marshal(float("nan"))
    with pytest.raises(TypeError):
        marshal(b"bytes")


def test_payload_claims() -> None:
    payload = simplesigning.parse_payload(
        simplesigning.build_payload("127.0.0.1:5000/team/app", DIGEST, {"ci": "42"})
    )
    payload.check(DIGEST)
    payload.check(DIGEST, repository=parse_reference("127.0.0.1:5000/team/app:1.0"))
    payload.check(DIGEST, annotations={"ci": "42"})
    with pytest.raises(Rejected, match="is for sha256:d34d"):
        payload.check("sha256:" + "0" * 64)
    with pytest.raises(Rejected, match="require-reference"):
        payload.check(DIGEST, repository=parse_reference("127.0.0.1:5000/other/app:1.0"))
    with pytest.raises(Rejected, match="annotation ci=43"):
        payload.check(DIGEST, annotations={"ci": "43"})
    with pytest.raises(Rejected, match="annotation env=prod"):
        payload.check(DIGEST, annotations={"env": "prod"})


def test_docker_hub_reference_spellings_name_the_same_repository() -> None:
    payload = simplesigning.parse_payload(
        simplesigning.build_payload("index.docker.io/library/nginx", DIGEST)
    )
    payload.check(DIGEST, repository=parse_reference("nginx:1.27"))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"critical":{}}', "payload type is None"),
        (b'{"critical":NaN}', "NaN is not JSON"),
        (
            b'{"critical":{"type":"cosign container image signature","image":'
            b'{"docker-manifest-digest":"sha256:aa","docker-manifest-digest":"sha256:bb"}}}',
            "duplicate key 'docker-manifest-digest'",
        ),
        (
            b'{"critical":{"type":"cosign container image signature","image":{}}}',
            "no critical.image.docker-manifest-digest",
        ),
        (
            b'{"critical":{"type":"cosign container image signature","image":'
            b'{"docker-manifest-digest":"sha256:aa"}}}',
            "no critical.identity.docker-reference",
        ),
        (
            b'{"critical":{"type":"cosign container image signature","identity":'
            b'{"docker-reference":"x"},"image":{"docker-manifest-digest":"sha256:aa"}},'
            b'"optional":[1]}',
            "neither null nor an object",
        ),
        (b" " * (simplesigning.MAX_PAYLOAD_BYTES + 1), "over the 1048576-byte cap"),
    ],
)
def test_hostile_and_malformed_payloads_are_rejected(data: bytes, fragment: str) -> None:
    with pytest.raises(Rejected, match=fragment):
        simplesigning.parse_payload(data)


@pytest.mark.corpus
def test_the_legacy_signature_made_elsewhere_verifies() -> None:
    import base64

    from skanse.oci.manifest import compute_digest
    from skanse.signing.attach import SIGNATURE_ANNOTATION, Attached
    from skanse.signing.keys import read_public_key
    from skanse.signing.verify import check_attached
    from tests.signing.helpers import new_key, public

    manifest = json.loads(vectors("made-here", "legacy-sig-manifest.json").read_text())
    config = vectors("made-here", "legacy-sig-config.json").read_bytes()
    payload = vectors("made-here", "legacy-simplesigning-payload.json").read_bytes()
    subject = compute_digest(vectors("made-here", "subject-image-manifest.json").read_bytes())
    (layer,) = manifest["layers"]
    # the layout: the payload is the layer, the config lists it, the signature is annotated
    assert layer["mediaType"] == simplesigning.MEDIA_TYPE
    assert (layer["digest"], layer["size"]) == (compute_digest(payload), len(payload))
    assert manifest["config"]["digest"] == compute_digest(config)
    assert json.loads(config)["rootfs"]["diff_ids"] == [layer["digest"]]
    item = Attached(
        "simple-signing",
        "vector",
        payload,
        base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION]),
    )
    key = read_public_key(vectors("keys", "pemsigstorekey.pub"))
    repo = parse_reference("127.0.0.1:5000/skanse/tiny:v1")
    check = check_attached(item, subject, [key], repository=repo)
    assert check.verified, check.reason
    assert not check_attached(item, subject, [public(new_key(), "other")]).verified
    assert not check_attached(item, "sha256:" + "0" * 64, [key]).verified
    moved = parse_reference("127.0.0.1:5000/skanse/copy:v1")
    assert not check_attached(item, subject, [key], repository=moved).verified
