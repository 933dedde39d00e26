"""The advisory database: one SQLite file, built offline, read without a network.

    result = build_database(Path("vuln.db"), [Source(Path("osv/all.zip"))])
    with Database.open(Path("vuln.db")) as db:
        for candidate in db.candidates("pypi", "requests"): ...

A build writes a temporary file next to the destination and renames it into place only
when everything is written, indexed and synced: a build that fails or is interrupted leaves
the previous database as it was. The file records its schema version; a database written by
another schema is refused with a message that says to rebuild. Advisories keep their
aliases, withdrawn date, rating (CVSS scored at build time) and references; affected
entries are keyed by `(ecosystem, name)` with their ranges as JSON.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from skanse import __version__
from skanse.errors import DatabaseError, DatabaseSchemaError
from skanse.model import Severity
from skanse.vuln.importers import CveRating, EpssScore, Ignored, KevEntry, Skipped, read_source
from skanse.vuln.model import Advisory, Affected, Event, FixState, Rating, Rejected
from skanse.vuln.versions import Scheme

__all__ = [
    "SCHEMA_VERSION",
    "BuildResult",
    "Candidate",
    "Database",
    "DatabaseInfo",
    "Source",
    "SourceSummary",
    "build_database",
    "default_database_path",
]

SCHEMA_VERSION = 2  # 2: cve_ratings, epss and kev tables
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    location TEXT NOT NULL,
    kind TEXT NOT NULL,
    advisories INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    ignored INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL
);
CREATE TABLE advisories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    source INTEGER NOT NULL REFERENCES sources(id),
    origin TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    published TEXT,
    modified TEXT,
    withdrawn TEXT,
    severity TEXT,
    score REAL,
    vector TEXT,
    method TEXT NOT NULL,
    aliases TEXT NOT NULL,
    refs TEXT NOT NULL
);
CREATE TABLE aliases (alias TEXT NOT NULL, advisory INTEGER NOT NULL);
CREATE TABLE affected (
    advisory INTEGER NOT NULL,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    scheme TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE cve_ratings (
    cve TEXT NOT NULL,
    source TEXT NOT NULL,
    severity TEXT,
    score REAL,
    vector TEXT,
    method TEXT NOT NULL,
    PRIMARY KEY (cve, source)
) WITHOUT ROWID;
CREATE TABLE epss (cve TEXT PRIMARY KEY, score REAL NOT NULL, percentile REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE kev (cve TEXT PRIMARY KEY, date_added TEXT NOT NULL, ransomware TEXT NOT NULL)
    WITHOUT ROWID;
"""
_INDEXES = """
CREATE INDEX affected_lookup ON affected(ecosystem, name);
CREATE INDEX aliases_lookup ON aliases(alias);
CREATE INDEX advisories_name ON advisories(name);
"""


_ENRICHMENT_KIND: dict[type, str] = {CveRating: "nvd", EpssScore: "epss", KevEntry: "kev"}


def default_database_path() -> Path:
    """`$SKANSE_DB`, else `vuln.db` in skanse's cache (`$SKANSE_CACHE_DIR`, ~/.cache/skanse)."""
    explicit = os.environ.get("SKANSE_DB")
    if explicit:
        return Path(explicit)
    from skanse.oci.cache import default_cache_dir

    return Path(default_cache_dir()) / "vuln.db"


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    kind: str | None = None  # None: recognise each file by its shape


@dataclass(slots=True)
class SourceSummary:
    """What one source gave: records imported, and what was rejected, skipped or ignored."""

    location: str
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    advisories: int = 0
    withdrawn: int = 0
    replaced: int = 0  # an OSV id seen before: the newer `modified` is kept
    enrichments: int = 0  # CVE ratings, EPSS scores, KEV entries (not advisories themselves)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BuildResult:
    path: Path
    sources: tuple[SourceSummary, ...]
    advisories: int
    affected: int
    seconds: float


