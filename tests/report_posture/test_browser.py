"""The HTML report in a real browser: Debian's headless Chromium loads it without a console
message (no script error, no refused fetch, no CSP violation) and takes a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from skanse.config import LoadedConfig
from skanse.report.posture.build import build_posture
from skanse.report.posture.collect import run_netpol, run_scan
from skanse.report.posture.html import render_html
from tests.conftest import ROOT

CONSOLE = re.compile(r":CONSOLE[:(]")


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra,
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _console(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if CONSOLE.search(line)]


def test_a_broken_page_does_show_console_errors(tmp_path: Path) -> None:
    """The detector itself: a page with a script error is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>missingFunction();</script></body></html>")
    result = _chromium(page, tmp_path / "profile", "--dump-dom")
    assert any("missingFunction" in line for line in _console(result))


def test_the_report_renders_without_console_errors(tmp_path: Path) -> None:
    examples = str(ROOT / "examples")
    posture = build_posture(
        [run_scan([examples], LoadedConfig.empty()), run_netpol([examples])], tool_version="test"
    )
    page = tmp_path / "posture.html"
    page.write_text(render_html(posture), encoding="utf-8")
    dom = _chromium(page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console(dom) == []
    assert "Top risks" in dom.stdout and "Control view" in dom.stdout
    shot = tmp_path / "posture.png"
    taken = _chromium(
        page, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1200,1600"
    )
    assert taken.returncode == 0 and _console(taken) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
