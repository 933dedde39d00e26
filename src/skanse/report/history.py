"""The history of posture reports: every run's findings, kept to show what changed.

GDPR Art. 32(1)(d) asks for "a process for regularly testing, assessing and evaluating the
effectiveness" of the measures; a report on its own is one test, the history is the process.
`skanse report --history` appends each run here and shows the trend over the last runs: the
findings that are new, fixed and still open (listed, not only counted).

Stores:

    (default)                       SQLite, one file: $SKANSE_HISTORY, else
                                    $XDG_DATA_HOME/skanse/history.sqlite
    /path/history.sqlite            SQLite at that path (or sqlite:///path)
    postgresql://user@host/db       PostgreSQL (psycopg 3), for a fleet of clusters
                                    reporting to one place; `--cluster` tells them apart

A run keeps its unsuppressed findings by their fingerprint (stable when lines move), with
check, severity, file, line and message, and its counts per layer and severity. Suppressed
findings are accepted risks: the report lists them with their reasons, the history does not
count them as open.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from skanse.errors import ReportError

__all__ = [
    "DEFAULT_CLUSTER",
    "MAX_RUNS",
    "History",
    "HistoryError",
    "Run",
    "default_location",
    "finding_key",
    "open_history",
    "redact",
    "trend",
]

DEFAULT_CLUSTER = "default"
MAX_RUNS = 2**63 - 1  # the most a LIMIT takes (SQLite and PostgreSQL integers)
SCHEMA_VERSION = 1
_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO")
_PG_CREATE_LOCK = 0x736B616E7365  # "skanse": serialises table creation among writers


class HistoryError(ReportError):
    """The history store could not be opened, read or written."""


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    cluster: str
    generated: str  # ISO 8601, UTC
    title: str
    tool_version: str
    findings: int
    by_severity: Mapping[str, int]


def default_location() -> str:
    """$SKANSE_HISTORY, else history.sqlite in skanse's data directory (XDG)."""
    named = os.environ.get("SKANSE_HISTORY")
    if named:
        return named
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "skanse" / "history.sqlite")


_SECRET_KEYS = frozenset({"password", "sslpassword"})  # libpq's, in a URL's query


