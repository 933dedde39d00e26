"""A CA and a serving certificate for the webhook's Service, for clusters without cert-manager.

The serving certificate names the Service the API server calls
(`<service>.<namespace>.svc`, and the shorter and longer forms), is signed by the CA, and
the CA certificate goes into the webhook configurations' `caBundle`. Keys are ECDSA P-256.
An existing CA (`ca.crt` and `ca.key` in the output directory, or given) is reused so that
renewing the serving certificate does not change the caBundle.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skanse.errors import CertificateError
from skanse.files import write_atomic

__all__ = ["MAX_DAYS", "IssuedCertificates", "dns_names", "issue"]

# Longest lifetime accepted: 100 years; far past any use, and no date overflows.
MAX_DAYS = 36500


@dataclass(frozen=True, slots=True)
class IssuedCertificates:
    ca_cert: Path
    ca_key: Path
    tls_cert: Path
    tls_key: Path
    ca_bundle: str  # base64 of the CA certificate in PEM, as caBundle wants it
    reused_ca: bool
    not_after: dt.datetime


def dns_names(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot load the CA {cert_path} / {key_path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{key_path} is not an ECDSA key")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or (
        public.public_numbers() != key.public_key().public_numbers()
    ):
        raise CertificateError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def _new_ca(now: dt.datetime, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skanse admission webhook CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    out_dir: Path,
    *,
    service: str,
    namespace: str,
    days: int = 365,
    ca_days: int = 3650,
    extra_names: tuple[str, ...] = (),
    now: dt.datetime | None = None,
) -> IssuedCertificates:
    """Write ca.crt, ca.key, tls.crt and tls.key into `out_dir` (keys with mode 0600)."""
    now = now or dt.datetime.now(dt.UTC)
    if not 1 <= days <= MAX_DAYS or not 1 <= ca_days <= MAX_DAYS:
        raise CertificateError(f"lifetimes are 1 to {MAX_DAYS} days, not {days} and {ca_days}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    ca_cert_path, ca_key_path = out_dir / "ca.crt", out_dir / "ca.key"
    reused = ca_cert_path.exists() and ca_key_path.exists()
    if not reused and (ca_cert_path.exists() or ca_key_path.exists()):
        # half a CA: replacing it would silently change the caBundle the clusters trust
        lone, missing = (
            (ca_cert_path, ca_key_path) if ca_cert_path.exists() else (ca_key_path, ca_cert_path)
        )
        raise CertificateError(
            f"{lone} exists without {missing}: refusing to replace the CA; restore "
            f"{missing.name}, or remove {lone.name} to make a new CA (and a new caBundle)"
        )
    if reused:
        ca_cert, ca_key = _load_ca(ca_cert_path, ca_key_path)
    else:
        ca_cert, ca_key = _new_ca(now, ca_days)
    key = _new_key()
    names = [*dns_names(service, namespace), *extra_names]
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[2])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    tls_cert_path, tls_key_path = out_dir / "tls.crt", out_dir / "tls.key"
    try:
        if not reused:
            write_atomic(ca_key_path, _pem_key(ca_key), mode=0o600)
            write_atomic(ca_cert_path, ca_pem, mode=0o644)
        # key first: a reader that sees the new certificate finds its key already there
        write_atomic(tls_key_path, _pem_key(key), mode=0o600)
        write_atomic(tls_cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    except OSError as exc:
        raise CertificateError(f"cannot write into {out_dir}: {exc.strerror or exc}") from None
    return IssuedCertificates(
        ca_cert=ca_cert_path,
        ca_key=ca_key_path,
        tls_cert=tls_cert_path,
        tls_key=tls_key_path,
        ca_bundle=base64.b64encode(ca_pem).decode("ascii"),
        reused_ca=reused,
        not_after=not_after,
    )
