"""Dockerfiles parsed as BuildKit reads them, with line ranges and without giving up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skanse.scan import scan
from skanse.sources.dockerfile import (
    Instruction,
    Stage,
    parse_dockerfile,
    read_dockerfile_bytes,
    substitute,
)
from skanse.sources.ignores import InlineIgnore
from tests._counting import count_reads


def test_directives_continuations_comments_and_line_ranges() -> None:
    text = (
        "# syntax=docker/dockerfile:1.7\n"
        "# escape=`\n"
        "\n"
        "FROM mcr.microsoft.com/windows/servercore:ltsc2022\n"
        "RUN echo one `\n"
        "    # a comment inside the continuation is dropped\n"
        "\n"
        "    two\n"
        "USER ContainerUser\n"
    )
    df = parse_dockerfile("Dockerfile", text)
    assert df.problems == ()
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "escape": "`"}
    run = df.instructions[1]
    assert (run.keyword, run.args, run.start_line, run.end_line) == ("RUN", "echo one two", 5, 8)
    assert df.location("/stages/0/instructions/1").line == 9


def test_a_comment_ends_the_directives() -> None:
    df = parse_dockerfile("Dockerfile", "# hello\n# escape=`\nFROM alpine:3.20\nRUN a \\\n b\n")
    assert df.directives == {}
    assert df.instructions[1].args == "a b"


def test_heredocs_several_on_a_line_with_dash_and_quotes() -> None:
    text = (
        "FROM alpine:3.20\n"
        "RUN <<EOF\n"
        "set -e\n"
        "echo $HOME\n"
        "EOF\n"
        "COPY <<-'ONE' /one <<TWO /two\n"
        "\tindented\n"
        "\tONE\n"
        "second\n"
        "TWO\n"
        "USER 10001\n"
    )
    df = parse_dockerfile("Dockerfile", text)
    assert df.problems == ()
    run, copy, user = df.instructions[1:]
    assert run.heredocs[0].body == "set -e\necho $HOME\n"
    assert run.shell == "set -e\necho $HOME\n"
    assert [(h.word, h.body, h.strip_tabs, h.quoted) for h in copy.heredocs] == [
        ("ONE", "indented\n", True, True),
        ("TWO", "second\n", False, False),
    ]
    assert (user.keyword, user.start_line) == ("USER", 11)


def test_unterminated_heredoc_is_a_problem_not_a_hang() -> None:
    df = parse_dockerfile("Dockerfile", "FROM alpine:3.20\nRUN <<EOF\necho never closed\n")
    assert [p.message for p in df.problems] == ["heredoc <<EOF is never terminated"]


def test_flags_json_form_and_onbuild() -> None:
    text = (
        "FROM --platform=$BUILDPLATFORM golang:1.23 AS Build\n"
        'RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=npm ["go", "build"]\n'
        "COPY --from=build --chown=10001:10001 /out /app\n"
        "ONBUILD RUN make\n"
    )
    df = parse_dockerfile("Dockerfile", text)
    from_, run, copy, onbuild = df.instructions
    assert from_.flags == {"platform": "$BUILDPLATFORM"}
    assert df.stages[0].name == "build"
    assert run.flags["mount"] == "type=cache,target=/root/.cache\ntype=secret,id=npm"
    assert run.json_args == ("go", "build")
    assert copy.flags == {"from": "build", "chown": "10001:10001"}
    assert onbuild.onbuild is not None and onbuild.onbuild.keyword == "RUN"


def test_stages_global_args_and_from_stage() -> None:
    text = (
        "ARG REGISTRY=docker.io/library\n"
        "ARG TAG\n"
        "FROM ${REGISTRY}/node:${NODE:-22} AS base\n"
        "FROM base AS test\n"
        "FROM $REGISTRY/nginx:$TAG\n"
    )
    df = parse_dockerfile("Dockerfile", text)
    base, test, final = df.stages
    assert base.base == "docker.io/library/node:22" and not base.unresolved
    assert test.base_stage == 0
    assert final.base == "docker.io/library/nginx:" and final.unresolved


def test_stage_instructions_are_not_copied_per_instruction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each instruction grew its stage's tuple by a copy: quadratic, 128,000 `RUN a` lines
    took 47 s. Count the indices that go into every Stage built while parsing."""
    copied = 0
    build = Stage.__init__

    def counting(self: Stage, *args: Any, **kwargs: Any) -> None:
        nonlocal copied
        build(self, *args, **kwargs)
        copied += len(self.instructions)

    monkeypatch.setattr(Stage, "__init__", counting)
    runs = 5000
    df = parse_dockerfile("Dockerfile", "FROM a AS one\n" + "RUN a\n" * runs + "FROM one\nUSER 1\n")
    assert [len(stage.instructions) for stage in df.stages] == [runs, 1]
    assert df.stages[1].base_stage == 0
    assert df.location(f"/stages/0/instructions/{runs - 1}").line == runs + 1
    assert copied <= 2 * (runs + 1), copied