def _encode_affected(entry: Affected) -> str:
    data: dict[str, Any] = {}
    if entry.ranges:
        data["r"] = [[[e.kind, e.version] for e in rng] for rng in entry.ranges]
    if entry.versions:
        data["v"] = list(entry.versions)
    if entry.constraints:
        data["c"] = list(entry.constraints)
    if entry.fix_state is not None:
        data["s"] = entry.fix_state.value
    if entry.note:
        data["n"] = entry.note
    if entry.severity is not None:
        data["sev"] = entry.severity.value
    if entry.module:
        data["m"] = entry.module
    if entry.fixed:
        data["f"] = entry.fixed
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _decode_affected(ecosystem: str, name: str, scheme: str, text: str) -> Affected:
    data = json.loads(text)
    return Affected(
        ecosystem=ecosystem,
        name=name,
        scheme=Scheme(scheme),
        ranges=tuple(tuple(Event(k, v) for k, v in rng) for rng in data.get("r", ())),
        versions=tuple(data.get("v", ())),
        constraints=tuple(data.get("c", ())),
        fix_state=FixState(data["s"]) if "s" in data else None,
        note=data.get("n", ""),
        severity=Severity(data["sev"]) if "sev" in data else None,
        module=data.get("m", ""),
        fixed=data.get("f", ""),
    )


class _Writer:
    """Inserts advisories into an open build connection, replacing older OSV duplicates."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.next_id = 1
        self.osv_ids: dict[str, tuple[int, str]] = {}  # OSV id -> (row, modified)
        self.advisories: list[tuple[Any, ...]] = []
        self.aliases: list[tuple[str, int]] = []
        self.affected: list[tuple[int, str, str, str, str]] = []
        self.total_affected = 0
        self.ratings: list[tuple[Any, ...]] = []
        self.epss: list[tuple[str, float, float]] = []
        self.kev: list[tuple[str, str, str]] = []
        self.replaced: list[int] = []  # rows of older OSV duplicates, deleted by `finish`

    def enrich(self, item: CveRating | EpssScore | KevEntry) -> None:
        """Severity data about a CVE; a later source's value for the same CVE wins."""
        if isinstance(item, CveRating):
            rating = item.rating
            severity = rating.severity.value if rating.severity else None
            self.ratings.append(
                (item.cve, item.source, severity, rating.score, rating.vector, rating.method)
            )
        elif isinstance(item, EpssScore):
            self.epss.append((item.cve, item.score, item.percentile))
        else:
            self.kev.append((item.cve, item.date_added, item.ransomware))
        if len(self.ratings) + len(self.epss) + len(self.kev) >= 20_000:
            self.flush()

    def add(self, advisory: Advisory, source_id: int, summary: SourceSummary) -> None:
        if advisory.source == "osv":
            seen = self.osv_ids.get(advisory.id)
            if seen is not None:
                summary.replaced += 1
                if (advisory.modified or "") <= seen[1]:
                    return
                self._delete(seen[0])
        row = self.next_id
        self.next_id += 1
        if advisory.source == "osv":
            self.osv_ids[advisory.id] = (row, advisory.modified or "")
        rating = advisory.rating
        self.advisories.append(
            (
                row,
                advisory.id,
                source_id,
                advisory.source,
                advisory.summary,
                advisory.details,
                advisory.published,
                advisory.modified,
                advisory.withdrawn,
                rating.severity.value if rating.severity else None,
                rating.score,
                rating.vector,
                rating.method,
                json.dumps(list(advisory.aliases)),
                json.dumps(list(advisory.references)),
            )
        )
        self.aliases.extend((alias, row) for alias in advisory.aliases)
        for entry in advisory.affected:
            self.affected.append(
                (row, entry.ecosystem, entry.name, entry.scheme.value, _encode_affected(entry))
            )
        self.total_affected += len(advisory.affected)
        if len(self.advisories) >= 5_000:
            self.flush()

    def _delete(self, row: int) -> None:
        self.replaced.append(row)

    def finish(self) -> None:
        """Write what is pending and delete the replaced rows, one pass over each table:
        the tables have no index while they are built, so deleting as duplicates came
        scanned them once per duplicate (16,000 newer copies: 23 s)."""
        self.flush()
        if not self.replaced:
            return
        self.conn.execute("CREATE TEMP TABLE replaced (row INTEGER PRIMARY KEY)")
        self.conn.executemany("INSERT INTO replaced VALUES (?)", ((r,) for r in self.replaced))
        for table, column in (
            ("advisories", "id"),
            ("aliases", "advisory"),
            ("affected", "advisory"),
        ):
            self.conn.execute(
                f"DELETE FROM {table} WHERE {column} IN (SELECT row FROM replaced)"  # noqa: S608
            )
        self.conn.execute("DROP TABLE replaced")
        self.replaced = []

    def flush(self) -> None:
        self.conn.executemany(
            "INSERT INTO advisories VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self.advisories
        )
        self.conn.executemany("INSERT INTO aliases VALUES (?,?)", self.aliases)
        self.conn.executemany("INSERT INTO affected VALUES (?,?,?,?,?)", self.affected)
        self.advisories, self.aliases, self.affected = [], [], []
        self.conn.executemany(
            "INSERT OR REPLACE INTO cve_ratings VALUES (?,?,?,?,?,?)", self.ratings
        )
        self.conn.executemany("INSERT OR REPLACE INTO epss VALUES (?,?,?)", self.epss)
        self.conn.executemany("INSERT OR REPLACE INTO kev VALUES (?,?,?)", self.kev)
        self.ratings, self.epss, self.kev = [], [], []


