"""Fixes for Dockerfiles, as line edits on the parser's line ranges.

Only the lines a fix is about change; every other byte stays as it was (line endings and
a byte order mark included). The fixes:

* SKN-DF-001 (unsafe: the image runs as another user): the file is corrected before
  anything is added. The user is, in this order, a non-root USER the stage chain already
  switches to, the user a RUN creates (useradd/adduser), the owner of its `COPY --chown`,
  the base image's own user (`$APP_UID` on .NET, `node` on node, `nonroot` on distroless,
  `postgres`, `redis`... on those images); a trailing `USER root` with no build step after
  it is replaced by (or, when a non-root USER is already in effect, dropped for) that user,
  and one with build steps after it is followed by `USER <user>` after the last of them.
  Only when there is no such user is one created the way the base image family does it
  (`addgroup -S`/`adduser -S` on Alpine and BusyBox, `groupadd -r`/`useradd -r` on Debian,
  Ubuntu and RHEL-like images) with `USER 10001:10001`; on scratch and unknown bases the
  numeric `USER 10001:10001` alone; on Windows `USER ContainerUser`.
* SKN-DF-005: `ADD` of local files becomes `COPY` (flags kept). Safe only when every source
  was read in the build context (the Dockerfile's directory unless `--build-context` says) and is a
  directory or a file that is not an archive by its content: ADD extracts a tar archive
  whatever its name. A source that cannot be examined (missing, a wildcard, out of the
  context) makes it unsafe; a source that is an archive declines it.
* SKN-DF-006 (unsafe: files change owner): `--chown=<the stage's user>` on a COPY or ADD
  into that user's home.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from skanse.checks.dockerfile.rules import is_root_user
from skanse.checks.kubernetes.defaults import NON_ROOT_ID
from skanse.fix.model import Change, Declined, FileFix
from skanse.model import CheckID, Finding
from skanse.sources.buildcontext import SourceKind, examine_source
from skanse.sources.dockerfile import Dockerfile, Instruction, Stage, parse_dockerfile

__all__ = ["DOCKERFILE_FIXES", "BaseFamily", "base_family", "fix_dockerfile"]

USER_NAME = "app"


@dataclass(frozen=True, slots=True)
class LineEdit:
    """Replace lines [start, end) (0-based) with `lines` (no line endings)."""

    start: int
    end: int
    lines: tuple[str, ...]
    unsafe_because: str = ""  # this edit is unsafe although its fix is safe by kind


@dataclass(slots=True)
class _Subject:
    """What the plans read: the parsed file, its lines (later fixes see earlier edits) and
    the build context directory, plus what is worked out once per file rather than once
    per finding (a per-finding walk of the stage was quadratic in its instructions)."""

    df: Dockerfile
    lines: list[str]
    context: str
    users: dict[int, list[str | None]] = field(default_factory=dict)  # see user_before

    def user_before(self, stage: int, position: int) -> str | None:
        """The USER in effect at instruction `position` of stage `stage`."""
        if stage not in self.users:
            user: str | None = None
            before: list[str | None] = []
            for index in self.df.stages[stage].instructions:
                before.append(user)
                ins = self.df.instructions[index]
                if ins.keyword == "USER" and ins.args.split():
                    user = ins.args.split()[0]
            self.users[stage] = before
        return self.users[stage][position]


@dataclass(frozen=True, slots=True)
class DockerfileFix:
    check_id: CheckID
    complete: bool  # resolves every finding: what CheckMeta.fixable says
    # (the file being fixed, the finding) -> edit or why not
    plan: Callable[[_Subject, Finding], LineEdit | str]
    safe: bool  # see Change.safe


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


_ROOT_USERS = frozenset({"root", "0"})
# The unprivileged user an official base image ships, by the last part of its repository.
_BASE_USERS: Mapping[str, str] = {
    "node": "node",
    "postgres": "postgres",
    "redis": "redis",
    "mongo": "mongodb",
    "rabbitmq": "rabbitmq",
    "memcached": "memcache",
    "elasticsearch": "elasticsearch",
    "jenkins": "jenkins",
    "sonarqube": "sonarqube",
}
# useradd/adduser, its options (a value never starts with "-"), then the new user's name
_CREATES_USER = re.compile(
    r"\b(?:useradd|adduser)\b"
    r"((?:\s+(?:-{1,2}[\w-]+(?:[= ](?!-)[^\s;&|]+)?|\\))*)"
    r"\s+([A-Za-z_][\w.-]*)"
)


def _user_name(args: str) -> str:
    """The user part of a USER argument (`app:app` -> `app`)."""
    return args.split()[0].split(":", 1)[0] if args.split() else ""


def _is_root(args: str) -> bool:
    return _user_name(args).lower() in _ROOT_USERS or is_root_user(_user_name(args))


def _base_user(base: str) -> str | None:
    """The non-root user the base image's documentation tells you to use."""
    reference = base.lower().split("@", 1)[0]
    repository = reference.rsplit(":", 1)[0] if ":" in reference.rsplit("/", 1)[-1] else reference
    if "/dotnet/" in repository or repository.startswith("dotnet/"):
        return "$APP_UID"  # .NET 8+ images set APP_UID to their non-root "app" user
    if "distroless" in repository or repository.startswith("cgr.dev/"):
        return "nonroot"
    return _BASE_USERS.get(repository.rsplit("/", 1)[-1])


