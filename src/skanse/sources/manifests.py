"""Find and read Kubernetes manifests: files, directories and standard input.

Reading never raises for a bad input: every problem becomes an `InputProblem` (missing,
unreadable, too large, binary, malformed or hostile YAML) so the other inputs are still read.
Documents that are not Kubernetes objects (Helm values, CI files, a bare list) are kept as
`SkippedDocument`s with the reason. `kind: List` and `kubectl get -o yaml` lists are expanded.
Inline `# skanse:ignore=<ID> reason="..."` comments are parsed here, where the text is.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from skanse.errors import YamlError
from skanse.model import InputProblem, ProblemKind, SkippedDocument
from skanse.sources.kubernetes import K8sObject, as_list
from skanse.sources.yamlpos import Limits, Span, YamlDocument, join_pointer, load_documents

__all__ = [
    "CONFIG_FILE_NAMES",
    "MANIFEST_SUFFIXES",
    "STDIN",
    "InlineIgnore",
    "ManifestFile",
    "ReadLimits",
    "discover",
    "read_bytes",
    "read_path",
]

STDIN = "-"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
CONFIG_FILE_NAMES = (".skanse.yaml", ".skanse.yml")
_BINARY_SNIFF = 8192


@dataclass(frozen=True, slots=True)
class ReadLimits:
    max_file_bytes: int = 32 * 1024 * 1024
    yaml: Limits = Limits()


@dataclass(frozen=True, slots=True)
class InlineIgnore:
    """A `# skanse:ignore=ID[,ID] reason="..." [expires=YYYY-MM-DD]` comment, bound to a node.

    A comment on its own line covers the node that starts on the next content line and
    everything under it (above `apiVersion:` that is the whole object); a comment at the end
    of a line covers the node that starts on that line.
    """

    ids: tuple[str, ...]
    reason: str
    expires: dt.date | None
    line: int
    document: int
    scope: str  # JSON pointer prefix within the document

    def covers(self, document: int, pointer: str) -> bool:
        if document != self.document:
            return False
        return not self.scope or pointer == self.scope or pointer.startswith(self.scope + "/")


@dataclass(slots=True)
class ManifestFile:
    """What one input held: objects to check, and everything that could not be checked."""

    path: str
    objects: list[K8sObject] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    skipped: list[SkippedDocument] = field(default_factory=list)
    ignores: list[InlineIgnore] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discover(targets: Sequence[str]) -> Iterator[str | InputProblem]:
    """The files to read, in a stable order: explicit files as given, directories walked.

    In directories only *.yaml, *.yml and *.json files are taken; hidden directories (.git)
    and skanse's own config file are skipped; symlinked directories are not followed.
    """
    for target in targets:
        if target == STDIN:
            yield STDIN
            continue
        try:
            info = os.stat(target)
        except FileNotFoundError:
            yield InputProblem(target, ProblemKind.MISSING, "no such file or directory")
            continue
        except OSError as exc:
            yield InputProblem(target, ProblemKind.UNREADABLE, exc.strerror or str(exc))
            continue
        if not stat.S_ISDIR(info.st_mode):
            yield target
            continue
        for root, dirs, files in os.walk(target, onerror=None):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(MANIFEST_SUFFIXES) and name not in CONFIG_FILE_NAMES:
                    yield os.path.join(root, name)


def read_path(path: str, limits: ReadLimits) -> ManifestFile:
    """Read one file; a file that cannot be read comes back with a problem and no objects."""
    result = ManifestFile(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        result.problems.append(InputProblem(path, ProblemKind.MISSING, "no such file"))
        return result
    except OSError as exc:
        result.problems.append(InputProblem(path, ProblemKind.UNREADABLE, exc.strerror or str(exc)))
        return result
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            result.problems.append(InputProblem(path, ProblemKind.UNREADABLE, "not a regular file"))
            return result
        if info.st_size > limits.max_file_bytes:
            result.problems.append(_too_large(path, info.st_size, limits))
            return result
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except OSError as exc:
        result.problems.append(InputProblem(path, ProblemKind.UNREADABLE, exc.strerror or str(exc)))
        return result
    finally:
        os.close(fd)
    if len(data) > limits.max_file_bytes:
        result.problems.append(_too_large(path, len(data), limits))
        return result
    return read_bytes(path, data, limits)


def _too_large(path: str, size: int, limits: ReadLimits) -> InputProblem:
    return InputProblem(
        path,
        ProblemKind.TOO_LARGE,
        f"file is {size / 1048576:.1f} MiB, over the {limits.max_file_bytes / 1048576:.0f} MiB "
        "limit (raise it with --max-file-size)",
    )


def _looks_binary(data: bytes) -> bool:
    head = data[:_BINARY_SNIFF]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte order mark
        return False
    return b"\x00" in head


def read_bytes(path: str, data: bytes, limits: ReadLimits) -> ManifestFile:
    """Parse the bytes of one input (a file or standard input) into objects."""
    result = ManifestFile(path)
    if _looks_binary(data):
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
        if b"{{" in data:
            result.skipped.append(
                SkippedDocument(
                    path,
                    len(documents),
                    "a Helm or Go template, not YAML yet: render it first "
                    "(helm template ... | skanse scan -)",
                    exc.line or 1,
                )
            )
        else:
            result.problems.append(_parse_problem(path, exc, None))
    if has_ignores and documents:
        text = data.decode("utf-8", errors="replace")
        _collect_ignores(result, text, documents, spans or [])
    return result


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


_IGNORE = re.compile(r"(?:^|\s)#\s*skanse:ignore=([A-Za-z0-9_,\-]+)(.*)$")
_ATTR = re.compile(r"""(\w+)=(?:"([^"]*)"|'([^']*)'|(\S+))""")


