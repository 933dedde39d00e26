"""The history store, against SQLite and a real PostgreSQL (Debian's server, started here):
runs recorded by `skanse report --history`, the trend of new, fixed and still-open findings,
`skanse history list` and `prune`."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from skanse.config import LoadedConfig
from skanse.report.history import HistoryError, open_history, redact, trend
from skanse.report.posture.build import build_posture
from skanse.report.posture.collect import run_scan
from tests._nobody import NobodyPython, _setpriv
from tests.conftest import ROOT

PG_BIN = Path("/usr/lib/postgresql/15/bin")

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: main
          image: "reg.example/shop/{name}:1@sha256:{digest}"
          securityContext: {{privileged: {privileged}}}
"""


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL 15 server of Debian's packages on a unix socket in a temporary directory,
    stopped (and its files removed) at the end."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"{PG_BIN}/initdb is absent (Debian's postgresql-15 is not installed)")
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
    base = Path(tempfile.mkdtemp(prefix="skanse-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (base, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    started = False
    try:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                 "--no-sync", "-E", "UTF8"]
            ),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = f"-k {sockets} -c listen_addresses='' -p 5432 -F"
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
                 "-l", str(base / "server.log"), "-w", "-t", "60", "start"]
            ),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        started = True
        yield f"postgresql://postgres@/postgres?host={sockets}&port=5432"
    except subprocess.CalledProcessError as exc:
        log = base / "server.log"
        detail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        pytest.skip(f"PostgreSQL did not start: {exc.stderr!r} {detail}")
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                check=False, capture_output=True, timeout=120,
            )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "history.sqlite")
        return
    url: str = request.getfixturevalue("postgres_url")
    with open_history(url) as history:  # each test starts from an empty store
        history._execute("DELETE FROM skanse_run_findings")
        history._execute("DELETE FROM skanse_runs")
        history._db.commit()
    yield url


def _write(root: Path, apps: dict[str, bool]) -> None:
    for old in root.glob("*.yaml"):
        old.unlink()
    for name, privileged in apps.items():
        text = APP.format(name=name, digest="a" * 64, privileged="true" if privileged else "false")
        (root / f"{name}.yaml").write_text(text)


def _posture(root: Path) -> dict[str, Any]:
    return build_posture([run_scan([str(root)], LoadedConfig.empty())], tool_version="test")


def _keys(items: list[dict[str, Any]], check: str) -> list[str]:
    return sorted(str(Path(f["file"]).name) for f in items if f["check_id"] == check)


