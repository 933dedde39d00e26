"""Registries that misbehave: a small HTTP server on 127.0.0.1 plays each bad answer.

A real docker-registry never sends a truncated blob, a 500 or a redirect to another host,
so these cases need a server that does. It speaks real HTTP on loopback; the client under
test is the same one the other tests run against docker-registry.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from skanse.errors import (
    AuthError,
    DigestMismatchError,
    LayoutError,
    ManifestError,
    RegistryClientError,
)
from skanse.oci.cache import BlobCache
from skanse.oci.manifest import Descriptor
from skanse.oci.reference import parse_reference
from skanse.oci.registry import RegistryClient, RegistryOptions

Handler = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """Routes `METHOD path` to a handler; records every request's path and headers."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                server.seen.append((f"{self.command} {self.path}", dict(self.headers.items())))
                route = server.routes.get(f"{self.command} {self.path.split('?')[0]}")
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route(self)

            do_GET = do_HEAD = do_PUT = do_POST = handle_any

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up mid-answer is what some tests do on purpose

        self.httpd = Quiet(("127.0.0.1", 0), RequestHandler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)

    return handler


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def client_for(tmp_path: Path, config: dict[str, Any] | None = None) -> RegistryClient:
    from skanse.oci.auth import DockerConfig

    path = tmp_path / "docker.json"
    path.write_text(json.dumps(config or {}))
    return RegistryClient(
        RegistryOptions(timeout=5),
        cache=BlobCache(tmp_path / "cache"),
        credentials=DockerConfig.load(path),
    )


BLOB = b"layer bytes " * 1000
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def test_500_names_the_reference_and_the_status(server: Server, tmp_path: Path) -> None:
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "storage down"}]}).encode()
    server.routes["GET /v2/team/app/manifests/v1"] = reply(500, body)
    ref = parse_reference(f"{server.host}/team/app:v1")
    with pytest.raises(RegistryClientError) as caught:
        client_for(tmp_path).get_manifest(ref)
    text = caught.value.diagnostics()
    assert f"{server.host}/team/app:v1" in text and "500" in text and "storage down" in text


def test_an_error_body_nested_too_deeply_is_only_not_shown(server: Server, tmp_path: Path) -> None:
    body = b'{"errors": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    server.routes["GET /v2/team/app/manifests/v1"] = reply(500, body)
    with pytest.raises(RegistryClientError, match=r"registry answered 500$"):
        client_for(tmp_path).get_manifest(parse_reference(f"{server.host}/team/app:v1"))


def test_401_without_a_challenge_or_credentials(server: Server, tmp_path: Path) -> None:
    server.routes["GET /v2/team/app/manifests/v1"] = reply(
        401, headers={"WWW-Authenticate": 'Basic realm="x"'}
    )
    with pytest.raises(AuthError, match="no credentials"):
        client_for(tmp_path).get_manifest(parse_reference(f"{server.host}/team/app:v1"))


def test_bearer_realm_over_plain_http_elsewhere_gets_no_credentials(
    server: Server, tmp_path: Path
) -> None:
    server.routes["GET /v2/team/app/manifests/v1"] = reply(
        401,
        headers={"WWW-Authenticate": 'Bearer realm="http://tokens.example.org/token",service="x"'},
    )
    config = {"auths": {server.host: {"username": "u", "password": "p"}}}
    with pytest.raises(AuthError, match="plain HTTP; refusing to send credentials"):
        client_for(tmp_path, config).get_manifest(parse_reference(f"{server.host}/team/app:v1"))


def test_manifest_over_the_size_cap_is_refused(server: Server, tmp_path: Path) -> None:
    server.routes["GET /v2/team/app/manifests/big"] = reply(
        200, b"{" + b" " * (5 * 1024 * 1024) + b"}"
    )
    with pytest.raises(ManifestError, match="over the 4194304-byte cap"):
        client_for(tmp_path).get_manifest(parse_reference(f"{server.host}/team/app:big"))


def test_unknown_media_type_is_named(server: Server, tmp_path: Path) -> None:
    from skanse.oci.image import open_registry_image

    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.acme.thing+json"}).encode()
    server.routes["GET /v2/team/app/manifests/odd"] = reply(
        200, body, {"Content-Type": "application/vnd.acme.thing+json"}
    )
    with pytest.raises(
        ManifestError, match=r"unknown manifest media type 'application/vnd\.acme\.thing"
    ):
        open_registry_image(client_for(tmp_path), parse_reference(f"{server.host}/team/app:odd"))


