"""Prometheus metrics of the sensor, served by prometheus-client on a local port.

    skanse_sensor_events_total{source}                 records the sensor delivered
    skanse_sensor_events_dropped_total{reason}         records the kernel could not queue:
                                                       ringbuf_full, or ringbuf_busy (room
                                                       left, the ring's lock timed out)
    skanse_sensor_events_produced_total{source}        records the kernel produced
    skanse_sensor_rule_matches_total{rule,priority}    alerts per rule
    skanse_sensor_output_failures_total{output}        alerts an output could not deliver
    skanse_sensor_processes                            processes in the table
    skanse_build_info{version}                         1

Values are read when Prometheus scrapes (a collector), so the sensor's hot loop only
increments plain integers; the drop counters are read from the kernel map at that moment.
Counters end in `_total`, units are base units, and there are no pod, image or user labels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from skanse import __version__

__all__ = ["SensorCollector", "serve_metrics"]


class SensorCollector(Collector):
    def __init__(
        self,
        agent: Any,  # skanse.runtime.agent.Agent
        source: str,
        outputs: Sequence[Any] = (),
        lock: threading.Lock | None = None,
        drops: Callable[[], tuple[int, int]] | None = None,
        busy: Callable[[], int] | None = None,
    ) -> None:
        self.agent = agent
        self.source = source
        self.outputs = outputs
        self.lock = lock
        self.drops = drops
        self.busy = busy

    def collect(self) -> Iterator[Metric]:
        stats = self.agent.stats
        produced, dropped = self.drops() if self.drops is not None else (0, 0)
        events = CounterMetricFamily(
            "skanse_sensor_events",
            "Kernel records the sensor delivered to userspace",
            labels=["source"],
        )
        events.add_metric([self.source], float(self.agent.sensor.delivered))
        yield events
        made = CounterMetricFamily(
            "skanse_sensor_events_produced",
            "Kernel records produced (delivered + dropped)",
            labels=["source"],
        )
        made.add_metric([self.source], float(produced))
        yield made
        lost = CounterMetricFamily(
            "skanse_sensor_events_dropped",
            "Kernel records lost: the ring buffer was full, or its lock was not taken in time",
            labels=["reason"],
        )
        busy = self.busy() if self.busy is not None else 0
        lost.add_metric(["ringbuf_full"], float(dropped - busy))
        lost.add_metric(["ringbuf_busy"], float(busy))
        yield lost
        drop_alerts = CounterMetricFamily(
            "skanse_sensor_drop_alerts",
            "Syscall event drop alerts sent (drops over the syscall_event_drops threshold)",
        )
        drop_alerts.add_metric([], float(stats.drop_alerts))
        yield drop_alerts
        matches = CounterMetricFamily(
            "skanse_sensor_rule_matches", "Alerts by rule and priority", labels=["rule", "priority"]
        )
        for (rule, priority), count in sorted(dict(stats.matches).items()):
            matches.add_metric([rule, priority], float(count))
        yield matches
        failures = CounterMetricFamily(
            "skanse_sensor_output_failures",
            "Alerts an output failed to deliver or dropped",
            labels=["output"],
        )
        for output in self.outputs:
            failures.add_metric([output.name], float(output.stats.failed + output.stats.dropped))
        yield failures
        processes = GaugeMetricFamily("skanse_sensor_processes", "Processes in the sensor's table")
        processes.add_metric([], float(len(self.agent.engine.table.processes)))
        yield processes
        info = GaugeMetricFamily(
            "skanse_build_info", "skanse build information", labels=["version"]
        )
        info.add_metric([__version__], 1.0)
        yield info


def serve_metrics(
    collector: SensorCollector, port: int, address: str = "127.0.0.1"
) -> tuple[Any, Any]:
    """Start the HTTP endpoint (a daemon thread); returns (server, thread) for shutdown."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return start_http_server(port, addr=address, registry=registry)
