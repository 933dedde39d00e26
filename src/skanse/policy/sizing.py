"""The run-time cost bound of one expression, priced by the operands it actually touches.

`skanse.policy.cost` judges an expression's shape at load. Before an expression runs, this
module prices it on the request: the expression is parsed into a tree once (at load), and at
run time each operation is charged with the sizes of its own operands, found by following the
expression's paths into the actual inputs (`object.spec.volumes` is the pod's volume list,
`c.volumeMounts` the longest mount list among the containers `c` ranges over). A value the
expression computes (`variables.names`, a `split`, a `map`) is bounded from its inputs: a
`map` is as long as the list it ranges over, a `split` as long as its string plus one, a
concatenation as long as both operands together.

Prices follow the API server's estimator: every node of the tree one unit per evaluation;
`x in list` the list's length (a list literal: its elements are nodes already; a map is
hashed); `==`/`!=` a tenth of the longer operand's longest list or string (nothing against
a scalar literal); `+` a tenth of both operands' lengths (nothing for numbers); ordering a
tenth of the strings; string calls a tenth of their strings; `join` the list's length times
a tenth of its longest string; list walks (`reverse`, `sum`...) the list's length; sorting
n log n; `sets.contains` and the like the product of both lengths; and `map`, `filter` and
the other macros that build a result the range's length per iteration, since cel-cpp copies
the result on each one. A comprehension's body is evaluated once per element of its range,
and at most 10,000 times in all (the runtime's iteration cap).

Text the parser does not know (message construction, say) has no tree: its expression is
priced by `skanse.policy.cost`'s coarse bound, with every list at the longest one's length.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from skanse.policy.cost import ACCUMULATING_MACROS, LIST_CALLS, STRING_CALLS, TOKEN

__all__ = [
    "Bound",
    "Concrete",
    "Node",
    "Record",
    "Sized",
    "cost_of",
    "parse",
    "value_of",
    "variables_of",
]

ITERATION_CAP = 10_000  # cel-cpp's comprehension iterations per evaluation
_UNKNOWN = 10**9  # a size the bound cannot tell (`lists.range(n)` of a computed n)
_JOINED = 100_000  # concatenations of input values up to this length are made to be priced


class Unsupported(ValueError):
    """Text outside what the parser knows: the coarse bound applies."""


@dataclass(frozen=True, slots=True)
class Node:
    """One node of an expression: `kind` is lit, ident, select, index, call, list, map, op
    (`text` the operator) or cond; a call's `target` is its receiver (None: global)."""

    kind: str
    text: str = ""
    args: tuple[Node, ...] = ()
    target: Node | None = None
    optional: bool = False  # `.?field`, `[?key]`, an optional list or map entry
    value: Any = None  # a literal's value (strings and integers; None otherwise)
    size: int = 0  # a string literal's length in the text


