"""Dockerfile fixes: a non-root user for the base image family, ADD -> COPY, COPY --chown."""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.fix.dockerfile import BaseFamily, base_family
from skanse.scan import scan
from skanse.sources.dockerfile import Instruction
from tests._counting import count_reads
from tests.fix.helpers import after, fix_text

DEBIAN_USER = "RUN groupadd -r -g 10001 app && useradd -r -l -u 10001 -g app -m -d /home/app app\n"
ALPINE_USER = "RUN addgroup -S -g 10001 app && adduser -S -D -u 10001 -G app -h /home/app app\n"
USER = "USER 10001:10001\n"


@pytest.mark.parametrize(
    ("image", "family"),
    [
        ("alpine:3.20", BaseFamily.ALPINE),
        ("node:22-alpine@sha256:" + "0" * 64, BaseFamily.ALPINE),
        ("busybox:1.36", BaseFamily.ALPINE),
        ("debian:bookworm-slim", BaseFamily.DEBIAN),
        ("ubuntu:24.04", BaseFamily.DEBIAN),
        ("python:3.12", BaseFamily.DEBIAN),
        ("docker.io/library/nginx:1.27", BaseFamily.DEBIAN),
        ("registry.example.com/team/base:1.0-bookworm", BaseFamily.DEBIAN),
        ("fedora:40", BaseFamily.RHEL),
        ("registry.access.redhat.com/ubi9:9.4", BaseFamily.RHEL),
        ("registry.access.redhat.com/ubi9-minimal:9.4", BaseFamily.NUMERIC),
        ("gcr.io/distroless/static-debian12", BaseFamily.NUMERIC),
        ("scratch", BaseFamily.NUMERIC),
        ("registry.example.com/unknown:1", BaseFamily.NUMERIC),
        ("mcr.microsoft.com/windows/servercore:ltsc2022", BaseFamily.WINDOWS),
        ("python:3.12-windowsservercore-ltsc2022", BaseFamily.WINDOWS),
    ],
)
def test_base_image_family(image: str, family: BaseFamily) -> None:
    assert base_family(image) is family


def _fix(tmp_path: Path, text: str | bytes) -> str:
    item, _ = fix_text(tmp_path, text, name="Dockerfile")
    return after(item)


def test_user_goes_after_the_last_build_step_and_before_runtime_settings(tmp_path: Path) -> None:
    source = (
        "FROM python:3.12-slim\n"
        "RUN pip install flask\n"
        "COPY app.py /srv/\n"
        "\n"
        "# how it runs\n"
        "EXPOSE 8080\n"
        'CMD ["python", "/srv/app.py"]\n'
    )
    assert _fix(tmp_path, source) == (
        "FROM python:3.12-slim\n"
        "RUN pip install flask\n"
        "COPY app.py /srv/\n" + DEBIAN_USER + USER + "\n"
        "# how it runs\n"
        "EXPOSE 8080\n"
        'CMD ["python", "/srv/app.py"]\n'
    )


def test_only_the_final_stage_gets_a_user_matched_to_its_root_base(tmp_path: Path) -> None:
    source = (
        "ARG VERSION=3.20\n"
        "FROM golang:1.23 AS build\n"
        "RUN go build -o /app .\n"
        "FROM alpine:${VERSION} AS base\n"
        "RUN apk add --no-cache ca-certificates\n"
        "FROM base\n"
        "COPY --from=build /app /app\n"
        'ENTRYPOINT ["/app"]\n'
    )
    text = _fix(tmp_path, source)
    assert text == source.replace(
        "COPY --from=build /app /app\n", "COPY --from=build /app /app\n" + ALPINE_USER + USER
    )


def test_scratch_and_unknown_bases_get_a_numeric_user_only(tmp_path: Path) -> None:
    for base in ("scratch", "${BASE}", "example.com/team/base:1"):
        source = f"FROM {base}\nCOPY app /app\n"
        assert _fix(tmp_path, source) == source + USER


def test_bases_that_ship_a_user_get_that_user(tmp_path: Path) -> None:
    for base, user in (
        ("gcr.io/distroless/static-debian12", "nonroot"),
        ("node:22-alpine", "node"),
        ("mcr.microsoft.com/dotnet/aspnet:8.0", "$APP_UID"),
        ("postgres:17", "postgres"),
    ):
        source = f"FROM {base}\nCOPY app /app\n"
        assert _fix(tmp_path, source) == source + f"USER {user}\n", base


def test_windows_images_switch_to_container_user(tmp_path: Path) -> None:
    source = "# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nRUN echo hi\n"
    assert _fix(tmp_path, source) == source + "USER ContainerUser\n"


