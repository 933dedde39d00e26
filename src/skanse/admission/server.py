"""HTTPS only: the webhook's listener, TLS, certificate reload and slow-client limits.

uvicorn parses HTTP (its httptools protocol) and runs the ASGI app; this module owns the
socket so that it can do what a stock uvicorn server does not:

* A connection whose first byte is not a TLS handshake record gets a plain-text
  `400 ... this port speaks HTTPS only` and is closed; nothing is served in clear text.
* TLS 1.2 or newer, forward-secret AEAD suites only, HTTP/1.1 via ALPN.
* The certificate and key are re-read when their files change (a Secret volume swaps
  them atomically); new connections get the new certificate, and a pair that does not load
  (half-written, mismatched) is reported and the old one kept.
* Slow clients are cut off: a connection has `handshake_timeout` to send its first byte
  and finish the TLS handshake, `header_timeout` to send each request's headers, and at most
  `max_header_bytes` of them (431 past it); the body deadline and size cap are the app's.
* Idle connections cannot starve reviews. A connection that has sent no review
  (`/validate`, `/mutate`) is closed after `idle_timeout` without a request; one that has
  (the API server's) keeps `keep_alive`, which saves it a TLS handshake per review. At
  `max_connections`, a new connection evicts the connection idle longest, those that never
  sent a review first; only when every connection is busy with a request is the new one
  refused. So a flood of idle connections costs the API server nothing but a reconnect.
* SIGTERM: readiness turns false at once, but the webhook keeps accepting and answering for
  `drain` seconds, because the API server learns of a terminating endpoint only after a
  delay; idle connections are closed and each connection closes after its next answer, so
  clients move to another replica. Then the listener closes, requests in flight finish (up
  to `shutdown_grace`) and the process exits. A second signal ends the drain early.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import hashlib
import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from skanse.errors import CertificateError

__all__ = ["CertificateReloader", "ServeOptions", "Server", "tls_context"]

_log = logging.getLogger("skanse.admission.server")

_TLS_HANDSHAKE = 0x16  # first byte of a TLS record carrying a ClientHello
_PLAIN_HTTP_BODY = b"This port speaks HTTPS only: use https:// (the webhook never serves HTTP).\n"
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_PLAIN_HTTP_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _PLAIN_HTTP_BODY
)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    cert_file: Path
    key_file: Path
    host: str = "0.0.0.0"  # noqa: S104 - the webhook is reached through its Service
    port: int = 8443
    reload_interval: float = 10.0
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    # The API server keeps connections open between reviews; reuse saves a TLS handshake.
    keep_alive: int = 75
    # Idle time allowed to a connection that has not sent a review (probes, scrapers, and
    # anyone else who can reach the port).
    idle_timeout: float = 5.0
    # Open connections (TLS handshakes included); past it the longest idle one is evicted.
    max_connections: int = 2000
    # After SIGTERM: keep serving this long with readiness off (see the module docstring).
    drain: float = 10.0
    shutdown_grace: float = 15.0
    backlog: int = 1024
    # Worker processes sharing the listening socket (the kernel spreads connections among
    # them); 1 serves in this process. A review costs CPU in Python, so one process uses one
    # core: on a 2-core node, 2 workers roughly double the throughput.
    workers: int = 1


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context: TLS 1.2+, ECDHE with AES-GCM or ChaCha20 (1.2), HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    _load_pair(context, cert_file, key_file)
    return context


def _load_pair(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except FileNotFoundError as exc:
        raise CertificateError(f"cannot read {exc.filename}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(
            f"cannot load the certificate {cert_file} with the key {key_file}: {exc}"
        ) from None


def _fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0missing")
    return digest.hexdigest()


class CertificateReloader:
    """Keeps one SSLContext serving the newest certificate and key found on disk."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._seen = _fingerprint(cert_file, key_file)
        self.context = tls_context(cert_file, key_file)
        self.loaded = self._seen
        self.reloads = 0

    def check(self) -> bool:
        """Reload if the files changed since they were last seen; True if reloaded."""
        current = _fingerprint(self.cert_file, self.key_file)
        if current == self._seen:
            return False
        self._seen = current
        try:
            # replaces the pair in the live context: handshakes from now on use it
            _load_pair(self.context, self.cert_file, self.key_file)
        except CertificateError as exc:
            _log.warning("certificate not reloaded, the previous one stays: %s", exc)
            return False
        self.loaded = current
        self.reloads += 1
        _log.info("certificate reloaded from %s", self.cert_file)
        return True


class _Draining:
    """Shared by a server and its connections: set once SIGTERM has started the drain."""

    def __init__(self) -> None:
        self.on = False


_REVIEW_PATHS = frozenset({b"/validate", b"/mutate"})


