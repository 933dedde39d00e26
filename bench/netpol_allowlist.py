"""Benchmark `netpol generate` with large address allow-lists: N CIDRs that cannot be
aggregated (every other /24), allowed into one workload, aggregated, written and proven.

    .venv/bin/python bench/netpol_allowlist.py [--sizes 711,1372,2715,5000,10000,20000]

Prints wall and CPU seconds per size (on a shared machine the CPU time moves less with the
load) and the ratio of CPU time to the previous size's over the ratio of sizes: about 1 when
the cost grows linearly, about the size ratio when it grows with the square.
"""

from __future__ import annotations

import argparse
import inspect
import ipaddress
import time

from skanse.netpol.generate import generate, graph_from_data
from skanse.sources.manifests import ReadLimits, read_bytes

_APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web, ports: [{containerPort: 443}]}]}
"""


def spaced_cidrs(count: int) -> list[str]:
    """`count` /24 networks with a gap after each, so aggregation cannot merge them."""
    base = int(ipaddress.IPv4Address("11.0.0.0"))
    return [str(ipaddress.IPv4Network((base + i * 512, 24))) for i in range(count)]


def run(count: int) -> tuple[float, float, int]:
    objects = read_bytes("app.yaml", _APP.encode(), ReadLimits()).objects
    graph = graph_from_data(
        {
            "connections": [
                {"from": {"cidrs": spaced_cidrs(count)}, "to": "shop/web", "ports": [443]}
            ]
        }
    )
    started, cpu = time.perf_counter(), time.process_time()
    if "max_ip_blocks" in inspect.signature(generate).parameters:  # absent before the warning
        result = generate(graph, objects, max_ip_blocks=count + 1)
    else:
        result = generate(graph, objects)
    return time.perf_counter() - started, time.process_time() - cpu, len(result.text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="711,1372,2715,5000,10000,20000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    previous: tuple[int, float] | None = None
    print(f"{'CIDRs':>7} {'wall s':>8} {'CPU s':>8} {'bytes':>9} {'growth/linear':>14}")
    for size in sizes:
        seconds, cpu, written = run(size)
        growth = ""
        if previous is not None:
            growth = f"{(cpu / previous[1]) / (size / previous[0]):.2f}"
        print(f"{size:>7} {seconds:>8.2f} {cpu:>8.2f} {written:>9} {growth:>14}")
        previous = (size, cpu)


if __name__ == "__main__":
    main()
