"""docs/policies.md: its example files, written out, do what the page prints."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

PAGE = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
FILES = re.findall(r"<!-- file: (\S+) -->\n```yaml\n(.*?)```", PAGE, flags=re.S)


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert len(FILES) == 3
    for name, text in FILES:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_and_test_print_what_the_page_shows(cli: Any, example: Path) -> None:
    validated = cli("policy", "validate", "no-loadbalancer")
    assert (validated.code, validated.stdout) == (0, "1 policy, 0 errors\n")
    tested = cli("policy", "test", "no-loadbalancer")
    assert (tested.code, tested.stdout) == (
        0,
        "no-loadbalancer/tests/skanse-test.yaml (no-loadbalancer)\n3 passed, 0 failed\n",
    )


def test_scan_reports_the_finding_the_page_describes(cli: Any, example: Path) -> None:
    result = cli(
        "scan", "--no-config", "--policy", "no-loadbalancer", "-f", "json",
        "no-loadbalancer/tests/services.yaml",
    )  # fmt: skip
    found = [f for f in json.loads(result.stdout)["findings"] if f["check_id"].startswith("VAP:")]
    assert [(f["check_id"], f["resource"]["name"], f["severity"]) for f in found] == [
        ("VAP:no-loadbalancer/0", "api", "HIGH")
    ]
    assert found[0]["message"] == (
        "Service api may not be a LoadBalancer here "
        "[Forbidden; binding no-loadbalancer-internal: Deny]"
    )