class _GuardedHttp(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline and a size cap on each request's headers,
    a short keep-alive until the connection sends a review, and the state eviction needs."""

    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    idle_timeout: float = 5.0
    review_keep_alive: float = 75.0
    draining: _Draining = _Draining()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = True
        self._header_bytes = 0
        self.timeout_keep_alive = self.idle_timeout  # type: ignore[assignment]
        self.reviewer = False  # has sent a review: the API server, most likely
        self.idle_since = self.loop.time()
        self._arm()

    def is_idle(self) -> bool:
        """No request in progress (nothing half-received, nothing being answered)."""
        cycle: Any = self.cycle  # uvicorn types it as set, but it is None before a request
        return (
            (cycle is None or cycle.response_complete)
            and not self.pipeline
            and self._header_bytes == 0
            and not self.transport.is_closing()
        )

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.idle_since = self.loop.time()
        if self.draining.on and not self.pipeline and not self.transport.is_closing():
            self.transport.close()  # after the answer: the client reconnects elsewhere

    def data_received(self, data: bytes) -> None:
        # One read can hold the end of the headers and the start of the body: parse first,
        # and refuse only if the headers are still incomplete after that much data.
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (
            self._in_headers
            and self._header_bytes > self.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(b"431 Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True  # the count runs on from the read that began the message
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        self._disarm()
        if not self.reviewer and self.url.split(b"?", 1)[0] in _REVIEW_PATHS:
            self.reviewer = True
            self.timeout_keep_alive = self.review_keep_alive  # type: ignore[assignment]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # whatever arrives from now on belongs to the next request's headers
        self._in_headers = True
        self._header_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self.transport.close()
        self._disarm()


def _guarded(options: ServeOptions, draining: _Draining) -> type[_GuardedHttp]:
    return type(
        "GuardedHttp",
        (_GuardedHttp,),
        {
            "header_timeout": options.header_timeout,
            "max_header_bytes": options.max_header_bytes,
            "idle_timeout": options.idle_timeout,
            "review_keep_alive": float(options.keep_alive),
            "draining": draining,
        },
    )


class Server:
    """Serves an ASGI app over HTTPS on one listening socket until stopped."""

    def __init__(
        self, make_app: Callable[[Callable[[], bool]], Any], options: ServeOptions
    ) -> None:
        """`make_app(ready)` builds the ASGI app; `ready()` is this server's readiness."""
        self.options = options
        self.ready = False
        self.draining = _Draining()
        self.evicted = 0  # idle connections closed to make room
        self.refused = 0  # connections refused because every open one was busy
        self.reloader = CertificateReloader(options.cert_file, options.key_file)
        self.config = uvicorn.Config(
            make_app(self.is_ready),
            http=_guarded(options, self.draining),
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=options.keep_alive,
            # the connection cap is enforced at accept time by eviction (`_make_room`);
            # uvicorn's would answer 503 to reviews once idle connections fill it
            limit_concurrency=None,
        )
        self.config.load()
        self.state = ServerState()
        # connections still in their first byte or TLS handshake, oldest first
        self._tasks: dict[asyncio.Task[None], None] = {}
        self.bound_port: int | None = None

    def is_ready(self) -> bool:
        return self.ready

    def _protocol(self) -> asyncio.Protocol:
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.state, app_state={}
        )

    def listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.options.host else socket.AF_INET
        try:
            sock = socket.create_server(
                (self.options.host, self.options.port),
                family=family,
                backlog=self.options.backlog,
                reuse_port=False,
            )
        except OSError as exc:
            from skanse.errors import AdmissionError

            raise AdmissionError(
                f"cannot listen on {self.options.host}:{self.options.port}: {exc.strerror or exc}"
            ) from None
        sock.setblocking(False)
        self.bound_port = sock.getsockname()[1]
        return sock

    async def serve(
        self, sock: socket.socket, *, on_ready: Callable[[], None] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
        accept = loop.create_task(self._accept(sock))
        reload = loop.create_task(self._reload_certificates())
        self.ready = True
        _log.info("serving https on %s:%s", self.options.host, self.bound_port or self.options.port)
        if on_ready is not None:
            on_ready()
        await stop.wait()
        self.ready = False
        if self.options.drain > 0:
            _log.info(
                "stopping: readiness off, still serving for the %g s drain period",
                self.options.drain,
            )
            self.draining.on = True
            for connection in list(self.state.connections):
                if isinstance(connection, _GuardedHttp) and connection.is_idle():
                    connection.transport.close()
            stop.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.drain):
                    await stop.wait()  # a second signal ends the drain early
        _log.info("stopping: no new connections, finishing requests in flight")
        accept.cancel()
        reload.cancel()
        sock.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self.state.connections):
            connection.shutdown()
        deadline = loop.time() + self.options.shutdown_grace
        while (self.state.connections or self.state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        _log.info("stopped")

    async def _reload_certificates(self) -> None:
        while True:
            await asyncio.sleep(self.options.reload_interval)
            try:
                await asyncio.to_thread(self.reloader.check)
            except Exception:  # keep serving with the certificate already loaded
                _log.exception("certificate reload failed")

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                _log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if not self._make_room():
                self.refused += 1
                _log.debug("connection refused: %d open, all busy", self.options.max_connections)
                conn.close()
                continue
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._start(conn))
            self._tasks[task] = None
            task.add_done_callback(self._forget)

    def _make_room(self) -> bool:
        """Whether a new connection may open, evicting the longest idle one at the cap:
        connections that never sent a review go first, then the API server's own."""
        limit = self.options.max_connections
        if len(self.state.connections) + len(self._tasks) < limit:
            return True  # the common case, without a walk over the connections
        connections = [
            c
            for c in self.state.connections
            if getattr(c, "transport", None) is None or not c.transport.is_closing()
        ]
        if len(connections) + len(self._tasks) < limit:
            return True
        idle = [c for c in connections if isinstance(c, _GuardedHttp) and c.is_idle()]
        if idle:
            victim = min(idle, key=lambda c: (c.reviewer, c.idle_since))
            victim.transport.close()
        elif self._tasks:
            # silent or slow handshakes: a real client finishes one in milliseconds
            oldest = next(iter(self._tasks))
            del self._tasks[oldest]  # counted no more, whenever its cancellation lands
            oldest.cancel()
        else:
            return False
        self.evicted += 1
        _log.debug("evicted an idle connection to make room")
        return True

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _start(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            first = await self._peek(conn)
            if first is None:
                conn.close()
                return
            if first != _TLS_HANDSHAKE:
                await self._refuse_plain(conn)
                return
            await loop.connect_accepted_socket(
                functools.partial(self._protocol),
                sock=conn,
                ssl=self.reloader.context,
                ssl_handshake_timeout=self.options.handshake_timeout,
            )
        except asyncio.CancelledError:
            conn.close()
            raise
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            _log.debug("connection dropped before HTTP: %s", exc)
            conn.close()

    async def _peek(self, conn: socket.socket) -> int | None:
        """The first byte the client sent, without consuming it (None: nothing in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.handshake_timeout
        while True:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(conn.fileno(), _resolve, readable)
            try:
                async with asyncio.timeout_at(deadline):
                    await readable
            except TimeoutError:
                return None
            finally:
                loop.remove_reader(conn.fileno())
            try:
                data = conn.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError:
                return None
            return data[0] if data else None

    async def _refuse_plain(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        _log.info("plain HTTP refused on the HTTPS port")
        try:
            await asyncio.wait_for(loop.sock_sendall(conn, _PLAIN_HTTP_ANSWER), 5)
            conn.shutdown(socket.SHUT_WR)
            # read what the client still sends, so closing does not reset the connection
            # before it has read the answer
            async with asyncio.timeout(2):
                while await loop.sock_recv(conn, 65536):
                    pass
        except (OSError, TimeoutError):
            pass
        finally:
            conn.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _serve_in_this_process(
    server: Server, sock: socket.socket, on_ready: Callable[[], None] | None
) -> None:
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(server.serve(sock, on_ready=on_ready))


def _stop_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when its supervisor dies, even by SIGKILL:
    an orphaned worker would otherwise keep answering on the port, unsupervised."""
    pr_set_pdeathsig = 1  # <linux/prctl.h>; the stdlib has no prctl binding
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the supervisor died before the prctl took effect
        os._exit(0)


def run(
    make_app: Callable[[Callable[[], bool]], Any],
    options: ServeOptions,
    *,
    on_ready: Callable[[], None] | None = None,
    on_worker_exit: Callable[[int], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, on uvloop when it is installed.

    With `options.workers > 1` this process binds the socket, forks the workers (before any
    event loop or thread exists, so the fork is clean) and supervises them: SIGTERM and SIGINT
    are passed on and each worker drains its connections; if a worker dies on its own, the
    others are stopped and the error is raised, so the pod restarts rather than serving at
    half capacity unnoticed. `on_worker_exit(pid)` lets shared state (metrics) forget a worker.
    """
    server = Server(make_app, options)
    sock = server.listen()
    # Everything made so far (modules, the check registry, the policy, the app) lives as long
    # as the process: out of the collector's sight, collections during reviews stop walking it
    # again and again (measured under 100 connections: GC time per review about halved), and
    # forked workers keep sharing its memory pages instead of copying them as the collector
    # touches each object's header.
    gc.collect()
    gc.freeze()
    if options.workers <= 1:
        _serve_in_this_process(server, sock, on_ready)
        return
    children: set[int] = set()
    supervisor = os.getpid()
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve, then leave without running the parent's cleanup
            code = 0
            try:
                _stop_with_parent(supervisor)
                _serve_in_this_process(server, sock, on_ready)
            except BaseException:
                _log.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        children.add(pid)
    sock.close()
    _log.info("supervising %d workers: %s", len(children), sorted(children))
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = None
    while children:
        pid, status = os.wait()
        children.discard(pid)
        if on_worker_exit is not None:
            on_worker_exit(pid)
        if not stopping:
            failed = f"worker {pid} exited unexpectedly (status {status})"
            _log.error("%s: stopping the others", failed)
            stop(signal.SIGTERM, None)
    if failed is not None:
        from skanse.errors import AdmissionError

        raise AdmissionError(failed)
