"""Keys and images for the signing tests."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from skanse.oci.reference import Reference
from skanse.oci.registry import RegistryClient
from skanse.oci.writer import LayerBuilder, build_image, push_image
from skanse.signing.keys import PublicKey, SigningKey
from tests.conftest import corpus_path


def new_key() -> SigningKey:
    """A P-256 key without the scrypt round (fast); the key files are tested on their own."""
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


def public(key: SigningKey, name: str) -> PublicKey:
    return key.public_key(name)


def push_test_image(client: RegistryClient, ref: Reference, content: bytes = b"v1") -> str:
    """A one-layer image with /app/version = `content`, pushed at `ref`; its digest."""
    layer = LayerBuilder().add_file("/app/version", content).build()
    return push_image(client, ref, build_image([layer]))


def vectors(*parts: str) -> Path:
    return corpus_path("cosign-vectors", *parts)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
