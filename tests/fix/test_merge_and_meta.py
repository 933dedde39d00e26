"""The three-way line merge, the edit operations, and fix metadata on the checks."""

from __future__ import annotations

import pytest

from skanse.checks._all import REGISTRY
from skanse.fix import has_fix, is_complete
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
