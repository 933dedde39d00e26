"""The condition parser against libsinsp's own parser tests (filter_parser.ut.cpp).

Accept/reject cases come from the corpus (parser-cases.json, mined from upstream); the exact
messages, AST shapes and positions below are ported from the same upstream file as facts.
"""

from __future__ import annotations

import json
import time

import pytest

from skanse.rules.parser import (
    BinaryCheck,
    ConditionSyntaxError,
    FieldExpr,
    Identifier,
    ListExpr,
    LogicalExpr,
    NotExpr,
    TransformerExpr,
    UnaryCheck,
    ValueExpr,
    parse_condition,
)
from tests.conftest import corpus_path


def _cases() -> list[tuple[str, str]]:
    try:
        path = corpus_path("falco", "parser-cases.json")
    except pytest.skip.Exception:
        return []
    data = json.loads(path.read_text())
    return [(c["input"], c["expect"]) for c in data["cases"]]


CASES = _cases()


def _variants(text: str) -> list[str]:
    # upstream also runs every plain accept case with a leading and trailing space, and with
    # all spaces replaced by newlines and by tabs (the "bad escape" case is run plainly only)
    if "bad escape" in text:
        return [text]
    padded = f" {text} "
    return [text, padded, padded.replace(" ", "\n"), padded.replace(" ", "\t")]


@pytest.mark.corpus
def test_corpus_has_the_upstream_cases() -> None:
    if not CASES:
        pytest.skip("corpus not present")
    assert len(CASES) == 515
    assert sum(1 for _, e in CASES if e == "accept") == 327


@pytest.mark.corpus
@pytest.mark.parametrize(("text", "expect"), CASES, ids=[repr(c[0])[:60] for c in CASES])
def test_accepts_and_rejects_like_libsinsp(text: str, expect: str) -> None:
    if expect == "accept":
        for variant in _variants(text):
            parse_condition(variant)
    else:
        with pytest.raises(ConditionSyntaxError):
            parse_condition(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("evt.arg[] = value", "expected a valid field argument: a quoted string or a bare string"),
        ('evt.arg["x" = value', "expected a ']' token"),
        (
            'getopt(proc.args, "nt:")[] = value',
            "expected a valid field argument: a quoted string or a bare string",
        ),
        ('getopt(proc.args, "nt:")["t" = value', "expected a ']' token"),
        ("", "filter input string is empty"),
        # the ones below follow from the grammar's code paths (no upstream message test)
        ("evt.type=open and ", "expected a '(' token, a field check, or an identifier"),
        ("evt.type=open and", "expected blank or '(' after 'and'"),
        ("evt.type=execve execve", "unexpected token after 'execve', expecting 'or', 'and'"),
        ("a andb", "expected blank or '(' after 'and'"),
        ("(a", "expected a ')' token"),
        (
            "proc.name",
            "expected a valid check operator: one of 'exists', '<=', '<', '>=', '>', "
            "'==', '=', '!=', 'glob', 'iglob', 'contains', 'icontains', 'bcontains', "
            "'startswith', 'bstartswith', 'endswith', 'regex', 'intersects', 'in', 'pmatch'",
        ),
        ('a.b = "\\q"', "unsupported string escape sequence: \\q"),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert info.value.message == message


def test_depth_limit_rejects_a_hundred_thousand_parentheses_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition("(" * 100_000)
    assert info.value.message == "exceeded max depth limit of 100"
    assert time.perf_counter() - started < 5  # bounded: it stops at depth 100
    parse_condition("((((((((((a))))))))))")


def _positions(node: object) -> str:
    """The string upstream's pos_visitor builds: node kind followed by 'idx line col'."""

    def pos(p: object) -> str:
        return f"{p.idx} {p.line} {p.col}"  # type: ignore[attr-defined]

    if isinstance(node, LogicalExpr):
        return node.op + pos(node.pos) + "".join(_positions(c) for c in node.children)
    if isinstance(node, NotExpr):
        return "not" + pos(node.pos) + _positions(node.child)
    if isinstance(node, Identifier):
        return "identifier" + pos(node.pos)
    if isinstance(node, UnaryCheck):
        return "unary" + pos(node.pos) + _positions(node.left)
    if isinstance(node, BinaryCheck):
        return "binary" + pos(node.pos) + _positions(node.left) + _positions(node.right)
    if isinstance(node, FieldExpr):
        return "field" + pos(node.pos)
    if isinstance(node, ValueExpr):
        return "value" + pos(node.pos)
    if isinstance(node, ListExpr):
        return "list" + pos(node.pos)
    if isinstance(node, TransformerExpr):
        return "transformer" + pos(node.pos) + "".join(_positions(a) for a in node.args)
    raise AssertionError(node)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proc.name exists", "unary0 1 1field0 1 1"),
        ("proc.name=nginx", "binary0 1 1field0 1 1value10 1 11"),
        ("proc.aname[3]=nginx", "binary0 1 1field0 1 1value14 1 15"),
        ("proc.name =nginx", "binary0 1 1field0 1 1value11 1 12"),
        ("proc.name= nginx", "binary0 1 1field0 1 1value11 1 12"),
        ("proc.name = nginx", "binary0 1 1field0 1 1value12 1 13"),
        ("proc.name in (nginx, apache)", "binary0 1 1field0 1 1list13 1 14"),
        ("proc.name in ( nginx, apache)", "binary0 1 1field0 1 1list13 1 14"),
        ("not proc.name=nginx", "not0 1 1binary4 1 5field4 1 5value14 1 15"),
        (
            "proc.name=nginx or proc.name=apache",
            "or0 1 1binary0 1 1field0 1 1value10 1 11binary19 1 20field19 1 20value29 1 30",
        ),
        (
            "(proc.name=nginx or proc.name=apache)",
            "or1 1 2binary1 1 2field1 1 2value11 1 12binary20 1 21field20 1 21value30 1 31",
        ),
        (
            "proc.name=nginx and proc.name=apache",
            "and0 1 1binary0 1 1field0 1 1value10 1 11binary20 1 21field20 1 21value30 1 31",
        ),
        (
            "(proc.name=nginx and proc.name=apache)",
            "and1 1 2binary1 1 2field1 1 2value11 1 12binary21 1 22field21 1 22value31 1 32",
        ),
        (
            "(proc.aname[2]=nginx and evt.type in (connect,accept)) or (not fd.name exists) or "
            "(proc.name=apache and evt.type=switch)",
            "or0 1 1and1 1 2binary1 1 2field1 1 2value15 1 16binary25 1 26field25 1 26list37 "
            "1 38not59 1 60unary63 1 64field63 1 64and83 1 84binary83 1 84field83 1 84value93 "
            "1 94binary104 1 105field104 1 105value113 1 114",
        ),
    ],
)
def test_node_positions(text: str, expected: str) -> None:
    assert _positions(parse_condition(text)) == expected


