"""YAML as plain data with positions; hostile YAML is refused quickly and precisely."""

from __future__ import annotations

import pytest

from skanse.errors import YamlError
from skanse.sources.yamlpos import Limits, YamlDocument, join_pointer, load_documents


def docs(text: str, **limits: int) -> list[YamlDocument | YamlError]:
    return list(load_documents(text.encode(), limits=Limits(**limits)))


def only(text: str) -> YamlDocument:
    (doc,) = docs(text)
    assert isinstance(doc, YamlDocument)
    return doc


def test_positions_point_at_keys_and_items_across_documents() -> None:
    text = (
        "# leading comment\n"
        "apiVersion: v1\n"
        "kind: Pod\n"
        "spec:\n"
        "  containers:\n"
        "    - name: a\n"
        "      securityContext: {privileged: true}\n"
        "---\n"
        "kind: Service\n"
        "metadata:\n"
        "  annotations:\n"
        "    example.com/a~b: x\n"
    )
    first, second = docs(text)
    assert isinstance(first, YamlDocument) and isinstance(second, YamlDocument)
    assert first.positions["/spec/containers/0"] == (6, 7)
    assert first.positions["/spec/containers/0/securityContext/privileged"] == (7, 25)
    assert second.index == 1
    pointer = join_pointer("/metadata/annotations", "example.com/a~b")
    assert pointer == "/metadata/annotations/example.com~1a~0b"
    assert second.positions[pointer] == (12, 5)


def test_missing_pointer_resolves_to_nearest_existing_ancestor() -> None:
    doc = only("spec:\n  containers:\n    - name: a\n")
    assert doc.position("/spec/containers/0/securityContext/runAsNonRoot") == (3, 7)


def test_json_is_read_with_positions() -> None:
    doc = only('{\n  "kind": "Pod",\n  "spec": {"hostPID": true}\n}\n')
    assert doc.data == {"kind": "Pod", "spec": {"hostPID": True}}
    assert doc.positions["/spec/hostPID"] == (3, 12)  # the opening quote of "hostPID"


def test_scalars_are_typed_as_kubernetes_decoder_sees_them() -> None:
    doc = only("a: yes\nb: 0x1F\nc: '010'\nd: 2024-01-01\ne: ~\n80: http\nf: 1.5\n")
    assert doc.data == {"a": True, "b": 31, "c": "010", "d": "2024-01-01", "e": None,
                        "80": "http", "f": 1.5}  # fmt: skip


def test_merge_keys_explicit_keys_win() -> None:
    doc = only("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n")
    assert doc.data == {"base": {"x": 1, "y": 2}, "m": {"y": 3, "x": 1}}
    assert doc.positions["/m/x"] == (3, 3)  # a merged key points at the merge


def test_duplicate_key_spoils_only_its_document() -> None:
    first, second = docs("a: 1\na: 2\n---\nb: 3\n")
    assert isinstance(first, YamlError)
    assert first.document == 0 and first.line == 2
    assert "duplicate key 'a' (first defined on line 1)" in first.message
    assert isinstance(second, YamlDocument) and second.data == {"b": 3}


def test_billion_laughs_is_refused_without_expanding() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    items = docs("\n".join(lines) + "\n---\nok: true\n")
    assert isinstance(items[0], YamlError)
    assert "alias expansion bomb" in items[0].message
    assert isinstance(items[1], YamlDocument) and items[1].data == {"ok": True}


def test_aliases_are_counted_at_their_expanded_size() -> None:
    text = "a: &a [" + ",".join(["1"] * 100) + "]\nb: [" + ",".join(["*a"] * 100) + "]\n"
    (error,) = docs(text, max_nodes=5_000)
    assert isinstance(error, YamlError)
    assert only(text).data is not None  # the default limit admits 10,000 logical nodes


@pytest.mark.parametrize(
    "text",
    [
        "[" * 300 + "]" * 300,
        "- " * 300 + "x\n",
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 300)),
        "[" * 100_000 + "]" * 100_000,
        "- " * 100_000 + "x\n",
    ],
    ids=["flow", "block-sequences", "block-mappings", "flow-100k", "block-100k"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    """Our limit (200) stops what libyaml accepts; libyaml's own limit stops the rest."""
    try:
        items = docs(text)
    except YamlError as raised:
        error: YamlError | YamlDocument = raised
    else:
        (error,) = items
    assert isinstance(error, YamlError)
    assert "nesting" in error.message


def test_recursive_and_undefined_aliases_are_errors() -> None:
    for text in ("&a [*a]\n", "a: *nope\n"):
        (error,) = docs(text)
        assert isinstance(error, YamlError) and "undefined alias" in error.message


def test_complex_keys_are_refused() -> None:
    (error,) = docs("? [a, b]\n: c\n")
    assert isinstance(error, YamlError) and "mapping key must be a scalar" in error.message


def test_syntax_error_raises_with_its_position() -> None:
    with pytest.raises(YamlError) as raised:
        docs("a: [1, 2\nb: 3\n")
    assert raised.value.line is not None and raised.value.column is not None


def test_too_many_documents() -> None:
    with pytest.raises(YamlError, match="more than 3 documents"):
        docs("a: 1\n---\na: 1\n---\na: 1\n---\na: 1\n", max_documents=3)


def test_empty_documents_are_skipped() -> None:
    assert docs("---\n---\n# only a comment\n") == []
