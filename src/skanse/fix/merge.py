"""Carry a serializer's edits back onto the original text, leaving every other line as it was.

ruamel.yaml keeps comments, key order and quoting, but not every byte: trailing spaces,
the indentation of a sequence that differs from the rest of the file, spaces inside flow
brackets. So a fixed file is dumped twice, before (`base`) and after (`edited`) the edits,
and only the lines that differ between those two dumps are transplanted onto the original:
a three-way merge with the serializer's own output as the common ancestor.

Inserted blocks are placed after the original line that matches the line before them, and
re-indented to the original's local style: each top-level line of the block takes the
indentation of its nearest sibling above it (same depth, both list items or both keys) as
that sibling is indented in the original, and nested lines follow their parent. Whatever
comes out is only a candidate: callers parse it and compare it with the planned data.

Lines are aligned a document at a time: difflib over a whole multi-document file, with no
junk heuristic, is about cubic in the number of similar documents (every `  template:` line
matches every other; 200 Deployments took 22 s, 500 over 100 s). The documents (split at
`---` and `...` lines) are aligned first, then the lines within each pair of documents.
Within a document difflib is cubic the same way in repeated lines (a Pod of 800 containers
`image: a` took 51 s), so it is given only short stretches: between lines that occur once
in each version (patience diff's anchors) and after the common head and tail. A long
stretch without such lines is aligned greedily, looking a few lines ahead; a poor alignment
there costs only layout, since every candidate is verified by the caller.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher

__all__ = ["is_comment_line", "merge_lines"]


def is_comment_line(line: str) -> bool:
    return line.lstrip().startswith("#")


def _blank_or_comment(line: str) -> bool:
    return not line.strip() or is_comment_line(line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_item(line: str) -> bool:
    stripped = line.lstrip(" ")
    return stripped == "-" or stripped.startswith("- ")


_SEPARATOR = re.compile(r"^(---|\.\.\.)(\s|$)")

Block = tuple[int, int, int]  # a[i : i + size] == b[j : j + size], as difflib gives them


def _documents(lines: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) of each document: a `---` or `...` line starts the next one."""
    starts = [0, *(i for i, ln in enumerate(lines) if i and _SEPARATOR.match(ln))]
    return list(zip(starts, [*starts[1:], len(lines)], strict=True))


# difflib aligns a stretch whose sides multiply to at most this (its cost grows with the
# cube of the stretch when lines repeat); longer ones are split at anchors first
_DIFFLIB_AREA = 64 * 64
# how deep stretches are split again at the lines unique within them (each level reads
# every line once), and how far the greedy alignment looks ahead for a line it lost
_ANCHOR_LEVELS = 4
_LOOKAHEAD = 32


def _line_blocks(a: Sequence[str], b: Sequence[str], at_a: int, at_b: int) -> list[Block]:
    """Matching blocks of two versions of one document, in time linear in their length."""
    blocks: list[Block] = []
    _align(a, b, 0, len(a), 0, len(b), _ANCHOR_LEVELS, blocks)
    joined: list[Block] = []
    for i, j, n in blocks:  # adjacent blocks as one, as difflib gives them
        if joined and joined[-1][0] + joined[-1][2] == i and joined[-1][1] + joined[-1][2] == j:
            joined[-1] = (joined[-1][0], joined[-1][1], joined[-1][2] + n)
        else:
            joined.append((i, j, n))
    return [(at_a + i, at_b + j, n) for i, j, n in joined]


def _align(
    a: Sequence[str],
    b: Sequence[str],
    a1: int,
    a2: int,
    b1: int,
    b2: int,
    levels: int,
    out: list[Block],
) -> None:
    """Append the matching blocks of a[a1:a2] and b[b1:b2] to `out`, in order."""
    head = 0
    while a1 + head < a2 and b1 + head < b2 and a[a1 + head] == b[b1 + head]:
        head += 1
    tail = 0
    while a2 - tail > a1 + head and b2 - tail > b1 + head and a[a2 - tail - 1] == b[b2 - tail - 1]:
        tail += 1
    if head:
        out.append((a1, b1, head))
    a1, b1, a2, b2 = a1 + head, b1 + head, a2 - tail, b2 - tail
    if a1 < a2 and b1 < b2:
        if (a2 - a1) * (b2 - b1) <= _DIFFLIB_AREA:
            matcher = SequenceMatcher(None, a[a1:a2], b[b1:b2], autojunk=False)
            out += [(a1 + i, b1 + j, n) for i, j, n in matcher.get_matching_blocks() if n]
        else:
            anchors = _anchors(a, b, a1, a2, b1, b2) if levels else []
            if anchors:
                for i, j in anchors:
                    _align(a, b, a1, i, b1, j, levels - 1, out)
                    out.append((i, j, 1))
                    a1, b1 = i + 1, j + 1
                _align(a, b, a1, a2, b1, b2, levels - 1, out)
            else:
                _greedy(a, b, a1, a2, b1, b2, out)
    if tail:
        out.append((a2, b2, tail))