class _Parser:
    """Recursive descent over CEL's grammar (cel-spec's syntax, without message literals)."""

    def __init__(self, source: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        for match in TOKEN.finditer(source):
            kind = match.lastgroup or "bad"
            if kind == "space":
                continue
            if kind == "bad":
                raise Unsupported(match.group())
            self.tokens.append((kind, match.group()))
        self.tokens.append(("end", ""))
        self.at = 0

    def peek(self, ahead: int = 0) -> str:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)][1]

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise Unsupported(f"expected {expected!r}, found {token[1]!r}")
        if token[0] == "end":
            raise Unsupported("unexpected end")
        self.at += 1
        return token

    def whole(self) -> Node:
        node = self.expr()
        if self.tokens[self.at][0] != "end":
            raise Unsupported(f"unexpected {self.peek()!r}")
        return node

    def expr(self) -> Node:
        node = self.binary(0)
        if self.peek() == "?":
            self.take()
            then = self.expr()
            self.take(":")
            return Node("cond", args=(node, then, self.expr()))
        return node

    _LEVELS = (
        ("||",),
        ("&&",),
        ("<", "<=", ">", ">=", "==", "!=", "in"),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek() in self._LEVELS[level] and self.tokens[self.at][0] != "str":
            op = self.take()[1]
            node = Node("op", op, (node, self.binary(level + 1)))
        return node

    def unary(self) -> Node:
        if self.peek() in ("!", "-"):
            op = self.take()[1]
            return Node("op", op, (self.unary(),))
        return self.member(self.primary())

    def member(self, node: Node) -> Node:
        while True:
            if self.peek() == ".":
                self.take()
                optional = self.peek() == "?"
                if optional:
                    self.take()
                kind, name = self.take()
                if kind != "name":
                    raise Unsupported(name)
                if self.peek() == "(" and not optional:
                    self.take()
                    node = Node("call", name, self.entries(")", False), node)
                else:
                    node = Node("select", name, target=node, optional=optional)
            elif self.peek() == "[":
                self.take()
                optional = self.peek() == "?"
                if optional:
                    self.take()
                key = self.expr()
                self.take("]")
                node = Node("index", args=(key,), target=node, optional=optional)
            elif self.peek() == "{" and node.kind in ("ident", "select"):
                raise Unsupported("message construction")
            else:
                return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "str":
            return Node("lit", "str", value=_string(text), size=len(text))
        if kind == "num":
            return Node("lit", "num", value=_integer(text))
        if kind == "name":
            if text in ("true", "false", "null"):
                return Node("lit", text)
            if self.peek() == "(":
                self.take()
                return Node("call", text, self.entries(")", False))
            return Node("ident", text)
        if text == ".":  # a leading dot: the root namespace
            return self.primary()
        if text == "(":
            node = self.expr()
            self.take(")")
            return node
        if text == "[":
            return Node("list", args=self.entries("]", False))
        if text == "{":
            return Node("map", args=self.entries("}", True))
        raise Unsupported(text)

    def entries(self, close: str, pairs: bool) -> tuple[Node, ...]:
        """A call's arguments, a list's items or a map's keys and values, up to `close` (an
        optional item's `?` is skipped; the expression has been compiled, so it is valid)."""
        found: list[Node] = []
        while self.peek() != close:
            if self.peek() == "?":
                self.take()
            found.append(self.expr())
            if pairs:
                self.take(":")
                found.append(self.expr())
            if self.peek() != ",":
                break
            self.take()
        self.take(close)
        return tuple(found)


def _string(text: str) -> str | None:
    if text[:1] in "rRbB":
        return None  # raw or bytes literals are never a key the bound needs
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def _integer(text: str) -> int | None:
    try:
        return int(text.rstrip("uU"), 0)
    except ValueError:
        return None


def parse(source: str) -> Node | None:
    """The tree of `source`, or None where the text is beyond this parser (or nests too deep
    to walk): such an expression is priced by the coarse bound."""
    try:
        return _Parser(source).whole()
    except (Unsupported, RecursionError):
        return None


# -- what the bound knows about a value ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Concrete:
    """A value read from the inputs: one of these (the candidates a path reaches, e.g. every
    container's volumeMounts when `c` ranges over the containers)."""

    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Bound:
    """A computed value: no list or map in it longer than `n`, no string longer than `s`."""

    n: int = 0
    s: int = 0

    def __post_init__(self) -> None:
        # Past this, touching the value is over any limit anyway; chains of computed values
        # (`replace` squares the length) must not grow the numbers without end.
        object.__setattr__(self, "n", min(self.n, _UNKNOWN))
        object.__setattr__(self, "s", min(self.s, _UNKNOWN))


@dataclass(frozen=True, slots=True)
class Record:
    """A map literal with string keys (the `variables` map, as `cel.bind` builds it too)."""

    fields: tuple[tuple[str, Sized], ...]


Sized = Concrete | Bound | Record
_SCALAR = Bound()


def _lists(value: Sized) -> int:
    """The longest list among the value's candidates (a map: one, it is hashed)."""
    if isinstance(value, Concrete):
        return max((len(v) for v in value.values if type(v) is list), default=0)
    if isinstance(value, Record):
        return len(value.fields)
    return value.n


def _length(value: Sized) -> int:
    """The longest list, map or string among the candidates themselves."""
    if isinstance(value, Concrete):
        return max((len(v) for v in value.values if type(v) in (list, dict, str)), default=0)
    if isinstance(value, Record):
        return len(value.fields)
    return max(value.n, value.s)


def _strings(value: Sized) -> int:
    if isinstance(value, Concrete):
        return max((len(v) for v in value.values if type(v) is str), default=0)
    if isinstance(value, Record):
        return 0
    return value.s


def _deep(value: Sized) -> Bound:
    """The longest list and string anywhere inside the value."""
    if isinstance(value, Bound):
        return value
    if isinstance(value, Record):
        inner = [_deep(v) for _, v in value.fields]
        return Bound(
            max([len(value.fields), *(b.n for b in inner)]),
            max([*(len(k) for k, _ in value.fields), *(b.s for b in inner)], default=0),
        )
    n = s = 0
    pending = list(value.values)
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str:
            s = max(s, len(item))
        elif kind is list or kind is dict:
            n = max(n, len(item))
            if kind is dict:
                s = max([s, *(len(k) for k in item if type(k) is str)])
                pending.extend(item.values())
            else:
                pending.extend(item)
    return Bound(n, s)


def _distinct(values: list[Any]) -> tuple[Any, ...]:
    """The candidates, each object once: variables that choose between the same paths
    (`c ? variables.a : variables.a`, over and over) must not double them each time."""
    seen: set[int] = set()
    found = []
    for v in values:
        if id(v) not in seen:
            seen.add(id(v))
            found.append(v)
    return tuple(found)


def _union(values: list[Sized]) -> Sized:
    # A value of no size (a number, `.orValue(0)`) adds nothing to the others' sizes.
    values = [v for v in values if v != _SCALAR]
    if not values:
        return _SCALAR
    if all(isinstance(v, Concrete) for v in values):
        return Concrete(_distinct([x for v in values for x in v.values]))  # type: ignore[union-attr]
    bounds = [_deep(v) for v in values]
    return Bound(max((b.n for b in bounds), default=0), max((b.s for b in bounds), default=0))


def _field(value: Sized, name: str | None) -> Sized:
    """`value.name` (`value[name]`; None: a key not known before the run, any of them)."""
    if isinstance(value, Bound):
        return value
    if isinstance(value, Record):
        if name is None:
            return _union([v for _, v in value.fields])
        return next((v for k, v in value.fields if k == name), _SCALAR)
    found: list[Any] = []
    for v in value.values:
        if type(v) is dict:
            if name is None:
                found.extend(v.values())
            elif name in v:
                found.append(v[name])
        elif type(v) is list and name is None:
            found.extend(v)
    return Concrete(_distinct(found))


def _item(value: Sized, key: Node) -> Sized:
    """`value[key]`: a literal string key is followed; an index or a computed key, any."""
    if isinstance(value, Concrete) and key.kind == "lit" and type(key.value) is int:
        at: int = key.value
        lists = [v for v in value.values if type(v) is list]
        return Concrete(tuple(v[at] for v in lists if -len(v) <= at < len(v)))
    return _field(value, key.value if key.kind == "lit" and type(key.value) is str else None)


def _elements(value: Sized, keys: bool) -> tuple[Sized, Sized]:
    """What a comprehension's variables range over: (index or key, element or value); a
    one-variable comprehension over a map ranges over its keys."""
    if isinstance(value, Bound):
        return (Bound(0, value.s), value)
    if isinstance(value, Record):
        return (Bound(0, max((len(k) for k, _ in value.fields), default=0)), _field(value, None))
    found: list[Any] = []
    names: list[Any] = []
    for v in value.values:
        if type(v) is list:
            found.extend(v)
        elif type(v) is dict:
            names.extend(v.keys())
            found.extend(v.values() if not keys else v.keys())
    return (Concrete(_distinct(names)), Concrete(_distinct(found)))


# -- pricing ------------------------------------------------------------------------------

_ONE_VARIABLE = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter", "sortBy"})
_TWO_VARIABLES = frozenset({"transformList", "transformMap", "transformMapEntry"})
_OPTIONAL_MACROS = frozenset({"optMap", "optFlatMap"})
# The macros that accumulate, the string calls and the list walks are `cost`'s sets.
_SORT_CALLS = frozenset({"sort", "distinct"})
_SET_CALLS = frozenset({"contains", "intersects", "equivalent"})


@dataclass(frozen=True, slots=True)
class _Priced:
    cost: int
    value: Sized


class _Pricer:
    def __init__(self, fallback: Bound) -> None:
        self.fallback = fallback  # for a name the bound does not know

    def price(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        """The cost of `runs` evaluations of `node`, and a bound of its value."""
        handler = getattr(self, f"_{node.kind}")
        priced: _Priced = handler(node, env, runs)
        return priced

    def _all(
        self, nodes: tuple[Node, ...], env: Mapping[str, Sized], runs: int
    ) -> Iterator[_Priced]:
        for n in nodes:
            yield self.price(n, env, runs)

    def _lit(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        if node.text == "str":
            if type(node.value) is str:
                return _Priced(runs, Concrete((node.value,)))
            return _Priced(runs, Bound(0, node.size))  # raw or bytes: at most its text
        return _Priced(runs, _SCALAR)

    def _ident(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        return _Priced(runs, env.get(node.text, self.fallback))

    def _select(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        assert node.target is not None
        inner = self.price(node.target, env, runs)
        return _Priced(inner.cost + runs, _field(inner.value, node.text))

    def _index(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        assert node.target is not None
        inner = self.price(node.target, env, runs)
        key = self.price(node.args[0], env, runs)
        return _Priced(inner.cost + key.cost + runs, _item(inner.value, node.args[0]))

    def _list(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        items = list(self._all(node.args, env, runs))
        if all(isinstance(i.value, Concrete) and len(i.value.values) == 1 for i in items):
            # Known elements (`[]`, `['a', 'b']`): the list itself.
            known = [i.value.values[0] for i in items]  # type: ignore[union-attr]
            return _Priced(runs + sum(i.cost for i in items), Concrete((known,)))
        inner = _union([i.value for i in items])
        deep = _deep(inner)
        return _Priced(runs + sum(i.cost for i in items), Bound(max(len(items), deep.n), deep.s))

    def _map(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        items = list(self._all(node.args, env, runs))
        cost = runs + sum(i.cost for i in items)
        keys = node.args[0::2]
        if not keys:
            return _Priced(cost, Concrete(({},)))
        if all(k.kind == "lit" and type(k.value) is str for k in keys):
            fields = tuple((k.value, v.value) for k, v in zip(keys, items[1::2], strict=True))
            return _Priced(cost, Record(fields))
        deep = _deep(_union([i.value for i in items])) if items else _SCALAR
        return _Priced(cost, Bound(max(len(keys), deep.n), deep.s))

    def _cond(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        test, then, other = self._all(node.args, env, runs)
        return _Priced(test.cost + then.cost + other.cost, _union([then.value, other.value]))

    def _op(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        operands = list(self._all(node.args, env, runs))
        cost = runs + sum(o.cost for o in operands)
        if len(operands) == 1:
            return _Priced(cost, _SCALAR)
        (left, right), (lnode, rnode) = (operands, node.args)
        op = node.text
        literal = _scalar_literal(lnode) or _scalar_literal(rnode)
        if op == "in":
            walked = 0 if rnode.kind == "list" else _lists(right.value)
            return _Priced(cost + runs * walked, _SCALAR)
        if op in ("==", "!="):
            if literal:
                return _Priced(cost, _SCALAR)
            size = max(_deep_size(left.value), _deep_size(right.value))
            return _Priced(cost + runs * (size // 10 + 1), _SCALAR)
        if op in ("<", "<=", ">", ">="):
            size = max(_strings(left.value), _strings(right.value))
            return _Priced(cost + runs * (size // 10 + 1), _SCALAR)
        if op == "+":
            if _number_literal(lnode) or _number_literal(rnode):
                return _Priced(cost, _SCALAR)
            total = _length(left.value) + _length(right.value)
            joined = _joined(left.value, right.value)
            if joined is not None:
                return _Priced(cost + runs * (total // 10 + 1), joined)
            a, b = _deep(left.value), _deep(right.value)
            value = Bound(
                max(a.n, b.n, _lists(left.value) + _lists(right.value)),
                max(a.s, b.s, _strings(left.value) + _strings(right.value)),
            )
            return _Priced(cost + runs * (total // 10 + 1), value)
        return _Priced(cost, _SCALAR)  # arithmetic, && and ||

    def _call(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        name = node.text
        target = node.target
        if _namespace(target) == "cel" and name == "bind":
            return self._bind(node, env, runs)
        if target is not None and name in _ONE_VARIABLE | _TWO_VARIABLES | _OPTIONAL_MACROS:
            return self._comprehension(node, target, env, runs)
        if target is None and name == "has":
            return _Priced(runs + self.price(node.args[0], env, runs).cost, _SCALAR)
        if target is not None and target.kind == "ident" and target.text not in env:
            target = None  # a namespace: `optional.of(x)`, `strings.quote(s)`
        receiver = self.price(target, env, runs) if target is not None else None
        args = list(self._all(node.args, env, runs))
        cost = runs + sum(a.cost for a in args) + (receiver.cost if receiver else 0)
        inputs = ([receiver.value] if receiver else []) + [a.value for a in args]
        extra, value = _call_price(name, node.target, node.args, inputs)
        return _Priced(cost + runs * extra, value)

    def _bind(self, node: Node, env: Mapping[str, Sized], runs: int) -> _Priced:
        if len(node.args) != 3 or node.args[0].kind != "ident":
            raise Unsupported("cel.bind")
        init = self.price(node.args[1], env, runs)
        body = self.price(node.args[2], {**env, node.args[0].text: init.value}, runs)
        return _Priced(runs + init.cost + body.cost, body.value)

    def _comprehension(
        self, node: Node, target: Node, env: Mapping[str, Sized], runs: int
    ) -> _Priced:
        name = node.text
        source = self.price(target, env, runs)
        two = name in _TWO_VARIABLES or (
            name in ("all", "exists", "exists_one", "existsOne") and len(node.args) == 3
        )
        count = 2 if two else 1
        if len(node.args) <= count or any(a.kind != "ident" for a in node.args[:count]):
            raise Unsupported(name)  # not a macro the runtime would accept either
        variables = [a.text for a in node.args[:count]]
        bodies = node.args[count:]
        if name in _OPTIONAL_MACROS:
            iterations, scope = 1, {**env, variables[0]: source.value}
        else:
            iterations = _range(source.value)
            key, element = _elements(source.value, keys=not two)
            bound = (key, element) if two else (element,)
            scope = {**env, **dict(zip(variables, bound, strict=False))}
        body_runs = min(ITERATION_CAP, runs * iterations)
        priced = [self.price(b, scope, body_runs) for b in bodies]
        cost = runs + source.cost + sum(p.cost for p in priced)
        if name in ACCUMULATING_MACROS:
            cost += body_runs * iterations
        last = priced[-1].value if priced else _SCALAR
        if name in ("map", "transformList"):
            deep = _deep(last)
            return _Priced(cost, Bound(max(iterations, deep.n), deep.s))
        if name in ("transformMap", "transformMapEntry"):
            deep = _deep(_union([last, source.value]))
            return _Priced(cost, Bound(max(iterations, deep.n), deep.s))
        if name in ("filter", "sortBy"):
            if name == "sortBy":
                cost += runs * iterations * max(1, iterations.bit_length())
            return _Priced(cost, _deep(source.value))
        if name in _OPTIONAL_MACROS:
            return _Priced(cost, last)
        return _Priced(cost, _SCALAR)


def _joined(left: Sized, right: Sized) -> Concrete | None:
    """Two lists or two strings read from the inputs, concatenated: the value itself (its
    bound needs no walk of everything in it)."""
    if not (isinstance(left, Concrete) and isinstance(right, Concrete)):
        return None
    if len(left.values) != 1 or len(right.values) != 1:
        return None
    a, b = left.values[0], right.values[0]
    if type(a) is not type(b) or type(a) not in (list, str):
        return None
    if len(a) + len(b) > _JOINED:
        return None  # chains of variables could double it each time: bounded instead
    return Concrete((a + b,))


def _namespace(target: Node | None) -> str | None:
    """`sets` of `sets.contains(...)` (a receiver that is a bare name)."""
    return target.text if target is not None and target.kind == "ident" else None


def _range(value: Sized) -> int:
    """How many elements (or keys) a comprehension over the value iterates."""
    if isinstance(value, Concrete):
        return max((len(v) for v in value.values if type(v) in (list, dict)), default=0)
    if isinstance(value, Record):
        return len(value.fields)
    return value.n


def _deep_size(value: Sized) -> int:
    deep = _deep(value)
    return max(deep.n, deep.s)


def _scalar_literal(node: Node) -> bool:
    return node.kind == "lit" or (node.kind == "op" and node.text == "-" and len(node.args) == 1)


def _number_literal(node: Node) -> bool:
    return (node.kind == "lit" and node.text == "num") or (
        node.kind == "op" and node.text == "-" and len(node.args) == 1
    )


# Calls whose result is one of their operands (an optional's value, `dyn`).
_PASSING = frozenset({"orValue", "or", "value", "of", "ofNonZeroValue", "dyn"})
# Calls whose result is a number, a bool, a type or a duration: no size.
_SCALAR_CALLS = frozenset(
    {
        "size",
        "int",
        "uint",
        "double",
        "bool",
        "type",
        "hasValue",
        "duration",
        "timestamp",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
        "indexOf",
        "lastIndexOf",
        "isURL",
        "isQuantity",
        "isSemver",
        "isIP",
        "isCIDR",
        "isSorted",
        "sum",
    }
)


def _call_price(
    name: str, target: Node | None, args: tuple[Node, ...], inputs: list[Sized]
) -> tuple[int, Sized]:
    """The extra cost of one call past its unit, and a bound of its result."""

    def deep() -> Bound:  # walks the candidates: only where the result needs it
        found = [_deep(v) for v in inputs]
        return Bound(max((b.n for b in found), default=0), max((b.s for b in found), default=0))

    strings = sum(_strings(v) for v in inputs)
    namespace = _namespace(target)
    if namespace == "sets" and name in _SET_CALLS:
        lists = [_lists(v) for v in inputs] + [1, 1]
        return lists[0] * lists[1], _SCALAR
    if namespace == "lists" and name == "range":
        literal = args and args[0].kind == "lit" and type(args[0].value) is int
        size = args[0].value if literal else _UNKNOWN
        return size, Bound(max(0, size), 0)
    if namespace == "strings" and name == "quote":
        return strings // 10 + 1, Bound(0, 2 * strings + 2)
    price = strings // 10 + 1 if name in STRING_CALLS else 0
    if name in _SCALAR_CALLS:
        return price + (_lists(inputs[0]) if name in LIST_CALLS and inputs else 0), _SCALAR
    if name in _PASSING and name not in STRING_CALLS:
        return 0, _union(inputs)
    if name == "join":
        items = _lists(inputs[0]) if inputs else 0
        s = deep().s
        separator = sum(_strings(v) for v in inputs[1:])
        return items * (s // 10 + 1), Bound(0, items * (s + separator))
    if name in ("split", "findAll"):
        # One string made per piece: `'aaa'.split('a')` makes 4 (measured, 15M in 1.1 s).
        return price + strings + 1, Bound(strings + 1, strings)
    # A call that builds a longer string than it reads is charged for writing it too.
    if name == "replace":
        # s.replace(old, new): at most one `new` per position of `s` (an empty `old`).
        read = _strings(inputs[0]) if inputs else 0
        new = _strings(inputs[2]) if len(inputs) >= 3 else strings
        built = Bound(0, read + (read + 1) * new)
        return price + built.s // 10, built
    if name == "format":
        b = deep()
        built = Bound(0, (strings + 1) * (b.n + 1) * (b.s + 1))
        return price + built.s // 10, built
    if name in STRING_CALLS:
        return price, Bound(0, strings)  # a string, or an object of its parts
    if name in _SORT_CALLS:
        items = _lists(inputs[0]) if inputs else 0
        return items * max(1, items.bit_length()), deep()
    if name == "flatten":
        # The flattened list: up to the longest inner list per item, one level deep.
        items = _lists(inputs[0]) if inputs else 0
        b = deep()
        flat = items * b.n if len(args) == 0 else _UNKNOWN
        return flat, Bound(flat, b.s)
    if name in LIST_CALLS:
        return max((_length(v) for v in inputs[:1]), default=0), deep()
    if name == "string":
        return 0, Bound(0, deep().s + 32)  # of a number, a bool, bytes or a string
    return 0, deep()  # accessors and other calls: no larger than their inputs


def value_of(tree: Node, env: Mapping[str, Sized], fallback: Bound) -> Sized:
    """A bound of `tree`'s value (a variable, for the expressions that read it); the
    fallback where the tree is beyond the pricing."""
    try:
        return _Pricer(fallback).price(tree, env, 1).value
    except (Unsupported, RecursionError):
        return fallback


def cost_of(tree: Node, env: Mapping[str, Sized], fallback: Bound) -> int | None:
    """The cost of one evaluation of `tree` on the inputs `env` describes (`fallback` bounds
    a name it does not describe), or None where the tree is beyond the pricing."""
    try:
        return _Pricer(fallback).price(tree, env, 1).cost
    except (Unsupported, RecursionError):
        return None


def variables_of(
    variables: tuple[tuple[str, Node | None], ...], roots: Mapping[str, Sized], fallback: Bound
) -> Record:
    """The `variables` map: each variable bounded from its defining expression, in order
    (a later one may read an earlier one); one without a tree at the fallback."""
    fields: list[tuple[str, Sized]] = []
    for name, tree in variables:
        env = {**roots, "variables": Record(tuple(fields))}
        fields.append((name, value_of(tree, env, fallback) if tree is not None else fallback))
    return Record(tuple(fields))
