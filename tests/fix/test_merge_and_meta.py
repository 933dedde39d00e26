"""The three-way line merge, the edit operations, and fix metadata on the checks."""

from __future__ import annotations

from difflib import SequenceMatcher

import pytest

from skanse.checks._all import REGISTRY
from skanse.fix import has_fix, is_complete, merge
from skanse.fix.merge import merge_lines
from skanse.fix.ops import AppendValue, EditConflict, RemoveValues, SetValue, apply_op


def test_untouched_lines_keep_the_original_bytes() -> None:
    original = ["a:   1   ", "b: [ x,  y ]", "c: 3"]
    base = ["a: 1", "b: [x, y]", "c: 3"]  # what the serializer made of it
    edited = ["a: 1", "b: [x, y]", "c: 3", "d: 4"]
    assert merge_lines(original, base, edited) == [*original, "d: 4"]


def test_a_new_key_goes_above_a_trailing_comment() -> None:
    original = ["spec:", "  a: 1", "  # about b", "b: 2"]
    edited = ["spec:", "  a: 1", "  # about b", "  new: true", "b: 2"]
    assert merge_lines(original, original, edited) == [
        "spec:", "  a: 1", "  new: true", "  # about b", "b: 2"
    ]  # fmt: skip
    assert merge_lines(original, original, edited, hoist=False) == edited


def test_an_insertion_takes_the_original_indentation_of_its_siblings() -> None:
    original = ["list:", "    - name: a", "      x: 1", "end: true"]
    base = ["list:", "- name: a", "  x: 1", "end: true"]
    edited = ["list:", "- name: a", "  x: 1", "- name: b", "  x: 2", "end: true"]
    assert merge_lines(original, base, edited) == [
        "list:", "    - name: a", "      x: 1", "    - name: b", "      x: 2", "end: true"
    ]  # fmt: skip


def test_comment_lines_in_a_deleted_region_are_kept() -> None:
    original = ["add:", "- A", "# why B", "- B"]
    edited = ["add:", "- B"]
    assert merge_lines(original, original, edited) == ["add:", "# why B", "- B"]


def test_a_change_to_a_line_the_original_does_not_have_gives_up() -> None:
    original = ["x: 'one'", "y: 2"]
    base = ["x: one", "y: 2", "z: 3"]
    edited = ["x: two", "y: 2", "z: 3"]
    assert merge_lines(original, base, edited) is None


def _deployment(i: int, *, original: bool) -> list[str]:
    indent = "    " if original else "  "  # the serializer indents containers its own way
    return [
        "apiVersion: apps/v1", "kind: Deployment", "metadata:", f"  name: d{i}", "spec:",
        "  template:", "    spec:", "      containers:", f"      {indent}- name: c  # {i}",
        f"      {indent}  image: nginx:1.25",
    ]  # fmt: skip


@pytest.mark.parametrize("trailing", [[], ["---", ""]])  # an empty last document ruamel drops
def test_a_file_of_many_documents_is_aligned_a_document_at_a_time(
    monkeypatch: pytest.MonkeyPatch, trailing: list[str]
) -> None:
    """difflib over the whole file matched every `  template:` line with every other: fix
    took 22 s for 200 Deployments and over 100 s for 500 (about cubic). Counted here as the
    pairs of lines the matchers are given: aligned as a whole, this input needs about
    3 x 11,000**2 = 360 million."""
    work = 0
    real = SequenceMatcher

    def counting(junk: None, a: list[str], b: list[str], **kwargs: bool) -> SequenceMatcher[str]:
        nonlocal work
        work += len(a) * len(b)
        assert work < 10_000_000, "aligned as a whole"  # fails before the minutes it takes
        return real(junk, a, b, **kwargs)

    monkeypatch.setattr(merge, "SequenceMatcher", counting)
    count = 1000
    original: list[str] = []
    base: list[str] = []
    edited: list[str] = []
    expected: list[str] = []
    for i in range(count):
        separator = ["---"] if i else []
        original += separator + _deployment(i, original=True)
        base += separator + _deployment(i, original=False)
        edited += separator + _deployment(i, original=False)
        expected += separator + _deployment(i, original=True)
        if i % 2:  # a new key of the container, indented as the original indents it
            edited.append("          securityContext: {runAsNonRoot: true}")
            expected.append("            securityContext: {runAsNonRoot: true}")
    original += trailing
    expected += trailing
    assert merge.merge_lines(original, base, edited) == expected


def _counting_difflib(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Count the pairs of lines given to difflib; fail past `limit`, before the minutes
    aligning a whole document takes."""
    work = 0
    real = SequenceMatcher

    def counting(junk: None, a: list[str], b: list[str], **kwargs: bool) -> SequenceMatcher[str]:
        nonlocal work
        work += len(a) * len(b)
        assert work < limit, "aligned as a whole"
        return real(junk, a, b, **kwargs)

    monkeypatch.setattr(merge, "SequenceMatcher", counting)


@pytest.mark.parametrize("names", ["each its own", "all the same"])
def test_a_long_document_of_repeated_lines_is_aligned_in_short_stretches(
    monkeypatch: pytest.MonkeyPatch, names: str
) -> None:
    """Within one document difflib is cubic in repeated lines: `fix` took 51 s on a Pod of
    800 containers `image: a` (8 s at 200). Given whole, this document of 1,000 containers
    is 3,000 x 4,000 = 12 million pairs of lines. With one name for all, no line occurs
    once: the stretch is aligned greedily, and the insertions still land in place."""
    _counting_difflib(monkeypatch, 1_000_000)
    head = ["apiVersion: v1", "kind: Pod", "metadata:", "  name: p", "spec:", "  containers:"]
    original, base, edited, expected = list(head), list(head), list(head), list(head)
    for i in range(1000):
        name = f"c{i}" if names == "each its own" else "same"
        original += [f"    - name: {name}", "      image: a", "      # why a"]
        base += [f"  - name: {name}", "    image: a", "    # why a"]
        edited += [f"  - name: {name}", "    image: a", "    # why a"]
        expected += [f"    - name: {name}", "      image: a"]
        edited.append("    securityContext: {allowPrivilegeEscalation: false}")
        expected += ["      securityContext: {allowPrivilegeEscalation: false}", "      # why a"]
    assert merge.merge_lines(original, base, edited) == expected


def test_operations_create_what_is_missing_and_refuse_wrong_shapes() -> None:
    doc: dict[str, object] = {"spec": {"securityContext": None, "drop": ["X"]}}
    apply_op(doc, SetValue("/spec/securityContext/runAsNonRoot", True))
    apply_op(doc, AppendValue("/spec/volumes", {"name": "tmp"}))
    apply_op(doc, RemoveValues("/spec/drop", ("X",)))
    assert doc == {
        "spec": {"securityContext": {"runAsNonRoot": True}, "volumes": [{"name": "tmp"}]}
    }
    with pytest.raises(EditConflict):
        apply_op({"spec": "text"}, SetValue("/spec/securityContext/x", 1))


def test_fixable_is_set_on_exactly_the_checks_a_fix_fully_resolves() -> None:
    for check in REGISTRY.all():
        assert check.meta.fixable == (has_fix(check.id) and is_complete(check.id)), check.id
    partial = sorted(c.id for c in REGISTRY.all() if has_fix(c.id) and not c.meta.fixable)
    assert partial == ["SKN-K8S-018", "SKN-K8S-020", "SKN-K8S-021", "SKN-K8S-022", "SKN-K8S-024"]
