"""Where alerts go: JSON lines, Falco's text lines, an HTTP(S) webhook, syslog. Each is an
`Output`.

Every output receives Falco's JSON alert (`time, rule, priority, source, hostname, output,
output_fields, tags`), so a Falcosidekick endpoint accepts the webhook's body as it is.
Outputs never block the sensor: the webhook posts from its own thread through a bounded
queue and counts what it had to drop or could not deliver; a syslog or file write that
fails is counted, not raised, so detection goes on when an output is down.
"""

from __future__ import annotations

import datetime as _dt
import os
import queue
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

from skanse.errors import UsageError
from skanse.printable import printable, printable_json

__all__ = [
    "JsonLinesOutput",
    "Output",
    "OutputStats",
    "SyslogOutput",
    "TextOutput",
    "WebhookOutput",
    "parse_syslog_address",
]


@dataclass(slots=True)
class OutputStats:
    sent: int = 0
    failed: int = 0  # delivery failed (HTTP error, socket error)
    dropped: int = 0  # not even attempted: the queue was full


class Output(Protocol):
    name: str
    stats: OutputStats

    def emit(self, alert: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonLinesOutput:
    """One JSON alert per line on a stream (stdout) or appended to a file."""

    def __init__(self, target: IO[str] | str) -> None:
        self.stats = OutputStats()
        if isinstance(target, str):
            self.name = f"jsonl:{target}"
            # a log stream, not a document: appended line by line (not write_atomic)
            self._stream: IO[str] = open(target, "a", encoding="utf-8")
            self._owned = True
        else:
            self.name = "jsonl:stdout"
            self._stream = target
            self._owned = False

    def emit(self, alert: Mapping[str, Any]) -> None:
        try:
            # a process's comm, argv and paths are in it: no control character goes out raw
            # (C1 too: U+009B is CSI to a terminal tailing the file)
            self._stream.write(printable_json(alert) + "\n")
            self._stream.flush()
            self.stats.sent += 1
        except (OSError, ValueError):
            self.stats.failed += 1

    def close(self) -> None:
        if self._owned:
            self._stream.close()


class TextOutput:
    """Falco's text line per alert on a stream (`--format text`)."""

    def __init__(self, stream: IO[str]) -> None:
        self.name = "text:stdout"
        self.stats = OutputStats()
        self._stream = stream

    def emit(self, alert: Mapping[str, Any]) -> None:
        # the line carries what a process controls (its argv, comm, paths, its container's
        # name): a newline there would forge an alert line, an ESC repaint the terminal
        try:
            self._stream.write(printable(str(alert.get("output", ""))) + "\n")
            self._stream.flush()
            self.stats.sent += 1
        except (OSError, ValueError):
            self.stats.failed += 1

    def close(self) -> None:
        return None


class WebhookOutput:
    """POSTs each alert as JSON to a URL (Falcosidekick's `/` accepts Falco's alert)."""

    def __init__(
        self,
        url: str,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        queue_size: int = 10_000,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"webhook URL must be http:// or https://, not {url!r}")
        self.name = f"webhook:{parts.scheme}://{parts.netloc}"
        self.url = url
        self.stats = OutputStats()
        self.last_error: str | None = None
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "User-Agent": "skanse-sensor"}
        self._headers.update(headers or {})
        self._context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._context = ssl.create_default_context(cafile=ca_file)
            if insecure:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="skanse-webhook", daemon=True)
        self._thread.start()

    def emit(self, alert: Mapping[str, Any]) -> None:
        body = printable_json(alert).encode("utf-8")
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.stats.dropped += 1

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                self._queue.task_done()
                return
            try:
                self._post(body)
            finally:
                self._queue.task_done()

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url, data=body, headers=self._headers, method="POST"
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self._timeout, context=self._context
            ) as response:
                response.read(65536)
            self.stats.sent += 1
        except (OSError, urllib.error.URLError, ValueError) as exc:
            self.stats.failed += 1
            self.last_error = str(exc)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the queue is empty (used at shutdown and in tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.flush()
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            return
        self._thread.join(timeout=self._timeout + 1.0)


_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def parse_syslog_address(address: str) -> tuple[str, Any]:
    """`/dev/log` (a unix datagram socket), `udp://host:514` or `tcp://host:514`."""
    if address.startswith("/"):
        return "unix", address
    parts = urllib.parse.urlsplit(address)
    if parts.scheme in ("udp", "tcp") and parts.hostname:
        return parts.scheme, (parts.hostname, parts.port or 514)
    raise UsageError(
        f"syslog address must be a socket path, udp://HOST:PORT or tcp://HOST:PORT: {address!r}"
    )


class SyslogOutput:
    """RFC 3164 messages: `<PRI>Mmm dd hh:mm:ss HOST skanse[PID]: <Falco text line>`.

    Falco priorities are syslog severities (Emergency 0 ... Debug 7); the facility is
    `user` unless configured.
    """

    def __init__(
        self, address: str = "/dev/log", *, facility: int = 1, hostname: str | None = None
    ) -> None:
        self.kind, self.target = parse_syslog_address(address)
        self.name = f"syslog:{address}"
        self.stats = OutputStats()
        self.facility = facility
        self.hostname = hostname or socket.gethostname()
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if self.kind == "tcp":
            sock = socket.create_connection(self.target, timeout=5.0)
        else:
            if self.kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            else:
                family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.connect(self.target)
            except OSError:
                sock.close()
                raise
        self._sock = sock
        return sock

    def format(self, alert: Mapping[str, Any]) -> bytes:
        from skanse.rules.loader import Priority

        priority = Priority.parse(str(alert.get("priority", "")))
        severity = int(priority) if priority is not None else 5
        now = _dt.datetime.now()
        stamp = f"{_MONTHS[now.month - 1]} {now.day:2d} {now:%H:%M:%S}"
        # one message per alert: a newline from a process's argv would end the message on a
        # TCP (newline-framed) receiver and start a forged one; other controls are escaped too
        line = printable(str(alert.get("output", "")))
        text = (
            f"<{self.facility * 8 + severity}>{stamp} {self.hostname} skanse[{os.getpid()}]: {line}"
        )
        data = text.encode("utf-8", "replace")
        if self.kind == "tcp":
            data += b"\n"
        return data

    def emit(self, alert: Mapping[str, Any]) -> None:
        data = self.format(alert)
        try:
            self._connect().send(data)
            self.stats.sent += 1
        except OSError:
            self.stats.failed += 1
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
