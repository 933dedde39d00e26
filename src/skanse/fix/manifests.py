"""Fix one Kubernetes manifest file: plan on plain data, edit through ruamel.yaml, verify.

The file is read and planned with the scanner's own parser (fast, with positions); only a
file that needs edits is loaded with ruamel.yaml's round-trip mode, once. The edits are
replayed on ruamel's tree, the tree is dumped before and after, and the difference is merged
onto the original text (`skanse.fix.merge`) so that untouched lines keep every byte. What
would be written is parsed again and must equal the planned data, keep every comment line
and still hold the same objects; otherwise the next candidate (no comment hoisting, then
ruamel's full output) is tried, and if none passes the file is left untouched and reported.
JSON manifests get the same treatment with the json module (JSON has no comments).
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from skanse.errors import YamlError
from skanse.fix.kubernetes import ObjectPlan, plan_object
from skanse.fix.merge import is_comment_line, merge_lines
from skanse.fix.model import Change, Declined, FileFix
from skanse.fix.ops import Containers, EditConflict, Op, apply_op
from skanse.model import Finding
from skanse.sources.kubernetes import K8sObject
from skanse.sources.manifests import ReadLimits, read_bytes
from skanse.sources.yamlpos import YamlDocument, load_documents

__all__ = ["fix_manifest", "guess_indent"]

_KEY_ONLY = re.compile(r"""^( *)(?:[^\s#\-'"][^:#]*|"[^"]*"|'[^']*'):\s*(?:#.*)?$""")


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, offset of a sequence's dash under its key), the file's usual ones."""
    lines = text.splitlines()
    mappings: Counter[int] = Counter()
    dashes: Counter[int] = Counter()
    for number, line in enumerate(lines):
        match = _KEY_ONLY.match(line)
        if match is None:
            continue
        for following in lines[number + 1 : number + 50]:
            stripped = following.strip()
            if not stripped or stripped.startswith("#"):
                continue
            depth = len(following) - len(following.lstrip(" ")) - len(match.group(1))
            if stripped == "-" or stripped.startswith("- "):
                if depth >= 0:
                    dashes[depth] += 1
            elif depth > 0:
                mappings[depth] += 1
            break
    mapping = mappings.most_common(1)[0][0] if mappings else 2
    offset = dashes.most_common(1)[0][0] if dashes else 0
    return mapping, offset


def _ruamel_containers() -> Containers:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def unflow(node: Any) -> None:
        if isinstance(node, CommentedMap | CommentedSeq):
            node.fa.set_block_style()

    return Containers(mapping=CommentedMap, sequence=CommentedSeq, unflow=unflow)


def _comment_lines(text: str) -> Counter[str]:
    return Counter(line.strip() for line in text.split("\n") if is_comment_line(line))


class _Unfixable(Exception):
    """This file cannot be fixed safely; the message says why."""


def fix_manifest(
    path: str,
    write_path: str,
    data: bytes,
    findings: Sequence[Finding],
    suppressed: Sequence[Finding],
    limits: ReadLimits,
    *,
    unsafe: bool = False,
) -> FileFix:
    """Plan and render the fixes for one manifest file (nothing is written here); unsafe
    fixes only with `unsafe`."""
    manifest = read_bytes(path, data, limits)
    if manifest.problems:
        problem = manifest.problems[0]
        where = f"line {problem.line}: " if problem.line else ""
        return FileFix(
            path, write_path, data, None, problem=f"cannot be parsed ({where}{problem.message})"
        )
    plans = []
    owners = _Owners(manifest.objects)
    hidden: dict[int, list[Finding]] = {}
    for finding in suppressed:
        owner = owners.of(finding)
        if owner is not None:
            hidden.setdefault(id(owner), []).append(finding)
    try:
        for obj, own in _assign(owners, findings):
            plans.append(plan_object(obj, own, hidden.get(id(obj), []), unsafe=unsafe))
    except _Unfixable as exc:
        return FileFix(path, write_path, data, None, problem=str(exc))
    changes: list[Change] = [c for p in plans for c in p.changes]
    declined: list[Declined] = [d for p in plans for d in p.declined]
    if not any(p.ops for p in plans):
        return FileFix(path, write_path, data, None, (), tuple(declined))
    try:
        after = _render(data, [p for p in plans if p.ops], manifest.objects)
    except _Unfixable as exc:
        return FileFix(path, write_path, data, None, (), tuple(declined), problem=str(exc))
    return FileFix(path, write_path, data, after, tuple(changes), tuple(declined))


class _Owners:
    """The objects of a file by (document, base): a finding's object is found from its
    pointer's prefixes, not by trying every object (findings x objects was quadratic: a file
    of 4,000 Pods with one suppressed finding each took 36 s to fix)."""

    def __init__(self, objects: Sequence[K8sObject]) -> None:
        self._by_base = {(o.document.index, o.base): o for o in objects}

    def of(self, finding: Finding) -> K8sObject | None:
        """The object whose base is the longest prefix of the finding's pointer (whole
        tokens) in its document: "" for a document's one object, "/items/N" in a List."""
        document, pointer = finding.location.document, finding.location.pointer
        cut = len(pointer)
        while True:
            found = self._by_base.get((document, pointer[:cut]))
            if found is not None or cut <= 0:
                return found
            cut = max(pointer.rfind("/", 0, cut), 0)


