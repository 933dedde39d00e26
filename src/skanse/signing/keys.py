"""Cosign key pairs: generate, encrypt, load; public keys and their hints.

The private key file (`cosign.key`) is one PEM block, `ENCRYPTED SIGSTORE PRIVATE KEY` (what
Cosign writes today) or `ENCRYPTED COSIGN PRIVATE KEY` (older Cosign), whose body is not DER
but JSON (go-securesystemslib's `encrypted` format):

    {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<b64 32 B>"},
     "cipher":{"name":"nacl/secretbox","nonce":"<b64 24 B>"},"ciphertext":"<b64>"}

The secretbox key is scrypt(password, salt, N, r, p, 32) and the plaintext is a PKCS#8 DER
private key. As in Cosign, only three scrypt settings are accepted (N = 2^15, 2^16, 2^17 with
r = 8, p = 1), so a hostile file cannot ask for gigabytes of memory, and a SEC1
(`EC PRIVATE KEY`) plaintext is refused although OpenSSL would read it. The public key
(`cosign.pub`) is a PKIX `PUBLIC KEY` PEM; its hint (Sigstore bundles'
`verificationMaterial.publicKey.hint`) is base64(sha256(SubjectPublicKeyInfo DER)).

skanse signs and verifies with ECDSA P-256 and SHA-256, Cosign's default key type; any other
key type or curve is refused with its name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from skanse.errors import KeyFileError

__all__ = [
    "PRIVATE_KEY_LABELS",
    "SCRYPT_PARAMETERS",
    "PublicKey",
    "SigningKey",
    "encrypt_private_key",
    "generate_key_pair",
    "key_hint",
    "load_private_key",
    "load_public_key",
    "read_private_key",
    "read_public_key",
]

SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
PRIVATE_KEY_LABELS = (SIGSTORE_LABEL, COSIGN_LABEL)
# (N, r, p) that Cosign's decryption accepts: "legacy", "standard" (its default), "OWASP".
SCRYPT_PARAMETERS = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
DEFAULT_SCRYPT = (65536, 8, 1)
_SALT_BYTES = 32
_NONCE_BYTES = 24
_MAX_KEY_FILE = 64 * 1024
_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def key_hint(spki_der: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo DER)): the key id Sigstore bundles carry."""
    return base64.b64encode(hashlib.sha256(spki_der).digest()).decode()


@dataclass(frozen=True, slots=True, eq=False)
class PublicKey:
    """An ECDSA P-256 verification key and the name the user gave it (a path, a policy id)."""

    name: str
    key: ec.EllipticCurvePublicKey
    spki_der: bytes

    @property
    def hint(self) -> str:
        return key_hint(self.spki_der)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when `signature` (ASN.1 DER ECDSA) is over SHA-256(`data`) by this key."""
        try:
            self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify_digest(self, signature: bytes, sha256: bytes) -> bool:
        """`verify` for data known by its SHA-256 only (a large file hashed as it streamed)."""
        try:
            self.key.verify(signature, sha256, ec.ECDSA(Prehashed(hashes.SHA256())))
        except (InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        return _pem_encode("PUBLIC KEY", self.spki_der)


@dataclass(frozen=True, slots=True, eq=False)
class SigningKey:
    """An ECDSA P-256 private key, decrypted."""

    key: ec.EllipticCurvePrivateKey

    def sign(self, data: bytes) -> bytes:
        """ASN.1 DER ECDSA signature over SHA-256(`data`), as Cosign makes them."""
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def sign_digest(self, sha256: bytes) -> bytes:
        """`sign` for data known by its SHA-256: the same signature, without the data."""
        return self.key.sign(sha256, ec.ECDSA(Prehashed(hashes.SHA256())))

    def public_key(self, name: str = "cosign.pub") -> PublicKey:
        public = self.key.public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return PublicKey(name, public, der)


def _pem_encode(label: str, der: bytes) -> bytes:
    """A PEM block with 64-column lines, as Go's encoding/pem writes it."""
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def _pem_block(data: bytes, name: str) -> tuple[str, bytes]:
    """The one PEM block in `data`: (label, decoded body). Strict base64."""
    if len(data) > _MAX_KEY_FILE:
        raise KeyFileError(f"key file is over {_MAX_KEY_FILE} bytes", path=name)
    blocks = _PEM.findall(data)
    if not blocks:
        raise KeyFileError("no PEM block found (expected -----BEGIN ...----- lines)", path=name)
    if len(blocks) > 1:
        raise KeyFileError(f"{len(blocks)} PEM blocks found; a key file holds one", path=name)
    label, body = blocks[0]
    text = b"".join(body.split())
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"the {label.decode()} block is not valid base64", path=name) from None
    if not decoded:
        raise KeyFileError(f"the {label.decode()} block is empty", path=name)
    return label.decode(), decoded


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return type(key).__name__


def _require_p256(key: object, name: str) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return
    raise KeyFileError(
        f"unsupported key type {_describe(key)}: skanse signs and verifies with ECDSA P-256 "
        "keys (Cosign's default)",
        path=name,
    )


def load_public_key(data: bytes, *, name: str = "public key") -> PublicKey:
    """A PKIX `PUBLIC KEY` PEM holding an ECDSA P-256 key."""
    label, der = _pem_block(data, name)
    if label != "PUBLIC KEY":
        raise KeyFileError(
            f"expected a PUBLIC KEY PEM block, found {label!r}"
            + (" (that is a private key: use the .pub file)" if "PRIVATE" in label else ""),
            path=name,
        )
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"not a valid SubjectPublicKeyInfo: {exc}", path=name) from None
    _require_p256(key, name)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    canonical = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey(name, key, canonical)


