"""Conditions compiled to Python code objects, and the event types each condition can match.

A resolved condition (macros and lists already expanded) becomes the body of one Python
function `def rule(e, p, st) -> bool` whose source is generated once at load and compiled with
`compile()`: no tree is walked per event. Constant sets are frozensets, globs and regexes are
precompiled, and a missing field (`None`) makes every comparison false, as in Falco.

`event_types()` computes the set of `evt.type` values a condition can match by pushing `not`
down with De Morgan (intersection for `and`, union for `or`), as libsinsp's `ppm_event_codes`
does, so the engine indexes rules by event type.

`--strict-missing` needs to know whether a match depended on a missing field: `kleene()`
evaluates a condition in three-valued logic (unknown for a comparison on a missing field),
using one small compiled function per comparison; it runs only on matches.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import fnmatch
import ipaddress
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from skanse.rules.evttypes import EVENT_TYPES
from skanse.rules.fields import HELPERS, Accessor, FieldType, UnknownFieldError, resolve_field
from skanse.rules.parser import (
    BinaryCheck,
    Expr,
    FieldExpr,
    Identifier,
    ListExpr,
    LogicalExpr,
    NotExpr,
    Operand,
    Pos,
    TransformerExpr,
    TransformerList,
    UnaryCheck,
    ValueExpr,
)

__all__ = [
    "ALL_TYPES",
    "CompileError",
    "Kleene",
    "ModuleBuilder",
    "RuleFn",
    "event_types",
    "kleene",
]

RuleFn = Callable[[Mapping[str, Any], Any, Any], bool]
LeafFn = Callable[[Mapping[str, Any], Any, Any], "bool | None"]


class CompileError(ValueError):
    """A condition that parses but cannot be compiled (unknown field, bad value, ...)."""

    def __init__(self, message: str, pos: Pos, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.unknown = unknown  # an unknown field or event type (skip-if-unknown-filter)


# -- event types ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Types:
    """A set of event types, or its complement (`negated`): all types except these."""

    names: frozenset[str]
    negated: bool = False

    def invert(self) -> _Types:
        return _Types(self.names, not self.negated)

    def __and__(self, other: _Types) -> _Types:
        a, b = self, other
        if not a.negated and not b.negated:
            return _Types(a.names & b.names)
        if a.negated and b.negated:
            return _Types(a.names | b.names, True)
        pos, neg = (a, b) if not a.negated else (b, a)
        return _Types(pos.names - neg.names)

    def __or__(self, other: _Types) -> _Types:
        return (self.invert() & other.invert()).invert()


_ALL = _Types(frozenset(), True)
_NONE = _Types(frozenset())
ALL_TYPES = None  # what event_types() returns for a condition not restricted by evt.type


def _types(expr: Expr, negate: bool) -> _Types:
    if isinstance(expr, LogicalExpr):
        parts = [_types(c, negate) for c in expr.children]
        result = parts[0]
        use_and = (expr.op == "and") != negate  # De Morgan
        for part in parts[1:]:
            result = result & part if use_and else result | part
        return result
    if isinstance(expr, NotExpr):
        return _types(expr.child, not negate)
    if isinstance(expr, BinaryCheck) and isinstance(expr.left, FieldExpr):
        name = expr.left.name
        if name == "evt.type" and expr.left.arg is None:
            values: frozenset[str] | None = None
            if expr.op in ("=", "==", "!=") and isinstance(expr.right, ValueExpr):
                values = frozenset((expr.right.value,))
            elif expr.op in ("in", "intersects") and isinstance(expr.right, ListExpr):
                values = frozenset(expr.right.values)
            if values is not None:
                result = _Types(values)
                if expr.op == "!=":
                    result = result.invert()
                return result.invert() if negate else result
        if name == "evt.num" and expr.op in ("=", "==") and isinstance(expr.right, ValueExpr):
            if expr.right.value.strip() == "0":  # never true: no event has number 0
                return _ALL if negate else _NONE
    return _ALL


def event_types(expr: Expr) -> frozenset[str] | None:
    """The evt.type values `expr` can match, or None when it is not restricted (all types)."""
    result = _types(expr, False)
    return None if result.negated else result.names


# -- runtime helpers of generated code -----------------------------------------------------
_IP_CACHE: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None] = {}


def _ip_in_nets(value: Any, nets: tuple[Any, ...]) -> bool:
    text = str(value)
    if text in _IP_CACHE:
        address = _IP_CACHE[text]
    else:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            address = None  # not an address: never in a network
        if len(text) <= 64:  # an address's text (45 characters, and a zone); longer: not kept
            if len(_IP_CACHE) > 65536:  # bounded memory under hostile input
                _IP_CACHE.clear()
            _IP_CACHE[text] = address
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in nets)


def _norm_ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def _to_num(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _path_parts(path: str) -> list[str]:
    if path != "/" and path.endswith("/"):
        path = path.rstrip("/")
    return path.split("/")


class _PathPrefixes:
    """The patterns of a `pmatch` as a tree of path components, so that matching a path costs
    a dict lookup per component (plus one regex per distinct glob met on the way) however
    many patterns there are; a list of 20,000 prefixes was scanned whole for every event."""

    __slots__ = ("any_absolute", "end", "globs", "names")

    def __init__(self) -> None:
        self.any_absolute = False  # "/" is a prefix of every absolute path
        self.end = False  # a pattern ends here: every path below it matches
        self.names: dict[str, _PathPrefixes] = {}
        self.globs: dict[str, tuple[Callable[[str], Any], _PathPrefixes]] = {}

    @classmethod
    def of(cls, patterns: Iterable[tuple[str, ...]]) -> _PathPrefixes:
        root = cls()
        for pattern in patterns:
            if pattern == ("", ""):
                root.any_absolute = True
                continue
            node = root
            for part in pattern:
                child = node.names.get(part)
                if child is None:
                    child = node.names[part] = cls()
                if part not in node.globs and _has_glob(part):
                    # a glob part matches itself too (a == b), hence the same child for both
                    node.globs[part] = (re.compile(fnmatch.translate(part)).match, child)
                node = child
            node.end = True
        return root

    def match(self, value: str) -> bool:
        if self.any_absolute and value.startswith("/"):
            return True
        parts = _path_parts(value)
        stack: list[tuple[_PathPrefixes, int]] = [(self, 0)]
        while stack:
            node, i = stack.pop()
            if node.end:
                return True
            if i == len(parts):
                continue
            part = parts[i]
            child = node.names.get(part)
            if child is not None:
                stack.append((child, i + 1))
            for rx, other in node.globs.values():
                if other is not child and rx(part) is not None:
                    stack.append((other, i + 1))
        return False


def _pmatch(value: Any, prefixes: _PathPrefixes) -> bool:
    """Component-wise path prefix: /a/b matches /a/b and /a/b/c, not /a/bc; globs per part."""
    return isinstance(value, str) and prefixes.match(value)


def _has_glob(part: str) -> bool:
    return any(c in part for c in "*?[")


def _xf(name: str, args: tuple[Any, ...]) -> Any:
    """Apply a transformer; list values are transformed element-wise."""
    if name == "concat":
        values = [a for a in args if a is not None]
        if len(values) != len(args):
            return None
        return "".join(_text(v) for v in _flatten(values))
    if name == "join":
        if len(args) < 2 or args[0] is None:
            return None
        items = [v for v in _flatten(args[1:]) if v is not None]
        return _text(args[0]).join(_text(v) for v in items) if items else None
    if name == "getopt":
        if len(args) != 2 or args[0] is None or args[1] is None:
            return None
        return _getopt(_text(args[0]), _text(args[1]))
    value = args[0] if args else None
    if value is None:
        return None
    if isinstance(value, tuple):
        out = tuple(_xf(name, (v,)) for v in value)
        return out if name != "len" else len(value)
    text = _text(value)
    if name == "tolower":
        return text.lower()
    if name == "toupper":
        return text.upper()
    if name == "basename":
        return text.rsplit("/", 1)[-1]
    if name == "len":
        return len(text)
    if name == "b64":
        try:
            return base64.b64decode(text, validate=True).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            return None
    return None


def _flatten(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, tuple | list):
            out.extend(v)
        else:
            out.append(v)
    return out


def _getopt(args: str, spec: str) -> dict[str, str] | None:
    """Options of a command line as getopt(3) sees them: {'n': '', 't': 'value'}."""
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    takes = {c: (i + 1 < len(spec) and spec[i + 1] == ":") for i, c in enumerate(spec) if c != ":"}
    found: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or word == "-" or word == "--":
            i += 1
            continue
        k = 1
        while k < len(word):
            opt = word[k]
            if takes.get(opt):
                rest = word[k + 1 :]
                if rest:
                    found[opt] = rest
                elif i + 1 < len(words):
                    found[opt] = words[i + 1]
                    i += 1
                break
            if opt in takes:
                found[opt] = ""
            k += 1
        i += 1
    return found


def _dyn_cmp(op: str, left: Any, right: Any) -> bool:
    """A comparison whose right side is only known at run time (val(), transformers)."""
    if left is None or right is None:
        return False
    if isinstance(left, tuple):
        if op in ("in", "intersects", "pmatch"):
            rights = set(right) if isinstance(right, tuple) else {right}
            lefts = {_text(v) for v in left}
            rtexts = {_text(v) for v in rights}
            return lefts <= rtexts if op == "in" else bool(lefts & rtexts)
        return any(_dyn_cmp(op, v, right) for v in left)
    if isinstance(right, tuple):
        if op in ("in", "intersects"):
            return _text(left) in {_text(v) for v in right}
        if op == "pmatch":
            patterns = _PathPrefixes.of(tuple(_path_parts(_text(v))) for v in right)
            return _pmatch(_text(left), patterns)
        return False
    if op in ("=", "=="):
        return left == right or _text(left) == _text(right)
    if op == "!=":
        return not (left == right or _text(left) == _text(right))
    if op in ("<", "<=", ">", ">="):
        a, b = _to_num(left), _to_num(right)
        if a is None or b is None:
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    a_text, b_text = _text(left), _text(right)
    if op == "contains":
        return b_text in a_text
    if op == "icontains":
        return b_text.lower() in a_text.lower()
    if op == "startswith":
        return a_text.startswith(b_text)
    if op == "endswith":
        return a_text.endswith(b_text)
    if op == "glob":
        return fnmatch.fnmatchcase(a_text, b_text)
    if op == "iglob":
        return fnmatch.fnmatchcase(a_text.lower(), b_text.lower())
    if op in ("in", "intersects"):
        return a_text == b_text
    return False


def _getopt_pick(options: dict[str, str] | None, key: str | None) -> str | None:
    if options is None:
        return None
    if key is None:
        return " ".join(f"-{k} {v}".rstrip() for k, v in options.items()) or None
    return options.get(key)


_UNSET = object()  # "not computed yet" for accessors shared within one rule

RUNTIME: dict[str, Any] = {
    **HELPERS,
    "_U": _UNSET,
    "_ip_in_nets": _ip_in_nets,
    "_to_num": _to_num,
    "_to_bytes": _to_bytes,
    "_pmatch": _pmatch,
    "_xf": _xf,
    "_dyn_cmp": _dyn_cmp,
    "_getopt_pick": _getopt_pick,
    "_text": _text,
}


# -- code generation -----------------------------------------------------------------------
_LIST_OPS = ("in", "intersects", "pmatch")
_NUM_OPS = ("<", "<=", ">", ">=")
_TRANSFORMER_TYPES = {"len": FieldType.INT}
_ALLOWED_MODIFIER_OPS = (
    "==",
    "=",
    "!=",
    "glob",
    "iglob",
    "contains",
    "icontains",
    "bcontains",
    "startswith",
    "bstartswith",
    "endswith",
    "regex",
)


# What an operand of and/or costs to evaluate, roughly, from its generated code: helper
# calls, regexes, walks over lists and ancestors cost more than a dict or slot read.
_COSTLY = (
    ("_ip_in_nets(", 8),
    (".match(", 6),
    ("any(", 6),
    ("_ancestor", 4),
    ("_parent(", 4),
    ("_dyn_cmp(", 4),
    (".lower()", 2),
    ("(_", 2),
    ("p.", 1),
    ("e.get(", 1),
)


_FD_READ = "(e.get('fd') or _E)"
_FD_NAME = "(_fdn_ if (_fdn_ := _fd_.get('name')).__class__ is str else _fd_name(e))"


_MARK = re.compile("\x00([0-9]+)\x00")  # an accessor's number, after its code


def _cost(code: str) -> int:
    return sum(code.count(token) * weight for token, weight in _COSTLY)


@dataclass(slots=True)
class _Operand:
    """The left side of a check, resolved: code, type and how to compare."""

    code: str
    type: FieldType
    is_list: bool = False
    either: bool = False
    dynamic: bool = False  # a transformer: compare with _dyn_cmp semantics
    fields: tuple[str, ...] = ()


@dataclass(slots=True)
class ModuleBuilder:
    """Accumulates generated functions and their constants; `build()` compiles them once."""

    source: str
    functions: list[str] = field(default_factory=list)
    consts: dict[str, Any] = field(default_factory=dict)
    _const_keys: dict[tuple[Any, ...], str] = field(default_factory=dict)
    _counter: int = 0
    # while a rule or bucket function is generated: each helper-call accessor it emits, by
    # number; the code carries the number after the accessor (see share_accessors)
    _marked: dict[str, int] | None = None
    # set while a bucket is generated: the one event type its events have
    _event_type: str | None = None

    # -- constants -----------------------------------------------------------------------
    def const(self, key: tuple[Any, ...], value: Any) -> str:
        name = self._const_keys.get(key)
        if name is None:
            name = f"_k{len(self.consts)}"
            self._const_keys[key] = name
            self.consts[name] = value
        return name

    def var(self) -> str:
        self._counter += 1
        return f"_v{self._counter}"

    # -- operands --------------------------------------------------------------------------
    def operand(self, node: FieldExpr | TransformerExpr) -> _Operand:
        if isinstance(node, FieldExpr):
            acc = self.accessor(node)
            return _Operand(acc.expr, acc.type, acc.is_list, acc.either, fields=(acc.field,))
        return self.transformer(node)

    def accessor(self, node: FieldExpr) -> Accessor:
        try:
            acc = resolve_field(node.name, node.arg, self.source)
        except UnknownFieldError as exc:
            raise CompileError(str(exc), node.pos, unknown="nonexistent" in str(exc)) from None
        if self._marked is None or not acc.expr.startswith("_"):
            return acc
        number = self._marked.setdefault(acc.expr, len(self._marked))
        return dataclasses.replace(acc, expr=f"{acc.expr}\x00{number}\x00")

    def transformer(self, node: TransformerExpr) -> _Operand:
        if node.name == "val":
            inner = node.args[0]
            assert isinstance(inner, FieldExpr)
            acc = self.accessor(inner)
            return _Operand(acc.expr, acc.type, acc.is_list, acc.either, True, (acc.field,))
        parts: list[str] = []
        fields: list[str] = []
        for arg in node.args:
            code, arg_fields = self.transformer_arg(arg)
            parts.append(code)
            fields.extend(arg_fields)
        code = f"_xf({node.name!r}, ({', '.join(parts)},))"
        if node.name == "getopt":
            code = f"_getopt_pick({code}, {node.arg!r})"
        elif node.arg is not None:
            raise CompileError(f"transformer '{node.name}' does not accept an argument", node.pos)
        ftype = _TRANSFORMER_TYPES.get(node.name, FieldType.STRING)
        return _Operand(code, ftype, dynamic=True, fields=tuple(fields))

    def transformer_arg(self, arg: Operand) -> tuple[str, list[str]]:
        if isinstance(arg, FieldExpr):
            acc = self.accessor(arg)
            return acc.expr, [acc.field]
        if isinstance(arg, ValueExpr):
            return repr(arg.value), []
        if isinstance(arg, TransformerExpr):
            op = self.transformer(arg)
            return op.code, list(op.fields)
        if isinstance(arg, TransformerList):
            codes: list[str] = []
            fields: list[str] = []
            for item in arg.items:
                code, item_fields = self.transformer_arg(item)
                codes.append(code)
                fields.extend(item_fields)
            return f"({', '.join(codes)},)" if codes else "()", fields
        raise CompileError("unsupported transformer argument", Pos())

    # -- constants typed by the field ------------------------------------------------------
    def typed(self, text: str, ftype: FieldType, op: str, pos: Pos) -> Any:
        if op in _NUM_OPS:
            number = _to_num(text)
            if number is None:
                raise CompileError(f"'{text}' is not a valid number", pos)
            return number
        if ftype is FieldType.INT:
            number = _to_num(text)
            if number is None:
                raise CompileError(f"'{text}' is not a valid number", pos)
            return number
        if ftype is FieldType.BOOL:
            if text not in ("true", "false"):
                raise CompileError(f"'{text}' is not a valid boolean", pos)
            return text == "true"
        if ftype is FieldType.IPADDR:
            if "/" in text:
                return self.network(text, pos)
            ip = _norm_ip(text)
            return ip if ip is not None else text
        if ftype is FieldType.IPNET:
            return self.network(text, pos)
        return text

    @staticmethod
    def network(text: str, pos: Pos) -> Any:
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise CompileError(f"'{text}' is not a valid IP network", pos) from None

    # -- checks ----------------------------------------------------------------------------
    def check(self, node: UnaryCheck | BinaryCheck, *, kleene: bool = False) -> str:
        left = self.operand(node.left)
        v = self.var()
        if isinstance(node, UnaryCheck):
            return f"({left.code} is not None)"
        op = node.op
        right = node.right
        if isinstance(right, TransformerExpr):
            rop = self.transformer(right)
            code = f"_dyn_cmp({op!r}, {left.code}, {rop.code})"
            if kleene:
                return f"(None if ({left.code}) is None or ({rop.code}) is None else {code})"
            return code
        base_op, _, modifier = op.partition(" ")
        values = right.values if isinstance(right, ListExpr) else (right.value,)
        if base_op in _LIST_OPS or modifier:
            if base_op in _LIST_OPS and not isinstance(right, ListExpr):
                # an identifier that names no list: one value
                values = (right.value,)
        elif isinstance(right, ListExpr):
            raise CompileError(f"operator '{op}' does not accept a list", right.pos)
        if left.dynamic:
            consts = self.const(("dyn", values), tuple(values))
            if modifier:
                code = self.modifier_dynamic(base_op, modifier, left.code, consts, v)
            elif base_op in _LIST_OPS:
                code = f"_dyn_cmp({base_op!r}, {left.code}, {consts})"
            else:
                code = f"_dyn_cmp({base_op!r}, {left.code}, {consts}[0])"
            return self.wrap_kleene(code, left.code, v) if kleene else code
        if base_op in _NUM_OPS and left.type is FieldType.BOOL:
            raise CompileError(f"operator '{base_op}' is not supported for bool fields", node.pos)
        if modifier:
            if base_op not in _ALLOWED_MODIFIER_OPS:
                raise CompileError(f"operator '{base_op}' does not accept '{modifier}'", node.pos)
            mvar = f"_m{v}"
            preds = [self.pred(base_op, mvar, val, left.type, right.pos) for val in values]
            tests = ", ".join(f"({p})" for p in preds)
            count = f"sum(({tests},))" if preds else "0"
            if modifier == "anyof":
                inner = f"(({count}) >= 1)"
            elif modifier == "allof":
                inner = f"(({count}) == {len(preds)})"
            else:
                inner = f"(({count}) == 1)"
            if left.is_list or left.either:
                code = f"(({v} := {left.code}) is not None and any({inner} for {mvar} in {v}))"
            else:
                code = f"(({mvar} := {left.code}) is not None and {inner})"
            return self.wrap_kleene(code, left.code, v) if kleene else code
        if base_op in _LIST_OPS:
            code = self.list_check(base_op, left, values, right.pos, v)
        else:
            code = self.scalar_check(base_op, left, values[0], right.pos, v)
        return self.wrap_kleene(code, left.code, v) if kleene else code

    @staticmethod
    def wrap_kleene(code: str, left_code: str, v: str) -> str:
        return f"(None if ({left_code}) is None else {code})"

    def modifier_dynamic(self, op: str, modifier: str, left: str, consts: str, v: str) -> str:
        count = f"sum(_dyn_cmp({op!r}, {v}, _c) for _c in {consts})"
        want = {"anyof": ">= 1", "allof": f"== len({consts})", "oneof": "== 1"}[modifier]
        return f"(({v} := {left}) is not None and {count} {want})"

    def list_check(self, op: str, left: _Operand, values: tuple[str, ...], pos: Pos, v: str) -> str:
        if op == "pmatch":
            patterns = tuple(tuple(_path_parts(val)) for val in values)
            k = self.const(("pmatch", patterns), _PathPrefixes.of(patterns))
            if left.is_list or left.either:
                return f"(({v} := {left.code}) is not None and any(_pmatch(_x, {k}) for _x in {v}))"
            return f"_pmatch({left.code}, {k})"
        if left.type in (FieldType.IPNET,) or (
            left.type is FieldType.IPADDR and any("/" in val for val in values)
        ):
            nets = tuple(self.network(val, pos) for val in values)
            k = self.const(("nets", nets), nets)
            if left.is_list or left.either:
                return (
                    f"(({v} := {left.code}) is not None "
                    f"and any(_ip_in_nets(_x, {k}) for _x in {v}))"
                )
            return f"(({v} := {left.code}) is not None and _ip_in_nets({v}, {k}))"
        typed = frozenset(self.typed(val, left.type, "in", pos) for val in values)
        k = self.const(("set", left.type, typed), typed)
        if left.is_list:
            if op == "in":
                return f"(({v} := {left.code}) is not None and {k}.issuperset({v}))"
            return f"(({v} := {left.code}) is not None and not {k}.isdisjoint({v}))"
        if left.either:
            return f"(({v} := {left.code}) is not None and any(_x in {k} for _x in {v}))"
        return f"({left.code} in {k})"

    def scalar_check(self, op: str, left: _Operand, value: str, pos: Pos, v: str) -> str:
        if left.is_list or left.either:
            if (
                op == "!="
            ):  # none of the values equals it (libsinsp: fd.ip != X is X on neither side)
                pred = self.pred("=", "_x", value, left.type, pos)
                return f"(({v} := {left.code}) is not None and not any(({pred}) for _x in {v}))"
            pred = self.pred(op, "_x", value, left.type, pos)
            return f"(({v} := {left.code}) is not None and any(({pred}) for _x in {v}))"
        if op in ("=", "==") and left.type is not FieldType.IPNET:
            typed = self.typed(value, left.type, op, pos)
            if left.type is FieldType.IPADDR and not isinstance(typed, str):
                k = self.const(("nets", (typed,)), (typed,))
                return f"(({v} := {left.code}) is not None and _ip_in_nets({v}, {k}))"
            k = self.const(("v", left.type, typed), typed)
            return f"({left.code} == {k})"
        pred = self.pred(op, v, value, left.type, pos)
        return f"(({v} := {left.code}) is not None and {pred})"

    def pred(self, op: str, var: str, value: str, ftype: FieldType, pos: Pos) -> str:
        """A boolean expression over `var` (known not None) for `var op value`."""
        if op in ("=", "==", "!="):
            neg = "not " if op == "!=" else ""
            typed = self.typed(value, ftype, op, pos)
            if ftype is FieldType.IPNET or not isinstance(typed, str | int | float | bool):
                nets = (typed,) if not isinstance(typed, str) else (self.network(typed, pos),)
                k = self.const(("nets", nets), nets)
                return f"{neg}_ip_in_nets({var}, {k})"
            k = self.const(("v", ftype, typed), typed)
            return f"{var} {'!=' if neg else '=='} {k}"
        if op in _NUM_OPS:
            number = self.typed(value, ftype, op, pos)
            k = self.const(("v", "num", number), number)
            if ftype is FieldType.INT:
                return f"(type({var}) is int and {var} {op} {k})"
            return f"((_n := _to_num({var})) is not None and _n {op} {k})"
        if ftype is FieldType.BOOL:
            raise CompileError(f"operator '{op}' is not supported for bool fields", pos)
        # string fields hold str by construction; other types are compared as text
        text = var if ftype is FieldType.STRING else f"_text({var})"
        if op == "contains":
            k = self.const(("v", "s", value), value)
            return f"{k} in {text}"
        if op == "icontains":
            k = self.const(("v", "s", value.lower()), value.lower())
            return f"{k} in {text}.lower()"
        if op == "startswith":
            k = self.const(("v", "s", value), value)
            return f"{text}.startswith({k})"
        if op == "endswith":
            k = self.const(("v", "s", value), value)
            return f"{text}.endswith({k})"
        if op in ("glob", "iglob"):
            flags = re.IGNORECASE if op == "iglob" else 0
            rx = re.compile(fnmatch.translate(value), flags | re.DOTALL)
            k = self.const(("glob", op, value), rx)
            return f"{k}.match({text}) is not None"
        if op == "regex":
            try:
                options = re2.Options()
                options.posix_syntax = True
                options.longest_match = True
                compiled = re2.compile(value, options)
            except re2.error as exc:
                raise CompileError(f"invalid regular expression '{value}': {exc}", pos) from None
            k = self.const(("regex", value), compiled)
            return f"{k}.fullmatch({text}) is not None"
        if op in ("bcontains", "bstartswith"):
            hexed = value.replace(" ", "")
            try:
                raw = bytes.fromhex(hexed)
            except ValueError:
                raise CompileError(f"'{value}' is not a valid hex byte string", pos) from None
            k = self.const(("bytes", raw), raw)
            method = "find" if op == "bcontains" else "startswith"
            if method == "find":
                return f"{k} in _to_bytes({var})"
            return f"_to_bytes({var}).startswith({k})"
        if op in ("in", "intersects"):
            typed = frozenset((self.typed(value, ftype, op, pos),))
            k = self.const(("set", ftype, typed), typed)
            return f"{var} in {k}"
        raise CompileError(f"unsupported operator '{op}'", pos)

    # -- expressions -----------------------------------------------------------------------
    def expr(self, node: Expr) -> str:
        if isinstance(node, LogicalExpr):
            return self.logical(node)
        if isinstance(node, NotExpr):
            child = self.expr(node.child)
            if child in ("True", "False"):
                return "False" if child == "True" else "True"
            return f"(not {child})"
        if isinstance(node, Identifier):
            raise CompileError(f"Undefined macro '{node.name}' used in filter.", node.pos)
        if isinstance(node, BinaryCheck):
            self.check_evttype_values(node)
            known = self.known_evttype(node)
            if known is not None:
                return str(known)
        return self.check(node)

    def logical(self, node: LogicalExpr) -> str:
        """`and`/`or` of the children; in a bucket, constants folded and cheap children first.

        Conditions are pure (a missing field makes a comparison false, nothing is written), so
        the order of the operands changes the cost, never the result; an operand that raises
        sends the engine to its one-rule-at-a-time path, which keeps the written order.
        """
        children = [self.expr(c) for c in node.children]
        if self._event_type is None:
            return "(" + f" {node.op} ".join(children) + ")"
        absorbing, neutral = ("False", "True") if node.op == "and" else ("True", "False")
        if absorbing in children:
            return absorbing
        children = [c for c in children if c != neutral]
        if not children:
            return neutral
        if len(children) == 1:
            return children[0]
        if node.op == "and":
            # an `and not (...)` is most often an exception that holds: it rarely decides,
            # so the requirements go first
            children.sort(key=lambda code: (code.startswith("(not "), _cost(code)))
        else:
            children.sort(key=_cost)
        return "(" + f" {node.op} ".join(children) + ")"

    def known_evttype(self, node: BinaryCheck) -> bool | None:
        """The value of an `evt.type` check with literal values in a bucket of one type."""
        left, right, event_type = node.left, node.right, self._event_type
        if event_type is None or not isinstance(left, FieldExpr) or left.name != "evt.type":
            return None
        if left.arg is not None or isinstance(right, TransformerExpr):
            return None
        if node.op in ("=", "=="):
            return isinstance(right, ValueExpr) and right.value == event_type
        if node.op == "!=":
            return isinstance(right, ValueExpr) and right.value != event_type
        if node.op == "in":
            values = right.values if isinstance(right, ListExpr) else (right.value,)
            return event_type in values
        return None

    @staticmethod
    def check_evttype_values(node: BinaryCheck) -> None:
        left = node.left
        if not isinstance(left, FieldExpr) or left.name != "evt.type":
            return
        right = node.right
        if isinstance(right, ListExpr):
            values: tuple[str, ...] = right.values
        elif isinstance(right, ValueExpr):
            values = (right.value,)
        else:
            return
        if node.op.partition(" ")[0] in ("=", "==", "!=", "in", "intersects"):
            for value in values:
                if value not in EVENT_TYPES:
                    raise CompileError(f"unknown event type {value}", right.pos, unknown=True)

    def add_function(self, name: str, node: Expr) -> None:
        self._marked = {}
        try:
            body = self.expr(node)
            body, prologue = self.share_accessors(body)
        finally:
            self._marked = None
        self.functions.append(f"def {name}(e, p, st):\n{prologue}    return {body}\n")

    def add_bucket(
        self, name: str, nodes: list[Expr], *, first: bool, event_type: str | None = None
    ) -> None:
        """One function for all rules an event type meets, sharing accessors across them.

        It returns the index of the first matching rule (-1 for none) when `first`, else the
        list of matching indexes. Any exception escapes: the engine then evaluates the rules
        one by one, so one broken value cannot hide another rule's match. With `event_type`
        (every event the function sees has that `evt.type`), checks of `evt.type` against
        literals are decided here, and the operands of `and`/`or` run cheapest first.
        """
        self._marked = {}
        self._event_type = event_type
        try:
            bodies = [self.expr(node) for node in nodes]
            joined, prologue = self.share_accessors("\x01".join(bodies))
        finally:
            self._event_type = None
            self._marked = None
        if not bodies:
            self.functions.append(f"def {name}(e, p, st):\n    return {-1 if first else []}\n")
            return
        if joined.count(_FD_READ) + joined.count("_fd_name(e)") > 1:
            # the fd's fields: one lookup of the fd per event, and its name (a string for
            # files) read without a call
            joined = joined.replace(_FD_READ, "_fd_").replace("_fd_name(e)", _FD_NAME)
            prologue += f"    _fd_ = {_FD_READ}\n"
        tests = [(i, body) for i, body in enumerate(joined.split("\x01")) if body != "False"]
        lines = [f"def {name}(e, p, st):\n{prologue}"]
        if first:
            lines.extend(f"    if {body}:\n        return {i}\n" for i, body in tests)
            lines.append("    return -1\n")
        else:
            lines.append("    out = []\n")
            lines.extend(f"    if {body}:\n        out.append({i})\n" for i, body in tests)
            lines.append("    return out\n")
        self.functions.append("".join(lines))

    def share_accessors(self, body: str) -> tuple[str, str]:
        """Compute a helper-call accessor used more than once in a rule at most once.

        Evaluation stays lazy: each shared value starts as a sentinel and is computed where
        the condition first needs it (short-circuit order is unchanged). Each accessor was
        emitted with its number after it, so the uses are counted and rewritten in one pass
        over the code: counting and replacing each accessor's text in the whole code of a
        bucket took time in the square of its rules (8,000 rules: 3.5 s, 16,000: 12 s).
        """
        assert self._marked is not None
        exprs = {number: expr for expr, number in self._marked.items()}
        uses = collections.Counter(m.group(1) for m in _MARK.finditer(body))
        shared: dict[int, int] = {}  # accessor number -> _c variable, in order of first use
        for key, count in uses.items():
            if count > 1:
                shared[int(key)] = len(shared)
        out: list[str] = []
        last = 0
        for mark in _MARK.finditer(body):
            number = int(mark.group(1))
            expr = exprs[number]
            out.append(body[last : mark.start() - len(expr)])
            i = shared.get(number)
            out.append(expr if i is None else f"(_c{i} if _c{i} is not _U else (_c{i} := {expr}))")
            last = mark.end()
        out.append(body[last:])
        prologue = "".join(f"    _c{i} = _U\n" for i in range(len(shared)))
        return "".join(out), prologue

    def leaf(self, node: UnaryCheck | BinaryCheck) -> str:
        """Source of a lambda evaluating one check in three-valued logic (None: unknown)."""
        return f"lambda e, p, st: {self.check(node, kleene=True)}"

    def build(self, *, filename: str = "<skanse-rules>") -> dict[str, Any]:
        namespace: dict[str, Any] = dict(RUNTIME)
        namespace.update(self.consts)
        source = "\n".join(self.functions)
        code = compile(source, filename, "exec")
        exec(code, namespace)  # noqa: S102 - our own generated code, built from parsed ASTs
        return namespace


# -- three-valued evaluation (strict missing) ----------------------------------------------
@dataclass(slots=True)
class Kleene:
    """A condition evaluated with unknowns: True, False or None (depends on a missing field)."""

    node: Expr
    leaves: dict[int, LeafFn]

    def evaluate(self, e: Mapping[str, Any], p: Any, st: Any) -> bool | None:
        return self._eval(self.node, e, p, st)

    def _eval(self, node: Expr, e: Mapping[str, Any], p: Any, st: Any) -> bool | None:
        if isinstance(node, LogicalExpr):
            unknown = False
            for child in node.children:
                value = self._eval(child, e, p, st)
                if value is None:
                    unknown = True
                elif value == (node.op == "or"):
                    return value
            return None if unknown else node.op != "or"
        if isinstance(node, NotExpr):
            value = self._eval(node.child, e, p, st)
            return None if value is None else not value
        if isinstance(node, UnaryCheck | BinaryCheck):
            return self.leaves[id(node)](e, p, st)
        return False


def kleene(node: Expr, source: str) -> Kleene:
    """Compile every check of `node` into a three-valued leaf function."""
    builder = ModuleBuilder(source)
    names: dict[int, str] = {}
    checks: list[UnaryCheck | BinaryCheck] = []

    def walk(n: Expr) -> None:
        if isinstance(n, LogicalExpr):
            for c in n.children:
                walk(c)
        elif isinstance(n, NotExpr):
            walk(n.child)
        elif isinstance(n, UnaryCheck | BinaryCheck):
            checks.append(n)

    walk(node)
    for i, check in enumerate(checks):
        name = f"_leaf{i}"
        names[id(check)] = name
        builder.functions.append(f"{name} = {builder.leaf(check)}\n")
    namespace = builder.build(filename="<skanse-strict-missing>")
    return Kleene(node, {key: namespace[name] for key, name in names.items()})


def missing_fields(node: Expr, source: str) -> tuple[str, ...]:
    """The fields a condition reads (for reporting which ones were missing)."""
    out: list[str] = []

    def walk(n: Expr) -> None:
        if isinstance(n, LogicalExpr):
            for c in n.children:
                walk(c)
        elif isinstance(n, NotExpr):
            walk(n.child)
        elif isinstance(n, UnaryCheck | BinaryCheck) and isinstance(n.left, FieldExpr):
            text = n.left.name if n.left.arg is None else f"{n.left.name}[{n.left.arg}]"
            if text not in out:
                out.append(text)

    walk(node)
    return tuple(out)
