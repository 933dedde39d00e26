"""A cost bound for CEL expressions, since the runtime has no cost accounting of its own.

The API server charges every expression at run time and stops it past 1,000,000 units
(`PerCallLimit`), and a binding past 10,000,000 (`RuntimeCELCostBudget`). cel-expr-python
does not count cost, but cel-cpp stops any evaluation after 10,000 comprehension iterations
in total (measured: `x.all(a, true)` runs on 9,999 elements and fails on 10,000). So the work
of one evaluation is bounded by

    outside + inside * iterations + string_calls * iterations * longest_string / 10

where `outside` and `inside` count the expression's tokens outside and inside comprehension
bodies, `iterations` is min(10,000, longest_list ** nesting), and string calls (regex,
contains, split...) are charged a tenth of a unit per character, as the API server does.

* At load time the bound is taken with lists of 1,000 elements and short strings; an
  expression over the per-call limit even then is refused, with its position.
* At run time the bound is taken with the sizes of the actual inputs before the expression
  runs; an expression over the limit is not run and is an error located at the expression
  (the binding's failurePolicy decides what that means), and so is a binding whose total
  passes the binding budget.

The bound over-estimates, never under-estimates: a refusal names the estimate so it can be
told apart from a failing policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BINDING_BUDGET",
    "ITERATION_CAP",
    "LOAD_LIST_SIZE",
    "MAX_DEPTH",
    "PER_CALL_LIMIT",
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
_STRING_CALLS = frozenset(
    {
        "matches",
        "find",
        "findAll",
        "contains",
        "startsWith",
        "endsWith",
        "split",
        "replace",
        "indexOf",
        "lastIndexOf",
        "lowerAscii",
        "upperAscii",
        "trim",
        "join",
        "format",
        "substring",
        "quote",
        "reverse",
        "url",
        "quantity",
        "semver",
        "ip",
        "cidr",
    }
)
_TOKEN = re.compile(
    r"""(?P<str>[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"))"""
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<open>\()|(?P<close>\))"
    r"|(?P<other>[^\s])"
)


@dataclass(frozen=True, slots=True)
class CostShape:
    """What the bound needs to know about one expression."""

    outside: int
    inside: int
    nesting: int
    string_calls_outside: int
    string_calls_inside: int

    def bound(self, longest_list: int, longest_string: int) -> int:
        iterations = min(ITERATION_CAP, max(longest_list, 1) ** self.nesting)
        if self.nesting == 0:
            iterations = 0
        strings = (self.string_calls_outside + self.string_calls_inside * iterations) * (
            longest_string // 10 + 1
        )
        return int(self.outside + self.inside * iterations + strings)


def shape_of(source: str) -> CostShape:
    """Count tokens, comprehension nesting and string calls, by a lexical pass over the text."""
    stack: list[bool] = []  # per open parenthesis: does it open a comprehension?
    depth = nesting = outside = inside = str_out = str_in = 0
    previous: list[str] = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup
        text = match.group()
        if depth:
            inside += 1
        else:
            outside += 1
        if kind == "open":
            is_macro = len(previous) >= 2 and previous[-2] == "." and previous[-1] in _MACROS
            stack.append(is_macro)
            if is_macro:
                depth += 1
                nesting = max(nesting, depth)
        elif kind == "close" and stack:
            if stack.pop():
                depth -= 1
        elif kind == "name" and text in _STRING_CALLS:
            if depth:
                str_in += 1
            else:
                str_out += 1
        previous = [*previous[-1:], text]
    return CostShape(outside, inside, nesting, str_out, str_in)


def safe_size(policies: Iterable[Iterable[CostShape]]) -> int:
    """The largest input size S (longest list and longest string both at most S) for which no
    expression can pass the per-call limit nor a policy the binding budget: inputs known to be
    no larger (a request body of S bytes) need no walk to be judged safe."""

    def fits(size: int) -> bool:
        for shapes in policies:
            bounds = [shape.bound(size, size) for shape in shapes]
            if any(b > PER_CALL_LIMIT for b in bounds) or sum(bounds) > BINDING_BUDGET:
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