def _anchors(
    a: Sequence[str], b: Sequence[str], a1: int, a2: int, b1: int, b2: int
) -> list[tuple[int, int]]:
    """The longest chain, in order in both, of lines that occur once in a[a1:a2] and once
    in b[b1:b2] (patience sorting: n log n)."""
    count_a = Counter(a[a1:a2])
    count_b = Counter(b[b1:b2])
    where_a = {a[i]: i for i in range(a1, a2) if count_a[a[i]] == 1}
    pairs = [
        (where_a[line], j)
        for j in range(b1, b2)
        if count_b[(line := b[j])] == 1 and line in where_a
    ]
    # longest increasing run of a-positions, pairs being in b order
    tops: list[int] = []  # a-position ending the best chain of each length
    ends: list[int] = []  # index into pairs of that chain's end
    back: list[int] = []
    for k, (i, _j) in enumerate(pairs):
        length = bisect_left(tops, i)
        back.append(ends[length - 1] if length else -1)
        if length == len(tops):
            tops.append(i)
            ends.append(k)
        else:
            tops[length], ends[length] = i, k
    chain: list[tuple[int, int]] = []
    k = ends[-1] if ends else -1
    while k >= 0:
        chain.append(pairs[k])
        k = back[k]
    return chain[::-1]


def _greedy(
    a: Sequence[str], b: Sequence[str], a1: int, a2: int, b1: int, b2: int, out: list[Block]
) -> None:
    """Match equal lines in step; where they differ, skip the fewest lines (up to
    `_LOOKAHEAD`) on one side that bring them back into step, else pass one of each."""
    i, j = a1, b1
    while i < a2 and j < b2:
        if a[i] == b[j]:
            out.append((i, j, 1))
            i, j = i + 1, j + 1
            continue
        for skip in range(1, _LOOKAHEAD + 1):
            if j + skip < b2 and a[i] == b[j + skip]:  # lines inserted in b
                j += skip
                break
            if i + skip < a2 and a[i + skip] == b[j]:  # lines removed from a
                i += skip
                break
        else:
            i, j = i + 1, j + 1


def _matching_blocks(a: Sequence[str], b: Sequence[str]) -> list[Block]:
    """difflib's matching blocks of `a` and `b` (ending with the empty one), aligned a
    document at a time. Documents are paired when they are equal but for indentation and
    trailing spaces, or in order within a run of changed ones of the same length; any
    other run is aligned line by line as a whole."""
    in_a, in_b = _documents(a), _documents(b)
    if len(in_a) == 1 or len(in_b) == 1:
        return [*_line_blocks(a, b, 0, 0), (len(a), len(b), 0)]
    keys_a = [tuple(ln.strip() for ln in a[s:e]) for s, e in in_a]
    keys_b = [tuple(ln.strip() for ln in b[s:e]) for s, e in in_b]
    blocks: list[Block] = []
    documents = SequenceMatcher(None, keys_a, keys_b, autojunk=False)
    for tag, i1, i2, j1, j2 in documents.get_opcodes():
        if tag == "equal" or i2 - i1 == j2 - j1:
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                (sa, ea), (sb, eb) = in_a[i], in_b[j]
                if a[sa:ea] == b[sb:eb]:
                    blocks.append((sa, sb, ea - sa))
                else:
                    blocks += _line_blocks(a[sa:ea], b[sb:eb], sa, sb)
        else:
            sa = in_a[i1][0] if i1 < len(in_a) else len(a)
            sb = in_b[j1][0] if j1 < len(in_b) else len(b)
            ea = in_a[i2 - 1][1] if i2 > i1 else sa
            eb = in_b[j2 - 1][1] if j2 > j1 else sb
            blocks += _line_blocks(a[sa:ea], b[sb:eb], sa, sb)
    return [*blocks, (len(a), len(b), 0)]


