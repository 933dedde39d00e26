"""A private Sigstore for tests: Fulcio-style CA, CT log, Rekor log, and keyless bundles.

Keyless verification needs a certificate from a CA the trusted root lists, with an embedded
SCT from a CT log it lists, and a Rekor entry (inclusion proof, signed checkpoint, signed
entry timestamp) from a log it lists. The public-good instance cannot be reached offline, so
the tests make their own, in the published formats:
- the certificate as Fulcio issues it: SAN (email), OIDC issuer in 1.3.6.1.4.1.57264.1.1 (raw)
  and .1.8 (DER UTF8String), key usage digitalSignature, EKU codeSigning, an RFC 6962
  precertificate SCT (the signature covers the TBS without the SCT list extension and the
  issuer's key hash);
- a hashedrekord v0.0.1 entry body (Rekor's schema), a one-leaf Merkle tree (RFC 6962 leaf
  hash), a checkpoint as a signed note (transparency-dev/formats: origin, size, root; em dash,
  key hint, signature), and the SET over the RFC 8785 form of {body, integratedTime, logID,
  logIndex};
- `trusted_root.json` and the bundle v0.3 in the protobuf-specs JSON forms.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _der_utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def _der_octets(data: bytes) -> bytes:
    length = len(data)
    if length < 128:
        return bytes([0x04, length]) + data
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(encoded)]) + encoded + data


@dataclass
class PrivateSigstore:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    ct_key: ec.EllipticCurvePrivateKey
    rekor_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls) -> PrivateSigstore:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "skanse tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, "test-fulcio"),
            ]
        )
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(START)
            .not_valid_after(START + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_key,
            ca,
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP256R1()),
        )

    # -- trusted root --------------------------------------------------------------------

    def trusted_root(
        self,
        *,
        ca_end: dt.datetime | None = None,
        tlog_end: dt.datetime | None = None,
        ctlog_end: dt.datetime | None = None,
    ) -> bytes:
        """The trusted root; an `*_end` ends that CA's or log key's validity period."""

        def valid_for(end: dt.datetime | None) -> dict[str, str]:
            period = {"start": "2025-01-01T00:00:00Z"}
            if end is not None:
                period["end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
            return period

        def log(
            key: ec.EllipticCurvePrivateKey, url: str, end: dt.datetime | None
        ) -> dict[str, object]:
            der = _spki(key)
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for(end),
                },
                "logId": {"keyId": _b64(hashlib.sha256(der).digest())},
            }

        root = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key, "https://rekor.test", tlog_end)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "skanse tests", "commonName": "test-fulcio"},
                    "uri": "https://fulcio.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.ca.public_bytes(serialization.Encoding.DER))}
                        ]
                    },
                    "validFor": valid_for(ca_end),
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ctfe.test", ctlog_end)],
            "timestampAuthorities": [],
        }
        return json.dumps(root).encode()

    # -- a signing certificate with an embedded SCT ----------------------------------------

    def certificate(
        self, signer: ec.EllipticCurvePrivateKey, identity: str, issuer: str, when: dt.datetime
    ) -> x509.Certificate:
        serial = x509.random_serial_number()

        def builder() -> x509.CertificateBuilder:
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.ca.subject)
                .public_key(signer.public_key())
                .serial_number(serial)
                .not_valid_before(when - dt.timedelta(minutes=1))
                .not_valid_after(when + dt.timedelta(minutes=10))
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(signer.public_key()),
                    critical=False,
                )
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                    critical=False,
                )
                .add_extension(
                    x509.SubjectAlternativeName([x509.RFC822Name(identity)]), critical=True
                )
                .add_extension(x509.UnrecognizedExtension(ISSUER_V1, issuer.encode()), False)
                .add_extension(x509.UnrecognizedExtension(ISSUER_V2, _der_utf8(issuer)), False)
            )

        precert = builder().sign(self.ca_key, hashes.SHA256())
        tbs = precert.tbs_certificate_bytes
        issuer_key_hash = hashlib.sha256(_spki(self.ca_key)).digest()
        timestamp = int(when.timestamp() * 1000)
        signed = struct.pack(
            f"!BBQH32s3s{len(tbs)}sH",
            0,  # v1
            0,  # certificate_timestamp
            timestamp,
            1,  # precert_entry
            issuer_key_hash,
            len(tbs).to_bytes(3, "big"),
            tbs,
            0,  # no extensions
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = hashlib.sha256(_spki(self.ct_key)).digest()
        sct = (
            struct.pack("!B32sQH", 0, log_id, timestamp, 0)
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        return (
            builder()
            .add_extension(x509.UnrecognizedExtension(SCT_LIST, _der_octets(sct_list)), False)
            .sign(self.ca_key, hashes.SHA256())
        )

    # -- a keyless bundle over an artifact -------------------------------------------------

    def sign_blob(
        self,
        artifact: bytes,
        identity: str = "signer@example.com",
        issuer: str = "https://accounts.example.com",
        *,
        when: dt.datetime | None = None,
        log_artifact: bytes | None = None,
        logged_at: dt.datetime | None = None,
    ) -> bytes:
        """A bundle v0.3 over `artifact`; `log_artifact` puts another file's hash in the
        Rekor entry (the swapped-entry attack of CVE-2022-36056); `logged_at` is when the log
        says it recorded the entry (the certificate is valid for ten minutes from `when`)."""
        import rfc8785

        when = when or START + dt.timedelta(days=30)
        signer = ec.generate_private_key(ec.SECP256R1())
        cert = self.certificate(signer, identity, issuer, when)
        digest = hashlib.sha256(artifact).digest()
        signature = signer.sign(artifact, ec.ECDSA(hashes.SHA256()))
        logged = hashlib.sha256(log_artifact if log_artifact is not None else artifact)
        body = json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": logged.hexdigest()}},
                    "signature": {
                        "content": _b64(signature),
                        "publicKey": {
                            "content": _b64(cert.public_bytes(serialization.Encoding.PEM))
                        },
                    },
                },
            },
            separators=(",", ":"),
        ).encode()
        rekor_der = _spki(self.rekor_key)
        log_id = hashlib.sha256(rekor_der).digest()
        integrated = int((logged_at or when).timestamp())
        root_hash = hashlib.sha256(b"\x00" + body).digest()
        note = f"rekor.test - 1\n1\n{_b64(root_hash)}\n"
        note_signature = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = note + "\n" + f"\u2014 rekor.test {_b64(log_id[:4] + note_signature)}\n"
        set_payload = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated,
                "logID": log_id.hex(),
                "logIndex": 0,
            }
        )
        promise = self.rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [
                    {
                        "logIndex": "0",
                        "logId": {"keyId": _b64(log_id)},
                        "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                        "integratedTime": str(integrated),
                        "inclusionPromise": {"signedEntryTimestamp": _b64(promise)},
                        "inclusionProof": {
                            "logIndex": "0",
                            "rootHash": _b64(root_hash),
                            "treeSize": "1",
                            "hashes": [],
                            "checkpoint": {"envelope": checkpoint},
                        },
                        "canonicalizedBody": _b64(body),
                    }
                ],
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                "signature": _b64(signature),
            },
        }
        return json.dumps(bundle).encode()
