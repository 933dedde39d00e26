"""The ASGI application: `/validate`, `/mutate`, `/healthz`, `/readyz`, `/metrics`.

Bodies are read with a size cap (413 past it, checked against Content-Length before reading)
and a deadline (408 for a client that sends the body too slowly), so memory and time per
request stay bounded whatever the client does. Decisions are made by `Webhook`; when the
policy has image rules the decision runs in a worker thread, because the verifier may wait
on a registry and must not stall the event loop.

Memory is bounded by design: the bytes of all reviews being read or decided at once are at
most `max_inflight_bytes`. A request reserves its Content-Length (the body cap when it sends
none) before reading, and keeps the reservation until its answer is made, parsed object
included; one that cannot get its share within the body deadline is answered 503. A parsed
review takes several times its size in Python objects, so the Deployment's memory limit is
set from this budget (docs/admission.md has the figures). Offloaded decisions of large
reviews run on one thread of their own: memory a thread's allocator has used stays with
that thread, so spreading large reviews over many threads multiplied the peak (measured:
260 MB with the default executor against 112 MB with one thread for 20 concurrent
2.9 MB reviews); small reviews share a pool, so a slow registry does not queue them.

A client that goes away mid-body is one INFO line, not an error: nothing was decided.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from skanse.admission.handler import Decision, Outcome, Webhook
from skanse.admission.logs import FIELDS_KEY
from skanse.admission.metrics import CONTENT_TYPE, Metrics

__all__ = ["AppSettings", "InflightBudget", "create_app"]

_log = logging.getLogger("skanse.admission")

# Decisions worth a line at info level; the rest (allow, skip, exempt, patch) go to debug.
_NOTABLE = frozenset(
    {Decision.DENY, Decision.WARN, Decision.AUDIT, Decision.ERROR, Decision.INVALID}
)


@dataclass(frozen=True, slots=True)
class AppSettings:
    # An AdmissionReview carries the object and, on UPDATE, the old one; etcd stores objects
    # up to 1.5 MiB, so 3 MiB fits any real review of a Pod or workload.
    max_body_bytes: int = 3 * 1024 * 1024
    body_timeout: float = 10.0
    # Bytes of reviews read or decided at once (see the module docstring): two of the
    # largest, or hundreds of ordinary ones (a few KiB each). A parsed review of small
    # objects takes about 12 times its size, so 8 MiB keeps a worker near 140 MB at peak.
    max_inflight_bytes: int = 8 * 1024 * 1024
    # Reviews larger than this are decided on the single large-review thread.
    large_review_bytes: int = 256 * 1024
    decision_threads: int = 8


class _TooLarge(Exception):
    pass


class InflightBudget:
    """A byte budget shared by the requests of one event loop; waiters are served in order.

    The common case (room left, nobody waiting) takes no lock and awaits nothing.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, size: int, timeout: float) -> bool:
        """Reserve `size` bytes within `timeout` seconds; False if they did not free up."""
        size = min(size, self.capacity)
        if not self._waiters and self.used + size <= self.capacity:
            self.used += size
            return True
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            if entry[1].done() and not entry[1].cancelled():
                return True  # granted just as the deadline passed
            if entry in self._waiters:
                self._waiters.remove(entry)
            self._wake()  # a large waiter leaving may let smaller ones in
            return False
        return True

    def release(self, size: int) -> None:
        self.used -= min(size, self.capacity)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, future = self._waiters[0]
            if future.done():  # given up
                self._waiters.popleft()
                continue
            if self.used + size > self.capacity:
                return
            self._waiters.popleft()
            self.used += size
            future.set_result(None)


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    webhook: Webhook,
    metrics: Metrics,
    *,
    settings: AppSettings = AppSettings(),
    ready: Callable[[], bool] = lambda: True,
) -> ASGIApp:
    offload = webhook.verifier is not None
    budget = InflightBudget(settings.max_inflight_bytes)
    # threads start on first use, after any fork of worker processes
    small_pool = concurrent.futures.ThreadPoolExecutor(
        settings.decision_threads, thread_name_prefix="skanse-decide"
    )
    large_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="skanse-large")

    async def review(request: Request, endpoint: str) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            metrics.observe(endpoint, "", "", Decision.INVALID, 0.0)
            return PlainTextResponse(
                "an AdmissionReview is sent as application/json\n", status_code=415
            )
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            return _too_large(endpoint)
        share = int(length) if length.isdigit() else settings.max_body_bytes
        if not await budget.acquire(share, settings.body_timeout):
            metrics.observe(endpoint, "", "", Decision.INVALID, 0.0)
            return PlainTextResponse(
                "too many large reviews at once; retry\n",
                status_code=503,
                headers={"retry-after": "1"},
            )
        try:
            return await decide_within_budget(request, endpoint)
        finally:
            budget.release(share)

    def _too_large(endpoint: str) -> Response:
        metrics.observe(endpoint, "", "", Decision.INVALID, 0.0)
        return PlainTextResponse(
            f"the body is larger than {settings.max_body_bytes} bytes\n",
            status_code=413,
            headers={"connection": "close"},
        )

    async def decide_within_budget(request: Request, endpoint: str) -> Response:
        try:
            body = await _read_body(request, settings.max_body_bytes, settings.body_timeout)
        except _TooLarge:
            return _too_large(endpoint)
        except ClientDisconnect:
            # nothing to answer and nothing decided: one line, no traceback
            _log.info(
                f"{endpoint}: the client disconnected before sending the whole body",
                extra={FIELDS_KEY: {"endpoint": endpoint, "decision": "disconnected"}},
            )
            return Response(status_code=499)
        except TimeoutError:
            metrics.observe(endpoint, "", "", Decision.INVALID, 0.0)
            return PlainTextResponse(
                f"the body did not arrive within {settings.body_timeout:g} s\n",
                status_code=408,
                headers={"connection": "close"},
            )
        start = time.perf_counter()
        decide = webhook.validate if endpoint == "validate" else webhook.mutate
        if offload:
            pool = large_pool if len(body) > settings.large_review_bytes else small_pool
            outcome = await asyncio.get_running_loop().run_in_executor(pool, decide, body)
        else:
            outcome = decide(body)
        seconds = time.perf_counter() - start
        metrics.observe(
            endpoint, outcome.operation, outcome.kind, outcome.decision, seconds, outcome.results
        )
        _log_outcome(endpoint, outcome, seconds)
        return Response(outcome.body, status_code=outcome.status, media_type=outcome.content_type)

    async def validate(request: Request) -> Response:
        return await review(request, "validate")

    async def mutate(request: Request) -> Response:
        return await review(request, "mutate")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        if ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready\n", status_code=503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    routed = Starlette(
        routes=[
            Route("/validate", validate, methods=["POST"]),
            Route("/mutate", mutate, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Reviews go straight to their handler: Starlette's middleware and route matching
        # cost about 15 us per request, a tenth of a decision. Everything else (other
        # methods and paths, 404/405, lifespan) is Starlette's, with the same routes.
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = _REVIEW_PATHS.get(scope["path"])
            if endpoint is not None:
                response = await review(Request(scope, receive, send), endpoint)
                await response(scope, receive, send)
                return
        await routed(scope, receive, send)

    return app


_REVIEW_PATHS: dict[str, str] = {"/validate": "validate", "/mutate": "mutate"}


def _log_outcome(endpoint: str, outcome: Outcome, seconds: float) -> None:
    level = logging.INFO if outcome.decision in _NOTABLE else logging.DEBUG
    if not _log.isEnabledFor(level):
        return
    fields = {
        "endpoint": endpoint,
        "uid": outcome.uid,
        "operation": outcome.operation,
        "kind": outcome.kind,
        "namespace": outcome.namespace,
        "name": outcome.name,
        "decision": outcome.decision,
        "mode": outcome.mode,
        "checks": list(outcome.failed),
        "dry_run": outcome.dry_run,
        "duration_ms": round(seconds * 1000, 3),
    }
    if outcome.reason:
        fields["reason"] = outcome.reason
    _log.log(level, f"{endpoint} {outcome.decision}", extra={FIELDS_KEY: fields})