def redact(location: str) -> str:
    """A store location fit for messages: a URL without its password, whether in the user
    info or (as libpq also takes it) a `password=` or `sslpassword=` parameter of the query,
    whose name libpq percent-decodes as it does the value."""
    parts = urlsplit(location)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = "&".join(
        f"{item.partition('=')[0]}=***" if _is_secret(item.partition("=")[0]) else item
        for item in parts.query.split("&")
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return location  # nothing secret; urlunsplit would also drop an empty `//`
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _is_secret(key: str) -> bool:
    return unquote(key).lower() in _SECRET_KEYS


def _scrub(text: str, location: str) -> str:
    """`text` (a driver's message, which may quote the URL or a bad escape in it) with every
    secret of `location` replaced, as written and as decoded."""
    parts = urlsplit(location)
    secrets = [parts.password or ""]
    secrets += [
        v for k, _, v in (i.partition("=") for i in parts.query.split("&")) if _is_secret(k)
    ]
    for secret in sorted({x for s in secrets if s for x in (s, unquote(s))}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def finding_key(finding: Mapping[str, Any]) -> str:
    """The identity of a finding across runs: its fingerprint, else a digest of what it is."""
    fingerprint = finding.get("fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        return fingerprint
    resource = finding.get("resource") or {}
    text = "\x1f".join(
        str(x)
        for x in (
            finding.get("check_id"),
            resource.get("kind") if isinstance(resource, Mapping) else resource,
            resource.get("namespace") if isinstance(resource, Mapping) else "",
            resource.get("name") if isinstance(resource, Mapping) else "",
            finding.get("file"),
            finding.get("message"),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ...) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


_TABLES = (
    """CREATE TABLE IF NOT EXISTS skanse_history_meta (
        name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS skanse_runs (
        id {serial} PRIMARY KEY,
        cluster TEXT NOT NULL,
        generated TEXT NOT NULL,
        title TEXT NOT NULL,
        tool_version TEXT NOT NULL,
        findings INTEGER NOT NULL,
        summary TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS skanse_runs_cluster ON skanse_runs (cluster, generated)""",
    """CREATE TABLE IF NOT EXISTS skanse_run_findings (
        run_id {bigint} NOT NULL REFERENCES skanse_runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        check_id TEXT NOT NULL,
        severity TEXT NOT NULL,
        layer TEXT NOT NULL,
        file TEXT,
        line INTEGER,
        message TEXT NOT NULL,
        resource TEXT NOT NULL,
        PRIMARY KEY (run_id, key))""",
)


class History:
    """One open store; SQL written once, with `?` placeholders (psycopg's are rewritten)."""

    def __init__(self, connection: _Connection, location: str, *, postgres: bool) -> None:
        self._db = connection
        self.location = location
        self.postgres = postgres

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        return self._db.execute(self._sql(sql), params)

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """A driver's error (sqlite3.Error, psycopg.Error) or a damaged row as a HistoryError
        that names the store: a bad store is the user's to mend, not a bug in skanse."""
        try:
            yield
        except HistoryError:
            raise
        except Exception as exc:
            message = _scrub(f"{type(exc).__name__}: {exc}", self.location)
            raise HistoryError(f"{redact(self.location)}: {message}") from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._store_errors():
            try:
                yield
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()

    def _schema_present(self) -> bool:
        """Whether the store's tables exist, asked without touching them (in PostgreSQL a
        failed statement would end the transaction)."""
        if self.postgres:
            found = self._execute("SELECT to_regclass('skanse_history_meta')").fetchone()
        else:
            found = self._execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                ("skanse_history_meta",),
            ).fetchone()
        return found is not None and found[0] is not None

    def _create(self) -> None:
        serial, bigint = ("BIGSERIAL", "BIGINT") if self.postgres else ("INTEGER", "INTEGER")
        select = "SELECT value FROM skanse_history_meta WHERE name = ?"
        with self._transaction():
            # an existing store is only read: a read-only role, transaction or mount opens it
            # (creating tables, even IF NOT EXISTS, and PostgreSQL's lock need more)
            row = None
            if self._schema_present():
                row = self._execute(select, ("schema_version",)).fetchone()
            if row is None:
                if self.postgres:  # concurrent CREATE TABLE IF NOT EXISTS collide in pg_type
                    self._execute("SELECT pg_advisory_xact_lock(?)", (_PG_CREATE_LOCK,))
                for statement in _TABLES:
                    self._execute(statement.format(serial=serial, bigint=bigint))
                row = self._execute(select, ("schema_version",)).fetchone()
            if row is None:  # a new store (only then a write)
                self._execute(  # a writer that got here first has written it: keep theirs
                    "INSERT INTO skanse_history_meta (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    ("schema_version", str(SCHEMA_VERSION)),
                )
                row = self._execute(select, ("schema_version",)).fetchone()
            if int(row[0]) > SCHEMA_VERSION:
                raise HistoryError(
                    f"{redact(self.location)}: history schema {row[0]} was written by a newer "
                    f"skanse (this one reads {SCHEMA_VERSION})"
                )

    def record(self, posture: Mapping[str, Any], cluster: str = DEFAULT_CLUSTER) -> Run:
        """Append one posture document (its unsuppressed findings and counts) as a run."""
        findings = [f for f in posture.get("findings") or [] if not f.get("suppressed")]
        summary = posture.get("summary") or {}
        by_severity = {s: int((summary.get("by_severity") or {}).get(s, 0)) for s in _SEVERITIES}
        layers = {
            name: {"status": layer.get("status"), "by_severity": layer.get("by_severity")}
            for name, layer in (posture.get("layers") or {}).items()
        }
        generated = str(posture.get("generated") or dt.datetime.now(dt.UTC).isoformat())
        document = json.dumps({"by_severity": by_severity, "layers": layers}, sort_keys=True)
        title = str(posture.get("title") or "")
        version = str((posture.get("tool") or {}).get("version") or "")
        total = int(summary.get("findings") or 0)
        # skanse's own work before the transaction: an error in it is not the store's
        found = [
            (
                finding_key(f),
                str(f.get("check_id")),
                str(f.get("severity")),
                str(f.get("layer")),
                f.get("file"),
                f.get("line") if isinstance(f.get("line"), int) else None,
                str(f.get("message") or ""),
                json.dumps(f.get("resource"), sort_keys=True),
            )
            for f in findings
        ]
        with self._transaction():
            row = self._execute(
                "INSERT INTO skanse_runs (cluster, generated, title, tool_version, findings, "
                "summary) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (cluster, generated, title, version, total, document),
            ).fetchone()
            run_id = int(row[0])
            rows = [(run_id, *item) for item in found]
            sql = self._sql(
                "INSERT INTO skanse_run_findings (run_id, key, check_id, severity, layer, file, "
                "line, message, resource) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, key) DO NOTHING"
            )
            if self.postgres:
                with self._db.cursor() as cursor:  # type: ignore[attr-defined]
                    cursor.executemany(sql, rows)
            else:
                self._db.executemany(sql, rows)  # type: ignore[attr-defined]
        return Run(run_id, cluster, generated, title, version, total, by_severity)

    def runs(self, cluster: str | None = None, last: int | None = None) -> list[Run]:
        """Runs, oldest first: all of them, or the `last` of one cluster (or every cluster)."""
        where = "WHERE cluster = ?" if cluster is not None else ""
        params: list[object] = [cluster] if cluster is not None else []
        limit = ""
        if last is not None:
            limit = " LIMIT ?"
            params.append(last)
        with self._store_errors():
            rows = self._execute(  # where and limit are constants; the values are parameters
                "SELECT id, cluster, generated, title, tool_version, findings, summary "  # noqa: S608
                f"FROM skanse_runs {where} ORDER BY generated DESC, id DESC{limit}",
                params,
            ).fetchall()
            return [_run(row) for row in reversed(rows)]

    def findings(self, run_id: int) -> dict[str, dict[str, Any]]:
        with self._store_errors():
            rows = self._execute(
                "SELECT key, check_id, severity, layer, file, line, message, resource "
                "FROM skanse_run_findings WHERE run_id = ? ORDER BY key",
                (run_id,),
            ).fetchall()
            return {
                str(r[0]): {
                    "check_id": r[1],
                    "severity": r[2],
                    "layer": r[3],
                    "file": r[4],
                    "line": r[5],
                    "message": r[6],
                    "resource": json.loads(r[7]),
                }
                for r in rows
            }

    def prune(
        self,
        *,
        keep: int | None = None,
        before: dt.datetime | None = None,
        cluster: str | None = None,
    ) -> int:
        """Delete runs older than `before` and/or all but the newest `keep` per cluster;
        how many were deleted."""
        doomed: set[int] = set()
        with self._store_errors():
            clusters = (
                [cluster]
                if cluster is not None
                else [str(r[0]) for r in self._execute("SELECT DISTINCT cluster FROM skanse_runs")]
            )
            for name in clusters:
                runs = self.runs(name)
                if keep is not None:
                    doomed.update(r.id for r in runs[: max(len(runs) - keep, 0)])
                if before is not None:
                    cutoff = before.astimezone(dt.UTC)
                    doomed.update(r.id for r in runs if _parse_time(r.generated) < cutoff)
        with self._transaction():
            for run_id in sorted(doomed):
                # explicit, so SQLite without foreign keys enforcement cleans up too
                self._execute("DELETE FROM skanse_run_findings WHERE run_id = ?", (run_id,))
                self._execute("DELETE FROM skanse_runs WHERE id = ?", (run_id,))
        return len(doomed)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _run(row: Sequence[Any]) -> Run:
    summary = json.loads(row[6])
    by_severity = {s: int((summary.get("by_severity") or {}).get(s, 0)) for s in _SEVERITIES}
    return Run(
        int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), int(row[5]), by_severity
    )


def _parse_time(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def open_history(location: str | None = None, *, create: bool = True) -> History:
    """Open the store at `location` (a PostgreSQL URL or an SQLite file), creating its
    tables; `create=False` refuses an SQLite file that does not exist yet (listing or
    pruning a history should not leave an empty one behind)."""
    location = location or default_location()
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        history = History(_connect_postgres(location), location, postgres=True)
    else:
        path = location.removeprefix("sqlite://") if scheme == "sqlite" else location
        if not create and not Path(path).is_file():
            raise HistoryError(
                f"{path}: no history store here (skanse report --history creates it)"
            )
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=30)
            connection.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"{path}: cannot open the history store: {exc}") from None
        history = History(connection, path, postgres=False)
    try:
        history._create()  # a driver's error comes out as a HistoryError that says where
    except HistoryError:
        history.close()
        raise
    return history


def _connect_postgres(url: str) -> _Connection:
    try:
        import psycopg
    except ImportError:
        raise HistoryError(
            "a PostgreSQL history store needs psycopg 3: pip install 'skanse[postgresql]'"
        ) from None
    try:
        return psycopg.connect(url, connect_timeout=15)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HistoryError(f"{redact(url)}: cannot connect: {_scrub(message, url)}") from None


def _listed(key: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {"key": key, **item}


def trend(history: History, cluster: str, last: int) -> dict[str, Any]:
    """The last `last` runs of a cluster (oldest first) and, between the newest two, the
    findings that are new, fixed and still open."""
    runs = history.runs(cluster, last)
    out: dict[str, Any] = {
        "store": redact(history.location),
        "cluster": cluster,
        "runs": [
            {
                "id": r.id,
                "generated": r.generated,
                "findings": r.findings,
                "by_severity": dict(r.by_severity),
            }
            for r in runs
        ],
        "compared_with": None,
        "new": [],
        "fixed": [],
        "still_open": [],
    }
    if not runs:
        return out
    now = history.findings(runs[-1].id)
    if len(runs) < 2:
        out["new"] = [_listed(k, v) for k, v in sorted(now.items())]
        return out
    before = history.findings(runs[-2].id)
    out["compared_with"] = {"id": runs[-2].id, "generated": runs[-2].generated}
    order = {s: i for i, s in enumerate(_SEVERITIES)}

    def ordered(items: Mapping[str, dict[str, Any]], keys: set[str]) -> list[dict[str, Any]]:
        return sorted(
            (_listed(k, items[k]) for k in keys),
            key=lambda f: (order.get(str(f["severity"]), 9), str(f["file"]), f["line"] or 0),
        )

    out["new"] = ordered(now, now.keys() - before.keys())
    out["fixed"] = ordered(before, before.keys() - now.keys())
    out["still_open"] = ordered(now, now.keys() & before.keys())
    return out