def test_manifest_content_must_match_the_digest_header(server: Server, tmp_path: Path) -> None:
    body = b'{"schemaVersion":2}'
    server.routes["GET /v2/team/app/manifests/v1"] = reply(
        200, body, {"Docker-Content-Digest": "sha256:" + "0" * 64}
    )
    with pytest.raises(DigestMismatchError):
        client_for(tmp_path).get_manifest(parse_reference(f"{server.host}/team/app:v1"))


def test_a_sha512_digest_header_is_checked_and_named_in_its_own_algorithm(
    server: Server, tmp_path: Path
) -> None:
    body = b'{"schemaVersion":2}'
    genuine = "sha512:" + hashlib.sha512(body).hexdigest()
    server.routes["GET /v2/team/app/manifests/good"] = reply(
        200, body, {"Docker-Content-Digest": genuine}
    )
    client = client_for(tmp_path)
    assert client.get_manifest(parse_reference(f"{server.host}/team/app:good"))[0] == body
    server.routes["GET /v2/team/app/manifests/bad"] = reply(
        200, body, {"Docker-Content-Digest": "sha512:" + "0" * 128}
    )
    # the error names what the content hashes to under the header's algorithm
    with pytest.raises(DigestMismatchError, match=f"hashes to {genuine}"):
        client.get_manifest(parse_reference(f"{server.host}/team/app:bad"))