def test_user_root_at_the_end_is_followed_by_the_new_user(tmp_path: Path) -> None:
    source = "FROM debian:12\nUSER root\nRUN apt-get update\n"
    assert _fix(tmp_path, source) == source + DEBIAN_USER + USER


@pytest.mark.parametrize("root", ["00", "+0", "0000:0"])
def test_a_final_user_that_reads_as_uid_0_is_replaced(tmp_path: Path, root: str) -> None:
    """The runtimes read `00` and `+0` as UID 0 (strconv.Atoi): root, like `USER 0`."""
    source = f"FROM debian:12\nRUN apt-get update\nUSER {root}\n"
    assert _fix(tmp_path, source) == source.replace(f"USER {root}\n", DEBIAN_USER + USER)


def test_an_image_that_already_creates_a_user_only_switches_to_it(tmp_path: Path) -> None:
    source = 'FROM debian:12\nRUN useradd -u 10001 svc\nCMD ["run"]\n'
    assert _fix(tmp_path, source) == source.replace('CMD ["run"]\n', 'USER svc\nCMD ["run"]\n')


def test_user_goes_after_a_heredoc_body(tmp_path: Path) -> None:
    source = 'FROM alpine:3.20\nRUN <<EOF\napk add --no-cache curl\necho done\nEOF\nCMD ["sh"]\n'
    assert _fix(tmp_path, source) == source.replace(
        "EOF\nCMD", "EOF\n" + ALPINE_USER + USER + "CMD"
    )


def test_add_of_local_files_becomes_copy_with_its_flags(tmp_path: Path) -> None:
    source = "FROM scratch\nadd --chown=10001 --chmod=0644 app.conf /etc/app.conf\nUSER 10001\n"
    assert _fix(tmp_path, source) == source.replace("add --chown", "copy --chown")


def test_copy_into_the_users_home_gets_chown(tmp_path: Path) -> None:
    source = (
        "FROM node:22-slim\nUSER node\nWORKDIR /home/node/app\n"
        "COPY package.json ./\nADD server.js /home/node/app/\n"
    )
    assert _fix(tmp_path, source) == (
        "FROM node:22-slim\nUSER node\nWORKDIR /home/node/app\n"
        "COPY --chown=node package.json ./\nCOPY --chown=node server.js /home/node/app/\n"
    )


def test_chown_finds_the_user_once_per_stage_not_once_per_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each COPY --chown walked its stage from the top for the USER in effect: quadratic,
    8,000 COPY lines into the home took 6 s to fix. Count the reads of
    Instruction.keyword (what that walk tests) over the whole scan and fix."""
    reads = count_reads(monkeypatch, Instruction, "keyword")
    copies = 2000
    source = "FROM node:22-slim\nUSER node\n" + "COPY a /home/node/\n" * copies
    item, _ = fix_text(tmp_path, source, "SKN-DF-006", name="Dockerfile")
    fixed = after(item)
    assert fixed.count("COPY --chown=node a /home/node/\n") == copies
    assert reads.count <= 20 * (copies + 2), reads.count


def test_line_endings_byte_order_mark_and_a_missing_final_newline(tmp_path: Path) -> None:
    source = "\ufeffFROM alpine:3.20\r\nRUN echo hi\r\nADD a.txt /a.txt"
    item, _ = fix_text(tmp_path, source.encode("utf-8"), name="Dockerfile")
    assert item is not None and item.after is not None
    assert item.after.decode("utf-8") == (
        "\ufeffFROM alpine:3.20\r\nRUN echo hi\r\nCOPY a.txt /a.txt\r\n"
        + ALPINE_USER.replace("\n", "\r\n")
        + USER.replace("\n", "\r\n")
    )


def test_every_fixed_example_rescans_clean_for_the_fixed_checks(tmp_path: Path) -> None:
    source = "FROM ubuntu:24.04\nADD app /app\nUSER 1000\nCOPY x /home/dev/x\nUSER root\n"
    (tmp_path / "Dockerfile").write_text(_fix(tmp_path, source))
    found = {f.check_id for f in scan([str(tmp_path / "Dockerfile")]).findings}
    assert not found & {"SKN-DF-001", "SKN-DF-005", "SKN-DF-006"}


def test_a_dockerfile_with_an_unparseable_line_is_left_untouched(tmp_path: Path) -> None:
    source = "FROM debian:12\nRUN true\nNOT-AN-INSTRUCTION here\n"
    item, report = fix_text(tmp_path, source, name="Dockerfile")
    assert item is not None and item.after is None
    assert (
        item.problem
        == "cannot be parsed (line 3: unknown instruction 'NOT-AN-INSTRUCTION'; line skipped)"
    )
    assert (tmp_path / "Dockerfile").read_text() == source
    assert report.problems