def _assign(owners: _Owners, findings: Sequence[Finding]) -> list[tuple[K8sObject, list[Finding]]]:
    """Each finding's object, matched by document, pointer and resource."""
    grouped: dict[int, tuple[K8sObject, list[Finding]]] = {}
    for finding in findings:
        obj = owners.of(finding)
        if obj is None or obj.resource != finding.resource:
            raise _Unfixable(f"changed since it was scanned ({finding.resource} not found)")
        grouped.setdefault(id(obj), (obj, []))[1].append(finding)
    return list(grouped.values())


def _prefixed(op: Op, base: str) -> Op:
    from dataclasses import replace

    return replace(op, pointer=base + op.pointer)


def _render(data: bytes, plans: list[ObjectPlan], objects: Sequence[K8sObject]) -> bytes:
    """The fixed bytes of the file, verified; _Unfixable if no rendering passes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unfixable("is not UTF-8 text; left untouched") from None
    bom = text.startswith("\ufeff")
    text = text.removeprefix("\ufeff")
    crlf = "\r\n" in text
    text = text.replace("\r\n", "\n")
    expected = _expected_data(data, objects)
    if text.lstrip().startswith(("{", "[")) and list(expected) == [0]:
        base, edited = _json_dumps(text, plans)
    else:
        base, edited = _ruamel_dumps(text, plans)
    original_lines = text.split("\n")
    base_lines, edited_lines = base.split("\n"), edited.split("\n")
    comments = _comment_lines(text)
    candidates = [
        merge_lines(original_lines, base_lines, edited_lines, hoist=True),
        merge_lines(original_lines, base_lines, edited_lines, hoist=False),
        edited_lines,
    ]
    for lines in candidates:
        if lines is None:
            continue
        candidate = "\n".join(lines)
        if _verified(candidate, expected, comments):
            if crlf:
                candidate = candidate.replace("\n", "\r\n")
            return (("\ufeff" if bom else "") + candidate).encode("utf-8")
    raise _Unfixable(
        "the edited file would not read back as planned (or would lose a comment); left "
        "untouched, please apply the fixes by hand"
    )


def _expected_data(data: bytes, objects: Sequence[K8sObject]) -> dict[int, object]:
    """Every non-empty document's data by index, as it must read after the fix (planning
    changed the objects' documents in place; the others are read again as they are)."""
    fixed: dict[int, YamlDocument] = {o.document.index: o.document for o in objects}
    expected: dict[int, object] = {}
    for doc in load_documents(data):
        if isinstance(doc, YamlError):
            raise _Unfixable(f"cannot be parsed ({doc.diagnostics()})")
        expected[doc.index] = fixed[doc.index].data if doc.index in fixed else doc.data
    return expected