def _existing_user(df: Dockerfile, chain: list[Stage]) -> str | None:
    """A non-root user the file already uses: a USER it switches to, one a RUN creates, the
    owner of a COPY --chown (in the final stage first)."""
    for stage in chain:
        steps = [df.instructions[i] for i in stage.instructions]
        for ins in reversed(steps):
            if ins.keyword == "USER" and ins.args.split() and not _is_root(ins.args):
                return ins.args.split()[0]
        for ins in reversed(steps):
            if ins.keyword == "RUN":
                created = _CREATES_USER.findall(ins.shell)
                if created and created[-1][1] not in _ROOT_USERS:
                    return str(created[-1][1])
        for ins in reversed(steps):
            owner = ins.flags.get("chown") if ins.keyword in ("COPY", "ADD") else None
            if owner and _user_name(owner) and not _is_root(owner):
                return owner
    return None


def _user_lines(df: Dockerfile, stage: Stage) -> tuple[str, ...]:
    base, chain = _root_base(df, stage)
    family = base_family(base) if not chain[-1].unresolved else BaseFamily.NUMERIC
    if family == BaseFamily.WINDOWS:
        return ("USER ContainerUser",)
    existing = _existing_user(df, chain)
    if existing is not None:
        return (f"USER {existing}",)
    known = _base_user(base) if not chain[-1].unresolved else None
    if known is not None:
        return (f"USER {known}",)
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


def _plan_user(subject: _Subject, finding: Finding) -> LineEdit | str:
    df = subject.df
    stage = df.stages[-1]
    instructions = df.stage_instructions(stage)
    anchor = df.instructions[stage.from_instruction]
    for _, ins in reversed(instructions):
        if ins.keyword not in _RUNTIME:
            anchor = ins
            break
    wanted = _user_lines(df, stage)
    users = [ins for _, ins in instructions if ins.keyword == "USER"]
    last_user = users[-1] if users else None
    if last_user is not None and _is_root(last_user.args):
        if last_user.start_line >= anchor.start_line:
            # a trailing USER root with no build step after it: it becomes the right user,
            # or goes when a non-root USER before it is already in effect
            start, end = last_user.start_line - 1, _last_line(last_user)
            earlier = users[-2] if len(users) > 1 else None
            if (
                earlier is not None
                and not _is_root(earlier.args)
                and wanted == (f"USER {earlier.args.split()[0]}",)
            ):
                return LineEdit(start, end, ())
            return LineEdit(start, end, wanted)
    at = _last_line(anchor)
    return LineEdit(at, at, wanted)


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


_GLOB = re.compile(r"[*?\[]")  # a wildcard in a build-context path (Go filepath.Match)


def _plan_add_to_copy(subject: _Subject, finding: Finding) -> LineEdit | str:
    lines = subject.lines
    ins = _instruction_at(subject.df, finding.location.pointer)
    if ins is None or ins.keyword != "ADD":
        return "the ADD instruction was not found"
    extra = set(ins.flags) - _COPY_FLAGS
    if extra:
        return f"ADD --{sorted(extra)[0]} has no COPY equivalent"
    sources = ins.words[:-1]
    wildcard = next((s for s in sources if _GLOB.search(s)), None)
    if wildcard is not None:
        return f"ADD {wildcard} may match a local archive, which ADD extracts and COPY would not"
    seen = [examine_source(subject.context, s) for s in sources]
    archive = next((s for s in seen if s.kind is SourceKind.ARCHIVE), None)
    if archive is not None:
        return f"ADD extracts it and COPY would not: {archive.reason}"
    unknown = next((s for s in seen if s.kind is SourceKind.UNKNOWN), None)
    because = f"{unknown.reason}, so it may be an archive ADD extracts" if unknown else ""
    index = ins.start_line - 1
    span = _keyword_span(lines[index], "ADD")
    if span is None:
        return "the ADD keyword is not at the start of its line"
    word = lines[index][span[0] : span[1]]
    copy = "COPY" if word.isupper() else "copy" if word.islower() else "Copy"
    edited = lines[index][: span[0]] + copy + lines[index][span[1] :]
    return LineEdit(index, index + 1, (edited,), unsafe_because=because)


