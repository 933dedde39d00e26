"""A client for the OCI distribution API v2: pull, push, tags and referrers.

    client = RegistryClient()
    ref = parse_reference("127.0.0.1:5000/team/app:1.0")
    data, media_type, digest = client.get_manifest(ref)
    path = client.fetch_blob(ref, layer)                  # verified, cached, resumable
    client.push_blob(ref, blob_bytes)                     # monolithic upload, skipped if present
    client.push_manifest(ref.with_tag("1.1"), data, media_type)
    client.list_tags(ref)

Authentication: anonymous first; on a 401 the `WWW-Authenticate` challenge decides: Basic
sends the credentials from docker's config.json, Bearer fetches a token from the realm (with
those credentials if there are any) for the repository scope and caches it. Redirects are
followed only for blob reads, and the Authorization header is dropped as soon as a
redirect leaves the registry's scheme, host and port; an https -> http redirect is refused.
Every body read is capped (manifests at 4 MiB, blobs at their descriptor size), and a blob is
cached only after its digest matched.

Time is bounded too. Each socket wait has `RegistryOptions.timeout`; on top of it, the whole
answer to a small request (a manifest, a config, signature or bundle blob, a token, a tag page,
the referrers, and the headers and error bodies of a blob download) must arrive within
`RegistryOptions.request_deadline` seconds of sending it, so a registry that dribbles a byte
at a time cannot keep a reader (`skanse verify`, the admission webhook) waiting for ever. Layer
bodies are large and legitimately slow: they keep only the per-wait timeout.

One request's deadline does not bound an operation of many requests (an image verification
reads a tag, signature manifests, payloads, attestations): a registry that answers each just
inside its deadline holds the reader for their sum. `with client.deadline(seconds):` bounds
them all together: every request made inside it (redirects, token fetches and the retry after
a 401 included) must be answered by then, and once it has passed none is sent. A layer body
keeps its exemption.

Connecting counts as well: the lookup of the registry's name (which getaddrinfo would let
last as long as the resolver likes), each address tried and the TLS handshake all share the
time the request has left (`skanse.oci._connect`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import urllib3
import urllib3.connection
from urllib3.util.connection import allowed_gai_family

from skanse.errors import (
    AuthError,
    DigestMismatchError,
    ManifestError,
    NotFoundError,
    RegistryClientError,
)
from skanse.oci import _connect
from skanse.oci._forward import ForwardReader
from skanse.oci._pump import ChunkPump
from skanse.oci.auth import Challenge, Credentials, DockerConfig, parse_challenges
from skanse.oci.cache import BlobCache
from skanse.oci.manifest import (
    ACCEPT,
    MAX_MANIFEST_BYTES,
    Descriptor,
    Index,
    compute_digest,
    digest_algorithm,
    load_json,
    parse_index,
    validate_digest,
)
from skanse.oci.reference import Reference, is_loopback_host

__all__ = ["Deadline", "DownloadReader", "RegistryClient", "RegistryOptions"]

_CHUNK = 1024 * 1024
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_RESUMES = 3
_AHEAD = 4  # chunks downloaded ahead of a DownloadReader's reader
_MAX_SMALL_BODY = 1024 * 1024  # token responses, error bodies, tag pages


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach registries: TLS, plain-HTTP hosts, caps, credentials, cache."""

    # Hosts spoken to over plain HTTP. Loopback hosts are by default, as docker treats
    # 127.0.0.0/8 as an insecure registry out of the box.
    plain_http: frozenset[str] = frozenset()
    plain_http_loopback: bool = True
    ca_certs: str | None = None
    timeout: float = 60.0  # each wait on a socket
    # the whole answer to a small request (headers and body), counted from sending it
    request_deadline: float = 60.0
    max_blob_bytes: int = 16 * 1024**3
    docker_config: str | None = None  # None: docker's default location
    user_agent: str = "skanse"


@dataclass(frozen=True, slots=True)
class Deadline:
    """When every answer of an operation must be in (`RegistryClient.deadline`)."""

    seconds: float
    at: float  # time.monotonic()

    def passed(self) -> bool:
        return time.monotonic() >= self.at