def _failed_sources(summaries: Sequence[SourceSummary]) -> list[SourceSummary]:
    """Sources that gave nothing usable (a typo, an empty directory, a file of another kind),
    and sources known to be incomplete (a rejection that says so: `Rejected.partial`)."""
    return [
        s
        for s in summaries
        if (s.advisories == 0 and s.enrichments == 0) or any(r.partial for r in s.rejected)
    ]


def _describe_failure(summary: SourceSummary) -> str:
    if partial := [r for r in summary.rejected if r.partial]:
        return f"{summary.location}: incomplete; rejected {partial[0].origin}: {partial[0].reason}"
    if summary.rejected:
        first = summary.rejected[0]
        more = f" (and {len(summary.rejected) - 1} more)" if len(summary.rejected) > 1 else ""
        return (
            f"{summary.location}: nothing imported; rejected {first.origin}: {first.reason}{more}"
        )
    if summary.ignored:
        count = len(summary.ignored)
        return f"{summary.location}: nothing imported; {count} files are not advisory data"
    return f"{summary.location}: nothing imported; no advisory files found"


def build_database(
    dest: Path,
    sources: Sequence[Source],
    *,
    on_source: Callable[[str], None] | None = None,
    allow_partial: bool = False,
) -> BuildResult:
    """Import `sources` into a new database at `dest`, replacing it only on success.

    A source that gives no record at all (a path typo, a directory of something else, a file
    rejected whole), or that is known to be incomplete (an archive over its cap, missing NVD
    pages, a KEV catalogue short of its count), fails the build and the previous database
    stays, unless `allow_partial`; a build that would hold no advisories at all always fails.
    """
    started = time.monotonic()
    if dest.is_dir():  # said before the build, not as its result fails to move into place
        raise DatabaseError("is a directory (name the database file)", path=str(dest))
    directory = dest.parent if str(dest.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"cannot create {directory}: {exc.strerror or exc}"
        raise DatabaseError(reason, path=str(dest)) from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".building", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    summaries: list[SourceSummary] = []
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")  # a temporary file: no journal needed
            conn.execute("PRAGMA synchronous=OFF")  # synced once, before the rename
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN")
            writer = _Writer(conn)
            for index, source in enumerate(sources, start=1):
                if on_source is not None:
                    on_source(str(source.path))
                summary = SourceSummary(str(source.path))
                for item in read_source(source.path, source.kind):
                    if isinstance(item, Advisory):
                        summary.advisories += 1
                        summary.kinds[item.source] += 1
                        if item.withdrawn:
                            summary.withdrawn += 1
                        writer.add(item, index, summary)
                    elif isinstance(item, Rejected):
                        summary.rejected.append(item)
                    elif isinstance(item, Skipped):
                        summary.skipped[str(item)] += 1
                    elif isinstance(item, Ignored):
                        summary.ignored.append(item.origin)
                    else:
                        summary.enrichments += 1
                        summary.kinds[_ENRICHMENT_KIND[type(item)]] += 1
                        writer.enrich(item)
                writer.flush()
                conn.execute(
                    "INSERT INTO sources VALUES (?,?,?,?,?,?,?,?)",
                    (
                        index,
                        summary.location,
                        ",".join(sorted(summary.kinds)) or "-",
                        summary.advisories,
                        len(summary.rejected),
                        sum(summary.skipped.values()),
                        len(summary.ignored),
                        summary.withdrawn,
                    ),
                )
                summaries.append(summary)
            writer.finish()
            failed = _failed_sources(summaries)
            total = sum(s.advisories for s in summaries)
            if (failed and not allow_partial) or total == 0:
                reasons = "; ".join(_describe_failure(s) for s in failed[:5])
                advice = (
                    "no advisories in any source"
                    if total == 0
                    else "--allow-partial builds from what the sources did give"
                )
                raise DatabaseError(
                    f"database not built, the previous one is kept: {reasons or 'no sources'} "
                    f"({advice})",
                    path=str(dest),
                )
            built = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("built", built),
                    ("skanse_version", __version__),
                ],
            )
            conn.execute("COMMIT")
            conn.executescript(_INDEXES)  # after the inserts: one sort instead of many
            (advisories,) = conn.execute("SELECT count(*) FROM advisories").fetchone()
            (affected,) = conn.execute("SELECT count(*) FROM affected").fetchone()
        finally:
            conn.close()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BuildResult(
        dest, tuple(summaries), int(advisories), int(affected), time.monotonic() - started
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """An affected entry for the looked-up package, with its advisory."""

    advisory: Advisory  # header only: `affected` is empty, see `entry`
    entry: Affected


@dataclass(frozen=True, slots=True)
class SourceInfo:
    location: str
    kind: str
    advisories: int
    rejected: int
    skipped: int
    ignored: int
    withdrawn: int


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    path: Path
    schema_version: int
    built: str
    skanse_version: str
    size: int
    advisories: int
    affected: int
    withdrawn: int
    sources: tuple[SourceInfo, ...]
    ecosystems: tuple[tuple[str, int], ...]  # (ecosystem, affected entries), most first


class Database:
    """A built database, opened read-only."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._advisories: dict[int, Advisory] = {}
        self._resolved: dict[str, list[str]] = {}
        self._coverage: frozenset[str] | None = None

    @classmethod
    def open(cls, path: Path) -> Database:
        """Open for reading; refuses a missing file, a non-SQLite file, or another schema."""
        where = str(path)
        try:
            with open(path, "rb") as handle:
                magic = handle.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            raise DatabaseError(
                "no vulnerability database here; build one with `skanse db build SOURCE...` "
                "or bring one with `skanse db import FILE`",
                path=where,
            ) from None
        except OSError as exc:
            raise DatabaseError(f"cannot read: {exc.strerror or exc}", path=where) from None
        if magic != _SQLITE_MAGIC:
            raise DatabaseError("not a skanse vulnerability database (not SQLite)", path=where)
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(
                f"not a skanse vulnerability database ({exc}); rebuild it with `skanse db build`",
                path=where,
            ) from None
        version = rows.get("schema_version", "?")
        if version != str(SCHEMA_VERSION):
            conn.close()
            raise DatabaseSchemaError(
                f"built with database schema {version} (by skanse "
                f"{rows.get('skanse_version', '?')}); this skanse reads schema {SCHEMA_VERSION}. "
                "Rebuild it with `skanse db build` (or import one exported by this version)",
                path=where,
            )
        conn.execute("PRAGMA query_only=ON")
        return cls(path, conn)

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def info(self) -> DatabaseInfo:
        meta = self.meta()
        sources = tuple(
            SourceInfo(*row)
            for row in self.conn.execute(
                "SELECT location, kind, advisories, rejected, skipped, ignored, withdrawn "
                "FROM sources ORDER BY id"
            )
        )
        (advisories,) = self.conn.execute("SELECT count(*) FROM advisories").fetchone()
        (withdrawn,) = self.conn.execute(
            "SELECT count(*) FROM advisories WHERE withdrawn IS NOT NULL"
        ).fetchone()
        ecosystems = tuple(
            (str(e), int(n))
            for e, n in self.conn.execute(
                "SELECT ecosystem, count(*) FROM affected GROUP BY ecosystem ORDER BY 2 DESC, 1"
            )
        )
        return DatabaseInfo(
            path=self.path,
            schema_version=int(meta["schema_version"]),
            built=meta.get("built", "?"),
            skanse_version=meta.get("skanse_version", "?"),
            size=self.path.stat().st_size,
            advisories=int(advisories),
            affected=sum(n for _, n in ecosystems),
            withdrawn=int(withdrawn),
            sources=sources,
            ecosystems=ecosystems,
        )

    def cve_ratings(self, cve: str) -> list[tuple[str, Rating]]:
        """(source, rating) of a CVE by scoring authorities (NVD), from `cve_ratings`."""
        rows = self.conn.execute(
            "SELECT source, severity, score, vector, method FROM cve_ratings WHERE cve = ?",
            (cve,),
        ).fetchall()
        return [
            (str(source), Rating(Severity(severity) if severity else None, score, vector, method))
            for source, severity, score, vector, method in rows
        ]

    def epss(self, cve: str) -> tuple[float, float] | None:
        row = self.conn.execute(
            "SELECT score, percentile FROM epss WHERE cve = ?", (cve,)
        ).fetchone()
        return (float(row[0]), float(row[1])) if row else None

    def in_kev(self, cve: str) -> bool:
        return self.conn.execute("SELECT 1 FROM kev WHERE cve = ?", (cve,)).fetchone() is not None

    def coverage(self) -> frozenset[str]:
        """Every ecosystem the database has advisory data for (`debian:12`, `pypi`)."""
        if self._coverage is None:
            self._coverage = frozenset(
                str(e) for (e,) in self.conn.execute("SELECT DISTINCT ecosystem FROM affected")
            )
        return self._coverage

    def candidates(self, ecosystem: str, name: str) -> Iterator[Candidate]:
        """Every affected entry for `name` in `ecosystem` (withdrawn advisories included)."""
        rows = self.conn.execute(
            "SELECT advisory, scheme, data FROM affected WHERE ecosystem = ? AND name = ?",
            (ecosystem, name),
        ).fetchall()
        for advisory_row, scheme, data in rows:
            yield Candidate(
                self._advisory(int(advisory_row)), _decode_affected(ecosystem, name, scheme, data)
            )

    def _advisory(self, row: int) -> Advisory:
        cached = self._advisories.get(row)
        if cached is not None:
            return cached
        record = self.conn.execute(
            "SELECT name, origin, summary, published, modified, withdrawn, severity, score, "
            "vector, method, aliases, refs FROM advisories WHERE id = ?",
            (row,),
        ).fetchone()
        (name, origin, summary, published, modified, withdrawn, severity, score, vector) = record[
            :9
        ]
        advisory = Advisory(
            id=name,
            source=origin,
            aliases=tuple(json.loads(record[10])),
            summary=summary,
            published=published,
            modified=modified,
            withdrawn=withdrawn,
            rating=Rating(
                Severity(severity) if severity else None,
                float(score) if score is not None else None,
                vector,
                record[9],
            ),
            references=tuple(json.loads(record[11])),
        )
        self._advisories[row] = advisory
        return advisory

    def details(self, advisory_id: str) -> str:
        row = self.conn.execute(
            "SELECT details FROM advisories WHERE name = ? AND details != '' LIMIT 1",
            (advisory_id,),
        ).fetchone()
        return str(row[0]) if row else ""

    def resolve(self, identifier: str) -> list[str]:
        """Advisory ids that are `identifier` or list it as an alias (CVE -> GHSA, PYSEC)."""
        cached = self._resolved.get(identifier)
        if cached is not None:
            return cached
        found = {
            str(r[0])
            for r in self.conn.execute(
                "SELECT a.name FROM aliases x JOIN advisories a ON a.id = x.advisory "
                "WHERE x.alias = ?",
                (identifier,),
            )
        }
        found.add(identifier)
        self._resolved[identifier] = sorted(found)
        return self._resolved[identifier]
