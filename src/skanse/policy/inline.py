"""Variables bound inside the expression that reads them, so one activation serves all.

The API server evaluates `variables` lazily, once per request. The runtime cannot read Python
values that change after an activation is built, and building one per variable converts the
object again each time (measured: half the cost of a five-validation policy). So an
expression that names its variables as `variables.NAME` (or `variables[?'NAME']`) is also
compiled wrapped in `cel.bind`s of exactly the variables it reads, in declaration order:

    cel.bind(__skv0, (<podSpec>), cel.bind(variables, {'podSpec': __skv0},
      cel.bind(__skv1, (<containers>), cel.bind(variables, {'podSpec': __skv0,
        'containers': __skv1}, (<expression>)))))

The runtime's bind is lazy, so a variable is only computed where it is read. When the wrapped
form fails or cannot be built, the engine falls back to the exact evaluation (variables first,
then the expression), so the outcome and error semantics stay the API server's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["compose", "compose_all", "variable_references", "variables_read"]

_STRING = re.compile(
    r"""[rRbB]{0,2}('''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
)
_VARIABLES = re.compile(r"(?<![\w.])variables\b")
_READ = re.compile(
    r"""(?<![\w.])variables(?:\s*\.\??\s*([A-Za-z_]\w*)|\s*\[\??\s*(['"])([A-Za-z_]\w*)\2\s*\])"""
)


def variable_references(source: str) -> list[tuple[str, int]]:
    """Each `variables.NAME` / `variables[?'NAME']` of `source`: the name and its offset."""
    return [(m.group(1) or m.group(3), m.start()) for m in _READ.finditer(source)]


def variables_read(source: str) -> frozenset[str] | None:
    """The variable names `source` reads, or None if it uses `variables` in any other way
    (as a whole map, with a computed key) or the text is too unusual to tell."""
    if "variables" not in source:
        return frozenset()
    # Blank out string literals (keeping quoted keys of `variables[?'x']`, checked below).
    names: set[str] = set()
    uses = 0
    for match in _READ.finditer(source):
        names.add(match.group(1) or match.group(3))
        uses += 1
    masked = _STRING.sub(lambda m: " " * len(m.group()), source)
    if len(_VARIABLES.findall(masked)) != uses:
        return None
    return frozenset(names)


def compose(source: str, chain: Sequence[tuple[str, str]]) -> str:
    """`source` with the variables of `chain` ((name, expression), in declaration order)
    bound around it."""
    text = f"({source})"
    for i in range(len(chain) - 1, -1, -1):
        mapping = ", ".join(f"'{name}': __skv{j}" for j, (name, _) in enumerate(chain[: i + 1]))
        text = f"cel.bind(__skv{i}, ({chain[i][1]}), cel.bind(variables, {{{mapping}}}, {text}))"
    return text


def compose_all(sources: Sequence[str], chain: Sequence[tuple[str, str]]) -> str:
    """The list of `sources`' values, with the variables of `chain` bound once around it: one
    evaluation for a policy's validations, each variable computed at most once."""
    # A line break before each closing parenthesis: a source may end in a // comment.
    return compose("[" + ", ".join(f"({source}\n)" for source in sources) + "]", chain)


def closure(
    wanted: frozenset[str], reads: dict[str, frozenset[str] | None], order: Sequence[str]
) -> list[str] | None:
    """The variables `wanted` needs, transitively, in declaration order (None: cannot tell)."""
    needed: set[str] = set()
    pending = list(wanted)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        if name not in reads:
            return None  # an undeclared variable: leave the error to the exact evaluation
        own = reads[name]
        if own is None:
            return None
        needed.add(name)
        pending.extend(own)
    return [n for n in order if n in needed]


__all__ += ["closure"]
