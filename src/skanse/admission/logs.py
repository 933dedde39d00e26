"""JSON lines for the server's logs: one object per line on standard error.

Fields: `ts`, `level`, `logger`, `msg`, `pid` (which worker process), and per request
`uid`, `operation`, `kind`,
`namespace`, `name`, `decision`, `mode`, `checks`, `dry_run`, `duration_ms`. Request bodies
are never logged, at any level: they can hold secrets (environment values, tokens).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

__all__ = ["FIELDS_KEY", "JsonFormatter", "configure"]

FIELDS_KEY = "skanse_fields"  # LogRecord attribute holding the structured fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, FIELDS_KEY, None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str = "info") -> None:
    """JSON logs for skanse and uvicorn on standard error; uvicorn's access log is off
    (the webhook logs each decision itself)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("skanse", "uvicorn", "uvicorn.error", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True
