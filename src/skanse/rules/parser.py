"""The condition language of Falco rules: a recursive-descent parser into a small AST.

The grammar, the lexing rules, the error wordings and the positions follow libsinsp's filter
parser (falcosecurity/libs `userspace/libsinsp/filter/parser.h`), so that a condition Falco
accepts is accepted here and a rejected one fails with the same message at the same place:

    Expr      ::= OrExpr
    OrExpr    ::= AndExpr ('or' (blank AndExpr | '(' Expr ')'))*
    AndExpr   ::= NotExpr ('and' (blank NotExpr | '(' Expr ')'))*
    NotExpr   ::= ('not' blank+)* ('not(' Expr ')' | Check)
    Check     ::= Field Condition | Transformer Condition | Identifier | '(' Expr ')'
    Condition ::= 'exists' | NumOp NumValue | StrOp StrValue | StrOp Modifier List
                | ListOp List             (values may also be transformers or val(field))

Positions are 0-based character offsets plus 1-based line and column, counting `\\r` and
`\\n` each as a line break as libsinsp does. Recursion is bounded (depth 100), so hostile
input fails with "exceeded max depth limit of 100" instead of exhausting the stack.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

__all__ = [
    "MAX_DEPTH",
    "BinaryCheck",
    "ConditionSyntaxError",
    "Expr",
    "FieldExpr",
    "Identifier",
    "ListExpr",
    "LogicalExpr",
    "NotExpr",
    "Operand",
    "Pos",
    "TransformerExpr",
    "TransformerList",
    "UnaryCheck",
    "ValueExpr",
    "parse_condition",
    "unescape",
]

MAX_DEPTH = 100

UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
# Word operators must be followed by a blank ("startswithvalue" is not an operator).
STR_OPS = (
    "==",
    "=",
    "!=",
    "glob ",
    "iglob ",
    "contains ",
    "icontains ",
    "bcontains ",
    "startswith ",
    "bstartswith ",
    "endswith ",
    "regex ",
)
MODIFIERS = ("oneof ", "anyof ", "allof ")
LIST_OPS = ("intersects", "in", "pmatch")
TRANSFORMERS = ("tolower(", "toupper(", "b64(", "basename(", "len(", "join(", "concat(", "getopt(")
ALL_OPERATORS = tuple(op.strip() for op in (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS))

_BLANKS = frozenset(" \t\b\r\n")
_RX_NOT_BLANK = re.compile(r"not[ \t\n\r\f\v]+")
_RX_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RX_FIELD_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
_RX_FIELD_ARG_BARE = re.compile(r"[^\]\[\"' \t\n\r\f\v]+")
_RX_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_RX_NUMBER = re.compile(r"[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
_RX_BARE_STR = re.compile(r"[^()\"' \t\n\r\f\v=,]+")


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a node starts: character offset (0-based), line and column (1-based)."""

    idx: int = 0
    line: int = 1
    col: int = 1


@dataclass(frozen=True, slots=True)
class FieldExpr:
    name: str
    arg: str | None = None
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class ValueExpr:
    """A literal on the right-hand side (or a list name, resolved by the loader)."""

    value: str
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class ListExpr:
    values: tuple[str, ...]
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class TransformerList:
    """`(a, b)` as a transformer argument (for `concat`, `join`)."""

    items: tuple[Operand, ...]
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class TransformerExpr:
    """`tolower(proc.name)`, `val(proc.pname)`, `getopt(proc.args, "nt:")[t]`."""

    name: str
    args: tuple[Operand, ...]
    arg: str | None = None
    pos: Pos = Pos()


Operand = FieldExpr | ValueExpr | ListExpr | TransformerExpr | TransformerList


@dataclass(frozen=True, slots=True)
class UnaryCheck:
    left: FieldExpr | TransformerExpr
    op: str
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class BinaryCheck:
    """`left op right`; `op` may carry a modifier: `startswith anyof`."""

    left: FieldExpr | TransformerExpr
    op: str
    right: ValueExpr | ListExpr | TransformerExpr
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class Identifier:
    """A bare name in a condition: a macro reference."""

    name: str
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class NotExpr:
    child: Expr
    pos: Pos = Pos()