def _plan_chown(subject: _Subject, finding: Finding) -> LineEdit | str:
    lines = subject.lines
    ins = _instruction_at(subject.df, finding.location.pointer)
    if ins is None or ins.keyword not in ("COPY", "ADD"):
        return "the COPY instruction was not found"
    parts = finding.location.pointer.strip("/").split("/")  # checked by _instruction_at
    user = subject.user_before(int(parts[1]), int(parts[3]))
    if not user:
        return "no USER before it"
    index = ins.start_line - 1
    span = _keyword_span(lines[index], "ADD|COPY")
    if span is None:
        return f"the {ins.keyword} keyword is not at the start of its line"
    line = lines[index]
    return LineEdit(index, index + 1, (f"{line[: span[1]]} --chown={user}{line[span[1] :]}",))


DOCKERFILE_FIXES: tuple[DockerfileFix, ...] = (
    DockerfileFix(CheckID("SKN-DF-001"), True, _plan_user, safe=False),
    DockerfileFix(CheckID("SKN-DF-005"), True, _plan_add_to_copy, safe=True),
    DockerfileFix(CheckID("SKN-DF-006"), True, _plan_chown, safe=False),
)
_BY_CHECK: dict[str, DockerfileFix] = {f.check_id: f for f in DOCKERFILE_FIXES}

_DESCRIPTIONS = {
    "SKN-DF-001": "run the final stage as a non-root user: {lines}",
    "SKN-DF-005": "ADD -> COPY for local files",
    "SKN-DF-006": "{lines}",
}


def _describe(check_id: str, edit: LineEdit) -> str:
    shown = " / ".join(edit.lines) or "drop the trailing USER root"
    described = _DESCRIPTIONS[check_id].format(lines=shown)
    return f"{described} (unsafe: {edit.unsafe_because})" if edit.unsafe_because else described


def fix_dockerfile(
    path: str,
    write_path: str,
    data: bytes,
    findings: Sequence[Finding],
    *,
    unsafe: bool = False,
    context: str | None = None,
) -> FileFix:
    """Plan and render the fixes for one Dockerfile (nothing is written here); unsafe fixes
    only with `unsafe`. `context` is the build context directory (default: the Dockerfile's
    own directory, as `docker build .` has it)."""
    if context is None:
        context = os.path.dirname(path) or "."
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
    replaced: dict[int, tuple[int, tuple[str, ...]]] = {}  # start -> (end, lines)
    changes: list[Change] = []
    declined: list[Declined] = []
    subject = _Subject(df, lines, context)
    for fix in DOCKERFILE_FIXES:  # in this order: ADD becomes COPY before --chown is added
        if not fix.safe and not unsafe:
            continue
        for finding in (f for f in findings if f.check_id == fix.check_id):
            planned = fix.plan(subject, finding)
            if isinstance(planned, str):
                declined.append(
                    Declined(fix.check_id, finding.resource, finding.location.line, planned)
                )
                continue
            safe = fix.safe and not planned.unsafe_because
            if not safe and not unsafe:
                continue  # planned again with `unsafe` and shown as pending
            if planned.start == planned.end:
                if inserts.get(planned.start) == list(planned.lines):
                    continue
                inserts.setdefault(planned.start, []).extend(planned.lines)
            elif planned.end - planned.start == 1 and len(planned.lines) == 1:
                lines[planned.start] = planned.lines[0]  # later fixes see the new text
            else:  # an instruction replaced or dropped (a trailing USER root)
                if planned.start in replaced:
                    continue
                replaced[planned.start] = (planned.end, planned.lines)
            changes.append(
                Change(
                    fix.check_id,
                    finding.resource,
                    finding.location.line,
                    _describe(fix.check_id, planned),
                    safe,
                )
            )
    if not changes:
        return FileFix(path, write_path, data, None, (), tuple(declined))
    out: list[str] = []
    skip_to = 0
    for index in range(len(lines) + 1):
        if index in inserts:
            if out and not out[-1].endswith(("\n", "\r")):
                out[-1] += newline  # the last line had no ending; lines now follow it
            out.extend(line + newline for line in inserts[index])
        if index in replaced:
            end, new_lines = replaced[index]
            ending = endings[end - 1] if end - 1 < len(endings) else newline
            out.extend(line + (ending or newline) for line in new_lines[:-1])
            out.extend(line + ending for line in new_lines[-1:])
            skip_to = end
        if skip_to <= index < len(lines):
            out.append(lines[index] + endings[index])
    after = (("\ufeff" if bom else "") + "".join(out)).encode("utf-8")
    return FileFix(path, write_path, data, after, tuple(changes), tuple(declined))


def has_fix(check_id: str) -> bool:
    return check_id in _BY_CHECK


def fix_is_complete(check_id: str) -> bool:
    return _BY_CHECK[check_id].complete