class _Deadline:
    """When the answer to one request must be in, counted from sending it, and
    at the latest by the deadline of the operation it is part of."""

    __slots__ = ("at", "lifted", "overall", "seconds")

    def __init__(self, seconds: float, overall: Deadline | None = None) -> None:
        self.seconds = seconds
        self.at: float | None = None
        self.lifted = False
        self.overall = overall

    def left(self) -> float:
        """Seconds left; raises TimeoutError (a socket timeout to urllib3) once none are."""
        if self.lifted:
            return float("inf")
        now = time.monotonic()
        if self.at is None:
            self.at = now + self.seconds
        end = self.at if self.overall is None else min(self.at, self.overall.at)
        if now >= end:
            raise TimeoutError(f"no complete answer {self.within()}")
        return end - now

    def lift(self) -> None:
        """No deadline from now on (a layer body, which may take as long as it takes)."""
        self.lifted = True

    def passed(self) -> bool:
        if self.lifted:
            return False
        now = time.monotonic()
        return (self.at is not None and now >= self.at) or (
            self.overall is not None and now >= self.overall.at
        )

    def within(self) -> str:
        """Which deadline ends this answer, for the error message."""
        overall = self.overall
        if overall is not None and (self.at is None or overall.at <= self.at):
            return f"within the {round(overall.seconds, 3):g} s given to all requests together"
        return f"within {round(self.seconds, 3):g} s"


# The deadline of the request this thread is sending; the answer's reader takes it when
# http.client builds the response (see _Answer).
_sending = threading.local()