@pytest.mark.parametrize(
    ("text", "idx", "line", "col"),
    [
        ("a and b c", 8, 1, 9),
        ("a \n and \n  b c", 13, 3, 5),
        ("evt.type = open and (proc.name = cat", 36, 1, 37),
    ],
)
def test_error_positions(text: str, idx: int, line: int, col: int) -> None:
    # the position is where the parser stopped, as libsinsp's get_pos() reports it
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    pos = info.value.pos
    assert (pos.idx, pos.line, pos.col) == (idx, line, col)


def _shape(node: object) -> object:
    if isinstance(node, LogicalExpr):
        return (node.op, *(_shape(c) for c in node.children))
    if isinstance(node, NotExpr):
        return ("not", _shape(node.child))
    if isinstance(node, Identifier):
        return ("id", node.name)
    if isinstance(node, UnaryCheck):
        return (node.op, _shape(node.left))
    if isinstance(node, BinaryCheck):
        return (node.op, _shape(node.left), _shape(node.right))
    if isinstance(node, FieldExpr):
        return node.name if node.arg is None else f"{node.name}[{node.arg}]"
    if isinstance(node, ValueExpr):
        return ("v", node.value)
    if isinstance(node, ListExpr):
        return ("list", *node.values)
    if isinstance(node, TransformerExpr):
        return (node.name, *(_shape(a) for a in node.args))
    raise AssertionError(node)


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        (
            "evt.name exists and evt.type in (a, b) or proc.name=cat",
            (
                "or",
                ("and", ("exists", "evt.name"), ("in", "evt.type", ("list", "a", "b"))),
                ("=", "proc.name", ("v", "cat")),
            ),
        ),
        ("not not not not not(not not(not not_macro))", ("not", ("not", ("id", "not_macro")))),
        (
            "b64(evt.name) exists and tolower(toupper(evt.type)) in val(some.field) or "
            "proc.name=b64(tolower(some.field))",
            (
                "or",
                (
                    "and",
                    ("exists", ("b64", "evt.name")),
                    ("in", ("tolower", ("toupper", "evt.type")), ("val", "some.field")),
                ),
                ("=", "proc.name", ("b64", ("tolower", "some.field"))),
            ),
        ),
        ("proc.name == oneof (cat, nginx)", ("== oneof", "proc.name", ("list", "cat", "nginx"))),
        ("proc.name != anyof (cat, nginx)", ("!= anyof", "proc.name", ("list", "cat", "nginx"))),
        ("proc.name == oneof ()", ("== oneof", "proc.name", ("list",))),
        ("proc.name == oneof my_list", ("== oneof", "proc.name", ("v", "my_list"))),
        (
            "proc.name == anyof and fd.name exists",
            ("and", ("==", "proc.name", ("v", "anyof")), ("exists", "fd.name")),
        ),
        (
            "proc.name startswith anyof (/etc/, /tmp/)",
            ("startswith anyof", "proc.name", ("list", "/etc/", "/tmp/")),
        ),
        ("a.b = not", ("=", "a.b", ("v", "not"))),
        ("notz and a", ("and", ("id", "notz"), ("id", "a"))),
        ("some.field = test.field", ("=", "some.field", ("v", "test.field"))),
        ('evt.arg["key with space"] = value', ("=", "evt.arg[key with space]", ("v", "value"))),
        ('test.str = "a\\x41\\tb"', ("=", "test.str", ("v", "aA\tb"))),
        ("test.str = 'it\\'s'", ("=", "test.str", ("v", "it's"))),
    ],
)
def test_ast_shapes(text: str, shape: object) -> None:
    assert _shape(parse_condition(text)) == shape
