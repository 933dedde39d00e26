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
    doc = only("base: &b {x: 1, z: 2}\nm:\n  <<: *b\n  z: 3\n")
    assert doc.data == {"base": {"x": 1, "z": 2}, "m": {"z": 3, "x": 1}}
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


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # go-yaml v2 (sigs.k8s.io/yaml, what kubectl and the API server read YAML with)
        ("y", True),
        ("Y", True),
        ("n", False),
        ("N", False),
        ("0o0", 0),
        ("0o17", 15),
        ("0e0", 0.0),
        ("1e3", 1000.0),
        ("08", 8.0),  # not octal: ParseInt refuses it, ParseFloat reads a decimal
        ("0b-1", -1),
        ("1:30", "1:30"),  # no base-60 integers in go-yaml
        (".1e400", ".1e400"),  # past float64: ParseFloat fails and it stays text
        # what PyYAML and go-yaml agree on
        ("yes", True),
        ("off", False),
        ("0755", 493),
        ("0x_1F", 31),
        ("1_000", 1000),
        ("-0x1F", -31),
        ("18446744073709551615", 18446744073709551615),
        ("~", None),
        ("2024-01-01", "2024-01-01"),
        ("yes please", "yes please"),
    ],
)
def test_plain_scalars_are_typed_as_go_yaml_v2_types_them(text: str, value: object) -> None:
    """A scalar typed otherwise than the cluster types it is another object to the checks:
    `shareProcessNamespace: y` is true to Kubernetes and was the text "y" here."""
    got = only(f"k: {text}\n").data
    assert got == {"k": value}
    assert type(got["k"]) is type(value)


def test_keys_are_typed_before_they_become_text() -> None:
    assert only("y: 1\nn: 2\n0o10: 3\n").data == {"true": 1, "false": 2, "8": 3}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        # sigs.k8s.io/yaml writes a float key with strconv.FormatFloat(f, 'g', -1, 32):
        # the shortest float32 digits, %e past 1e+06 and below 1e-04; Python's str() gave
        # "1000.0", another key than the cluster's (a label or annotation the checks miss)
        ("1e3", "1000"),
        ("1.0", "1"),
        ("0.5", "0.5"),
        ("1e6", "1e+06"),
        ("0.00001", "1e-05"),
        ("0.0001", "0.0001"),
        ("123456789.0", "1.2345679e+08"),  # rounded to float32 first
        ("-0.0", "-0"),
        (".inf", ".inf"),
        ("-.Inf", "-.inf"),
        (".NaN", ".nan"),
        ("1e39", ".inf"),  # past float32
    ],
)
def test_float_keys_become_the_text_kubernetes_makes_of_them(key: str, text: str) -> None:
    assert only(f"{key}: v\n").data == {text: "v"}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("~", "mapping key is null"),
        ("null", "mapping key is null"),
        ("9223372036854775808", "past int64"),  # a uint64 key: "Unsupported map key"
    ],
)
def test_keys_kubernetes_refuses_spoil_their_document(key: str, message: str) -> None:
    """sigs.k8s.io/yaml refuses a null or uint64 key ("Unsupported map key of type"); this
    read the null key as the text "null", so a manifest the cluster refuses was scanned."""
    first, second = docs(f"a: 1\n{key}: 2\n---\nb: 2\n")
    assert isinstance(first, YamlError) and message in first.message
    assert isinstance(second, YamlDocument) and second.data == {"b": 2}


@pytest.mark.parametrize(
    "text",
    [
        "0x" + "F" * 17,  # past uint64, and no float64 (ParseFloat reads no hex without p)
        "1" + "0" * 5_000,  # past float64: ParseFloat fails with ErrRange
        "-0b" + "1" * 70,
    ],
)
def test_an_integer_past_64_bits_is_the_text_go_yaml_v2_leaves(text: str) -> None:
    """go-yaml v2's resolve() returns such a scalar as the string it is (a string field,
    an annotation or an env value, takes it); it spoiled the whole document here."""
    assert only(f"k: {text}\n").data == {"k": text}


def test_a_long_base_60_looking_scalar_is_text_at_once() -> None:
    """PyYAML read `1:00:00:...` as a base-60 integer, multiplying by 60 once per part: a
    number of n parts cost n**2 (320,000 parts, 960 KB: 6 s; a 32 MiB file: hours)."""
    text = "1" + ":00" * 2_000_000
    assert only(f"k: {text}\n").data == {"k": text}


@pytest.mark.parametrize(
    ("scalar", "message"),
    [
        ("!!int 0x" + "F" * 17, "cannot decode '0xFFFFFFFFFFFFFFFFF' as a !!int"),
        ("!!int abc", "cannot decode 'abc' as a !!int"),  # int("abc") raised ValueError
        ("!!int 1.5", "cannot decode '1.5' as a !!int"),
        ("!!bool 1", "cannot decode '1' as a !!bool"),
    ],
)
def test_a_scalar_that_has_no_value_spoils_its_document_only(scalar: str, message: str) -> None:
    first, second = docs(f"a: 1\nk: {scalar}\n---\nb: 2\n")
    assert isinstance(first, YamlError)
    assert message in first.message
    assert (first.document, first.line, first.column) == (0, 2, 4)
    assert isinstance(second, YamlDocument) and second.data == {"b": 2}


@pytest.mark.parametrize(
    ("scalar", "value"),
    [("!!int '0o10'", 8), ("!!float 1", 1.0), ("!!bool y", True), ("!!str 1", "1")],
)
def test_an_explicit_tag_types_its_text(scalar: str, value: object) -> None:
    got = only(f"k: {scalar}\n").data
    assert got == {"k": value}
    assert type(got["k"]) is type(value)


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("y", "y"),  # a name to Falco's yaml-cpp, true to go-yaml v2
        ("N", "N"),
        ("yes", True),  # as the rules loader has always read it
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1:30", "1:30"),  # not base 60
        ("1" + ":00" * 200_000, "1" + ":00" * 200_000),
    ],
)
def test_the_yaml_1_1_typing_of_rules_files(scalar: str, value: object) -> None:
    (doc,) = list(load_documents(f"k: {scalar}\n", typing="yaml11"))
    assert isinstance(doc, YamlDocument) and doc.data == {"k": value}


def test_a_huge_integer_in_a_rules_file_spoils_its_document_only() -> None:
    first, second = load_documents("k: 1" + "0" * 5_000 + "\n---\nb: 2\n", typing="yaml11")
    assert isinstance(first, YamlError) and "is out of range" in first.message
    assert isinstance(second, YamlDocument) and second.data == {"b": 2}
