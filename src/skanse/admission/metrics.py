"""Prometheus metrics of the webhook (one registry per server, so tests start from zero).

With several worker processes (`--workers`), prometheus-client's multiprocess mode keeps the
values in files under $PROMETHEUS_MULTIPROC_DIR (set by `skanse admission serve` before this
module is imported) and `/metrics` sums them, whichever worker answers the scrape.

    skanse_webhook_requests_total{operation,kind,decision}
    skanse_webhook_request_duration_seconds{endpoint}        histogram
    skanse_policy_results_total{check_id,result}            pass | fail | suppressed | error
    skanse_build_info{version}

Label values come from closed sets: kinds outside the workload kinds count as `other` and
operations outside CREATE/UPDATE/DELETE/CONNECT as `invalid`, so no request can grow the
series; there are no pod, image or user labels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST as _CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from skanse import __version__
from skanse.sources.kubernetes import POD_TEMPLATE_PATHS

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = _CONTENT_TYPE
_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
# A review takes well under a millisecond to decide; the API server gives up at seconds.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # the *_created series double the output and nothing here reads them
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "skanse_webhook_requests",
            "Admission requests answered, by operation, object kind and decision.",
            ["operation", "kind", "decision"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "skanse_webhook_request_duration_seconds",
            "Time from the request's body being read to the answer being ready.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.results = Counter(
            "skanse_policy_results",
            "Check results on admitted or denied objects, by check id and result.",
            ["check_id", "result"],
            registry=self.registry,
        )
        info = Gauge(
            "skanse_build_info",
            "The skanse version serving.",
            ["version"],
            registry=self.registry,
            multiprocess_mode="max",  # one series, not one per worker
        )
        info.labels(__version__).set(1)
        # labels() takes a lock and hashes its arguments: keep the children
        self._request_children: dict[tuple[str, str, str], Counter] = {}
        self._result_children: dict[tuple[str, str], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}
        # Per-check results are counted in a plain dict and added to the counter when
        # /metrics is rendered: 28 locked increments per review cost more than the rest of
        # the bookkeeping. With several workers the values live in files that any worker's
        # scrape reads, so there each result goes to its counter at once.
        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._pending_results: dict[tuple[str, str], int] = {}

    def observe(
        self,
        endpoint: str,
        operation: str,
        kind: str,
        decision: str,
        seconds: float,
        results: Iterable[tuple[str, str]] = (),
    ) -> None:
        operation = operation if operation in _OPERATIONS else "invalid"
        kind = kind if kind in POD_TEMPLATE_PATHS else ("" if not kind else "other")
        key = (operation, kind, decision)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(*key)
        child.inc()
        histogram = self._duration_children.get(endpoint)
        if histogram is None:
            histogram = self._duration_children[endpoint] = self.duration.labels(endpoint)
        histogram.observe(seconds)
        pending = self._pending_results
        for result_key in results:
            pending[result_key] = pending.get(result_key, 0) + 1
        if self._multiprocess:
            self._flush_results()

    def _flush_results(self) -> None:
        """Add the results counted since the last flush to their counters."""
        pending = self._pending_results
        if not pending:
            return
        self._pending_results = {}
        for result_key, count in pending.items():
            counter = self._result_children.get(result_key)
            if counter is None:
                counter = self._result_children[result_key] = self.results.labels(*result_key)
            counter.inc(count)

    def render(self) -> bytes:
        self._flush_results()
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
