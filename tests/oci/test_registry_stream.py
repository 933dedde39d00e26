"""`RegistryClient.open_blob` reads a blob while it downloads: what the reader gets, and what
is cached, when the connection drops, the server ignores Range, lies, or the reader stops."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, cast

import pytest

from skanse.errors import DigestMismatchError, RegistryClientError
from skanse.oci.cache import BlobCache
from skanse.oci.layers import apply_layer
from skanse.oci.manifest import Descriptor
from skanse.oci.reference import parse_reference
from skanse.oci.registry import DownloadReader
from skanse.oci.vfs import FileView, ViewLimits
from tests.oci.test_registry_errors import (
    BLOB,
    DIGEST,
    Handler,
    Server,
    _truncating,
    client_for,
    reply,
)

LAYER = Descriptor("application/octet-stream", DIGEST, len(BLOB))


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def _read(reader: object) -> bytes:
    assert isinstance(reader, io.RawIOBase)
    out = b""
    while chunk := reader.read(1000):
        out += chunk
    return out


def _open(server: Server, tmp_path: Path) -> DownloadReader:
    client = client_for(tmp_path)
    reader = client.open_blob(parse_reference(f"{server.host}/team/app:v1"), LAYER)
    assert isinstance(reader, DownloadReader)
    return reader


def _cached(tmp_path: Path) -> Path | None:
    return BlobCache(tmp_path / "cache").get(DIGEST)


def test_a_dropped_connection_resumes_and_the_reader_sees_each_byte_once(
    server: Server, tmp_path: Path
) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = _truncating(2)
    with _open(server, tmp_path) as reader:
        assert _read(reader) == BLOB
    cached = _cached(tmp_path)
    assert cached is not None and cached.read_bytes() == BLOB


def _ignoring_range(first: bytes, again: bytes) -> Handler:
    """Send half of `first` and drop; then answer every request 200 with all of `again`."""
    calls = {"n": 0}

    def handler(request: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        body = first if calls["n"] == 1 else again
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if calls["n"] == 1:
            request.wfile.write(body[: len(body) // 2])
            request.wfile.flush()
            request.close_connection = True
            return
        request.wfile.write(body)

    return handler


def test_a_server_that_ignores_range_restarts_from_zero_without_repeating_bytes(
    server: Server, tmp_path: Path
) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = _ignoring_range(BLOB, BLOB)
    with _open(server, tmp_path) as reader:
        assert _read(reader) == BLOB
    ranges = [h.get("Range") for line, h in server.seen if "blobs" in line]
    assert ranges[0] is None and ranges[1] == f"bytes={len(BLOB) // 2}-"
    cached = _cached(tmp_path)
    assert cached is not None and cached.read_bytes() == BLOB


@pytest.mark.parametrize(
    ("handler", "match"),
    [
        # the reader got the genuine first half, but the restart rewrote the file's first
        # half with other bytes: the handed-over bytes hash right, the file does not
        (_ignoring_range(BLOB, b"X" * (len(BLOB) // 2) + BLOB[len(BLOB) // 2 :]), "not cached"),
        (reply(200, BLOB + b"more" * 1000), "longer"),
    ],
    ids=["rewritten-on-restart", "longer-than-declared"],
)
def test_a_blob_that_is_not_the_one_declared_raises_to_the_reader_and_is_not_cached(
    server: Server, tmp_path: Path, handler: Handler, match: str
) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = handler
    with _open(server, tmp_path) as reader, pytest.raises(DigestMismatchError, match=match):
        _read(reader)
    assert _cached(tmp_path) is None


def test_wrong_content_raises_at_the_last_read_and_is_not_cached(
    server: Server, tmp_path: Path
) -> None:
    evil = b"x" * len(BLOB)
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = reply(200, evil)
    reader = _open(server, tmp_path)
    assert reader.read(100) == b"x" * 100  # bytes flow before the end...
    with pytest.raises(DigestMismatchError, match="wrong content"):
        _read(reader)  # ...but the reader never reaches a clean end
    with pytest.raises(DigestMismatchError):
        reader.read(1)  # not even when it reads on after the error
    reader.close()
    assert _cached(tmp_path) is None
    assert not any((tmp_path / "cache" / "partial").iterdir())


def test_a_partial_download_of_an_earlier_run_is_read_back_then_resumed(
    server: Server, tmp_path: Path
) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = _truncating(0)
    partial = BlobCache(tmp_path / "cache").partial(DIGEST)
    partial.write_bytes(BLOB[:5000])
    with _open(server, tmp_path) as reader:
        assert _read(reader) == BLOB
    assert [h.get("Range") for line, h in server.seen if "blobs" in line] == ["bytes=5000-"]
    assert _cached(tmp_path) is not None


def test_closing_early_returns_at_once_and_the_abandoned_download_caches_nothing(
    server: Server, tmp_path: Path
) -> None:
    """The server sends a first part and stalls: closing does not wait for it, and when the
    rest comes the download stops without caching the blob (the partial stays, resumable)."""
    big = BLOB * 200  # 2.4 MB: the download hands over 1 MB chunks
    digest = "sha256:" + hashlib.sha256(big).hexdigest()
    first = 1_500_000
    release = threading.Event()

    def stalling(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", str(len(big)))
        request.end_headers()
        request.wfile.write(big[:first])
        request.wfile.flush()
        release.wait(30)
        request.wfile.write(big[first:])

    server.routes[f"GET /v2/team/app/blobs/{digest}"] = stalling
    client = client_for(tmp_path)
    reader = client.open_blob(
        parse_reference(f"{server.host}/team/app:v1"), Descriptor("x", digest, len(big))
    )
    assert reader.read(10) == big[:10]
    reader.close()  # returns while the server stalls (else the test would hang here)
    release.set()
    for thread in [t for t in threading.enumerate() if t.name == "blob-get"]:
        thread.join(30)
        assert not thread.is_alive()
    cache = BlobCache(tmp_path / "cache")
    assert cache.get(digest) is None
    kept = cache.partial(digest).read_bytes()
    assert len(kept) >= 1024 * 1024 and big.startswith(kept)


def test_an_unreachable_registry_raises_at_the_first_read(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    reader = client.open_blob(parse_reference("127.0.0.1:9/team/app:v1"), LAYER)
    with pytest.raises(RegistryClientError, match="cannot reach"):
        reader.read(1)
    reader.close()


def test_a_forged_layer_from_the_registry_changes_nothing_in_the_view(
    server: Server, tmp_path: Path
) -> None:
    """The layer reader is given no blob digest for a download (read_view leaves it to the
    download, which checks it at its last read): a forged layer still fails the read and
    nothing of it is merged."""
    genuine, forged = io.BytesIO(), io.BytesIO()
    for out, text in ((genuine, b"genuine"), (forged, b"forged!")):
        with tarfile.open(fileobj=out, mode="w") as archive:
            info = tarfile.TarInfo("etc/motd")
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text))
    digest = "sha256:" + hashlib.sha256(genuine.getvalue()).hexdigest()
    body = forged.getvalue()
    server.routes[f"GET /v2/team/app/blobs/{digest}"] = reply(200, body)
    client = client_for(tmp_path)
    view = FileView()
    blob = client.open_blob(
        parse_reference(f"{server.host}/team/app:v1"), Descriptor("x", digest, len(body))
    )
    with blob, pytest.raises(DigestMismatchError):
        apply_layer(
            view,
            blob,
            index=0,
            wants=lambda info: None,
            limits=ViewLimits(),
            digest=None,  # as read_view passes it for a download
            diff_id=None,
        )
    assert view.nodes == {} and view.layers == []


def test_a_malformed_layer_from_a_stalled_download_is_refused_at_once() -> None:
    # the first two megabytes (more than one read of the layer's reading thread) are no tar;
    # the server then stalls (as a socket read would, until its timeout of a minute) while
    # that thread waits for the rest of its next read: the refusal must not wait for it
    release = threading.Event()

    def chunks() -> Iterator[bytes]:
        yield (b"\0" * 10 + b"garbage" * 300_000)[: 2 * 1024 * 1024]
        release.wait(30)
        yield b"x" * 100

    blob = DownloadReader(chunks())  # type: ignore[arg-type]  # a source that stalls
    started = threading.Event()
    refused: list[BaseException] = []

    def read() -> None:
        started.set()
        try:
            layer = cast(IO[bytes], blob)
            apply_layer(FileView(), layer, index=0, wants=lambda info: None, limits=ViewLimits())
        except Exception as exc:  # the refusal is the expected outcome
            refused.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(timeout=10)
    stalled = reader.is_alive()
    release.set()  # let the stalled source end either way
    reader.join()
    assert not stalled, "the refusal waited for the stalled download"
    assert refused and "tar" in str(refused[0])


def test_bytes_after_a_gap_are_refused_not_handed_on() -> None:
    # a partial file and a resumed download that disagree on where the blob stands must not
    # hand the reader a stream with bytes missing
    from skanse.oci.registry import _Progress

    progress = _Progress("sha256")
    assert progress.take(b"abcd", 0) == b"abcd"
    assert progress.take(b"cdef", 2) == b"ef"  # overlap: only the new bytes
    with pytest.raises(ValueError, match="follow bytes that ended at 6"):
        progress.take(b"xy", 9)


def test_a_download_is_verified_only_once_read_to_its_matching_end(
    server: Server, tmp_path: Path
) -> None:
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = reply(200, BLOB)
    with _open(server, tmp_path) as reader:
        head = reader.read(100)
        states = [reader.verified]  # bytes handed over, digest not yet known
        rest = _read(reader)
        states.append(reader.verified)
    assert head + rest == BLOB and states == [False, True]
    server.routes[f"GET /v2/team/app/blobs/{DIGEST}"] = reply(200, b"x" * len(BLOB))
    (tmp_path / "again").mkdir()
    with _open(server, tmp_path / "again") as reader:
        with pytest.raises(DigestMismatchError):
            _read(reader)
        assert not reader.verified


class _ClaimsToVerify(io.BytesIO):
    """A blob that says it checks its own digest, as a download does, but never did."""

    verifies_digest = True
    verified = False


def test_read_view_refuses_a_self_verifying_blob_that_did_not_verify(tmp_path: Path) -> None:
    # read_view leaves a download's blob digest to the download; if a blob that claims to
    # check it ends unverified, its layer must be refused rather than taken as checked
    from dataclasses import replace

    from skanse.oci.image import open_image, parse_spec, read_view
    from skanse.oci.writer import LayerBuilder, build_image, write_layout

    layer = LayerBuilder()
    layer.add_file("/etc/motd", b"genuine\n")
    write_layout(build_image([layer.build()]), tmp_path / "layout", tag="t")
    image = open_image(parse_spec(f"oci:{tmp_path / 'layout'}:t"))
    genuine = image.opener

    def claiming(descriptor: Descriptor) -> IO[bytes]:
        with genuine(descriptor) as blob:
            return _ClaimsToVerify(blob.read())

    with pytest.raises(DigestMismatchError, match="not read to its end"):
        read_view(replace(image, opener=claiming), wants=lambda info: None)
    assert "/etc/motd" in read_view(image, wants=lambda info: None).nodes  # the genuine path