def test_runs_show_new_fixed_and_still_open_findings(store: str, tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    with open_history(store) as history:
        _write(manifests, {"web": True, "api": False})
        history.record(_posture(manifests), "prod")
        # web is fixed, api stays as it was, a privileged worker arrives
        _write(manifests, {"web": False, "api": False, "worker": True})
        history.record(_posture(manifests), "prod")
        seen = trend(history, "prod", 10)
    assert len(seen["runs"]) == 2 and seen["compared_with"]["id"] == seen["runs"][0]["id"]
    assert _keys(seen["new"], "SKN-K8S-002") == ["worker.yaml"]
    assert _keys(seen["fixed"], "SKN-K8S-002") == ["web.yaml"]
    assert "api.yaml" in {Path(f["file"]).name for f in seen["still_open"]}
    fixed = next(f for f in seen["fixed"] if f["check_id"] == "SKN-K8S-002")
    assert fixed["line"] and fixed["severity"] == "CRITICAL" and fixed["message"]
    assert seen["runs"][1]["by_severity"]["CRITICAL"] == 1


def test_clusters_in_one_store_are_kept_apart(store: str, tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    _write(manifests, {"web": True})
    posture = _posture(manifests)
    with open_history(store) as history:
        for cluster in ("oslo", "bergen", "oslo"):
            history.record(posture, cluster)
        assert [r.cluster for r in history.runs()] == ["oslo", "bergen", "oslo"]
        oslo = trend(history, "oslo", 10)
        bergen = trend(history, "bergen", 10)
    assert len(oslo["runs"]) == 2 and oslo["new"] == [] and oslo["fixed"] == []
    assert len(bergen["runs"]) == 1 and bergen["compared_with"] is None
    assert bergen["new"]  # the first run of a cluster: everything is new


def test_prune_by_count_and_by_date(store: str, tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    _write(manifests, {"web": True})
    posture = _posture(manifests)
    with open_history(store) as history:
        for day in range(1, 6):
            history.record({**posture, "generated": f"2026-0{day}-01T00:00:00+00:00"}, "prod")
        assert history.prune(before=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)) == 2
        assert history.prune(keep=2) == 1
        left = history.runs("prod")
        assert [r.generated[:10] for r in left] == ["2026-04-01", "2026-05-01"]
        assert history.findings(left[0].id)  # the kept runs keep their findings


def test_report_history_cli_records_lists_and_prunes(cli: Any, store: str, tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    args = ["report", "--manifests", str(manifests), "--no-config", "-q"]
    history = ["--history", "5", "--history-store", store, "--cluster", "prod"]
    _write(manifests, {"web": True})
    first = cli(*args, *history, "-f", "json")
    assert first.code == 0, first.stderr
    _write(manifests, {"web": False, "worker": True})
    page = tmp_path / "posture.html"
    second = cli(*args, *history, "-o", str(page))
    assert second.code == 0, second.stderr
    html = page.read_text()
    assert "<h2>Over time</h2>" in html and 'aria-label="findings per run"' in html
    assert "Fixed since the previous run: " in html and "web.yaml" in html
    doc = json.loads(cli(*args, *history, "-f", "json").stdout)
    schema = json.loads((ROOT / "docs/schemas/posture-report-v1.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert len(doc["history"]["runs"]) == 3
    assert doc["history"]["new"] == [] and doc["history"]["fixed"] == []
    # the recorded runs are the evidence of "regularly testing" (GDPR Art. 32(1)(d))
    article = next(
        c for c in doc["controls"] if c["framework"] == "gdpr" and c["control"] == "32(1)(d)"
    )
    history_evidence = next(e for e in article["evidence"] if e["check_id"] == "report history")
    assert history_evidence["status"] == "met" and "3 recorded run(s)" in history_evidence["note"]
    # and the NSA/CISA sections carry the ISO/IEC 27001 and NSM controls
    frameworks = {c["framework"] for c in doc["controls"]}
    assert {"iso-27001", "nsm"} <= frameworks

    listed = cli("history", "list", "--store", store, "--json")
    assert listed.code == 0 and len(json.loads(listed.stdout)) == 3
    assert "prod" in cli("history", "list", "--store", store).stdout
    pruned = cli("history", "prune", "--store", store, "--keep", "1")
    assert pruned.code == 0 and "deleted 2 run(s)" in pruned.stderr
    assert len(json.loads(cli("history", "list", "--store", store, "--json").stdout)) == 1
    assert cli("history", "prune", "--store", store).code == 2  # says what to prune by


def test_listing_a_history_that_does_not_exist_creates_nothing(cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite"
    result = cli("history", "list", "--store", str(missing))
    assert result.code == 2 and "no history store here" in result.stderr
    assert not missing.exists()


def test_an_unreachable_postgresql_is_a_clear_error_without_the_password() -> None:
    url = "postgresql://skanse:hunter2@127.0.0.1:1/skanse?connect_timeout=2"
    with pytest.raises(HistoryError) as caught:
        open_history(url)
    assert "hunter2" not in caught.value.diagnostics() and "***" in caught.value.diagnostics()
    assert redact(url).startswith("postgresql://skanse:***@127.0.0.1:1/")


def test_a_password_given_as_a_url_parameter_is_never_shown() -> None:
    # libpq takes the password from the query string as readily as from the user info
    url = "postgresql://skanse@127.0.0.1:1/skanse?password=hunter2&connect_timeout=2"
    with pytest.raises(HistoryError) as caught:
        open_history(url)
    assert "hunter2" not in caught.value.diagnostics()
    assert "hunter2" not in redact(url) and "password=***" in redact(url)
    assert "connect_timeout=2" in redact(url)


@pytest.mark.parametrize(
    "url",
    [
        # libpq percent-decodes parameter names as it does values
        "postgresql://skanse@127.0.0.1:1/skanse?%70assword=hunter2&connect_timeout=2",
        "postgresql://skanse@127.0.0.1:1/skanse?sslpassword=hunter2&connect_timeout=2",
        # a bad escape libpq quotes back in its error message
        "postgresql://skanse:hun%zzter2@127.0.0.1:1/skanse?connect_timeout=2",
        "postgresql://skanse@127.0.0.1:1/skanse?password=hun%zzter2&connect_timeout=2",
    ],
)
def test_no_spelling_of_a_password_reaches_the_message_or_the_report(url: str) -> None:
    with pytest.raises(HistoryError) as caught:
        open_history(url)
    for shown in (caught.value.diagnostics(), redact(url)):
        assert "hunter2" not in shown and "hun%zzter2" not in shown and "zzter2" not in shown


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to uid 65534 needs root")
def test_a_store_its_reader_cannot_write_opens_for_reading(nobody: NobodyPython) -> None:
    """`history list` on a store the user may only read (a shared copy, a read-only mount):
    opening it writes nothing when it is already made."""
    base = Path(tempfile.mkdtemp(prefix="skanse-history-ro-"))
    try:
        base.chmod(0o755)
        store = base / "history.sqlite"
        with open_history(str(store)) as history:
            history.record({"generated": "2026-01-01T00:00:00+00:00", "summary": {}})
        store.chmod(0o644)  # root's: uid 65534 reads it and cannot write it or its directory
        code = (
            "import sys; from skanse.report.history import open_history; "
            "h = open_history(sys.argv[1]); print(len(h.runs()))"
        )
        run = subprocess.run(
            [*_setpriv(), *nobody.argv, "-c", code, str(store)],
            env=nobody.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd="/",
        )
        assert (run.returncode, run.stdout.strip()) == (0, "1"), run.stderr
    finally:
        shutil.rmtree(base)


def test_a_finding_skanse_cannot_encode_is_not_blamed_on_the_store(tmp_path: Path) -> None:
    with open_history(str(tmp_path / "history.sqlite")) as history:
        posture = {"findings": [{"check_id": "X", "resource": {"name": {1, 2}}}]}
        with pytest.raises(TypeError):
            history.record(posture)
        assert history.runs() == []  # nothing half-written


def test_a_store_damaged_after_it_was_made_is_a_clear_error(cli: Any, tmp_path: Path) -> None:
    manifests, store = tmp_path / "m", tmp_path / "history.sqlite"
    manifests.mkdir()
    _write(manifests, {"web": True})
    with open_history(str(store)) as history:
        history.record(_posture(manifests), "prod")
        (page,) = history._execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'skanse_runs'"
        ).fetchone()
    with store.open("r+b") as raw:  # the runs table's page, overwritten (a bad disk, a bad copy)
        raw.seek((page - 1) * 4096)
        raw.write(b"\xff" * 4096)
    listed = cli("history", "list", "--store", str(store))
    assert listed.code == 2 and "internal error" not in listed.stderr
    assert str(store) in listed.stderr
    recorded = cli(
        "report", "--manifests", str(manifests), "--no-config", "-q", "-f", "json",
        "--history", "3", "--history-store", str(store), "--cluster", "prod",
    )  # fmt: skip
    assert recorded.code == 2 and "internal error" not in recorded.stderr
    assert str(store) in recorded.stderr


def _open_and_close(url: str) -> str:
    try:
        open_history(url).close()
    except HistoryError as exc:
        return exc.diagnostics()
    return ""


def test_many_first_writers_make_one_postgresql_store_together(postgres_url: str) -> None:
    """A dozen report jobs starting at once on a new database: each opens it (creating the
    tables with IF NOT EXISTS collides inside PostgreSQL's catalogue without a lock)."""
    import multiprocessing

    import psycopg

    for trial in range(3):
        name = f"fresh_{os.getpid()}_{trial}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        url = postgres_url.replace("@/postgres?", f"@/{name}?")
        with multiprocessing.get_context("fork").Pool(12) as pool:
            failures = [m for m in pool.map(_open_and_close, [url] * 12) if m]
        assert failures == []
        with open_history(url) as history:
            assert history.runs() == []


def test_a_postgresql_store_opens_in_a_read_only_transaction(postgres_url: str) -> None:
    """A reader on a read-only replica or role: once the store is made, opening it creates
    nothing and takes no lock (both are refused in a read-only transaction)."""
    import psycopg

    name = f"readonly_{os.getpid()}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres_url.replace("@/postgres?", f"@/{name}?")
    with open_history(url) as history:
        history.record({"generated": "2026-01-01T00:00:00+00:00", "summary": {}})
    read_only = url + "&options=-c%20default_transaction_read_only%3Don"
    with open_history(read_only) as history:
        assert len(history.runs()) == 1
        with pytest.raises(HistoryError, match="read-only transaction"):
            history.record({"generated": "2026-01-02T00:00:00+00:00", "summary": {}})


def test_a_shared_stores_text_cannot_repaint_the_terminal_or_forge_rows(
    cli: Any, tmp_path: Path
) -> None:
    store = str(tmp_path / "history.sqlite")
    forged = "prod\x1b[2J\n99999  admin            2026-01-01T00:00:00        0  -"
    with open_history(store) as history:
        history.record({"generated": "2026-01-01T00:00:00+00:00\x1b[31m"}, forged)
    listed = cli("history", "list", "--store", store)
    assert listed.code == 0, listed.stderr
    assert "\x1b" not in listed.stdout
    assert len(listed.stdout.splitlines()) == 2  # the heading and the one run
    assert "prod\\x1b[2J\\n" in listed.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["prune", "--before", "0001-01-01T00:00+01:00"], "--before '0001-01-01T00:00+01:00'"),
        (["prune", "--before", "9999-12-31T23:59-01:00"], "out of range in UTC"),
        (["list", "--last", "99999999999999999999999"], "--last must be between 1 and"),
        (["list", "--cluster", "prod", "--last", "99999999999999999999999"], "--last must be"),
    ],
)
def test_out_of_range_numbers_and_dates_are_usage_errors_not_store_errors(
    cli: Any, tmp_path: Path, argv: list[str], expected: str
) -> None:
    store = str(tmp_path / "history.sqlite")
    with open_history(store) as history:
        history.record({"generated": "2026-01-01T00:00:00+00:00"}, "prod")
    result = cli("history", *argv, "--store", store)
    assert result.code == 2 and expected in result.stderr
    assert store not in result.stderr  # the store is not to blame


def test_report_history_with_too_many_runs_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    _write(manifests, {"web": True})
    store = str(tmp_path / "history.sqlite")
    result = cli(
        "report", "--manifests", str(manifests), "--no-config", "-q", "-f", "json",
        "--history", "99999999999999999999999", "--history-store", store,
    )  # fmt: skip
    assert result.code == 2 and "--history N needs at least 2 runs" in result.stderr
