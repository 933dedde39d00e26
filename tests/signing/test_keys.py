"""Cosign key files: the vectors, our own round trip, and every way a key file can be bad."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from skanse.errors import KeyFileError
from skanse.signing import keys
from tests.signing.helpers import new_key, vectors

pytestmark = pytest.mark.corpus


def _vector_keys() -> dict[str, dict]:
    return json.loads(vectors("keys", "keys.json").read_text())


@pytest.mark.parametrize("name", ["pemcosignkey", "pemsigstorekey", "pemcosigneckey"])
def test_vector_keys_load_or_fail_as_keys_json_says(name: str) -> None:
    meta = _vector_keys()[name]
    path = vectors("keys", f"{name}.key")
    assert path.read_text().startswith(f"-----BEGIN {meta['pem_type']}-----")
    if meta["cosign_LoadPrivateKey_expected"] == "ok":
        key = keys.read_private_key(path, meta["password"].encode())
        # the decrypted key is the public key's other half, and the hint is Sigstore's
        public = keys.read_public_key(vectors("keys", f"{name}.pub"))
        assert key.public_key().spki_der == public.spki_der
        assert public.hint == meta["sigstore_keyid_hint_b64_sha256_spki"]
        assert public.verify(key.sign(b"payload"), b"payload")
    else:
        # SEC1 inside: OpenSSL would read it, Cosign refuses it, and so does skanse
        with pytest.raises(KeyFileError, match="not PKCS#8"):
            keys.read_private_key(path, meta["password"].encode())


def test_vector_key_with_wrong_password_is_a_clear_error() -> None:
    with pytest.raises(KeyFileError) as info:
        keys.read_private_key(vectors("keys", "pemsigstorekey.key"), b"not-hello")
    assert "wrong password" in info.value.diagnostics()
    assert "pemsigstorekey.key" in info.value.diagnostics()


def test_generated_pair_round_trips_with_cosign_parameters() -> None:
    private_pem, public_pem = keys.generate_key_pair(b"s3cret")
    assert private_pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = b"".join(private_pem.splitlines()[1:-1])
    assert all(len(line) <= 64 for line in private_pem.splitlines())
    doc = json.loads(base64.b64decode(body))
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"] == {"name": "nacl/secretbox", "nonce": doc["cipher"]["nonce"]}
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    key = keys.load_private_key(private_pem, b"s3cret")
    public = keys.load_public_key(public_pem)
    assert public.verify(key.sign(b"x"), b"x")
    assert not public.verify(key.sign(b"x"), b"y")
    # the plaintext is PKCS#8, as Cosign writes it
    assert keys._is_pkcs8(
        key.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_empty_password_is_allowed_as_in_cosign() -> None:
    key = new_key()
    pem = keys.encrypt_private_key(key, b"", scrypt=(32768, 8, 1))
    assert keys.load_private_key(pem, b"").public_key().spki_der == key.public_key().spki_der


def _encrypted(doc: dict, label: str = "ENCRYPTED SIGSTORE PRIVATE KEY") -> bytes:
    return keys._pem_encode(label, json.dumps(doc).encode())


def _valid_doc() -> dict:
    pem = keys.encrypt_private_key(new_key(), b"pw", scrypt=(32768, 8, 1))
    return json.loads(base64.b64decode(b"".join(pem.splitlines()[1:-1])))


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"N": 1 << 20, "r": 8, "p": 1}, "unsupported scrypt parameters"),  # 1 GiB of memory
        ({"N": 16384, "r": 8, "p": 1}, "unsupported scrypt parameters"),  # weaker than Cosign's
        ({"N": 32768, "r": 8, "p": 16}, "unsupported scrypt parameters"),
        ({"N": "32768", "r": 8, "p": 1}, "unsupported scrypt parameters"),
        ({"N": 32768, "r": True, "p": 1}, "unsupported scrypt parameters"),
    ],
)
def test_only_cosigns_scrypt_parameters_are_accepted(params: dict, fragment: str) -> None:
    doc = _valid_doc()
    doc["kdf"]["params"] = params
    with pytest.raises(KeyFileError, match=fragment):
        keys.load_private_key(_encrypted(doc), b"pw")


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["kdf"].update(name="argon2"), "unsupported key derivation"),
        (lambda d: d["cipher"].update(name="aes-gcm"), "unsupported cipher"),
        (lambda d: d["kdf"].update(salt="not base64!"), "salt is not valid base64"),
        (lambda d: d["kdf"].update(salt=base64.b64encode(b"x" * 16).decode()), "salt is 16"),
        (lambda d: d["cipher"].update(nonce=base64.b64encode(b"x" * 8).decode()), "nonce is 8"),
        (lambda d: d.update(ciphertext=12), "ciphertext is not a base64 string"),
        (lambda d: d.pop("kdf"), "unsupported key derivation"),
        (
            lambda d: d.update(ciphertext=base64.b64encode(b"\0" * 64).decode()),
            "wrong password",
        ),
    ],
)
def test_malformed_encrypted_keys_are_refused_with_the_reason(mutate, fragment: str) -> None:
    doc = _valid_doc()
    mutate(doc)
    with pytest.raises(KeyFileError, match=fragment):
        keys.load_private_key(_encrypted(doc), b"pw")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "no PEM block"),
        (b"just text", "no PEM block"),
        (
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n@@@@\n"
            b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "not valid base64",
        ),
        (
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nW10=\n"
            b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "not a JSON object",
        ),
        (
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGpzb24=\n"
            b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "not JSON",
        ),
        (
            b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "unsupported PEM block 'EC PRIVATE KEY'",
        ),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" * 2, "2 PEM blocks"),
        (b"-----BEGIN X-----\n" + b"A" * 70000 + b"\n-----END X-----\n", "over 65536 bytes"),
    ],
)
def test_malformed_private_key_files(data: bytes, fragment: str) -> None:
    with pytest.raises(KeyFileError, match=fragment):
        keys.load_private_key(data, b"pw")


def _spki(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ECDSA secp384r1"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "ECDSA secp256k1"),
        (lambda: rsa.generate_private_key(65537, 2048), "RSA 2048"),
        (ed25519.Ed25519PrivateKey.generate, "Ed25519"),
    ],
)
def test_public_keys_of_another_curve_or_type_are_refused(make, fragment: str) -> None:
    with pytest.raises(KeyFileError, match=f"unsupported key type {fragment}"):
        keys.load_public_key(_spki(make()))


def test_private_key_of_another_curve_is_refused_after_decryption() -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    pem = keys.encrypt_private_key(keys.SigningKey(other), b"pw", scrypt=(32768, 8, 1))
    with pytest.raises(KeyFileError, match="unsupported key type ECDSA secp384r1"):
        keys.load_private_key(pem, b"pw")


def test_a_private_key_given_as_public_key_says_so() -> None:
    pem = keys.encrypt_private_key(new_key(), b"pw", scrypt=(32768, 8, 1))
    with pytest.raises(KeyFileError, match="that is a private key"):
        keys.load_public_key(pem)


def test_broken_public_key_of_the_conformance_suite_is_refused() -> None:
    # managed-key-wrong-key_fail: a PUBLIC KEY block whose DER is damaged
    with pytest.raises(KeyFileError, match="not a valid SubjectPublicKeyInfo"):
        keys.read_public_key(vectors("conformance", "managed-key-wrong-key_fail", "key.pub"))


def test_missing_key_file_names_the_path(tmp_path) -> None:
    with pytest.raises(KeyFileError) as info:
        keys.read_public_key(tmp_path / "nope.pub")
    assert "nope.pub" in info.value.diagnostics()
