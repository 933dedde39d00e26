"""Hostile and broken inputs, each scanned by a real `skanse` process under hard limits.

Every case runs next to a valid manifest: the bad file is reported with a clear reason, the
valid one is still scanned, and the process stays within 20 s and 1 GiB of address space.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_capped_json

VALID = (ROOT / "examples" / "insecure" / "legacy-app.yaml").read_text()


def scan(*paths: Path) -> tuple[int, dict]:
    return run_capped_json("scan", "--no-config", *map(str, paths))


def _billion_laughs(path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path.write_text("\n".join(lines) + "\n")


def _huge(path: Path) -> None:
    chunk = b"# filler line to make the file large\n" * 28_000  # about 1 MiB
    with path.open("wb") as handle:
        for _ in range(100):
            handle.write(chunk)


def _writer(text: str | bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return write


CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "invalid-yaml": (_writer("kind: Pod\nspec: {containers: [\n"), "parse", "line"),
    "alias-bomb": (_billion_laughs, "parse", "alias expansion bomb"),
    "huge-100mb": (_huge, "too-large", "over the 32 MiB limit"),
    "deep-nesting": (_writer("a: " + "[" * 50_000 + "]" * 50_000 + "\n"), "parse", "nesting"),
    "binary": (_writer(bytes(range(256)) * 64), "binary", "binary file"),
    "many-documents": (_writer("a: 1\n---\n" * 20_000), "parse", "more than 10,000 documents"),
    "duplicate-keys": (
        _writer(VALID.replace("  replicas: 1\n", "  replicas: 1\n  replicas: 2\n")),
        "parse",
        "duplicate key 'replicas'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_reported_and_the_rest_is_scanned(case: str, tmp_path: Path) -> None:
    make, kind, reason = CASES[case]
    bad = tmp_path / f"{case}.yaml"
    make(bad)
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    code, document = scan(bad, good)
    assert code == 2, document  # an input that could not be checked fails closed
    allowed, _ = run_capped_json("scan", "--no-config", "--allow-unchecked", str(bad), str(good))
    assert allowed == 1  # with --allow-unchecked: the valid manifest's findings decide
    (problem,) = document["problems"]
    assert problem["file"] == str(bad)
    assert problem["kind"] == kind
    assert reason in problem["message"] or (reason == "line" and problem["line"])
    assert document["summary"]["objects"] >= 1


def test_documents_that_are_not_objects_are_skipped_not_errors(tmp_path: Path) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text("just a string\n---\n- a\n- list\n---\nreplicaCount: 3\n")
    code, document = scan(odd)
    assert code == 0
    assert document["problems"] == []
    assert len(document["skipped"]) == 3


def test_only_bad_inputs_exit_two(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    _billion_laughs(bad)
    code, document = scan(bad, tmp_path / "missing.yaml")
    assert code == 2
    assert sorted(p["kind"] for p in document["problems"]) == ["missing", "parse"]


DOCKERFILE_CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "unterminated-heredoc": (
        _writer("FROM alpine:3.20\nRUN <<EOF\n" + "echo line\n" * 200_000),
        "parse",
        "heredoc <<EOF is never terminated",
    ),
    "endless-continuation": (
        _writer("FROM alpine:3.20\nRUN true \\\n" + "  && true \\\n" * 200_000 + "  && false\n~\n"),
        "parse",
        "unknown instruction '~'",
    ),
    "binary": (_writer(b"\x7fELF\x02\x01\x01\x00" * 1000), "binary", "binary file"),
    "huge-100mb": (_huge, "too-large", "over the 32 MiB limit"),
}


@pytest.mark.parametrize("case", sorted(DOCKERFILE_CASES))
def test_bad_dockerfile_is_reported_and_the_rest_is_scanned(case: str, tmp_path: Path) -> None:
    make, kind, reason = DOCKERFILE_CASES[case]
    (tmp_path / "bad").mkdir()
    bad = tmp_path / "bad" / "Dockerfile"
    make(bad)
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    code, document = scan(bad, good)
    assert code == 2  # fails closed
    (problem,) = document["problems"]
    assert problem["file"] == str(bad)
    assert problem["kind"] == kind
    assert reason in problem["message"]
