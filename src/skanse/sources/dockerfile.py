"""Dockerfiles (and Containerfiles) parsed the way BuildKit reads them, with line ranges.

Covered: parser directives (`# syntax=`, `# escape=`, `# check=`) at the top; continuation
lines with the escape character, including comment and blank lines inside a continuation;
BuildKit heredocs (`RUN <<EOF`, `<<-EOF`, quoted words, several on one line); leading
`--flag[=value]` options (`--mount`, `--from`, `--chown`, `--platform`, ...); JSON (exec) and
shell forms; ONBUILD; multi-stage builds with `AS name`, `FROM <stage>` and global `ARG`
substitution in FROM (`$V`, `${V}`, `${V:-default}`, `${V:+alt}`).

A line that is not an instruction is reported with its line number and the rest of the file
is still parsed. Written by hand: the one maintained parser (moby/buildkit) is Go, and the
Python packages that wrap or imitate it do not handle heredocs.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from skanse.model import InputProblem, Location, ProblemKind, ResourceRef, SkippedDocument
from skanse.sources.files import is_dockerfile_name, looks_binary, read_file, too_large
from skanse.sources.ignores import InlineIgnore, parse_ignore_comment

__all__ = [
    "INSTRUCTIONS",
    "Dockerfile",
    "DockerfileInput",
    "DockerfileProblem",
    "Heredoc",
    "Instruction",
    "Stage",
    "is_dockerfile_name",
    "parse_dockerfile",
    "read_dockerfile",
    "read_dockerfile_bytes",
    "substitute",
]

INSTRUCTIONS = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
        "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
        "WORKDIR",
    }
)  # fmt: skip
_HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})
_FLAGGED = frozenset({"FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"})
_JSON_FORM = frozenset({"CMD", "ENTRYPOINT", "RUN", "SHELL", "COPY", "ADD", "VOLUME"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_FLAG = re.compile(r"--([a-zA-Z][a-zA-Z0-9-]*)(?:=((?:\"[^\"]*\"|'[^']*'|\S)*))?")
_VARIABLE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True, slots=True)
class Heredoc:
    word: str
    body: str
    strip_tabs: bool
    quoted: bool  # a quoted word disables variable expansion in the body
    start_line: int  # first body line


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction with everything BuildKit sees in it."""

    keyword: str  # upper case
    args: str  # the arguments after the flags, continuation lines joined with spaces
    flags: Mapping[str, str | None]
    start_line: int
    end_line: int
    original: str  # the source text of the instruction line(s), heredoc bodies excluded
    heredocs: tuple[Heredoc, ...] = ()
    json_args: tuple[str, ...] | None = None  # exec form, when the arguments are a JSON array
    onbuild: Instruction | None = None

    @property
    def words(self) -> list[str]:
        """The arguments as words: the exec-form array or the shell-form split."""
        return list(self.json_args) if self.json_args is not None else self.args.split()

    @property
    def shell(self) -> str:
        """The command text a shell would run: shell form args, or heredoc bodies for `<<`."""
        if self.json_args is not None:
            return " ".join(self.json_args)
        if self.heredocs and _HEREDOC.match(self.args.strip()):
            return "\n".join(h.body for h in self.heredocs)
        return self.args


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    name: str | None  # the `AS` name, lower-cased as BuildKit compares it
    base: str  # the image after global ARG substitution (or a stage name)
    base_raw: str
    platform: str | None
    from_instruction: int  # index in Dockerfile.instructions
    instructions: tuple[int, ...]  # indices of the stage's instructions after FROM
    base_stage: int | None  # index of the stage it builds on, for `FROM <stage>`
    unresolved: bool  # the base still holds a variable with no default


