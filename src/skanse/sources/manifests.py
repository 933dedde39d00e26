"""Read Kubernetes manifests: files and standard input.

Reading never raises for a bad input: every problem becomes an `InputProblem` (missing,
unreadable, too large, binary, malformed or hostile YAML) so the other inputs are still read.
Documents that are not Kubernetes objects (Helm values, CI files, a bare list) are kept as
`SkippedDocument`s with the reason. `kind: List` and `kubectl get -o yaml` lists are expanded.
Inline `# skanse:ignore=<ID> reason="..."` comments are parsed here, where the text is.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from skanse.errors import YamlError
from skanse.model import InputProblem, ProblemKind, SkippedDocument
from skanse.sources.files import looks_binary, read_file, too_large
from skanse.sources.ignores import InlineIgnore, parse_ignore_comment
from skanse.sources.kubernetes import K8sObject, as_list
from skanse.sources.yamlpos import Limits, Span, YamlDocument, join_pointer, load_documents

__all__ = ["ManifestFile", "ReadLimits", "read_bytes", "read_path"]


@dataclass(frozen=True, slots=True)
class ReadLimits:
    max_file_bytes: int = 32 * 1024 * 1024
    yaml: Limits = Limits()


@dataclass(slots=True)
class ManifestFile:
    """What one input held: objects to check, and everything that could not be checked."""

    path: str
    objects: list[K8sObject] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    skipped: list[SkippedDocument] = field(default_factory=list)
    ignores: list[InlineIgnore] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_path(path: str, limits: ReadLimits) -> ManifestFile:
    """Read one file; a file that cannot be read comes back with a problem and no objects."""
    data = read_file(path, limits.max_file_bytes)
    if isinstance(data, InputProblem):
        result = ManifestFile(path)
        result.problems.append(data)
        return result
    return read_bytes(path, data, limits)


def read_bytes(path: str, data: bytes, limits: ReadLimits) -> ManifestFile:
    """Parse the bytes of one input (a file or standard input) into objects."""
    result = ManifestFile(path)
    if len(data) > limits.max_file_bytes:
        result.problems.append(too_large(path, len(data), limits.max_file_bytes))
        return result
    if looks_binary(data):
        result.problems.append(
            InputProblem(path, ProblemKind.BINARY, "binary file, not YAML or JSON")
        )
        return result
    has_ignores = b"skanse:ignore" in data
    spans: list[Span] | None = [] if has_ignores else None
    documents: list[YamlDocument] = []
    try:
        for doc in load_documents(data, limits=limits.yaml, scalar_spans=spans):
            if isinstance(doc, YamlError):
                result.problems.append(_parse_problem(path, doc, doc.document))
                continue
            documents.append(doc)
            _collect_objects(result, doc)
    except YamlError as exc:
        # Never a skip: a file that does not parse was meant to be checked (a `{{` in a
        # comment must not turn a malformed Deployment into a pass). A template gets the hint.
        if _looks_like_template(path, data):
            result.problems.append(
                InputProblem(
                    path,
                    ProblemKind.UNRENDERED,
                    f"not YAML ({exc.message}): a Helm or Go template? render it first "
                    "(helm template CHART | skanse scan -)",
                    line=exc.line,
                    column=exc.column,
                )
            )
        else:
            result.problems.append(_parse_problem(path, exc, None))
    if has_ignores and documents:
        text = data.decode("utf-8", errors="replace")
        _collect_ignores(result, text, documents, spans or [])
    return result


# Quoted scalars and comments, which may hold `{{` in plain YAML (an alert text, a note).
_NOT_TEMPLATE_TEXT = re.compile(
    rb'"(?:[^"\\\n]|\\.)*"' rb"|'(?:[^'\n]|'')*'" rb"|(?:^|(?<=[ \t]))#[^\n]*",
    re.MULTILINE,
)


def _looks_like_template(path: str, data: bytes) -> bool:
    """Whether a file that did not parse is a template: under a chart's `templates/`, or
    with a `{{` outside comments and quoted strings (where it breaks the YAML)."""
    if "templates" in PurePosixPath(path.replace("\\", "/")).parts[:-1]:
        return True
    return b"{{" in data and b"{{" in _NOT_TEMPLATE_TEXT.sub(b"", data)


def _parse_problem(path: str, error: YamlError, document: int | None) -> InputProblem:
    return InputProblem(
        path,
        ProblemKind.PARSE,
        error.message,
        line=error.line,
        column=error.column,
        document=document,
    )


def _collect_objects(result: ManifestFile, doc: YamlDocument) -> None:
    data = doc.data
    if not isinstance(data, dict):
        what = "a list" if isinstance(data, list) else "a single value"
        result.skipped.append(
            SkippedDocument(
                result.path, doc.index, f"document is {what}, not an object", doc.start_line
            )
        )
        return
    kind, api_version = data.get("kind"), data.get("apiVersion")
    if not (isinstance(kind, str) and kind and isinstance(api_version, str) and api_version):
        result.skipped.append(
            SkippedDocument(
                result.path,
                doc.index,
                "no apiVersion and kind: not a Kubernetes object",
                doc.start_line,
            )
        )
        return
    if kind == "List" or (kind.endswith("List") and isinstance(data.get("items"), list)):
        # The API's typed lists (PodList from GET /api/v1/pods) leave the kind out of items.
        item_kind = kind[: -len("List")] if kind != "List" else ""
        for i, item in enumerate(as_list(data.get("items"))):
            pointer = join_pointer("/items", i)
            if item_kind and isinstance(item, dict) and "kind" not in item:
                item = {"apiVersion": api_version, "kind": item_kind, **item}
            if isinstance(item, dict) and isinstance(item.get("kind"), str):
                result.objects.append(K8sObject(item, result.path, doc, pointer))
            else:
                line = doc.position(pointer)[0]
                result.skipped.append(
                    SkippedDocument(
                        result.path, doc.index, f"item {i} of the {kind} has no kind", line
                    )
                )
        return
    result.objects.append(K8sObject(data, result.path, doc))


def _collect_ignores(
    result: ManifestFile, text: str, documents: list[YamlDocument], spans: list[Span]
) -> None:
    # Each comment used to pass over every scalar span, every node position of its document
    # and the comments after it: quadratic, so a manifest of 4,000 ignored containers took
    # 10 s to read. The spans, nodes and lines are indexed once here instead.
    lines = text.splitlines()
    scalars = _Scalars.of(spans)
    nodes = _Nodes(documents)
    following: list[int | None] | None = None
    for number, line in enumerate(lines, start=1):
        parsed = parse_ignore_comment(line)
        if parsed is None:
            continue
        where = f"{result.path}:{number}"
        if isinstance(parsed, str):
            if not scalars.contain(number, line.find("#") + 1):
                result.warnings.append(f"{where}: {parsed}")
            continue
        if scalars.contain(number, parsed.column):
            continue  # text inside a string (a ConfigMap holding a manifest), not a comment
        trailing = bool(line[: parsed.column - 1].strip())
        if trailing:
            target: int | None = number
        else:
            if following is None:
                following = _next_content_lines(lines)
            target = following[number]
        bound = nodes.bind(target) if target is not None else None
        if bound is None:
            result.warnings.append(f"{where}: skanse:ignore does not precede any YAML node")
            continue
        document, scope = bound
        result.ignores.append(
            InlineIgnore(parsed.ids, parsed.reason, parsed.expires, number, document, scope)
        )


@dataclass(frozen=True, slots=True)
class _Scalars:
    """The scalar spans by start, each with the furthest end of it and those before it: a
    place lies inside a scalar exactly when the furthest end among the spans that start at
    or before it lies after it, which one bisection finds (spans may be empty)."""

    starts: list[tuple[int, int]]
    reach: list[tuple[int, int]]

    @classmethod
    def of(cls, spans: list[Span]) -> _Scalars:
        starts: list[tuple[int, int]] = []
        reach: list[tuple[int, int]] = []
        furthest = (0, 0)
        for s in sorted(spans, key=lambda s: (s.start_line, s.start_column)):
            starts.append((s.start_line, s.start_column))
            furthest = max(furthest, (s.end_line, s.end_column))
            reach.append(furthest)
        return cls(starts, reach)

    def contain(self, line: int, column: int) -> bool:
        i = bisect_right(self.starts, (line, column))
        return i > 0 and (line, column) < self.reach[i - 1]


def _next_content_lines(lines: list[str]) -> list[int | None]:
    """For each line number (and 0), the first line after it that holds YAML content, found
    in one backward pass (walking forward from each comment of a run is quadratic)."""
    following: list[int | None] = [None] * (len(lines) + 1)
    nearest: int | None = None
    for number in range(len(lines), 0, -1):
        following[number] = nearest
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#") and stripped not in ("---", "..."):
            nearest = number
    following[0] = nearest
    return following


class _Nodes:
    """Finds the document and the shallowest node that start on a line; each document's
    nodes are grouped by line once, the first time a comment lands in it."""

    def __init__(self, documents: list[YamlDocument]) -> None:
        # load_documents yields the documents in stream order, so their start lines ascend
        self.documents = documents
        self.starts = [d.start_line for d in documents]
        self.by_line: dict[int, dict[int, str]] = {}

    def bind(self, line: int) -> tuple[int, str] | None:
        i = bisect_right(self.starts, line) - 1
        if i < 0:
            return None
        shallowest = self.by_line.get(i)
        if shallowest is None:
            shallowest = self.by_line[i] = _shallowest_by_line(self.documents[i])
        best = shallowest.get(line)
        if best is None:
            return None
        return self.documents[i].index, best


def _shallowest_by_line(doc: YamlDocument) -> dict[int, str]:
    """The node with the fewest pointer segments on each line; the first one on a tie."""
    best: dict[int, str] = {}
    for pointer, (line, _) in doc.positions.items():
        current = best.get(line)
        if current is None or pointer.count("/") < current.count("/"):
            best[line] = pointer
    return best