def test_substitute_forms() -> None:
    values = {"A": "x", "E": ""}
    assert substitute("$A ${A} ${B:-d} ${A:+alt} ${E:-e} ${B:+no}", values) == (
        "x x d alt e ",
        False,
    )
    assert substitute("$MISSING", values) == ("", True)


def test_bad_lines_are_reported_and_the_rest_is_parsed() -> None:
    df = parse_dockerfile("Dockerfile", "FROM alpine:3.20\n~\nFOO bar\nUSER 10001\n")
    assert [(p.line, p.message) for p in df.problems] == [
        (2, "unknown instruction '~'; line skipped"),
        (3, "unknown instruction 'FOO'; line skipped"),
    ]
    assert [i.keyword for i in df.instructions] == ["FROM", "USER"]


def test_instructions_before_from_and_no_from() -> None:
    assert [p.message for p in parse_dockerfile("D", "RUN x\nFROM a:1\n").problems] == [
        "RUN before the first FROM"
    ]
    assert [p.message for p in parse_dockerfile("D", "# nothing\n").problems] == [
        "no FROM instruction: not a Dockerfile"
    ]


def test_templates_are_skipped_and_binaries_refused() -> None:
    template = read_dockerfile_bytes(
        "Dockerfile.template", b"{{ if x }}\nFROM a:{{ .v }}\n", 1 << 20
    )
    assert template.dockerfile is None and "template" in template.skipped[0].reason
    binary = read_dockerfile_bytes("Dockerfile", b"\x7fELF\x00\x00", 1 << 20)
    assert [p.kind.value for p in binary.problems] == ["binary"]


def test_inline_ignores_bind_to_the_next_instruction_or_the_stage() -> None:
    text = (
        '# skanse:ignore=SKN-DF-002 reason="base is pinned by the build system"\n'
        "FROM node:latest\n"
        "RUN <<EOF\n"
        '# skanse:ignore=SKN-DF-007 reason="inside a heredoc: not a comment"\n'
        "EOF\n"
        '# skanse:ignore=SKN-DF-011 reason="scratch dir" expires=2030-01-01\n'
        "RUN chmod 777 /scratch\n"
        "# skanse:ignore=SKN-DF-010\n"
        "RUN sudo true\n"
    )
    read = read_dockerfile_bytes("Dockerfile", text.encode(), 1 << 20)
    assert [(i.ids, i.scope) for i in read.ignores] == [
        (("SKN-DF-002",), "/stages/0"),
        (("SKN-DF-011",), "/stages/0/instructions/1"),
    ]
    assert read.ignores[0].covers(0, "/stages/0/instructions/1")  # the whole stage
    assert not read.ignores[1].covers(0, "/stages/0/instructions/2")
    assert len(read.warnings) == 1 and "without reason" in read.warnings[0]


def test_a_finding_is_not_tested_against_every_ignore_comment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan tested every finding against every ignore comment of its file: quadratic,
    8,000 ignored COPY lines took 6 s. Count InlineIgnore.covers calls (that test) and check
    each finding still gets its own comment and the stage-wide one, in file order."""
    calls = 0
    covers = InlineIgnore.covers

    def counting(self: InlineIgnore, document: int, pointer: str) -> bool:
        nonlocal calls
        calls += 1
        return covers(self, document, pointer)

    monkeypatch.setattr(InlineIgnore, "covers", counting)
    copies = 2000
    path = tmp_path / "Dockerfile"
    path.write_text(
        '# skanse:ignore=SKN-DF-006 reason="stage"\nFROM node:22-slim\nUSER node\n'
        + '# skanse:ignore=SKN-DF-006 reason="one"\nCOPY a /home/node/\n' * copies
    )
    result = scan([str(path)])
    found = [f for f in result.findings if f.check_id == "SKN-DF-006"]
    assert len(found) == copies
    assert all(
        [s.reason for s in f.declared_suppressions] == ["stage", "one"]
        and f.declared_suppressions[1].origin == f"{path}:{f.location.line - 1}"
        for f in found
    )
    assert calls <= 2 * copies, calls


def test_ignore_comments_are_bound_without_a_scan_per_comment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each ignore comment looked for its instruction from the top of the file: quadratic,
    32,000 comment/RUN pairs took 25 s, which lets a Dockerfile stall a CI scan. Count the
    reads of Instruction.end_line (what that search compares) while the file is read."""
    reads = count_reads(monkeypatch, Instruction, "end_line")
    pairs = 3000
    text = "FROM debian:12 AS one\n" + '# skanse:ignore=SKN-DF-004 reason="x"\nRUN a\n' * pairs
    read = read_dockerfile_bytes("Dockerfile", (text + text).encode(), 1 << 24)
    assert len(read.ignores) == 2 * pairs and not read.warnings
    assert read.ignores[-1].line == 4 * pairs + 1
    assert read.ignores[-1].scope == f"/stages/1/instructions/{pairs - 1}"
    assert reads.count <= 10 * (2 * pairs + 2), reads.count
