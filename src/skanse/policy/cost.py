"""A cost bound for CEL expressions, since the runtime has no cost accounting of its own.

The API server charges every expression at run time and stops it past 1,000,000 units
(`PerCallLimit`), and a binding past 10,000,000 (`RuntimeCELCostBudget`). cel-expr-python
does not count cost, but cel-cpp stops any evaluation after 10,000 comprehension iterations
in total (measured: `x.all(a, true)` runs on 9,999 elements and fails on 10,000). So the work
of one evaluation is bounded by the sum of its operations, each priced by its kind and
counted as often as it can run. The coarse form, this module's `CostShape`, counts the
operations written at each comprehension depth d (0: outside any body) min(10,000, L ** d)
times and prices them at the longest list L and string S of the inputs:

* a token (field, literal, operator, call): one unit;
* an operation whose work is the size of its operands, priced as the API server's estimator
  prices it, at the longest list L or string S of the inputs (the operands' types are not
  known, every input is `dyn`): a string call (regex, contains, split...) S / 10; `x in
  list` L (not against a list literal, whose elements are tokens); `==` and `!=` max(L, S)
  / 10 (not against a scalar literal); `+` twice that (the new list or string; nothing for
  numbers), ordering S / 10; `join` L * S / 10 (every string of the list); sort and
  distinct L log L; `sets.contains` and the like L ** 2;
* `map`, `filter` and the other macros that build a result: L more per iteration, since
  cel-cpp copies the accumulated result on each one (quadratic, measured).

This shape is judged at load: the bound is taken with lists of 1,000 elements and short
strings, operand-sized operations at one unit; an expression over the per-call limit even
then is refused, with its position. (Charged in full, `v in variables.allowed` three
comprehensions deep would be refused whatever the input.)

At run time, before an expression runs, `skanse.policy.sizing` prices it with the same unit
prices but per operand: each operation at the size of the lists and strings it actually
touches, found by following the expression's paths into the inputs (`m.name in
variables.names` at the length of the names, bounded by the volumes they are mapped from;
a comprehension at its own range's length), not at the longest list anywhere. An
expression over the limit is not run and is an error located at the expression (the
binding's failurePolicy decides what that means), and so is a binding whose total passes
the binding budget. An expression the parser there does not know is priced by this shape,
every list and string at the longest one's length. `safe_size` finds the input size below
which no expression of a policy set can pass a limit (priced per operand, every input list
and string at that size): such inputs are not priced at all.

The bound over-estimates, never under-estimates: a refusal names the estimate so it can be
told apart from a failing policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BINDING_BUDGET",
    "ITERATION_CAP",
    "LOAD_LIST_SIZE",
    "MAX_DEPTH",
    "PER_CALL_LIMIT",
    "Charges",
    "CostShape",
    "InputSizes",
    "input_sizes",
    "safe_size",
    "shape_of",
]

PER_CALL_LIMIT = 1_000_000
BINDING_BUDGET = 10_000_000
ITERATION_CAP = 10_000  # cel-cpp's comprehension iteration budget per evaluation
LOAD_LIST_SIZE = 1_000
LOAD_STRING_SIZE = 256

_MACROS = frozenset(
    {
        "all",
        "exists",
        "exists_one",
        "existsOne",
        "map",
        "filter",
        "transformList",
        "transformMap",
        "transformMapEntry",
        "sortBy",
    }
)
# Macros that build a list or map: the runtime (cel-cpp) copies the accumulated result on
# every iteration (measured: `x.map(v, v)` takes 4 times longer on twice the elements), so
# each iteration walks a list as long as the range.
ACCUMULATING_MACROS = frozenset(
    {
        "filter",
        "map",
        "sortBy",
        "transformList",
        "transformMap",
        "transformMapEntry",
    }
)
# Calls that scan a string: a tenth of a unit per character, as the API server charges.
STRING_CALLS = frozenset(
    {
        "charAt",
        "cidr",
        "contains",
        "endsWith",
        "find",
        "findAll",
        "format",
        "indexOf",
        "ip",
        "isCIDR",
        "isIP",
        "isQuantity",
        "isSemver",
        "isURL",
        "lastIndexOf",
        "lowerAscii",
        "matches",
        "quantity",
        "quote",
        "replace",
        "semver",
        "split",
        "startsWith",
        "substring",
        "trim",
        "upperAscii",
        "url",
    }
)
# Calls that walk a list once (`reverse` also reverses strings: it is charged both ways).
LIST_CALLS = frozenset(
    {
        "first",
        "isSorted",
        "last",
        "max",
        "min",
        "reverse",
        "slice",
        "sum",
    }
)
# Calls that sort or deduplicate a list: n log n.
_SORT_CALLS = frozenset({"sort", "sortBy", "distinct", "flatten"})
# `sets.contains(a, b)`, `sets.intersects`, `sets.equivalent` compare every pair.
_SET_CALLS = frozenset({"contains", "intersects", "equivalent"})
# Tokens that end an operand on the right (or start one on the left) of a comparison: a
# literal between such a token and the operator is the whole operand, not part of `'a' + x`.
_RIGHT_ENDS = frozenset({")", "]", "}", ",", "&&", "||", "?", ":", ""})
_LEFT_ENDS = frozenset({"(", "[", "{", ",", "&&", "||", "?", ":", ""})
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
# CEL's lexical grammar (cel-spec): the one tokenizer of the load-time shape and of
# `sizing`'s parser. Strings do not cross lines; `//` comments are space.
TOKEN = re.compile(
    r"""(?P<str>[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))"""
    r"|(?P<num>0[xX][0-9A-Fa-f]+[uU]?|\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+[uU]?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%!<>?:.,()\[\]{}])"
    r"|(?P<space>\s+|//[^\n]*)"
    r"|(?P<bad>.)"
)


@dataclass(frozen=True, slots=True)
class Charges:
    """The operations at one comprehension depth of an expression, by how their cost grows
    with the input: the bound prices each kind with the sizes."""

    tokens: int = 0  # one unit each
    strings: int = 0  # scan one string: longest_string / 10
    # Operations whose cost is the size of their operands (the API server's estimator charges
    # them so); lexically the operands' types are unknown, so each is priced at its worst:
    sized: int = 0  # compare or copy lists or strings: max(longest list, string) / 10
    lists: int = 0  # walk one list (`x in list`): longest_list
    sorts: int = 0  # sort one list: longest_list * log2(longest_list)
    joins: int = 0  # every string of a list: longest_list * longest_string / 10
    pairs: int = 0  # every pair of two lists (sets.contains): longest_list ** 2

    def price(self, longest_list: int, longest_string: int, operands: bool = True) -> int:
        per_string = longest_string // 10 + 1
        fixed = self.tokens + self.strings * per_string
        if not operands:
            return fixed
        return (
            fixed
            + self.sized * (max(longest_list, longest_string) // 10 + 1)
            + self.lists * longest_list
            + self.sorts * longest_list * max(1, longest_list.bit_length())
            + self.joins * longest_list * per_string
            + self.pairs * longest_list * longest_list
        )


@dataclass(frozen=True, slots=True)
class CostShape:
    """What the bound needs to know about one expression: its charges at each comprehension
    depth (0: outside any comprehension body)."""

    levels: tuple[Charges, ...]

    @property
    def nesting(self) -> int:
        return len(self.levels) - 1

    def bound(self, longest_list: int, longest_string: int, operands: bool = True) -> int:
        """The work of one evaluation; without `operands`, operations are charged one unit
        whatever the size of their operands (the shape of the expression alone)."""
        total = 0
        for depth, charges in enumerate(self.levels):
            # An operation d comprehensions deep runs at most once per iteration of the
            # innermost of them: longest_list ** d times, and the runtime stops at 10,000.
            runs = 1 if depth == 0 else min(ITERATION_CAP, max(longest_list, 1) ** depth)
            total += runs * charges.price(longest_list, longest_string, operands)
        return total


_KINDS = ("tokens", "strings", "sized", "lists", "sorts", "joins", "pairs")


def _is_literal(kind: str | None, text: str) -> bool:
    return kind in ("str", "num") or text in ("true", "false", "null")


def _charges_of(tokens: list[tuple[str | None, str]], index: int) -> tuple[str, ...]:
    """The kinds a token is charged as besides its own unit, from its neighbours."""
    kind, text = tokens[index]
    before = tokens[index - 1] if index else (None, "")
    after = tokens[index + 1] if index + 1 < len(tokens) else (None, "")
    before2 = tokens[index - 2][1] if index >= 2 else ""
    after2 = tokens[index + 2][1] if index + 2 < len(tokens) else ""
    if kind == "name":
        if text == "in" and before[1] != ".":
            # A list literal's elements are already counted as tokens; a map is hashed.
            return () if after[1] in ("[", "{") else ("lists",)
        if before[1] != ".":
            return ()  # a variable, a field name after `?.`, or a global function
        if before2 == "sets" and text in _SET_CALLS:
            return ("pairs",)
        if text == "join":
            return ("joins",)
        found = []
        if text in STRING_CALLS:
            found.append("strings")
        if text in LIST_CALLS:
            found.append("lists")
        if text in _SORT_CALLS:
            found.append("sorts")
        return tuple(found)
    if text in _COMPARISONS or text == "+":
        # Against a scalar literal the cost is the literal's: `c.name == 'x'`, `n + 1`.
        if text == "+":
            if after[0] == "num" or before[0] == "num":
                return ()  # an arithmetic sum, whatever the rest of the operand
            if after[0] == "str" or before[0] == "str":
                return ("strings",)  # a new string: the other operand's length
            return ("sized", "sized")  # a new string or list of both operands' sizes
        # Compared with a scalar literal, the cost is the literal's: `c.name == 'x'`.
        if _is_literal(*after) and after2 in _RIGHT_ENDS:
            return ()
        if _is_literal(*before) and before2 in _LEFT_ENDS:
            return ()
        if text in ("==", "!="):
            return ("sized",)  # lists, maps or strings, compared element by element
        return ("strings",)  # ordering: only strings have a size
    return ()


def _shape_token(match: re.Match[str]) -> tuple[str | None, str]:
    """A token as the shape pass reads it: parentheses open and close, one-character
    operators and anything unknown are `other`, two-character operators `op`."""
    kind, text = match.lastgroup, match.group()
    if text == "(":
        return "open", text
    if text == ")":
        return "close", text
    if kind == "bad" or (kind == "op" and len(text) == 1):
        return "other", text
    return kind, text


def shape_of(source: str) -> CostShape:
    """Count operations by kind and comprehension depth, by a lexical pass over the text.

    Without types (every input is `dyn`), an operation is priced as its costliest reading:
    `x in y` walks a list (as the API server charges it), `a == b` and `a + b` compare or
    copy lists or strings of the longest size unless one side is a literal, and `l.join()`
    reads every string of a list."""
    tokens = [_shape_token(m) for m in TOKEN.finditer(source) if m.lastgroup != "space"]
    stack: list[bool] = []  # per open parenthesis: does it open a comprehension?
    depth = 0
    counts: list[dict[str, int]] = [dict.fromkeys(_KINDS, 0)]
    for index, (kind, _) in enumerate(tokens):
        counts[depth]["tokens"] += 1
        for charge in _charges_of(tokens, index):
            counts[depth][charge] += 1
        if kind == "open":
            previous = tokens[index - 2 : index]
            is_macro = len(previous) == 2 and previous[0][1] == "." and previous[1][1] in _MACROS
            stack.append(is_macro)
            if is_macro:
                depth += 1
                if depth == len(counts):
                    counts.append(dict.fromkeys(_KINDS, 0))
                if previous[1][1] in ACCUMULATING_MACROS:
                    counts[depth]["lists"] += 1
        elif kind == "close" and stack:
            if stack.pop():
                depth -= 1
    return CostShape(tuple(Charges(**c) for c in counts))


def safe_size(bounds: Callable[[int], Iterable[Sequence[int]]]) -> int:
    """The largest input size S (longest list and longest string both at most S) for which no
    expression can pass the per-call limit nor a policy the binding budget: inputs known to be
    no larger (a request body of S bytes) need no pricing. `bounds(S)` gives, per policy, its
    expressions' bounds on such inputs (they grow with S)."""

    def fits(size: int) -> bool:
        for found in bounds(size):
            if any(b > PER_CALL_LIMIT for b in found) or sum(found) > BINDING_BUDGET:
                return False
        return True

    low, high = 0, 1 << 24
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


