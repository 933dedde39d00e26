"""Idle connections against reviews: the reported starvation, measured.

    python -m bench.admission_idle                  # 2,100 idle connections, 20 reviews
    python -m bench.admission_idle --idle 500

Starts `skanse admission serve` (one worker, default connection settings: 2,000 connections,
5 s idle timeout for connections that sent no review), opens `--idle` TLS connections that
each send one `GET /healthz` and then idle (what anyone who can reach the port can do), and
while they are open sends reviews, each on a new connection as a restarted API server would.
Prints the status of every review, their latency, and how many idle connections the server
closed. Then again with `--idle-timeout 600`, so that the idle connections outlive the setup
and only eviction at the cap can make room. Before the connection hygiene, every review got
503 once 2,000 were open (`--defaults-only` runs a server without these flags).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.admission_load import Server, review_body

Idle = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _healthz(port: int, context: ssl.SSLContext) -> Idle | None:
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")  # whatever the answer: the connection stays
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        return None
    return reader, writer  # the writer too: dropping it would close the connection


async def _review(port: int, context: ssl.SSLContext, body: bytes) -> tuple[int, float]:
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        writer.write(
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        status = int(head.split(b" ", 2)[1])
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        status = 0
    return status, time.perf_counter() - start


async def _run(port: int, ca: Path, idle: int, reviews: int) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    opened: list[Idle] = []
    for start in range(0, idle, 100):  # in waves, so that the handshakes do not time out
        batch = await asyncio.gather(
            *(_healthz(port, context) for _ in range(min(100, idle - start)))
        )
        opened += [r for r in batch if r is not None]
    print(f"{len(opened)} idle connections open (each sent GET /healthz)")
    results = [await _review(port, context, review_body(i)) for i in range(reviews)]
    await asyncio.sleep(0.2)
    closed = sum(1 for reader, _ in opened if reader.at_eof())
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(seconds * 1000 for _, seconds in results)
    print(f"reviews: {statuses} (status: count; 0 is a refused connection)")
    print(
        f"review latency with a new TLS connection: p50 {statistics.median(latencies):.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )
    print(f"idle connections the server had closed: {closed} of {len(opened)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=2100, help="idle connections to open")
    parser.add_argument("--reviews", type=int, default=20, help="reviews sent meanwhile")
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="only the server's default settings (for servers without --idle-timeout)",
    )
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    settings: list[tuple[str, tuple[str, ...]]] = [("default settings", ())]
    if not args.defaults_only:
        # idle connections outlive the setup: only eviction at the cap makes room
        settings.append(("--idle-timeout 600", ("--idle-timeout", "600")))
    for name, extra in settings:
        print(f"-- {name}")
        with tempfile.TemporaryDirectory(prefix="skanse-idle-") as tmp:
            # (no `extra` keyword at all for the previous commit's bench, which lacks it)
            server = Server(Path(tmp), 1, extra) if extra else Server(Path(tmp), 1)
            try:
                asyncio.run(_run(server.port, server.tls / "ca.crt", args.idle, args.reviews))
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