@dataclass(frozen=True, slots=True)
class DockerfileProblem:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile: the object Dockerfile checks look at."""

    path: str
    directives: Mapping[str, str]
    instructions: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    global_args: Mapping[str, str | None]
    problems: tuple[DockerfileProblem, ...] = ()
    line_count: int = 0

    @property
    def resource(self) -> ResourceRef:
        return ResourceRef(kind="Dockerfile", name=self.path)

    def stage_instructions(self, stage: Stage) -> list[tuple[int, Instruction]]:
        return [(i, self.instructions[i]) for i in stage.instructions]

    def location(self, pointer: str = "") -> Location:
        """Pointers: "" (the file), /stages/N (its FROM), /stages/N/instructions/M."""
        line = 1
        parts = pointer.strip("/").split("/") if pointer else []
        if len(parts) >= 2 and parts[0] == "stages" and parts[1].isdigit():
            stage = self.stages[int(parts[1])]
            index = stage.from_instruction
            if len(parts) >= 4 and parts[2] == "instructions" and parts[3].isdigit():
                index = stage.instructions[int(parts[3])]
            line = self.instructions[index].start_line
        elif len(parts) >= 2 and parts[0] == "instructions" and parts[1].isdigit():
            line = self.instructions[int(parts[1])].start_line
        return Location(file=self.path, line=line, column=1, pointer=pointer, document=0)

    def pointer_of(self, index: int) -> str:
        """The pointer of instruction `index`: its stage's FROM or its place in the stage."""
        # Stages and their instruction indices are ascending: bisect rather than scan, as
        # this runs once per ignore comment (a scan per call was quadratic in the file).
        position = bisect.bisect_right(self.stages, index, key=lambda s: s.from_instruction)
        if position:
            stage = self.stages[position - 1]
            if stage.from_instruction == index:
                return f"/stages/{stage.index}"
            place = bisect.bisect_left(stage.instructions, index)
            if place < len(stage.instructions) and stage.instructions[place] == index:
                return f"/stages/{stage.index}/instructions/{place}"
        return f"/instructions/{index}"


def substitute(text: str, variables: Mapping[str, str | None]) -> tuple[str, bool]:
    """Expand $V, ${V}, ${V:-default} and ${V:+alt}; also says whether something stayed unknown."""
    unknown = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unknown
        name = match.group(1) or match.group(4)
        operator, word = match.group(2), match.group(3)
        value = variables.get(name)
        if operator == "-":
            return value if value else (word or "")
        if operator == "+":
            return (word or "") if value else ""
        if value is None:
            unknown = True
            return ""
        return value

    return _VARIABLE.sub(replace, text), unknown


def _split_flags(text: str) -> tuple[dict[str, str | None], str]:
    flags: dict[str, str | None] = {}
    rest = text.lstrip()
    while rest.startswith("--"):
        match = _FLAG.match(rest)
        if match is None:
            break
        value = match.group(2)
        if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        name = match.group(1).lower()
        # --mount may repeat; keep every value, newline-separated
        flags[name] = (
            value if name not in flags or flags[name] is None else f"{flags[name]}\n{value}"
        )
        rest = rest[match.end() :].lstrip()
    return flags, rest


def _json_args(text: str) -> tuple[str, ...] | None:
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


