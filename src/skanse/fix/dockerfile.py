"""Fixes for Dockerfiles, as line edits on the parser's line ranges.

Only the lines a fix is about change; every other byte stays as it was (line endings and
a byte order mark included). The fixes:

* SKN-DF-001: a non-root user and `USER 10001:10001` at the end of the final stage's build
  steps (after its last RUN, COPY or ADD, before CMD/ENTRYPOINT/EXPOSE...), created the way
  the base image family does it: `addgroup -S`/`adduser -S` on Alpine and BusyBox,
  `groupadd -r`/`useradd -r` on Debian, Ubuntu and RHEL-like images; on distroless,
  scratch and anything skanse does not recognise, the numeric `USER 10001:10001` alone (it
  needs no passwd entry); on Windows images `USER ContainerUser`, the built-in
  unprivileged account. The USER is numeric so Kubernetes can verify runAsNonRoot.
* SKN-DF-005: `ADD` of plain local files becomes `COPY` (flags kept; COPY takes them all).
* SKN-DF-006: `--chown=<the stage's user>` on a COPY or ADD into that user's home.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from skanse.checks.kubernetes.defaults import NON_ROOT_ID
from skanse.fix.model import Change, Declined, FileFix
from skanse.model import CheckID, Finding
from skanse.sources.dockerfile import Dockerfile, Instruction, Stage, parse_dockerfile

__all__ = ["DOCKERFILE_FIXES", "BaseFamily", "base_family", "fix_dockerfile"]

USER_NAME = "app"


@dataclass(frozen=True, slots=True)
class LineEdit:
    """Replace lines [start, end) (0-based) with `lines` (no line endings)."""

    start: int
    end: int
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DockerfileFix:
    check_id: CheckID
    complete: bool  # resolves every finding: what CheckMeta.fixable says
    plan: Callable[[Dockerfile, list[str], Finding], LineEdit | str]  # str: declined


class BaseFamily(enum.StrEnum):
    """How a base image creates users."""

    ALPINE = "alpine"
    DEBIAN = "debian"
    RHEL = "rhel"
    WINDOWS = "windows"
    NUMERIC = "numeric"  # distroless, scratch, unknown


_DEBIAN_TAGS = re.compile(
    r"(bookworm|bullseye|buster|stretch|jessie|trixie|sid|jammy|focal|bionic|xenial|noble|"
    r"oracular|plucky|slim)",
)
# Official images built on Debian or Ubuntu unless their tag says otherwise.
_DEBIAN_IMAGES = frozenset(
    {"debian", "ubuntu", "buildpack-deps", "python", "node", "golang", "ruby", "php", "perl",
     "rust", "openjdk", "eclipse-temurin", "maven", "gradle", "nginx", "httpd", "postgres",
     "redis", "mongo", "rabbitmq", "memcached", "tomcat", "gcc", "haskell", "julia",
     "elixir", "erlang", "clojure", "wordpress", "drupal", "ghost", "r-base", "swift",
     "rethinkdb", "pytorch", "cuda", "tensorflow", "mariadb"}
)  # fmt: skip
_RHEL_IMAGES = frozenset(
    {"centos", "fedora", "rockylinux", "almalinux", "ubi", "ubi8", "ubi9", "ubi10", "rhel",
     "oraclelinux"}
)  # fmt: skip


def base_family(image: str) -> BaseFamily:
    """The family of a base image reference, by name and tag."""
    reference = image.lower()
    name, _, _digest = reference.partition("@")
    repository, tag = name, ""
    if ":" in name.rsplit("/", 1)[-1]:
        repository, tag = name.rsplit(":", 1)
    last = repository.rsplit("/", 1)[-1]
    if any(w in reference for w in ("windows", "nanoserver", "servercore", "ltsc20")):
        return BaseFamily.WINDOWS
    if last == "scratch" or "distroless" in repository or repository.startswith("cgr.dev/"):
        return BaseFamily.NUMERIC
    if "alpine" in reference or last == "busybox":
        return BaseFamily.ALPINE
    if last in _RHEL_IMAGES and not re.search(r"minimal|micro|slim", f"{last}:{tag}"):
        return BaseFamily.RHEL
    if last in _DEBIAN_IMAGES or (tag and _DEBIAN_TAGS.search(tag)):
        return BaseFamily.DEBIAN
    return BaseFamily.NUMERIC


def _root_base(df: Dockerfile, stage: Stage) -> tuple[str, list[Stage]]:
    """The external base image of a stage, following `FROM <stage>`, and the stage chain."""
    chain = [stage]
    while chain[-1].base_stage is not None and chain[-1].base_stage < chain[-1].index:
        chain.append(df.stages[chain[-1].base_stage])
    return chain[-1].base, chain


def _last_line(ins: Instruction) -> int:
    """The 1-based last line of an instruction, heredoc bodies and terminators included."""
    last = ins.end_line
    for heredoc in ins.heredocs:
        last = max(last, heredoc.start_line + heredoc.body.count("\n"))
    return last


# Instructions that describe how the image runs rather than build it: the USER goes before
# them, after the last build step.
_RUNTIME = frozenset(
    {"CMD", "ENTRYPOINT", "EXPOSE", "HEALTHCHECK", "LABEL", "STOPSIGNAL", "VOLUME", "MAINTAINER"}
)


def _user_lines(df: Dockerfile, stage: Stage) -> tuple[str, ...]:
    base, chain = _root_base(df, stage)
    family = base_family(base) if not chain[-1].unresolved else BaseFamily.NUMERIC
    if family == BaseFamily.WINDOWS:
        return ("USER ContainerUser",)
    user = f"USER {NON_ROOT_ID}:{NON_ROOT_ID}"
    built = "\n".join(
        df.instructions[i].shell
        for s in chain
        for i in s.instructions
        if df.instructions[i].keyword == "RUN"
    )
    exists = re.search(
        rf"\b(useradd|adduser|addgroup|groupadd)\b[^\n;&|]*(\b{NON_ROOT_ID}\b|\s{USER_NAME}\b)",
        built,
    )
    if exists or family == BaseFamily.NUMERIC:
        return (user,)
    home = f"/home/{USER_NAME}"
    if family == BaseFamily.ALPINE:
        create = (
            f"RUN addgroup -S -g {NON_ROOT_ID} {USER_NAME} && "
            f"adduser -S -D -u {NON_ROOT_ID} -G {USER_NAME} -h {home} {USER_NAME}"
        )
    else:
        create = (
            f"RUN groupadd -r -g {NON_ROOT_ID} {USER_NAME} && "
            f"useradd -r -l -u {NON_ROOT_ID} -g {USER_NAME} -m -d {home} {USER_NAME}"
        )
    return (create, user)


def _plan_user(df: Dockerfile, lines: list[str], finding: Finding) -> LineEdit | str:
    stage = df.stages[-1]
    instructions = df.stage_instructions(stage)
    anchor = df.instructions[stage.from_instruction]
    for _, ins in reversed(instructions):
        if ins.keyword not in _RUNTIME:
            anchor = ins
            break
    at = _last_line(anchor)
    return LineEdit(at, at, _user_lines(df, stage))


def _keyword_span(line: str, keyword: str) -> tuple[int, int] | None:
    match = re.match(rf"\s*({keyword})\b", line, re.IGNORECASE)
    return match.span(1) if match else None


def _instruction_at(df: Dockerfile, pointer: str) -> Instruction | None:
    parts = pointer.strip("/").split("/")
    if len(parts) == 4 and parts[0] == "stages" and parts[2] == "instructions":
        stage = df.stages[int(parts[1])]
        return df.instructions[stage.instructions[int(parts[3])]]
    return None


_COPY_FLAGS = frozenset({"chown", "chmod", "link", "exclude", "parents"})


def _plan_add_to_copy(df: Dockerfile, lines: list[str], finding: Finding) -> LineEdit | str:
    ins = _instruction_at(df, finding.location.pointer)
    if ins is None or ins.keyword != "ADD":
        return "the ADD instruction was not found"
    extra = set(ins.flags) - _COPY_FLAGS
    if extra:
        return f"ADD --{sorted(extra)[0]} has no COPY equivalent"
    index = ins.start_line - 1
    span = _keyword_span(lines[index], "ADD")
    if span is None:
        return "the ADD keyword is not at the start of its line"
    word = lines[index][span[0] : span[1]]
    copy = "COPY" if word.isupper() else "copy" if word.islower() else "Copy"
    return LineEdit(index, index + 1, (lines[index][: span[0]] + copy + lines[index][span[1] :],))


def _stage_user_at(df: Dockerfile, pointer: str) -> str | None:
    """The USER in effect at the instruction `pointer` names (within its stage)."""
    parts = pointer.strip("/").split("/")
    stage = df.stages[int(parts[1])]
    user = None
    for position, index in enumerate(stage.instructions):
        if position == int(parts[3]):
            break
        ins = df.instructions[index]
        if ins.keyword == "USER" and ins.args.split():
            user = ins.args.split()[0]
    return user


def _plan_chown(df: Dockerfile, lines: list[str], finding: Finding) -> LineEdit | str:
    ins = _instruction_at(df, finding.location.pointer)
    if ins is None or ins.keyword not in ("COPY", "ADD"):
        return "the COPY instruction was not found"
    user = _stage_user_at(df, finding.location.pointer)
    if not user:
        return "no USER before it"
    index = ins.start_line - 1
    span = _keyword_span(lines[index], "ADD|COPY")
    if span is None:
        return f"the {ins.keyword} keyword is not at the start of its line"
    line = lines[index]
    return LineEdit(index, index + 1, (f"{line[: span[1]]} --chown={user}{line[span[1] :]}",))


DOCKERFILE_FIXES: tuple[DockerfileFix, ...] = (
    DockerfileFix(CheckID("SKN-DF-001"), True, _plan_user),
    DockerfileFix(CheckID("SKN-DF-005"), True, _plan_add_to_copy),
    DockerfileFix(CheckID("SKN-DF-006"), True, _plan_chown),
)
_BY_CHECK: dict[str, DockerfileFix] = {f.check_id: f for f in DOCKERFILE_FIXES}

_DESCRIPTIONS = {
    "SKN-DF-001": "run the final stage as a non-root user: {lines}",
    "SKN-DF-005": "ADD -> COPY for local files",
    "SKN-DF-006": "{lines}",
}


def _describe(check_id: str, edit: LineEdit) -> str:
    shown = " / ".join(edit.lines)
    return _DESCRIPTIONS[check_id].format(lines=shown)


def fix_dockerfile(path: str, write_path: str, data: bytes, findings: Sequence[Finding]) -> FileFix:
    """Plan and render the fixes for one Dockerfile (nothing is written here)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return FileFix(path, write_path, data, None, problem="is not UTF-8 text")
    bom = text.startswith("\ufeff")
    body = text.removeprefix("\ufeff")
    df = parse_dockerfile(path, body)
    if df.problems:
        first = df.problems[0]
        problem = f"cannot be parsed (line {first.line}: {first.message})"
        return FileFix(path, write_path, data, None, problem=problem)
    raw_lines = body.splitlines(keepends=True)
    endings = [line[len(line.rstrip("\r\n")) :] for line in raw_lines]
    lines = [line.rstrip("\r\n") for line in raw_lines]
    newline = "\r\n" if endings.count("\r\n") > len(endings) / 2 else "\n"
    inserts: dict[int, list[str]] = {}
    changes: list[Change] = []
    declined: list[Declined] = []
    for fix in DOCKERFILE_FIXES:  # in this order: ADD becomes COPY before --chown is added
        for finding in (f for f in findings if f.check_id == fix.check_id):
            planned = fix.plan(df, lines, finding)
            if isinstance(planned, str):
                declined.append(
                    Declined(fix.check_id, finding.resource, finding.location.line, planned)
                )
                continue
            if planned.start == planned.end:
                if inserts.get(planned.start) == list(planned.lines):
                    continue
                inserts.setdefault(planned.start, []).extend(planned.lines)
            else:  # one line replaced: later fixes see the new text
                lines[planned.start] = planned.lines[0]
            changes.append(
                Change(
                    fix.check_id,
                    finding.resource,
                    finding.location.line,
                    _describe(fix.check_id, planned),
                )
            )
    if not changes:
        return FileFix(path, write_path, data, None, (), tuple(declined))
    out: list[str] = []
    for index in range(len(lines) + 1):
        if index in inserts:
            if out and not out[-1].endswith(("\n", "\r")):
                out[-1] += newline  # the last line had no ending; lines now follow it
            out.extend(line + newline for line in inserts[index])
        if index < len(lines):
            out.append(lines[index] + endings[index])
    after = (("\ufeff" if bom else "") + "".join(out)).encode("utf-8")
    return FileFix(path, write_path, data, after, tuple(changes), tuple(declined))


def has_fix(check_id: str) -> bool:
    return check_id in _BY_CHECK


def fix_is_complete(check_id: str) -> bool:
    return _BY_CHECK[check_id].complete