class _DeadlineReader(io.RawIOBase):
    """The socket under one answer, each wait on it cut to the time its deadline leaves."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        # a SocketIO, as http.client's own makefile: it keeps the socket open until the answer
        # is read even when the connection is closed before (Connection: close)
        self._io = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        per_wait = self._sock.gettimeout()
        left = self._deadline.left()
        self._sock.settimeout(left if per_wait is None else min(per_wait, left))
        try:
            return self._io.readinto(buffer)
        finally:
            self._sock.settimeout(per_wait)

    def close(self) -> None:
        if not self.closed:
            self._io.close()
        super().close()


class _DeadlineSocket:
    """What http.client builds a response on (it only calls `makefile`)."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _Answer(http.client.HTTPResponse):
    """http.client's response, read under the deadline of the request that was just sent."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        deadline: _Deadline | None = getattr(_sending, "deadline", None)
        if deadline is not None:
            sock = cast(socket.socket, _DeadlineSocket(sock, deadline))
        super().__init__(sock, *args, **kwargs)


def _connect_within(conn: urllib3.connection.HTTPConnection) -> socket.socket:
    """The socket of a new connection, made (the name resolved, each address tried, and the
    TLS handshake that follows) within the deadline of the request being sent: urllib3's own
    gives the lookup no bound at all and each address the whole connect timeout."""
    deadline: _Deadline | None = getattr(_sending, "deadline", None)
    per_wait = conn.timeout if isinstance(conn.timeout, int | float) else None

    def left() -> float:
        remaining = float("inf") if deadline is None else deadline.left()
        wait = remaining if per_wait is None else min(per_wait, remaining)
        if wait == float("inf"):
            raise TimeoutError("no timeout to connect within")  # never: _start sets both
        return wait

    try:
        return _connect.connect(
            conn._dns_host,  # the host urllib3 would resolve (no trailing dot)
            conn.port,
            allowed_gai_family(),
            left,
            source_address=conn.source_address,
            socket_options=conn.socket_options,
        )
    except socket.gaierror as exc:
        raise urllib3.exceptions.NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise urllib3.exceptions.ConnectTimeoutError(
            conn, f"connecting to {conn.host} timed out ({exc})"
        ) from exc
    except OSError as exc:
        raise urllib3.exceptions.NewConnectionError(
            conn, f"Failed to establish a new connection: {exc}"
        ) from exc


class _Connection(urllib3.connection.HTTPConnection):
    response_class = _Answer

    def _new_conn(self) -> socket.socket:
        return _connect_within(self)


class _TLSConnection(urllib3.connection.HTTPSConnection):
    response_class = _Answer

    def _new_conn(self) -> socket.socket:
        return _connect_within(self)


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


@dataclass
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


@dataclass
class _TokenCache:
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    # the auth scheme each host asked for last ("basic" or "bearer")
    schemes: dict[str, Challenge] = field(default_factory=dict)


class _Progress:
    """Where a blob download stands: the bytes handed to the reader so far, in order, and
    their hash; whether the partial file holds exactly those bytes (a restart from zero
    rewrites bytes already handed over; the file is then hashed again at the end)."""

    def __init__(self, algorithm: str) -> None:
        self.handed = hashlib.new(algorithm)
        self.position = 0
        self.file_is_handed = True

    def take(self, chunk: bytes, at: int) -> bytes:
        """The part of `chunk` (stream offset `at`) not handed over yet, hashed."""
        if at > self.position:  # bytes between would be missing from what the reader gets
            raise ValueError(f"blob bytes from {at} follow bytes that ended at {self.position}")
        end = at + len(chunk)
        if end <= self.position:
            self.file_is_handed = False
            return b""
        if at < self.position:
            self.file_is_handed = False
            chunk = chunk[self.position - at :]
        self.handed.update(chunk)
        self.position = end
        return chunk


class RegistryClient:
    """Talks to distribution-API registries. Thread-compatible, not thread-safe."""

    def __init__(
        self,
        options: RegistryOptions | None = None,
        *,
        cache: BlobCache | None = None,
        credentials: DockerConfig | None = None,
    ) -> None:
        self.options = options or RegistryOptions()
        self.cache = cache
        self._config = credentials
        self._tokens = _TokenCache()
        # see deadline(): per thread, as a client may serve several (urllib3's pool does)
        self._operation = threading.local()
        self._http = urllib3.PoolManager(
            num_pools=8,
            ca_certs=self.options.ca_certs,
            retries=False,
            timeout=urllib3.Timeout(
                connect=min(10.0, self.options.timeout), read=self.options.timeout
            ),
            headers={"User-Agent": self.options.user_agent},
        )
        # connections whose answers are read under a request's deadline
        self._http.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[Deadline]:
        """Within the block, every request (redirects, token fetches, the retry after a 401)
        must be answered within `seconds` from now, all of them together; once the time is
        up none is sent and each raises `RegistryClientError`. A layer body, exempt from the
        per-request deadline, is exempt from this one too. Nested, the earlier end wins."""
        outer = self._overall
        mine = Deadline(seconds, time.monotonic() + seconds)
        if outer is not None and outer.at <= mine.at:
            mine = outer
        self._operation.deadline = mine
        try:
            yield mine
        finally:
            self._operation.deadline = outer

    def answers(self) -> int:
        """How many answers (a status line and headers, an error status included) this
        thread has had from registries through this client. Compared before and after an
        operation, it tells a registry that said something from one that said nothing (not
        reachable, or silent until the deadline): skanse.signing.breaker counts only these."""
        count: int = getattr(self._operation, "answers", 0)
        return count

    @property
    def _overall(self) -> Deadline | None:
        """The deadline of the operation this thread is in (`deadline`), if any."""
        found: Deadline | None = getattr(self._operation, "deadline", None)
        return found

    # --- plumbing -------------------------------------------------------------------

    def _scheme(self, host: str) -> str:
        # the reference lower-cased the host; the option's spelling may differ
        if host in {name.lower() for name in self.options.plain_http} or (
            self.options.plain_http_loopback and is_loopback_host(host)
        ):
            return "http"
        return "https"

    def _url(self, ref: Reference, path: str) -> str:
        host = ref.api_host
        return f"{self._scheme(host)}://{host}/v2/{ref.path}/{path}"

    def _credentials(self, host: str) -> Credentials | None:
        if self._config is None:
            self._config = DockerConfig.load(self.options.docker_config)
        return self._config.credentials_for(host)

    def _auth_header(self, ref: Reference, scope: str) -> str | None:
        challenge = self._tokens.schemes.get(ref.api_host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self._credentials(ref.domain)
            return creds.basic_header() if creds else None
        token = self._tokens.tokens.get((ref.api_host, scope))
        return f"Bearer {token}" if token else None

    def _authenticate(self, ref: Reference, scope: str, header: str, response: _Response) -> None:
        challenges = parse_challenges(header)
        if not challenges:
            raise AuthError(
                f"registry answered 401 without a usable challenge at {response.url}",
                reference=str(ref),
                status=401,
            )
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is None:
            basic = next((c for c in challenges if c.scheme == "basic"), None)
            if basic is None:
                raise AuthError(
                    f"unsupported auth scheme {challenges[0].scheme!r}",
                    reference=str(ref),
                    status=401,
                )
            if self._credentials(ref.domain) is None:
                raise AuthError(
                    f"authentication required by {ref.domain} and no credentials for it "
                    "(docker login, or auths in ~/.docker/config.json)",
                    reference=str(ref),
                    status=401,
                )
            self._tokens.schemes[ref.api_host] = basic
            return
        self._tokens.schemes[ref.api_host] = bearer
        self._tokens.tokens[(ref.api_host, scope)] = self._fetch_token(ref, scope, bearer)

    def _fetch_token(self, ref: Reference, scope: str, challenge: Challenge) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthError("bearer challenge without a realm", reference=str(ref), status=401)
        parsed = urllib.parse.urlsplit(realm)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            raise AuthError(f"invalid token realm {realm!r}", reference=str(ref), status=401)
        if parsed.scheme == "http" and not is_loopback_host(parsed.netloc):
            raise AuthError(
                f"token realm {realm} is plain HTTP; refusing to send credentials to it",
                reference=str(ref),
                status=401,
            )
        query = {"scope": scope}
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        url = realm + ("&" if parsed.query else "?") + urllib.parse.urlencode(query)
        headers = {}
        creds = self._credentials(ref.domain)
        if creds is not None:
            headers["Authorization"] = creds.basic_header()
        response = self._send("GET", url, headers, cap=_MAX_SMALL_BODY, reference=ref)
        if response.status in (401, 403):
            raise AuthError(
                f"token server {parsed.netloc} refused the credentials for {scope} "
                f"({response.status})",
                reference=str(ref),
                status=response.status,
            )
        if response.status != 200:
            raise AuthError(
                f"token server {parsed.netloc} answered {response.status}",
                reference=str(ref),
                status=response.status,
            )
        try:
            doc = load_json(response.body, "token response", reference=str(ref))
            token = doc.get("token") or doc.get("access_token")
        except (ManifestError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError(f"token server {parsed.netloc} sent no token", reference=str(ref))
        return token

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        body: bytes | None = None,
        cap: int,
        reference: Reference,
    ) -> _Response:
        deadline = _Deadline(self.options.request_deadline, self._overall)
        raw = self._start(method, url, headers, body, deadline, reference)
        try:
            # a HEAD answer carries the blob's Content-Length but no body
            data = b"" if method == "HEAD" else _read_capped(raw, cap, url, reference, deadline)
        finally:
            raw.release_conn()
        return _Response(raw.status, {k.lower(): v for k, v in raw.headers.items()}, data, url)

    def _start(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        deadline: _Deadline,
        reference: Reference,
        what: str = "",
    ) -> Any:
        """Send the request; the response once its headers are in, its body still unread
        (read under `deadline`, as the headers were)."""
        where = urllib.parse.urlsplit(url).netloc
        try:
            left = deadline.left()
        except TimeoutError:  # the operation's time is up: not sent
            raise RegistryClientError(
                f"{what}{where} not asked: no time left {deadline.within()}",
                reference=str(reference),
            ) from None
        # connecting counts too, however long the per-wait connect timeout
        connect = min(10.0, self.options.timeout, left)
        timeout = urllib3.Timeout(connect=connect, read=self.options.timeout)
        _sending.deadline = deadline
        try:
            answer = self._http.request(
                method,
                url,
                headers=dict(headers),
                body=body,
                redirect=False,
                preload_content=False,
                timeout=timeout,
            )
            self._operation.answers = self.answers() + 1
            return answer
        except urllib3.exceptions.HTTPError as exc:
            if deadline.passed():
                # resolving and connecting count against the deadline as the answer does
                done = (
                    "was not reached"
                    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError)
                    else "sent no complete answer"
                )
                raise RegistryClientError(
                    f"{what}{where} {done} {deadline.within()}", reference=str(reference)
                ) from None
            raise RegistryClientError(
                f"{what}cannot reach {where}: {exc}", reference=str(reference)
            ) from None
        finally:
            _sending.deadline = None

    def _request(
        self,
        method: str,
        ref: Reference,
        url: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        cap: int = _MAX_SMALL_BODY,
        what: str,
        follow: bool = False,
    ) -> _Response:
        """A request with auth handled (one retry after a 401) and errors mapped; with
        `follow`, a redirect is returned for the caller to follow instead of refused."""
        for attempt in range(2):
            send = dict(headers or {})
            auth = self._auth_header(ref, scope)
            if auth:
                send["Authorization"] = auth
            response = self._send(method, url, send, body=body, cap=cap, reference=ref)
            if response.status == 401 and attempt == 0:
                self._authenticate(
                    ref, scope, response.headers.get("www-authenticate", ""), response
                )
                continue
            break
        if not (follow and response.status in _REDIRECTS):
            self._raise_for_status(response, ref, what)
        return response

    def _raise_for_status(self, response: _Response, ref: Reference, what: str) -> None:
        status = response.status
        if status < 300:
            return
        detail = _error_detail(response.body)
        if status in (401, 403):
            raise AuthError(
                f"{what}: access denied ({status}){detail}", reference=str(ref), status=status
            )
        if status == 404:
            raise NotFoundError(f"{what}: not found (404){detail}", reference=str(ref), status=404)
        if 300 <= status < 400:
            raise RegistryClientError(
                f"{what}: unexpected redirect ({status}) to {response.headers.get('location')}; "
                "only blob reads follow redirects",
                reference=str(ref),
                status=status,
            )
        raise RegistryClientError(
            f"{what}: registry answered {status}{detail}", reference=str(ref), status=status
        )

    # --- pulling --------------------------------------------------------------------

    def get_manifest(self, ref: Reference, identifier: str | None = None) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of the manifest or index at `ref` (or `identifier`).

        The digest is computed from the bytes and must equal the requested digest and the
        registry's `Docker-Content-Digest` header when either is present.
        """
        target = identifier or ref.identifier
        response = self._request(
            "GET",
            ref,
            self._url(ref, f"manifests/{target}"),
            scope=f"repository:{ref.path}:pull",
            headers={"Accept": ACCEPT},
            cap=MAX_MANIFEST_BYTES,
            what=f"manifest {target}",
        )
        # by digest: whatever its algorithm, the content must hash to it
        by_digest = ":" in target
        algorithm = digest_algorithm(target) if by_digest else "sha256"
        digest = compute_digest(response.body, algorithm)
        if by_digest and digest != target:
            raise DigestMismatchError(
                f"manifest {target} has the wrong content (it hashes to {digest})",
                reference=str(ref),
            )
        header = response.headers.get("docker-content-digest")
        if header:
            header_algorithm = digest_algorithm(header)
            hashed = (
                digest
                if header_algorithm == algorithm
                else compute_digest(response.body, header_algorithm)
            )
            if hashed != header:
                raise DigestMismatchError(
                    f"registry says the manifest is {header} but its content hashes to {hashed}",
                    reference=str(ref),
                )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return response.body, media_type, digest

    def fetch_blob(self, ref: Reference, descriptor: Descriptor) -> Path:
        """Download a blob into the cache (resuming a partial download), verified; its path."""
        cached = self._cached(ref, descriptor)
        if cached is not None:
            return cached
        download = self._download_chunks(ref, descriptor)
        while True:
            try:
                next(download)
            except StopIteration as done:
                path: Path = done.value
                return path

    def open_blob(self, ref: Reference, descriptor: Descriptor) -> IO[bytes]:
        """A binary file object over the blob: the cached file, or else the download itself,
        read as it arrives (`DownloadReader`)."""
        cached = self._cached(ref, descriptor)
        if cached is not None:
            return cached.open("rb")
        return cast(IO[bytes], DownloadReader(self._download_chunks(ref, descriptor)))

    def _cached(self, ref: Reference, descriptor: Descriptor) -> Path | None:
        if self.cache is None:
            raise RegistryClientError("fetching a blob needs a blob cache", reference=str(ref))
        return self.cache.get(validate_digest(descriptor.digest))

    def _download_chunks(
        self, ref: Reference, descriptor: Descriptor
    ) -> Generator[bytes, None, Path]:
        """The blob's bytes in order as they arrive, written to the cache's partial file; after
        the last one the blob is verified and committed (the generator returns its path)."""
        assert self.cache is not None
        digest = descriptor.digest
        if descriptor.size > self.options.max_blob_bytes:
            raise RegistryClientError(
                f"blob {digest} declares {descriptor.size} bytes, over the "
                f"{self.options.max_blob_bytes}-byte cap",
                reference=str(ref),
            )
        partial = self.cache.partial(digest)
        algorithm, _, expected = digest.partition(":")
        progress = _Progress(algorithm)
        yield from _replay(partial, descriptor.size, progress)  # bytes of an earlier run
        for _attempt in range(_MAX_RESUMES + 1):
            # an empty chunk is a point where a reader that stopped (a closed DownloadReader)
            # ends the download, before another request to the server
            yield b""
            done = yield from self._download(ref, descriptor, partial, progress)
            if done:
                break
        else:
            partial.unlink(missing_ok=True)
            raise RegistryClientError(
                f"blob {digest}: connection kept closing before the end "
                f"({_MAX_RESUMES} resumes); truncated download discarded",
                reference=str(ref),
            )
        actual = progress.handed.hexdigest()
        if actual == expected and not progress.file_is_handed:
            actual = _file_hash(partial, algorithm)  # the file was rewritten: check it too
        if actual != expected:
            partial.unlink(missing_ok=True)
            raise DigestMismatchError(
                f"blob {digest} has the wrong content (its {algorithm} is {actual}); not cached",
                reference=str(ref),
            )
        return self.cache.commit(digest, partial)

    def _download(
        self, ref: Reference, descriptor: Descriptor, partial: Path, progress: _Progress
    ) -> Generator[bytes, None, bool]:
        """Append the rest of the blob to `partial`, handing new bytes over as they arrive;
        True when all declared bytes are there."""
        have = partial.stat().st_size if partial.exists() else 0
        size = descriptor.size
        if have > size:
            partial.unlink()
            have = 0
        if have == size and size > 0:
            return True
        scope = f"repository:{ref.path}:pull"
        url = self._url(ref, f"blobs/{descriptor.digest}")
        origin = _origin(url)
        headers: dict[str, str] = {}
        if have:
            headers["Range"] = f"bytes={have}-"
        auth = self._auth_header(ref, scope)
        for _hop in range(_MAX_REDIRECTS + 1):
            send = dict(headers)
            if auth and _origin(url) == origin:
                send["Authorization"] = auth  # never to another host (S3, a CDN, an attacker)
            # the headers, a redirect and an error body are small reads; a layer body is not
            deadline = _Deadline(self.options.request_deadline, self._overall)
            raw = self._start("GET", url, send, None, deadline, ref, f"blob {descriptor.digest}: ")
            if raw.status in (200, 206):
                deadline.lift()
            complete = False
            try:
                if raw.status == 401 and _origin(url) == origin and auth is None:
                    body = _read_capped(raw, _MAX_SMALL_BODY, url, ref, deadline)
                    self._authenticate(
                        ref,
                        scope,
                        raw.headers.get("WWW-Authenticate", ""),
                        _Response(401, {}, body, url),
                    )
                    auth = self._auth_header(ref, scope)
                    continue
                if raw.status in _REDIRECTS:
                    url = _redirect_target(
                        url, raw.headers.get("Location"), f"blob {descriptor.digest}", ref
                    )
                    continue
                if raw.status == 416 and have:
                    partial.unlink()  # our partial is longer than or unknown to the server
                    return False
                if raw.status not in (200, 206):
                    body = _read_capped(raw, _MAX_SMALL_BODY, url, ref, deadline)
                    self._raise_for_status(
                        _Response(raw.status, {}, body, url), ref, f"blob {descriptor.digest}"
                    )
                append = raw.status == 206 and have > 0
                if append:
                    start = _range_start(raw.headers.get("Content-Range", ""))
                    if start != have:
                        append = False
                complete = yield from self._stream_to(
                    raw, partial, append, descriptor, ref, progress
                )
                return complete
            finally:
                if not complete:
                    raw.close()  # bytes left unread: the connection cannot serve another request
                raw.release_conn()
        raise RegistryClientError(
            f"blob {descriptor.digest}: more than {_MAX_REDIRECTS} redirects", reference=str(ref)
        )

    def _stream_to(
        self,
        raw: Any,
        partial: Path,
        append: bool,
        descriptor: Descriptor,
        ref: Reference,
        progress: _Progress,
    ) -> Generator[bytes, None, bool]:
        size = descriptor.size
        written = partial.stat().st_size if append and partial.exists() else 0
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        fd = os.open(partial, flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as handle:
            try:
                for chunk in raw.stream(_CHUNK, decode_content=False):
                    written += len(chunk)
                    if written > size:
                        handle.close()
                        partial.unlink(missing_ok=True)
                        raise DigestMismatchError(
                            f"blob {descriptor.digest} is longer than its declared {size} bytes; "
                            "not cached",
                            reference=str(ref),
                        )
                    handle.write(chunk)
                    new = progress.take(chunk, written - len(chunk))
                    if new:
                        yield new
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError):
                return False  # connection dropped: the caller resumes with a Range request
        return written == size

    def get_blob_bytes(self, ref: Reference, descriptor: Descriptor, *, cap: int) -> bytes:
        """A small blob (a config) read into memory, verified, not cached."""
        if descriptor.size > cap:
            raise ManifestError(
                f"blob {descriptor.digest} declares {descriptor.size} bytes, "
                f"over the {cap}-byte cap",
                reference=str(ref),
            )
        if self.cache is not None and (cached := self.cache.get(descriptor.digest)) is not None:
            data = cached.read_bytes()
        else:
            data = self._get_small_blob(ref, descriptor.digest, cap)
        from skanse.oci.manifest import verify_digest

        verify_digest(data, descriptor.digest, what="blob", reference=str(ref))
        return data

    def _get_small_blob(self, ref: Reference, digest: str, cap: int) -> bytes:
        """The blob's bytes, following redirects as a download does (Docker Hub, GHCR and ECR
        answer every blob GET with one): at most `_MAX_REDIRECTS`, never https -> http, and
        the registry's credentials only on the registry's own origin."""
        what = f"blob {digest}"
        url = self._url(ref, f"blobs/{digest}")
        origin = _origin(url)
        for _hop in range(_MAX_REDIRECTS + 1):
            if _origin(url) == origin:
                response = self._request(
                    "GET",
                    ref,
                    url,
                    scope=f"repository:{ref.path}:pull",
                    cap=cap,
                    what=what,
                    follow=True,
                )
            else:  # storage elsewhere (S3, a CDN): anonymous, the URL carries its own grant
                response = self._send("GET", url, {}, cap=cap, reference=ref)
            if response.status in _REDIRECTS:
                url = _redirect_target(url, response.headers.get("location"), what, ref)
                continue
            self._raise_for_status(response, ref, what)
            return response.body
        raise RegistryClientError(
            f"{what}: more than {_MAX_REDIRECTS} redirects", reference=str(ref)
        )

    def list_tags(self, ref: Reference, *, limit: int = 100_000) -> list[str]:
        """Every tag of the repository, following `Link` pagination (capped at `limit`)."""
        tags: list[str] = []
        url: str | None = self._url(ref, "tags/list")
        while url and len(tags) < limit:
            response = self._request(
                "GET", ref, url, scope=f"repository:{ref.path}:pull", what="tag list"
            )
            try:
                page = load_json(response.body, "tag list", reference=str(ref)).get("tags") or []
            except (ManifestError, AttributeError):
                raise RegistryClientError(
                    "tag list is not valid JSON", reference=str(ref)
                ) from None
            tags.extend(str(t) for t in page)
            url = _next_link(response.headers.get("link"), url)
        return tags[:limit]

    def get_referrers(
        self, ref: Reference, digest: str, *, artifact_type: str | None = None
    ) -> Index | None:
        """The OCI 1.1 referrers index for `digest`, or None when the API is missing (404)."""
        query = f"?artifactType={urllib.parse.quote(artifact_type)}" if artifact_type else ""
        try:
            response = self._request(
                "GET",
                ref,
                self._url(ref, f"referrers/{validate_digest(digest)}{query}"),
                scope=f"repository:{ref.path}:pull",
                headers={"Accept": "application/vnd.oci.image.index.v1+json"},
                cap=MAX_MANIFEST_BYTES,
                what=f"referrers of {digest}",
            )
        except NotFoundError:
            return None
        return parse_index(
            response.body, "application/vnd.oci.image.index.v1+json", reference=str(ref)
        )

    # --- pushing --------------------------------------------------------------------

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        try:
            self._request(
                "HEAD",
                ref,
                self._url(ref, f"blobs/{validate_digest(digest)}"),
                scope=f"repository:{ref.path}:pull,push",
                what=f"blob {digest}",
            )
        except NotFoundError:
            return False
        return True

    def push_blob(self, ref: Reference, data: bytes, digest: str | None = None) -> str:
        """Upload `data` (monolithic POST + PUT) unless the registry has it; its digest."""
        digest = digest or compute_digest(data)
        if self.blob_exists(ref, digest):
            return digest
        scope = f"repository:{ref.path}:pull,push"
        started = self._request(
            "POST",
            ref,
            self._url(ref, "blobs/uploads/"),
            scope=scope,
            headers={"Content-Length": "0"},
            body=b"",
            what="blob upload",
        )
        location = started.headers.get("location")
        if not location:
            raise RegistryClientError("blob upload: no Location in the answer", reference=str(ref))
        upload = urllib.parse.urljoin(started.url, location)
        if _origin(upload) != _origin(started.url):
            raise RegistryClientError(
                f"blob upload: registry sent the upload to another host ({upload})",
                reference=str(ref),
            )
        upload += ("&" if "?" in upload else "?") + urllib.parse.urlencode({"digest": digest})
        self._request(
            "PUT",
            ref,
            upload,
            scope=scope,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            body=data,
            what=f"blob {digest} upload",
        )
        return digest

    def push_manifest(self, ref: Reference, data: bytes, media_type: str) -> str:
        """PUT a manifest or index at `ref`'s tag (or its digest); returns its digest."""
        digest = compute_digest(data)
        target = ref.tag if ref.tag and not ref.digest else digest
        if ref.digest and ref.digest != digest:
            raise DigestMismatchError(
                f"manifest content hashes to {digest}, not {ref.digest}", reference=str(ref)
            )
        response = self._request(
            "PUT",
            ref,
            self._url(ref, f"manifests/{target}"),
            scope=f"repository:{ref.path}:pull,push",
            headers={"Content-Type": media_type},
            body=data,
            what=f"manifest {target} upload",
        )
        header = response.headers.get("docker-content-digest")
        if header and header != digest:
            raise DigestMismatchError(
                f"registry stored the manifest as {header}, expected {digest}", reference=str(ref)
            )
        return digest

    def close(self) -> None:
        self._http.clear()


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.lower()
    if ":" not in netloc.rsplit("]", 1)[-1]:
        netloc += ":443" if parts.scheme == "https" else ":80"
    return parts.scheme, netloc