def _opcodes(a: Sequence[str], b: Sequence[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib's get_opcodes, over `_matching_blocks`."""
    out: list[tuple[str, int, int, int, int]] = []
    i = j = 0
    for ai, bj, size in _matching_blocks(a, b):
        tag = "replace" if i < ai and j < bj else "delete" if i < ai else "insert" if j < bj else ""
        if tag:
            out.append((tag, i, ai, j, bj))
        i, j = ai + size, bj + size
        if size:
            out.append(("equal", ai, i, bj, j))
    return out


def _mapping(a: list[str], b: list[str]) -> dict[int, int]:
    found: dict[int, int] = {}
    for i, j, size in _matching_blocks(a, b):
        for k in range(size):
            found[i + k] = j + k
    return found


class _Context:
    """The base lines, the original lines, and how base lines map onto original ones."""

    def __init__(self, original: list[str], base: list[str]) -> None:
        self.original = original
        self.base = base
        self.exact = _mapping(base, original)
        self.loose = _mapping([ln.strip() for ln in base], [ln.strip() for ln in original])

    def sibling_shift(self, before: int, line: str, replaced: range = range(0)) -> int:
        """How much more (or less) the original indents the nearest sibling of `line` than
        the base does: among the base lines it replaces, else above base line `before` (0
        when there is none to go by)."""
        depth, item = _indent(line), _is_item(line)
        for index in reversed(replaced):
            candidate = self.base[index]
            if (
                not _blank_or_comment(candidate)
                and _indent(candidate) == depth
                and _is_item(candidate) == item
                and index in self.loose
            ):
                return _indent(self.original[self.loose[index]]) - depth
        for index in range(before - 1, -1, -1):
            candidate = self.base[index]
            if _blank_or_comment(candidate):
                continue
            level = _indent(candidate)
            same_kind = level == depth and _is_item(candidate) == item
            # `- name: x` holds the first key of its item at the column after the dash
            first_key = _is_item(candidate) and not item and level + 2 == depth
            if same_kind or first_key:
                if index in self.loose:
                    return _indent(self.original[self.loose[index]]) - level
                if first_key:
                    break
                continue
            if level < depth:
                break  # reached the parent: no sibling above
        return 0

    def reindent(self, before: int, block: list[str], replaced: range = range(0)) -> list[str]:
        out: list[str] = []
        placed: list[tuple[str, int]] = []  # (base line, shift) of the block so far
        for line in block:
            if not line.strip():
                out.append(line)
                continue
            shift = None
            for previous, previous_shift in reversed(placed):
                depth = _indent(previous)
                if depth < _indent(line) or (
                    depth == _indent(line) and _is_item(line) and previous.rstrip().endswith(":")
                ):
                    shift = previous_shift
                    break
            if shift is None:
                shift = self.sibling_shift(before, line, replaced)
            placed.append((line, shift))
            out.append(" " * max(0, _indent(line) + shift) + line.lstrip(" "))
        return out


def _place(mapping: dict[int, int], i1: int, i2: int) -> tuple[int, int] | None:
    """The original lines [start, end) that base lines [i1, i2) are, if contiguous."""
    if any(k not in mapping for k in range(i1, i2)):
        return None
    start, end = mapping[i1], mapping[i2 - 1] + 1
    return (start, end) if end - start == i2 - i1 else None


def merge_lines(
    original: list[str], base: list[str], edited: list[str], *, hoist: bool = True
) -> list[str] | None:
    """`original` with the changes from `base` to `edited` applied (lines without endings),
    or None when a change cannot be placed.

    With `hoist`, a block inserted right after comment or blank lines is placed above them:
    a comment that trails the end of a mapping describes what follows it, and a new key
    appended to that mapping should not come between the two.
    """
    ctx = _Context(original, base)
    out: list[str] = []
    position = 0
    for tag, i1, i2, j1, j2 in _opcodes(base, edited):
        if tag == "equal":
            continue
        replacement = edited[j1:j2]
        if i1 < i2:
            placed = _place(ctx.exact, i1, i2) or _place(ctx.loose, i1, i2)
            if placed is None:
                return None
            start, end = placed
            replacement = ctx.reindent(i1, replacement, range(i1, i2))
        else:
            anchor = i1
            if hoist:
                while anchor > 0 and _blank_or_comment(base[anchor - 1]):
                    anchor -= 1
            if anchor == 0:
                start = 0
            elif anchor - 1 in ctx.exact:
                start = ctx.exact[anchor - 1] + 1
            elif anchor - 1 in ctx.loose:
                start = ctx.loose[anchor - 1] + 1
            elif anchor in ctx.exact:  # the line before is not in the original as it is
                start = ctx.exact[anchor]
            elif anchor in ctx.loose:
                start = ctx.loose[anchor]
            else:
                return None
            end = start
            replacement = ctx.reindent(anchor, replacement)
        if start < position:
            return None
        out.extend(original[position:start])
        out.extend(replacement)
        # Comment lines never disappear with the value they followed (ruamel attaches them
        # to the item before them, so deleting the item would drop them).
        kept = set(replacement)
        out.extend(ln for ln in original[start:end] if is_comment_line(ln) and ln not in kept)
        position = end
    out.extend(original[position:])
    return out