def _verified(candidate: str, expected: dict[int, object], comments: Counter[str]) -> bool:
    try:
        documents = list(load_documents(candidate.encode("utf-8")))
    except YamlError:
        return False
    if any(isinstance(d, YamlError) for d in documents):
        return False
    if {d.index: d.data for d in documents if isinstance(d, YamlDocument)} != expected:
        return False
    return not (comments - _comment_lines(candidate))


def _json_dumps(text: str, plans: list[ObjectPlan]) -> tuple[str, str]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _Unfixable(f"cannot be parsed as JSON ({exc})") from None
    indent_match = re.search(r"\n([ \t]+)\S", text)
    indent: int | str | None = None
    if indent_match:
        whitespace = indent_match.group(1)
        indent = len(whitespace) if set(whitespace) == {" "} else whitespace
    base = json.dumps(document, indent=indent, ensure_ascii=False)
    try:
        for plan in plans:
            for op in plan.ops:
                apply_op(document, _prefixed(op, plan.obj.base))
    except EditConflict as exc:
        raise _Unfixable(f"cannot edit: {exc}") from None
    edited = json.dumps(document, indent=indent, ensure_ascii=False)
    ending = "\n" if text.endswith("\n") else ""
    return base + ending, edited + ending


def _split_head(text: str) -> tuple[str, str]:
    """(comments and blank lines up to and including a first bare `---`, the rest).

    ruamel.yaml drops comments that precede the first document's `---`; they are kept
    aside and put back in front of both dumps."""
    lines = text.split("\n")
    marker = re.compile(r"^(---|\.\.\.)\s*(#.*)?$")
    content = [i for i, line in enumerate(lines) if not _blank_or_comment(line)]
    if len(content) >= 2 and re.match(r"^---\s*(#.*)?$", lines[content[0]]):
        if not marker.match(lines[content[1]]):  # not an empty first document
            cut = content[0] + 1
            return "\n".join(lines[:cut]) + "\n", "\n".join(lines[cut:])
    return "", text


def _blank_or_comment(line: str) -> bool:
    return not line.strip() or is_comment_line(line)


def _ruamel_dumps(text: str, plans: list[ObjectPlan]) -> tuple[str, str]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 30  # never re-wrap long strings
    mapping, offset = guess_indent(text)
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    head, body = _split_head(text)
    try:
        try:
            documents = list(yaml.load_all(body))
        except YAMLError:
            # ruamel's scanner rejects a tab after a plain scalar, which libyaml and the API
            # server accept; the merge only takes changed lines from ruamel's output anyway.
            documents = list(yaml.load_all(re.sub(r"[ \t]+$", "", body, flags=re.MULTILINE)))
        base = head + _dump(yaml, documents)
    except (YAMLError, ValueError, TypeError) as exc:
        raise _Unfixable(f"ruamel.yaml cannot round-trip it ({type(exc).__name__})") from None
    make = _ruamel_containers()
    try:
        for plan in plans:
            index = plan.obj.document.index
            if index >= len(documents) or not isinstance(documents[index], dict):
                raise _Unfixable("ruamel.yaml and the scanner disagree on its documents")
            root = documents[index]
            for op in plan.ops:
                apply_op(root, _prefixed(op, plan.obj.base), make)
    except EditConflict as exc:
        raise _Unfixable(f"cannot edit: {exc}") from None
    return base, head + _dump(yaml, documents)


def _dump(yaml: Any, documents: list[Any]) -> str:
    out = io.StringIO()
    yaml.dump_all(documents, out)
    return out.getvalue()
