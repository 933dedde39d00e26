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