def _collect_ignores(
    result: ManifestFile, text: str, documents: list[YamlDocument], spans: list[Span]
) -> None:
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if "skanse:ignore" not in line:
            continue
        match = _IGNORE.search(line)
        if match is None:
            continue
        column = match.start() + (1 if match.group(0)[0].isspace() else 0) + 1
        if _inside_scalar(spans, number, column):
            continue  # text inside a string (a ConfigMap holding a manifest), not a comment
        where = f"{result.path}:{number}"
        ids = tuple(i.strip().upper() for i in match.group(1).split(",") if i.strip())
        attrs = {
            m.group(1): next(g for g in m.groups()[1:] if g is not None)
            for m in _ATTR.finditer(match.group(2))
        }
        reason = attrs.get("reason", "").strip()
        if not reason:
            result.warnings.append(
                f'{where}: skanse:ignore without reason="..." is not applied '
                "(every suppression needs a reason)"
            )
            continue
        expires = None
        if "expires" in attrs:
            try:
                expires = dt.date.fromisoformat(attrs["expires"])
            except ValueError:
                result.warnings.append(
                    f"{where}: skanse:ignore has an invalid expires={attrs['expires']} "
                    "(expected YYYY-MM-DD) and is not applied"
                )
                continue
        trailing = bool(line[: column - 1].strip())
        target = number if trailing else _next_content_line(lines, number)
        bound = _bind(documents, target) if target is not None else None
        if bound is None:
            result.warnings.append(f"{where}: skanse:ignore does not precede any YAML node")
            continue
        document, scope = bound
        result.ignores.append(InlineIgnore(ids, reason, expires, number, document, scope))


def _inside_scalar(spans: list[Span], line: int, column: int) -> bool:
    for s in spans:
        if (s.start_line, s.start_column) <= (line, column) < (s.end_line, s.end_column):
            return True
    return False


def _next_content_line(lines: list[str], after: int) -> int | None:
    for number in range(after + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#") and stripped not in ("---", "..."):
            return number
    return None


def _bind(documents: list[YamlDocument], line: int) -> tuple[int, str] | None:
    """The document and the shallowest node that starts on `line`."""
    candidates = [d for d in documents if d.start_line <= line]
    if not candidates:
        return None
    doc = candidates[-1]
    best: str | None = None
    for pointer, (node_line, _) in doc.positions.items():
        if node_line == line and (best is None or pointer.count("/") < best.count("/")):
            best = pointer
    if best is None:
        return None
    return doc.index, best