@dataclass(frozen=True, slots=True)
class InputSizes:
    """The longest list or map and the longest string among an evaluation's inputs."""

    longest_list: int = 0
    longest_string: int = 0
    depth: int = 0  # of the deepest nested list or map


# The runtime converts nested values recursively and crashes (stack overflow) somewhere
# between 5,000 and 10,000 levels; no Kubernetes object comes near this.
MAX_DEPTH = 2_000


def input_sizes(values: Iterable[Any]) -> InputSizes:
    """Walk the inputs once (iteratively: hostile nesting must not exhaust the stack)."""
    longest_list = longest_string = deepest = 0
    pending: list[tuple[Any, int]] = [(v, 1) for v in values if type(v) in (dict, list)]
    for value in values:
        if type(value) is str and len(value) > longest_string:
            longest_string = len(value)
    while pending:
        container, depth = pending.pop()
        if depth > deepest:
            deepest = depth
        if len(container) > longest_list:
            longest_list = len(container)
        if type(container) is dict:
            for key in container:
                if type(key) is str and len(key) > longest_string:
                    longest_string = len(key)
            items = container.values()
        else:
            items = container
        for item in items:
            kind = type(item)
            if kind is str:
                if len(item) > longest_string:
                    longest_string = len(item)
            elif kind is dict or kind is list:
                pending.append((item, depth + 1))
    return InputSizes(longest_list, longest_string, deepest)
