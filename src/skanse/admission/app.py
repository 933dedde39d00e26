"""The ASGI application: `/validate`, `/mutate`, `/healthz`, `/readyz`, `/metrics`.

Bodies are read with a size cap (413 past it, checked against Content-Length before reading)
and a deadline (408 for a client that sends the body too slowly), so memory and time per
request stay bounded whatever the client does. Decisions are made by `Webhook`; when the
policy has image rules the decision runs in a worker thread, because the verifier may wait
on a registry and must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from skanse.admission.handler import Decision, Outcome, Webhook
from skanse.admission.logs import FIELDS_KEY
from skanse.admission.metrics import CONTENT_TYPE, Metrics

__all__ = ["AppSettings", "create_app"]

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


class _TooLarge(Exception):
    pass


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
) -> Starlette:
    offload = webhook.verifier is not None

    async def review(request: Request, endpoint: str) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            metrics.observe(endpoint, "", "", Decision.INVALID, 0.0)
            return PlainTextResponse(
                "an AdmissionReview is sent as application/json\n", status_code=415
            )
        try:
            body = await _read_body(request, settings.max_body_bytes, settings.body_timeout)
        except _TooLarge:
            metrics.observe(endpoint, "", "", Decision.INVALID, 0.0)
            return PlainTextResponse(
                f"the body is larger than {settings.max_body_bytes} bytes\n",
                status_code=413,
                headers={"connection": "close"},
            )
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
            outcome = await asyncio.to_thread(decide, body)
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

    return Starlette(
        routes=[
            Route("/validate", validate, methods=["POST"]),
            Route("/mutate", mutate, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )


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