@dataclass(frozen=True, slots=True)
class LogicalExpr:
    """`and` / `or` over two or more children."""

    op: str
    children: tuple[Expr, ...]
    pos: Pos = Pos()


Expr = LogicalExpr | NotExpr | Identifier | UnaryCheck | BinaryCheck


class ConditionSyntaxError(ValueError):
    """A condition that does not parse; `pos` is where the parser stopped."""

    def __init__(self, message: str, pos: Pos) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


class _Fail(Exception):
    """Internal: a parse failure, converted to ConditionSyntaxError with the position."""


def unescape(quoted: str) -> str:
    """The text of a quoted string token (`"..."` or `'...'`), escapes resolved.

    Accepted escapes: \\b \\f \\n \\r \\t \\\\ \\/ \\xHH, "\\ " (kept as a backslash, for
    old rules), and the escaped delimiter of the string itself.
    """
    out: list[str] = []
    delimiter = quoted[0]
    end = len(quoted) - 1
    i = 1
    while i < end:
        c = quoted[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= end:
            break  # a lone trailing backslash cannot occur: the lexer would not have closed
        e = quoted[i]
        simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
        if e in simple:
            out.append(simple[e])
        elif e in (" ", "\\"):
            out.append("\\")
        elif e == "/":
            out.append("/")
        elif e == '"':
            if delimiter != '"':
                raise _Fail("invalid \\\" escape in '-quoted string")
            out.append('"')
        elif e == "'":
            if delimiter != "'":
                raise _Fail("invalid \\' escape in \"-quoted string")
            out.append("'")
        elif e == "x":
            if i + 2 >= end:
                raise _Fail("truncated hex char escape sequence")
            digits = quoted[i + 1 : i + 3]
            if not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                raise _Fail(f"invalid hex char escape sequence: {digits}")
            out.append(chr(int(digits, 16)))
            i += 2
        else:
            raise _Fail(f"unsupported string escape sequence: \\{e}")
        i += 1
    return "".join(out)


def _token_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_TRANSFORMER_NAMES = ("val", *(t[:-1] for t in TRANSFORMERS))


class _Parser:
    """One parse of one input; mirrors the structure of the grammar above."""

    def __init__(self, text: str, max_depth: int) -> None:
        # libsinsp works on a C string: a NUL ends the input.
        nul = text.find("\0")
        self.text = text if nul < 0 else text[:nul]
        self.i = 0
        self.last = ""
        self.depth = 0
        self.max_depth = max_depth
        self.breaks = [k for k, ch in enumerate(self.text) if ch in "\r\n"]

    # -- positions and depth -------------------------------------------------------------
    def pos_at(self, idx: int) -> Pos:
        n = bisect.bisect_left(self.breaks, idx)
        col = idx + 1 if n == 0 else idx - self.breaks[n - 1]
        return Pos(idx, n + 1, col)

    def pos(self) -> Pos:
        return self.pos_at(self.i)

    def enter(self) -> None:
        self.depth += 1
        if self.depth >= self.max_depth:
            raise _Fail(f"exceeded max depth limit of {self.max_depth}")

    # -- lexing --------------------------------------------------------------------------
    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else "\0"

    def blank(self) -> bool:
        start = self.i
        text = self.text
        while self.i < len(text) and text[self.i] in _BLANKS:
            self.i += 1
        return self.i > start

    def lit(self, s: str) -> bool:
        if self.text.startswith(s, self.i):
            self.last = s
            self.i += len(s)
            return True
        return False

    def rx(self, pattern: re.Pattern[str]) -> bool:
        m = pattern.match(self.text, self.i)
        if m is None:
            return False
        self.last = m.group(0)
        self.i = m.end()
        return True

    def lit_list(self, options: tuple[str, ...]) -> bool:
        return any(self.lit(s) for s in options)

    def operator(self, options: tuple[str, ...]) -> bool:
        for op in options:
            if not op.endswith(" "):
                if self.lit(op):
                    return True
                continue
            saved_i, saved_last = self.i, self.last
            if self.lit(op.strip()):
                if self.blank():
                    return True
                self.i, self.last = saved_i, saved_last
        return False

    def quoted(self) -> bool:
        delimiter = self.peek()
        if delimiter not in ("'", '"'):
            return False
        start = self.i
        text = self.text
        prev = "\\"
        k = self.i
        while k < len(text):
            c = text[k]
            if c == delimiter and prev != "\\":
                token = text[start : k + 1]
                self.i = k + 1
                self.last = unescape(token)
                return True
            prev = c
            k += 1
        return False

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Expr:
        if not self.text:
            raise _Fail("filter input string is empty")
        result = self.parse_or()
        if self.i != len(self.text):
            raise _Fail(f"unexpected token after '{self.last}', expecting 'or', 'and'")
        return result

    def parse_or(self) -> Expr:
        self.enter()
        pos = self.pos()
        self.blank()
        children = [self.parse_and()]
        self.blank()
        while self.lit("or"):
            if not self.blank():
                if self.lit("("):
                    children.append(self.parse_embedded())
                else:
                    raise _Fail("expected blank or '(' after 'or'")
            else:
                children.append(self.parse_and())
            self.blank()
        self.depth -= 1
        return LogicalExpr("or", tuple(children), pos) if len(children) > 1 else children[0]

    def parse_and(self) -> Expr:
        self.enter()
        pos = self.pos()
        self.blank()
        children = [self.parse_not()]
        self.blank()
        while self.lit("and"):
            if not self.blank():
                if self.lit("("):
                    children.append(self.parse_embedded())
                else:
                    raise _Fail("expected blank or '(' after 'and'")
            else:
                children.append(self.parse_not())
            self.blank()
        self.depth -= 1
        return LogicalExpr("and", tuple(children), pos) if len(children) > 1 else children[0]

    def parse_not(self) -> Expr:
        self.enter()
        pos = self.pos()
        negate = False
        self.blank()
        while self.rx(_RX_NOT_BLANK):
            negate = not negate
        child: Expr
        if self.lit("not("):
            negate = not negate
            child = self.parse_embedded()
        else:
            child = self.parse_check()
        self.depth -= 1
        return NotExpr(child, pos) if negate else child

    def parse_embedded(self) -> Expr:
        self.enter()
        self.blank()
        child = self.parse_or()
        self.blank()
        if not self.lit(")"):
            raise _Fail("expected a ')' token")
        self.depth -= 1
        return child

    def parse_check(self) -> Expr:
        self.enter()
        pos = self.pos()
        self.blank()
        result: Expr
        if self.lit("("):
            result = self.parse_embedded()
        elif self.rx(_RX_FIELD_NAME):
            left: FieldExpr | TransformerExpr = self.parse_field_remainder(self.last, pos)
            result = self.parse_condition(left, pos)
        elif self.lit_list(TRANSFORMERS):
            self.blank()
            left = self.parse_transformer_remainder(self.last[:-1], pos)
            result = self.parse_condition(left, pos)
        elif self.rx(_RX_IDENTIFIER):
            result = Identifier(self.last, pos)
        else:
            raise _Fail("expected a '(' token, a field check, or an identifier")
        self.depth -= 1
        return result

    def parse_field_remainder(self, name: str, pos: Pos) -> FieldExpr:
        self.enter()
        field = FieldExpr(name, self.parse_optional_arg(), pos)
        self.depth -= 1
        return field

    def parse_optional_arg(self) -> str | None:
        if not self.lit("["):
            return None
        if not self.quoted() and not self.rx(_RX_FIELD_ARG_BARE):
            raise _Fail("expected a valid field argument: a quoted string or a bare string")
        arg = self.last
        if not self.lit("]"):
            raise _Fail("expected a ']' token")
        return arg

    def parse_transformer_remainder(self, name: str, pos: Pos) -> TransformerExpr:
        self.enter()
        self.blank()
        args: list[Operand] = []
        while True:
            args.append(self.parse_transformer_arg(self.pos()))
            self.blank()
            if not self.lit(","):
                break
        self.blank()
        if not self.lit(")"):
            raise _Fail("expected a ')' token closing the transformer")
        result = TransformerExpr(name, tuple(args), self.parse_optional_arg(), pos)
        self.depth -= 1
        return result

    def parse_transformer_arg(self, pos: Pos) -> Operand:
        self.enter()
        self.blank()
        result: Operand
        if self.rx(_RX_HEX) or self.rx(_RX_NUMBER) or self.quoted():
            result = ValueExpr(self.last, pos)
        elif self.lit("("):
            result = self.parse_transformer_list(pos)
        elif self.lit_list(TRANSFORMERS):
            result = self.parse_transformer_remainder(self.last[:-1], pos)
        elif self.rx(_RX_FIELD_NAME):
            result = self.parse_field_remainder(self.last, pos)
        else:
            raise _Fail(
                "expected field transformer argument: "
                "field, transformer, quoted string, number, or transformer list"
            )
        self.depth -= 1
        return result

    def parse_transformer_list(self, pos: Pos) -> TransformerList:
        items: list[Operand] = []
        self.blank()
        if self.lit(")"):
            return TransformerList((), pos)
        items.append(self.parse_transformer_list_arg(pos))
        self.blank()
        while self.lit(","):
            self.blank()
            items.append(self.parse_transformer_list_arg(pos))
            self.blank()
        if not self.lit(")"):
            raise _Fail("expected ')'")
        return TransformerList(tuple(items), pos)

    def parse_transformer_list_arg(self, pos: Pos) -> Operand:
        if self.rx(_RX_FIELD_NAME):
            return self.parse_field_remainder(self.last, pos)
        if self.lit_list(TRANSFORMERS):
            self.blank()
            return self.parse_transformer_remainder(self.last[:-1], pos)
        if self.quoted() or self.rx(_RX_HEX) or self.rx(_RX_NUMBER):
            return ValueExpr(self.last, pos)
        raise _Fail(
            "expected transformer list argument: field, transformer, quoted string, or number"
        )

    def parse_condition(self, left: FieldExpr | TransformerExpr, pos: Pos) -> Expr:
        self.enter()
        self.blank()
        if self.operator(UNARY_OPS):
            self.depth -= 1
            return UnaryCheck(left, self.last.strip(), pos)
        self.blank()
        right: ValueExpr | ListExpr | TransformerExpr
        if self.operator(NUM_OPS):
            op = self.last
            right = self.parse_num_value()
        elif self.operator(STR_OPS):
            op = self.last
            had_blank = op[0].isalpha() or self.blank()
            saved_i, saved_last = self.i, self.last
            if (
                had_blank
                and self.operator(MODIFIERS)
                and self.list_value_follows()
                and not self.bool_keyword_follows()
            ):
                op = f"{op.strip()} {self.last.strip()}"
                right = self.parse_list_value(with_transformer=False)
            else:
                self.i, self.last = saved_i, saved_last
                right = self.parse_str_value(no_transformer=False)
        elif self.operator(LIST_OPS):
            op = self.last
            right = self.parse_list_value(with_transformer=True)
        else:
            raise _Fail(f"expected a valid check operator: one of {_token_list(ALL_OPERATORS)}")
        self.depth -= 1
        return BinaryCheck(left, op.strip(), right, pos)

    def list_value_follows(self) -> bool:
        if self.peek() == "(":
            return True
        return _RX_IDENTIFIER.match(self.text, self.i) is not None

    def bool_keyword_follows(self) -> bool:
        rest = self.text[self.i : self.i + 4]
        for keyword in ("and", "or", "not"):
            if rest.startswith(keyword):
                after = rest[len(keyword) : len(keyword) + 1]
                if not after or not after.isalnum():
                    return True
        return False

    def parse_num_value(self) -> ValueExpr | TransformerExpr:
        self.enter()
        self.blank()
        pos = self.pos()
        transformed = self.try_transformer_or_val()
        if transformed is not None:
            self.depth -= 1
            return transformed
        if self.rx(_RX_HEX) or self.rx(_RX_NUMBER):
            self.depth -= 1
            return ValueExpr(self.last, pos)
        raise _Fail(
            "expected a number value or a field with a valid transformer: "
            + _token_list(_TRANSFORMER_NAMES)
        )

    def parse_str_value(self, *, no_transformer: bool) -> ValueExpr | TransformerExpr:
        self.enter()
        self.blank()
        pos = self.pos()
        if not no_transformer:
            transformed = self.try_transformer_or_val()
            if transformed is not None:
                self.depth -= 1
                return transformed
        if self.quoted() or self.rx(_RX_BARE_STR):
            self.depth -= 1
            return ValueExpr(self.last, pos)
        if no_transformer:
            raise _Fail("expected a string value")
        raise _Fail(
            "expected a string value or a field with a valid transformer: "
            + _token_list(_TRANSFORMER_NAMES)
        )

    def try_list(self) -> ListExpr | None:
        pos = self.pos()
        if not self.lit("("):
            return None
        values: list[str] = []
        self.blank()
        depth = self.depth
        try:
            first = self.parse_str_value(no_transformer=True)
        except _Fail:
            self.depth = depth
            first = None
        if first is not None:
            assert isinstance(first, ValueExpr)
            values.append(first.value)
            self.blank()
            while self.lit(","):
                item = self.parse_str_value(no_transformer=True)
                assert isinstance(item, ValueExpr)
                values.append(item.value)
                self.blank()
        if not self.lit(")"):
            raise _Fail("expected a ')' token")
        return ListExpr(tuple(values), pos)

    def parse_list_value(self, *, with_transformer: bool) -> ValueExpr | ListExpr | TransformerExpr:
        self.enter()
        self.blank()
        pos = self.pos()
        listed = self.try_list()
        if listed is not None:
            self.depth -= 1
            return listed
        if with_transformer:
            transformed = self.try_transformer_or_val()
            if transformed is not None:
                self.depth -= 1
                return transformed
        if self.rx(_RX_IDENTIFIER):
            self.depth -= 1
            return ValueExpr(self.last, pos)
        if with_transformer:
            raise _Fail(
                "expected a list, an identifier, or a field with a valid transformer: "
                + _token_list(_TRANSFORMER_NAMES)
            )
        raise _Fail("expected a list or an identifier")

    def try_transformer_or_val(self) -> TransformerExpr | None:
        self.enter()
        self.blank()
        pos = self.pos()
        result: TransformerExpr | None = None
        if self.lit("val("):
            self.blank()
            field_pos = self.pos()
            if not self.rx(_RX_FIELD_NAME):
                raise _Fail("expected a field within 'val' transformer")
            field = self.parse_field_remainder(self.last, field_pos)
            self.blank()
            if not self.lit(")"):
                raise _Fail("expected a ')' token closing the transformer")
            result = TransformerExpr("val", (field,), self.parse_optional_arg(), pos)
        elif self.lit_list(TRANSFORMERS):
            self.blank()
            result = self.parse_transformer_remainder(self.last[:-1], pos)
        self.depth -= 1
        return result


def parse_condition(text: str, *, max_depth: int = MAX_DEPTH) -> Expr:
    """The AST of a condition, or `ConditionSyntaxError` with libsinsp's message and position."""
    parser = _Parser(text, max_depth)
    try:
        return parser.parse()
    except _Fail as exc:
        raise ConditionSyntaxError(str(exc), parser.pos()) from None