class _Reader:
    """Walks the lines once, joining continuations and collecting heredoc bodies."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.escape = "\\"
        self.directives: dict[str, str] = {}
        self.problems: list[DockerfileProblem] = []
        self.instructions: list[Instruction] = []

    def read_directives(self) -> int:
        index = 0
        while index < len(self.lines):
            match = _DIRECTIVE.match(self.lines[index].strip())
            if match is None or match.group(1).lower() in self.directives:
                break
            key = match.group(1).lower()
            if key not in ("syntax", "escape", "check"):
                break  # an ordinary comment ends the directives
            self.directives[key] = match.group(2)
            index += 1
        escape = self.directives.get("escape", "\\")
        if escape in ("\\", "`"):
            self.escape = escape
        elif "escape" in self.directives:
            self.problems.append(DockerfileProblem(1, f"invalid escape directive {escape!r}"))
        return index

    def parse(self) -> None:
        index = self.read_directives()
        while index < len(self.lines):
            line = self.lines[index]
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                index += 1
                continue
            index = self._instruction(index)

    def _continues(self, line: str) -> tuple[str, bool]:
        """BuildKit continues a line that ends with the escape character (then blanks)."""
        body = line.rstrip()
        if body.endswith(self.escape):
            return body[: -len(self.escape)], True
        return line, False

    def _instruction(self, start: int) -> int:
        parts: list[str] = []
        original: list[str] = []
        index = start
        while index < len(self.lines):
            line = self.lines[index]
            original.append(line)
            index += 1
            if index - 1 > start and (not line.strip() or line.strip().startswith("#")):
                continue  # comments and empty lines inside a continuation are dropped
            text, more = self._continues(line)
            parts.append(text.strip())
            if not more:
                break
        end = index
        keyword, _, rest = " ".join(p for p in parts if p).partition(" ")
        upper = keyword.upper()
        if upper not in INSTRUCTIONS:
            self.problems.append(
                DockerfileProblem(start + 1, f"unknown instruction {keyword!r}; line skipped")
            )
            return index
        carrier = rest.strip().partition(" ")[0].upper() if upper == "ONBUILD" else upper
        heredocs: list[Heredoc] = []
        if carrier in _HEREDOC_INSTRUCTIONS:
            for match in _HEREDOC.finditer(rest):
                heredoc, index = self._heredoc(match, index, start)
                heredocs.append(heredoc)
        self.instructions.append(
            _build(upper, rest, start + 1, end, "\n".join(original), tuple(heredocs))
        )
        return index

    def _heredoc(self, match: re.Match[str], index: int, start: int) -> tuple[Heredoc, int]:
        """Read one heredoc body from line `index` up to its terminator."""
        strip_tabs, quoted, word = match.group(1) == "-", bool(match.group(2)), match.group(3)
        body: list[str] = []
        body_start = index + 1
        while index < len(self.lines):
            line = self.lines[index]
            index += 1
            if (line.lstrip("\t") if strip_tabs else line) == word:
                break
            body.append(line.lstrip("\t") if strip_tabs else line)
        else:
            self.problems.append(
                DockerfileProblem(start + 1, f"heredoc <<{word} is never terminated")
            )
        return Heredoc(word, "\n".join(body) + "\n", strip_tabs, quoted, body_start), index


def _build(
    keyword: str, rest: str, start: int, end: int, original: str, heredocs: tuple[Heredoc, ...]
) -> Instruction:
    if keyword == "ONBUILD":
        inner_keyword, _, inner_rest = rest.strip().partition(" ")
        inner = None
        if inner_keyword.upper() in INSTRUCTIONS:
            inner = _build(inner_keyword.upper(), inner_rest, start, end, original, heredocs)
        return Instruction(keyword, rest.strip(), {}, start, end, original, heredocs, None, inner)
    flags: dict[str, str | None] = {}
    args = rest.strip()
    if keyword in _FLAGGED:
        flags, args = _split_flags(rest)
    json_args = _json_args(args) if keyword in _JSON_FORM else None
    return Instruction(keyword, args.strip(), flags, start, end, original, heredocs, json_args)


def parse_dockerfile(path: str, text: str) -> Dockerfile:
    """Parse a Dockerfile; problems are collected, never raised."""
    reader = _Reader(text)
    reader.parse()
    instructions = reader.instructions
    problems = reader.problems
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    # Each stage's instruction indices, frozen into its Stage once at the end: growing the
    # tuple per instruction copied it each time (quadratic; 128,000 RUN lines took 47 s).
    members: list[list[int]] = []
    names: dict[str, int] = {}
    for index, ins in enumerate(instructions):
        if ins.keyword == "FROM":
            stages.append(_stage(len(stages), index, ins, global_args, names, problems))
            members.append([])
            if stages[-1].name is not None:
                names[stages[-1].name] = stages[-1].index
        elif stages:
            members[-1].append(index)
        elif ins.keyword == "ARG":
            global_args.update(_arg_definitions(ins.args))
        else:
            problems.append(
                DockerfileProblem(ins.start_line, f"{ins.keyword} before the first FROM")
            )
    if not stages and not problems:
        problems.append(DockerfileProblem(1, "no FROM instruction: not a Dockerfile"))
    return Dockerfile(
        path=path,
        directives=reader.directives,
        instructions=tuple(instructions),
        stages=tuple(
            dataclasses.replace(stage, instructions=tuple(own))
            for stage, own in zip(stages, members, strict=True)
        ),
        global_args=global_args,
        problems=tuple(problems),
        line_count=len(reader.lines),
    )


def _stage(
    position: int,
    index: int,
    ins: Instruction,
    global_args: Mapping[str, str | None],
    names: Mapping[str, int],
    problems: list[DockerfileProblem],
) -> Stage:
    words = ins.args.split()
    raw = words[0] if words else ""
    name = None
    if len(words) >= 3 and words[1].lower() == "as":
        name = words[2].lower()
    elif len(words) > 1:
        problems.append(DockerfileProblem(ins.start_line, "FROM takes an image and 'AS name'"))
    if not raw:
        problems.append(DockerfileProblem(ins.start_line, "FROM without an image"))
    base, unresolved = substitute(raw, global_args)
    return Stage(
        index=position,
        name=name,
        base=base,
        base_raw=raw,
        platform=ins.flags.get("platform"),
        from_instruction=index,
        instructions=(),
        base_stage=names.get(base.lower()),
        unresolved=unresolved,
    )


def _arg_definitions(args: str) -> list[tuple[str, str | None]]:
    found = []
    for word in args.split():
        name, sep, value = word.partition("=")
        if sep and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found.append((name, value if sep else None))
    return found


@dataclass(slots=True)
class DockerfileInput:
    """What reading one Dockerfile gave: the parse, problems, skips and inline ignores."""

    path: str
    dockerfile: Dockerfile | None = None
    problems: list[InputProblem] = dataclasses.field(default_factory=list)
    skipped: list[SkippedDocument] = dataclasses.field(default_factory=list)
    ignores: list[InlineIgnore] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


def read_dockerfile_bytes(path: str, data: bytes, max_bytes: int) -> DockerfileInput:
    """Parse the bytes of a Dockerfile; lines that are not instructions become problems and
    the rest is still checked. A template (`{{ ... }}`) is skipped with the reason."""
    result = DockerfileInput(path)
    if len(data) > max_bytes:
        result.problems.append(too_large(path, len(data), max_bytes))
        return result
    if looks_binary(data):
        result.problems.append(
            InputProblem(path, ProblemKind.BINARY, "binary file, not a Dockerfile")
        )
        return result
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    dockerfile = parse_dockerfile(path, text)
    if dockerfile.problems and "{{" in text:
        result.skipped.append(
            SkippedDocument(path, 0, "a Dockerfile template, not a Dockerfile yet: render it first")
        )
        return result
    result.dockerfile = dockerfile
    for problem in dockerfile.problems:
        result.problems.append(
            InputProblem(path, ProblemKind.PARSE, problem.message, line=problem.line)
        )
    if "skanse:ignore" in text:
        _collect_ignores(result, dockerfile, text)
    return result


def read_dockerfile(path: str, max_bytes: int) -> DockerfileInput:
    data = read_file(path, max_bytes)
    if isinstance(data, InputProblem):
        return DockerfileInput(path, problems=[data])
    return read_dockerfile_bytes(path, data, max_bytes)


def _collect_ignores(result: DockerfileInput, df: Dockerfile, text: str) -> None:
    """An ignore comment covers the instruction that follows it (or the one it sits in);
    above a FROM it covers the whole stage. Heredoc bodies are text, not comments."""
    # Built once and looked up per comment: scanning the instructions (or the heredoc
    # bodies) for every comment was quadratic, and a Dockerfile full of ignore comments
    # stalled the scan (32,000 comments took 25 s).
    in_body = {
        number
        for ins in df.instructions
        for h in ins.heredocs
        for number in range(h.start_line, h.start_line + h.body.count("\n"))
    }
    end_lines = [ins.end_line for ins in df.instructions]  # ascending, as the file reads
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("#"):
            continue
        parsed = parse_ignore_comment(line)
        if parsed is None or number in in_body:
            continue
        where = f"{result.path}:{number}"
        if isinstance(parsed, str):
            result.warnings.append(f"{where}: {parsed}")
            continue
        # the first instruction that ends on or after the comment
        target = bisect.bisect_left(end_lines, number)
        if target == len(end_lines):
            result.warnings.append(f"{where}: skanse:ignore does not precede any instruction")
            continue
        scope = df.pointer_of(target)
        result.ignores.append(
            InlineIgnore(parsed.ids, parsed.reason, parsed.expires, number, 0, scope)
        )