def _redirect_target(url: str, location: str | None, what: str, ref: Reference) -> str:
    """Where a redirect from `url` leads; refused without a Location, from https to
    anything but https, and to a scheme other than http(s)."""
    if not location:
        raise RegistryClientError(f"{what}: redirect without a Location", reference=str(ref))
    target = urllib.parse.urljoin(url, location)
    if url.startswith("https:") and not target.startswith("https:"):
        raise RegistryClientError(
            f"{what}: refusing a redirect from https to {target}", reference=str(ref)
        )
    if not target.startswith(("https:", "http:")):
        raise RegistryClientError(f"{what}: redirect to an unsupported URL", reference=str(ref))
    return target


def _read_capped(
    raw: Any, cap: int, url: str, reference: Reference, deadline: _Deadline | None = None
) -> bytes:
    declared = raw.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise ManifestError(
            f"{urllib.parse.urlsplit(url).path}: response of {declared} bytes is over the "
            f"{cap}-byte cap",
            reference=str(reference),
        )
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in raw.stream(64 * 1024):
            total += len(chunk)
            if total > cap:
                raise ManifestError(
                    f"{urllib.parse.urlsplit(url).path}: response is over the {cap}-byte cap",
                    reference=str(reference),
                )
            chunks.append(chunk)
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
        path = urllib.parse.urlsplit(url).path
        if deadline is not None and deadline.passed():
            raise RegistryClientError(
                f"{path}: the answer was not complete {deadline.within()} "
                "(the registry sends too slowly)",
                reference=str(reference),
            ) from None
        raise RegistryClientError(
            f"{path}: connection broke while reading ({exc})", reference=str(reference)
        ) from None
    return b"".join(chunks)


