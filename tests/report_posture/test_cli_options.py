"""`skanse report` hands the registry options to the image layer as `skanse vuln` and
`skanse verify` take them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from skanse.config import LoadedConfig
from skanse.report.posture import collect
from skanse.report.posture.documents import ResultDocument


def test_registry_options_reach_the_image_layer(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[collect.ImageOptions] = []

    def run_images(
        references: Sequence[str], options: collect.ImageOptions, config: LoadedConfig
    ) -> list[ResultDocument]:
        assert list(references) == ["reg.example/app:1"]
        seen.append(options)
        return [ResultDocument("skanse.runtime-alerts", "stub", {"alerts": []})]

    monkeypatch.setattr(collect, "run_images", run_images)
    result = cli(
        "report", "--no-config", "-f", "json", "-q",
        "--image", "reg.example/app:1", "--db", "v.db", "--key", "k.pub",
        "--plain-http", "reg.example", "--plain-http", "mirror.example:5000",
        "--ca-certs", "ca.pem", "--docker-config", "auth.json", "--cache-dir", "blobs",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert seen == [
        collect.ImageOptions(
            database=Path("v.db"),
            keys=("k.pub",),
            plain_http=frozenset({"reg.example", "mirror.example:5000"}),
            ca_certs="ca.pem",
            docker_config="auth.json",
            cache_dir="blobs",
        )
    ]


def _database_used(cli, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Path | None:
    seen: list[Path | None] = []

    def run_images(
        references: Sequence[str], options: collect.ImageOptions, config: LoadedConfig
    ) -> list[ResultDocument]:
        seen.append(options.database)
        return [ResultDocument("skanse.runtime-alerts", "stub", {"alerts": []})]

    monkeypatch.setattr(collect, "run_images", run_images)
    result = cli("report", "--no-config", "-f", "json", "-q", "--image", "r.example/a:1", *extra)
    assert result.code == 0, result.stderr
    return seen[0]


def test_the_database_is_db_then_skanse_db_then_the_cache_else_none(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SKANSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("SKANSE_DB", raising=False)
    assert _database_used(cli, monkeypatch) is None  # nothing in the cache: no matching
    (cache / "vuln.db").write_bytes(b"")
    assert _database_used(cli, monkeypatch) == cache / "vuln.db"
    monkeypatch.setenv("SKANSE_DB", str(tmp_path / "elsewhere.db"))
    assert _database_used(cli, monkeypatch) == tmp_path / "elsewhere.db"  # named: used as given
    assert _database_used(cli, monkeypatch, "--db", "mine.db") == Path("mine.db")
