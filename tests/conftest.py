"""Shared test fixtures: the shared corpora, the CLI runner, and example inputs."""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from tests._nobody import NobodyPython, nobody_python

# Property tests run the same examples on every CI run (a red build always means a change, not
# luck); explore new examples locally with --hypothesis-profile=explore.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def nobody() -> Iterator[NobodyPython]:
    """A Python that uid 65534 can run with skanse importable, even from a checkout below a
    0700 directory (tests/_nobody.py); skips with the reason when there is none."""
    try:
        yield from nobody_python()
    except LookupError as exc:
        pytest.skip(str(exc))


CORPORA = ROOT.parent / "shared" / "corpora"
SCHEMAS = ROOT.parent / "shared" / "schemas"


# what a hostile input may cost a real skanse process in the bad-input tests
MEMORY_CAP = 1024 * 1024 * 1024
TIME_CAP = 20


def _memory_cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped_json(*args: str) -> tuple[int, dict]:
    """`skanse ARGS -f json` as its own process within TIME_CAP seconds and MEMORY_CAP bytes
    of address space: (exit status, the JSON document it printed)."""
    run = subprocess.run(
        [sys.executable, "-m", "skanse", *args, "-f", "json"],
        capture_output=True,
        timeout=TIME_CAP,
        preexec_fn=_memory_cap,
        check=False,
    )
    assert run.stdout, run.stderr.decode()
    return run.returncode, json.loads(run.stdout)


def corpus_path(*parts: str) -> Path:
    """A path under ../shared/corpora; the calling test skips when it is absent."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus {path} is not present (CI always has ../shared/corpora)")
    return path


@pytest.fixture
def corpora() -> Callable[..., Path]:
    return corpus_path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run `skanse ARGS...` in-process; `stdin` bytes feed standard input."""
    from skanse._cli import main

    def run(*args: str, stdin: bytes | None = None) -> CliResult:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/* from the current output (then read the diff!)",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Compare text with tests/golden/<name>; --update-golden rewrites it instead."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = ROOT / "tests" / "golden" / name
        if update:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
        assert text == path.read_text(encoding="utf-8"), f"output differs from {path}"

    return check


# Real registries (Debian's docker-registry on 127.0.0.1), shared by every layer's tests.
from tests._registry import basic_registry, registry, token_registry  # noqa: E402, F401
