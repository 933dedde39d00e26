"""Keys and images for the signing tests."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

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


def dribbled_signatures(server: Any, digest: str, count: int) -> None:
    """Routes on `server` (tests.oci.test_registry_errors.Server) for a `.sig` manifest of
    `digest` whose `count` payloads are each sent a byte every 50 ms, about 0.4 s apiece:
    inside a 0.5 s request deadline, so only a deadline for the whole verification ends it.
    Each answer closes its connection (the dribbler hangs up after it)."""
    from skanse.oci.manifest import OCI_CONFIG, OCI_MANIFEST
    from skanse.signing import simplesigning
    from skanse.signing.attach import SIGNATURE_ANNOTATION, signature_tag
    from tests.oci.test_registry_errors import STATUS, dribbling, padded_headers, reply

    layers = []
    for i in range(count):
        payload = b"%08d" % i
        payload_digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        layers.append(
            {
                "mediaType": simplesigning.MEDIA_TYPE,
                "digest": payload_digest,
                "size": len(payload),
                "annotations": {SIGNATURE_ANNOTATION: b64(b"signature")},
            }
        )
        head = STATUS + b"Connection: close\r\n" + padded_headers(len(payload))
        server.routes[f"GET /v2/team/app/blobs/{payload_digest}"] = dribbling(head, payload)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + "ef" * 32, "size": 2},
            "layers": layers,
        }
    ).encode()
    server.routes[f"GET /v2/team/app/manifests/{signature_tag(digest)}"] = reply(
        200, manifest, {"Content-Type": OCI_MANIFEST}
    )


class StallingRegistry:
    """A registry on 127.0.0.1 that accepts every connection and never answers: what a pod
    author's registry can be. Counts the connections; `close` hangs them all up."""

    def __init__(self) -> None:
        import socket
        import threading

        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.held: list[Any] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.held.append(conn)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.held)

    def close(self) -> None:
        import socket

        # shutdown wakes the accepting thread (close alone leaves it accepting)
        self._listener.shutdown(socket.SHUT_RDWR)
        self._thread.join()
        self._listener.close()
        with self._lock:
            for conn in self.held:
                conn.close()