def _truncating(times: int) -> Handler:
    """Send half the blob and drop the connection `times` times, then honour Range."""
    calls = {"n": 0}

    def handler(request: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        rng = request.headers.get("Range")
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        if calls["n"] <= times:
            request.send_response(206 if start else 200)
            request.send_header("Content-Length", str(len(BLOB) - start))
            if start:
                request.send_header("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}")
            request.end_headers()
            request.wfile.write(BLOB[start : start + (len(BLOB) - start) // 2])
            request.wfile.flush()
            request.close_connection = True
            return
        request.send_response(206 if start else 200)
        if start:
            request.send_header("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}")
        request.send_header("Content-Length", str(len(BLOB) - start))
        request.end_headers()
        request.wfile.write(BLOB[start:])

    return handler


def test_truncated_blob_is_resumed_with_range_and_verified(server: Server, tmp_path: Path) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = _truncating(2)
    client = client_for(tmp_path)
    ref = parse_reference(f"{server.host}/team/app:v1")
    path = client.fetch_blob(ref, Descriptor("application/octet-stream", DIGEST, len(BLOB)))
    assert path.read_bytes() == BLOB
    ranges = [h.get("Range") for line, h in server.seen if "blobs" in line]
    assert ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:])


def test_blob_that_never_completes_is_not_cached(server: Server, tmp_path: Path) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = _truncating(100)
    client = client_for(tmp_path)
    ref = parse_reference(f"{server.host}/team/app:v1")
    with pytest.raises(RegistryClientError, match="truncated download discarded"):
        client.fetch_blob(ref, Descriptor("application/octet-stream", DIGEST, len(BLOB)))
    assert BlobCache(tmp_path / "cache").get(DIGEST) is None
    assert not any((tmp_path / "cache" / "partial").iterdir())


def test_blob_with_wrong_content_is_not_cached(server: Server, tmp_path: Path) -> None:
    evil = b"x" * len(BLOB)
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = reply(200, evil)
    client = client_for(tmp_path)
    with pytest.raises(DigestMismatchError, match="not cached"):
        client.fetch_blob(
            parse_reference(f"{server.host}/team/app:v1"), Descriptor("x", DIGEST, len(BLOB))
        )
    assert BlobCache(tmp_path / "cache").get(DIGEST) is None


def test_blob_longer_than_declared_stops_at_the_declared_size(
    server: Server, tmp_path: Path
) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = reply(200, BLOB + b"endless data" * 1000)
    with pytest.raises(DigestMismatchError, match="longer than its declared"):
        client_for(tmp_path).fetch_blob(
            parse_reference(f"{server.host}/team/app:v1"), Descriptor("x", DIGEST, len(BLOB))
        )


def test_blob_redirect_to_another_host_drops_credentials(server: Server, tmp_path: Path) -> None:
    storage = Server()
    try:
        server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = reply(
            307, headers={"Location": f"http://{storage.host}/bucket/blob?sig=1"}
        )
        server.routes["GET /v2/team/app/manifests/v1"] = reply(200, b"{}")
        storage.routes["GET /bucket/blob"] = reply(200, BLOB)
        config = {"auths": {server.host: {"username": "u", "password": "p"}}}
        client = client_for(tmp_path, config)
        ref = parse_reference(f"{server.host}/team/app:v1")
        # make the client hold credentials for the registry: it answered Basic once
        calls = {"n": 0}

        def protected(request: BaseHTTPRequestHandler) -> None:
            calls["n"] += 1
            if "Authorization" not in request.headers:
                reply(401, headers={"WWW-Authenticate": 'Basic realm="r"'})(request)
            else:
                reply(307, headers={"Location": f"http://{storage.host}/bucket/blob?sig=1"})(
                    request
                )

        server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = protected
        path = client.fetch_blob(ref, Descriptor("x", DIGEST, len(BLOB)))
        assert path.read_bytes() == BLOB
        registry_auth = [h.get("Authorization") for line, h in server.seen if "blobs" in line]
        assert registry_auth[-1] is not None and registry_auth[-1].startswith("Basic ")
        assert storage.seen and all("Authorization" not in h for _, h in storage.seen)
    finally:
        storage.close()


def test_small_blob_reads_follow_redirects_without_credentials(
    server: Server, tmp_path: Path
) -> None:
    # configs, signature payloads and bundles come through get_blob_bytes; Docker Hub, GHCR
    # and ECR redirect those GETs to storage as they do layers
    storage = Server()
    try:
        config = {"auths": {server.host: {"username": "u", "password": "p"}}}
        client = client_for(tmp_path, config)
        ref = parse_reference(f"{server.host}/team/app:v1")

        def protected(request: BaseHTTPRequestHandler) -> None:
            if "Authorization" not in request.headers:
                reply(401, headers={"WWW-Authenticate": 'Basic realm="r"'})(request)
            else:  # relative first, then off to another host
                reply(307, headers={"Location": "/moved/blob"})(request)

        server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = protected
        server.routes["GET /moved/blob"] = reply(
            302, headers={"Location": f"http://{storage.host}/bucket/blob?sig=1"}
        )
        storage.routes["GET /bucket/blob"] = reply(200, BLOB)
        data = client.get_blob_bytes(ref, Descriptor("x", DIGEST, len(BLOB)), cap=1 << 20)
        assert data == BLOB
        moved = [h for line, h in server.seen if line == "GET /moved/blob"]
        assert moved and moved[0].get("Authorization", "").startswith("Basic ")
        assert storage.seen and all("Authorization" not in h for _, h in storage.seen)
        # a redirect loop ends after the same number of hops as a download's
        server.routes["GET /moved/blob"] = reply(307, headers={"Location": "/moved/blob"})
        with pytest.raises(RegistryClientError, match="more than 5 redirects"):
            client.get_blob_bytes(ref, Descriptor("x", DIGEST, len(BLOB)), cap=1 << 20)
        # what a storage host answers is still checked against the digest
        server.routes["GET /moved/blob"] = reply(
            302, headers={"Location": f"http://{storage.host}/bucket/blob?sig=1"}
        )
        storage.routes["GET /bucket/blob"] = reply(200, BLOB[:-1] + b"!")
        with pytest.raises(DigestMismatchError):
            client.get_blob_bytes(ref, Descriptor("x", DIGEST, len(BLOB)), cap=1 << 20)
    finally:
        storage.close()


def dribbling(sent: bytes, dribbled: bytes, *, for_seconds: float = 5.0) -> Handler:
    """Send `sent` at once, then `dribbled` a byte every 50 ms: an answer that never stalls
    long enough for the per-read timeout. Gives up after `for_seconds`."""

    def handler(request: BaseHTTPRequestHandler) -> None:
        stop = time.monotonic() + for_seconds
        request.wfile.write(sent)
        for i in range(len(dribbled)):
            if time.monotonic() > stop:
                break
            request.wfile.write(dribbled[i : i + 1])
            request.wfile.flush()
            time.sleep(0.05)
        request.close_connection = True

    return handler


STATUS = b"HTTP/1.1 200 OK\r\n"


def padded_headers(length: int) -> bytes:
    return b"Content-Length: %d\r\nX-Padding: %s\r\n\r\n" % (length, b"p" * 400)


MANIFEST = b'{"schemaVersion": 2,' + b" " * 400 + b"}"


@pytest.mark.parametrize(
    ("sent", "dribbled", "error"),
    [
        (
            STATUS + padded_headers(len(MANIFEST)),
            MANIFEST,
            "the answer was not complete within 0.5 s",
        ),
        (STATUS, padded_headers(len(MANIFEST)) + MANIFEST, "sent no complete answer within 0.5 s"),
    ],
    ids=["body", "headers"],
)
def test_a_dribbled_manifest_ends_at_the_request_deadline(
    server: Server, sent: bytes, dribbled: bytes, error: str
) -> None:
    # each byte comes well within the 5 s per-read timeout; only the deadline ends the wait
    server.routes["GET /v2/team/app/manifests/v1"] = dribbling(sent, dribbled)
    client = RegistryClient(RegistryOptions(timeout=5, request_deadline=0.5))
    with pytest.raises(RegistryClientError, match=re.escape(error)):
        client.get_manifest(parse_reference(f"{server.host}/team/app:v1"))


def test_dribbled_small_blobs_and_download_headers_end_at_the_deadline(
    server: Server, tmp_path: Path
) -> None:
    route = f"GET /v2/team/app/blobs/{DIGEST}"
    server.routes[route] = dribbling(STATUS + padded_headers(len(BLOB)), BLOB)
    client = RegistryClient(
        RegistryOptions(timeout=5, request_deadline=0.5), cache=BlobCache(tmp_path / "cache")
    )
    ref = parse_reference(f"{server.host}/team/app:v1")
    descriptor = Descriptor("application/octet-stream", DIGEST, len(BLOB))
    with pytest.raises(RegistryClientError, match=r"not complete within 0\.5 s"):
        client.get_blob_bytes(ref, descriptor, cap=len(BLOB))  # a config, a signature
    # a layer download's headers are a small read too (its body is not: see below)
    server.routes[route] = dribbling(STATUS, padded_headers(len(BLOB)) + BLOB)
    with pytest.raises(RegistryClientError, match=r"sent no complete answer within 0\.5 s"):
        client.fetch_blob(ref, descriptor)


def _steady_blob(request: BaseHTTPRequestHandler) -> None:
    """BLOB in four parts 0.2 s apart: a body slower than a short deadline, never stalled."""
    request.send_response(200)
    request.send_header("Content-Length", str(len(BLOB)))
    request.end_headers()
    quarter = len(BLOB) // 4 + 1
    for start in range(0, len(BLOB), quarter):
        request.wfile.write(BLOB[start : start + quarter])
        request.wfile.flush()
        time.sleep(0.2)


def test_a_layer_body_may_take_longer_than_the_request_deadline(
    server: Server, tmp_path: Path
) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = _steady_blob
    client = RegistryClient(
        RegistryOptions(timeout=5, request_deadline=0.3), cache=BlobCache(tmp_path / "cache")
    )
    ref = parse_reference(f"{server.host}/team/app:v1")
    path = client.fetch_blob(ref, Descriptor("application/octet-stream", DIGEST, len(BLOB)))
    assert path.read_bytes() == BLOB


# Dribbled for about 0.4 s: inside a 0.5 s request deadline. "Connection: close" makes each
# request open its own connection, as the dribbler hangs up after each answer.
SLOW_MANIFEST = b'{"a": 1}'  # 8 bytes, a byte every 50 ms
SLOW = STATUS + b"Connection: close\r\n" + padded_headers(len(SLOW_MANIFEST))


def test_a_deadline_bounds_all_the_requests_made_under_it(server: Server) -> None:
    # each answer is complete inside its own 0.5 s deadline, so without the overall one eight
    # of them take their sum (about 3.2 s); with it the reader is free at about 1 s
    for i in range(8):
        server.routes[f"GET /v2/team/app/manifests/v{i}"] = dribbling(SLOW, SLOW_MANIFEST)
    client = RegistryClient(RegistryOptions(timeout=5, request_deadline=0.5))
    ref = parse_reference(f"{server.host}/team/app:v0")
    read, errors = 0, []
    start = time.monotonic()
    with client.deadline(1.0) as deadline:
        for i in range(8):
            try:
                client.get_manifest(ref, f"v{i}")
                read += 1
            except RegistryClientError as exc:
                errors.append(exc.diagnostics())
    elapsed = time.monotonic() - start
    assert deadline.passed()
    assert 1 <= read < 8 and len(errors) == 8 - read
    assert "within the 1 s given to all requests together" in errors[0]
    # once the time is up nothing more is asked
    assert all("not asked: no time left" in e for e in errors[1:])
    assert len(server.seen) == read + 1
    assert elapsed < 3 * 1.0  # a bound on a timeout, generous for a loaded machine
    # outside the block each request has only its own deadline again
    client.get_manifest(ref, "v0")


def test_the_earlier_of_two_nested_deadlines_holds(server: Server) -> None:
    client = RegistryClient(RegistryOptions(timeout=5))
    with client.deadline(0.5) as outer, client.deadline(60) as inner:
        assert inner is outer
    with client.deadline(60) as outer, client.deadline(0.5) as inner:
        assert inner.at < outer.at and inner.seconds == 0.5


def test_a_deadline_bounds_only_the_thread_that_set_it(server: Server) -> None:
    # one client may serve several threads: another thread's spent deadline is not this one's
    server.routes["GET /v2/team/app/manifests/v0"] = dribbling(SLOW, SLOW_MANIFEST)
    client = RegistryClient(RegistryOptions(timeout=5, request_deadline=5))
    ref = parse_reference(f"{server.host}/team/app:v0")
    inside, leave = threading.Event(), threading.Event()

    def spent() -> None:
        with client.deadline(0.001):
            inside.set()
            leave.wait(10)

    other = threading.Thread(target=spent)
    other.start()
    try:
        assert inside.wait(10)
        time.sleep(0.01)  # the other thread's deadline has passed
        client.get_manifest(ref, "v0")  # answered in about 0.4 s, inside its own 5 s
    finally:
        leave.set()
        other.join()


def test_a_layer_body_is_not_bound_by_the_overall_deadline(server: Server, tmp_path: Path) -> None:
    # on purpose, as for the per-request deadline: layers are large and may be slow
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = _steady_blob
    client = RegistryClient(RegistryOptions(timeout=5), cache=BlobCache(tmp_path / "cache"))
    ref = parse_reference(f"{server.host}/team/app:v1")
    with client.deadline(0.3):
        path = client.fetch_blob(ref, Descriptor("application/octet-stream", DIGEST, len(BLOB)))
    assert path.read_bytes() == BLOB


def test_manifest_redirects_are_not_followed(server: Server, tmp_path: Path) -> None:
    server.routes["GET /v2/team/app/manifests/v1"] = reply(
        302, headers={"Location": "http://127.0.0.1:1/elsewhere"}
    )
    with pytest.raises(RegistryClientError, match="only blob reads follow redirects"):
        client_for(tmp_path).get_manifest(parse_reference(f"{server.host}/team/app:v1"))


def test_unreachable_registry_is_a_clear_error(tmp_path: Path) -> None:
    from tests._registry import free_port

    ref = parse_reference(f"127.0.0.1:{free_port()}/team/app:v1")
    with pytest.raises(RegistryClientError, match=r"cannot reach 127\.0\.0\.1"):
        client_for(tmp_path).get_manifest(ref)


def test_layout_with_a_missing_blob_names_it(tmp_path: Path) -> None:
    from skanse.oci.image import open_layout_image
    from skanse.oci.writer import LayerBuilder, build_image, write_layout

    image = build_image([LayerBuilder().add_file("/a", b"b").build()])
    write_layout(image, tmp_path / "layout")
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    (tmp_path / "layout" / "blobs" / "sha256" / layer.split(":")[1]).unlink()
    with pytest.raises(LayoutError) as caught:
        open_layout_image(tmp_path / "layout")
    assert f"blob {layer} is missing from the layout" in caught.value.diagnostics()
    assert str(tmp_path / "layout") in caught.value.diagnostics()


def test_layout_blob_symlink_is_refused(tmp_path: Path) -> None:
    from skanse.oci.image import open_layout_image
    from skanse.oci.writer import LayerBuilder, build_image, write_layout

    image = build_image([LayerBuilder().add_file("/a", b"b").build()])
    write_layout(image, tmp_path / "layout")
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    blob = tmp_path / "layout" / "blobs" / "sha256" / layer.split(":")[1]
    blob.unlink()
    blob.symlink_to("/etc/passwd")
    with pytest.raises(LayoutError, match="not a regular file"):
        open_layout_image(tmp_path / "layout")
