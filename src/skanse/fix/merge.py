"""Carry a serializer's edits back onto the original text, leaving every other line as it was.

ruamel.yaml keeps comments, key order and quoting, but not every byte: trailing spaces,
the indentation of a sequence that differs from the rest of the file, spaces inside flow
brackets. So a fixed file is dumped twice, before (`base`) and after (`edited`) the edits,
and only the lines that differ between those two dumps are transplanted onto the original:
a three-way merge with the serializer's own output as the common ancestor. A hunk whose
lines cannot be placed unambiguously makes the merge give up (None); callers then verify
whatever they write against the expected data anyway.
"""

from __future__ import annotations

from difflib import SequenceMatcher

__all__ = ["is_comment_line", "merge_lines"]


def is_comment_line(line: str) -> bool:
    return line.lstrip().startswith("#")


def _blank_or_comment(line: str) -> bool:
    return not line.strip() or is_comment_line(line)


def merge_lines(
    original: list[str], base: list[str], edited: list[str], *, hoist: bool = True
) -> list[str] | None:
    """`original` with the changes from `base` to `edited` applied (lines without endings).

    With `hoist`, a block inserted right after comment or blank lines is placed above them:
    a comment that trails the end of a mapping describes what follows it, and a new key
    appended to that mapping should not come between the two.
    """
    to_original: dict[int, int] = {}
    matcher = SequenceMatcher(None, base, original, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            to_original[a + k] = b + k
    out: list[str] = []
    position = 0
    edits = SequenceMatcher(None, base, edited, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in edits:
        if tag == "equal":
            continue
        if i1 < i2:
            if any(k not in to_original for k in range(i1, i2)):
                return None
            start, end = to_original[i1], to_original[i2 - 1] + 1
            if end - start != i2 - i1:
                return None  # the replaced lines are not contiguous in the original
        else:
            anchor = i1
            if hoist:
                while anchor > 0 and _blank_or_comment(base[anchor - 1]):
                    anchor -= 1
            if anchor > 0 and anchor - 1 in to_original:
                start = to_original[anchor - 1] + 1
            elif anchor < len(base) and anchor in to_original:
                start = to_original[anchor]
            elif anchor == 0:
                start = 0
            else:
                return None
            end = start
        if start < position:
            return None
        out.extend(original[position:start])
        replacement = edited[j1:j2]
        out.extend(replacement)
        # Comment lines never disappear with the value they followed (ruamel attaches them
        # to the item before them, so deleting the item would drop them).
        kept = set(replacement)
        out.extend(line for line in original[start:end] if is_comment_line(line) and line not in kept)
        position = end
    out.extend(original[position:])
    return out