def read_public_key(path: str | Path) -> PublicKey:
    return load_public_key(_read(path), name=str(path))


def _read(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyFileError(exc.strerror or str(exc), path=str(path)) from None
    return data


# --- the encrypted private key ----------------------------------------------------------


def _b64field(value: Any, field: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError(f"encrypted key: {field} is not a base64 string", path=name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"encrypted key: {field} is not valid base64", path=name) from None


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from nacl.bindings import crypto_pwhash_scryptsalsa208sha256_ll

    return bytes(
        crypto_pwhash_scryptsalsa208sha256_ll(
            password, salt, n, r, p, dklen=32, maxmem=2 * 128 * r * n
        )
    )


def _is_pkcs8(der: bytes) -> bool:
    """True for a PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER version, SEQUENCE algorithm, ...}.

    SEC1's ECPrivateKey is SEQUENCE { INTEGER 1, OCTET STRING, ... }: its second element is an
    OCTET STRING (0x04), not a SEQUENCE (0x30). Cosign refuses it (Go's ParsePKCS8PrivateKey).
    """
    if len(der) < 2 or der[0] != 0x30:
        return False
    offset = 2
    if der[1] & 0x80:
        offset += der[1] & 0x7F
    # version: INTEGER of one byte, 0 (v1) or 1 (v2, RFC 5958)
    if der[offset : offset + 2] != b"\x02\x01" or der[offset + 2 : offset + 3] not in (
        b"\x00",
        b"\x01",
    ):
        return False
    return der[offset + 3 : offset + 4] == b"\x30"


def load_private_key(data: bytes, password: bytes, *, name: str = "private key") -> SigningKey:
    """Decrypt a Cosign private key file; `KeyFileError` says why it cannot be used."""
    label, body = _pem_block(data, name)
    if label not in PRIVATE_KEY_LABELS:
        raise KeyFileError(
            f"unsupported PEM block {label!r}: expected {SIGSTORE_LABEL!r} or {COSIGN_LABEL!r} "
            "(a Cosign key file)",
            path=name,
        )
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError("encrypted key: the PEM body is not JSON", path=name) from None
    if not isinstance(doc, dict):
        raise KeyFileError("encrypted key: the PEM body is not a JSON object", path=name)
    kdf, cipher = doc.get("kdf"), doc.get("cipher")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeyFileError("encrypted key: unsupported key derivation (expected scrypt)", path=name)
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise KeyFileError("encrypted key: unsupported cipher (expected nacl/secretbox)", path=name)
    params = kdf.get("params")
    if not isinstance(params, dict):
        raise KeyFileError("encrypted key: scrypt parameters are missing", path=name)
    n, r, p = params.get("N"), params.get("r"), params.get("p")
    if (n, r, p) not in SCRYPT_PARAMETERS or any(isinstance(v, bool) for v in (n, r, p)):
        raise KeyFileError(
            f"encrypted key: unsupported scrypt parameters N={n!r} r={r!r} p={p!r} (Cosign "
            "accepts N=32768, 65536 or 131072 with r=8, p=1)",
            path=name,
        )
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    salt = _b64field(kdf.get("salt"), "salt", name)
    nonce = _b64field(cipher.get("nonce"), "nonce", name)
    ciphertext = _b64field(doc.get("ciphertext"), "ciphertext", name)
    if len(salt) != _SALT_BYTES:
        raise KeyFileError(f"encrypted key: salt is {len(salt)} bytes, not 32", path=name)
    if len(nonce) != _NONCE_BYTES:
        raise KeyFileError(f"encrypted key: nonce is {len(nonce)} bytes, not 24", path=name)
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        plaintext = SecretBox(_scrypt(password, salt, n, r, p)).decrypt(ciphertext, nonce)
    except CryptoError:
        raise KeyFileError(
            "wrong password, or the key file is corrupt (decryption failed)", path=name
        ) from None
    if not _is_pkcs8(plaintext):
        raise KeyFileError(
            "the decrypted key is not PKCS#8 (a SEC1 'EC PRIVATE KEY'?); Cosign refuses it "
            "too: re-import it with `cosign import-key-pair`",
            path=name,
        )
    try:
        key = serialization.load_der_private_key(plaintext, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"the decrypted PKCS#8 key is invalid: {exc}", path=name) from None
    _require_p256(key, name)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return SigningKey(key)


def read_private_key(path: str | Path, password: bytes) -> SigningKey:
    return load_private_key(_read(path), password, name=str(path))


def encrypt_private_key(
    key: SigningKey, password: bytes, *, scrypt: tuple[int, int, int] = DEFAULT_SCRYPT
) -> bytes:
    """The Cosign key file for `key`: PKCS#8, scrypt + secretbox, SIGSTORE label."""
    if scrypt not in SCRYPT_PARAMETERS:
        raise ValueError(f"scrypt parameters {scrypt} are not ones Cosign accepts")
    from nacl.secret import SecretBox

    n, r, p = scrypt
    salt = os.urandom(_SALT_BYTES)
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = key.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = SecretBox(_scrypt(password, salt, n, r, p)).encrypt(plaintext, nonce).ciphertext

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    # field order and spelling as go-securesystemslib marshals its structs
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(sealed),
    }
    return _pem_encode(SIGSTORE_LABEL, json.dumps(doc, separators=(",", ":")).encode())


def generate_key_pair(password: bytes) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key pair: (cosign.key contents, cosign.pub contents)."""
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    return encrypt_private_key(key, password), key.public_key().pem()