def _error_detail(body: bytes) -> str:
    try:
        doc = load_json(body[:65536], "error body", reference=None)
        errors = doc.get("errors") or []
        messages = [f"{e.get('code', '')}: {e.get('message', '')}" for e in errors[:3]]
        return " (" + "; ".join(messages) + ")" if messages else ""
    except (ManifestError, AttributeError, TypeError):
        return ""


def _range_start(header: str) -> int | None:
    match = re.match(r"bytes (\d+)-", header)
    return int(match.group(1)) if match else None


def _next_link(header: str | None, current: str) -> str | None:
    if not header:
        return None
    match = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", header)
    if match is None:
        return None
    target = urllib.parse.urljoin(current, match.group(1))
    return target if _origin(target) == _origin(current) else None


def _replay(partial: Path, size: int, progress: _Progress) -> Iterator[bytes]:
    """Hand over the bytes an earlier, interrupted download left in `partial` (the download
    resumes after them)."""
    try:
        fd = os.open(partial, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > size:
            return  # longer than the blob: _download starts again
        while chunk := handle.read(_CHUNK):
            yield progress.take(chunk, progress.position)


def _file_hash(path: Path, algorithm: str) -> str:
    # not through a symlink, as the partial file is written and replayed
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


class DownloadReader(ForwardReader):
    """A file object over a blob download (`RegistryClient.open_blob`).

    The download runs in a thread of its own, a few chunks ahead of the reader, so that
    receiving and writing overlap with what the reader does with the bytes (decompressing a
    layer). Its last read raises unless the whole blob arrived and matched its digest, so
    whoever reads it to the end has read verified bytes; closing it early abandons the
    download, without waiting for a stalled server."""

    verifies_digest = True

    def __init__(self, chunks: Generator[bytes, None, Path]) -> None:
        self._pump = ChunkPump(chunks, ahead=_AHEAD, name="blob-get")
        super().__init__(self._pump.next_chunk)

    @property
    def verified(self) -> bool:
        """Whether the reader has read to the end, where the digest matched (it raises
        otherwise): until then nothing read is known to be the blob."""
        return self._pump.finished

    def close(self) -> None:
        if not self.closed:
            self._pump.stop(wait=False)
        super().close()
