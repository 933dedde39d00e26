"""`skanse policy validate`: check field paths in expressions against the matched kinds.

The API server type-checks a policy's expressions against the OpenAPI schemas of the kinds
its resourceRules match and reports warnings in the policy's status. Here every expression
is first compiled (errors come located from the compiler); then each field path that starts
at `object` or `oldObject` (`object.spec.template.spec.containers`) is walked through the
schemas of the matched kinds (`data/kinds.json`: 23 common built-in kinds). A path that
exists in none of them is reported with the line and column of the field inside the
expression. Paths through comprehension variables (`c.image`) and `variables` are not
followed, and custom resources have no schema here: those are said, not guessed.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from skanse.policy.inline import variable_references
from skanse.policy.load import CompiledPolicy, expressions_of

__all__ = ["FieldProblem", "check_policy", "matched_kinds"]

_STRING = re.compile(r"""'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*\"""")
_PATH = re.compile(r"(?<![\w.])(object|oldObject)((?:\s*\.\??\s*[A-Za-z_][A-Za-z0-9_]*)+)(\s*\()?")
_STEP = re.compile(r"\s*\.\??\s*([A-Za-z_][A-Za-z0-9_]*)")


@cache
def _kinds() -> dict[str, Any]:
    text = (importlib.resources.files("skanse.policy") / "data" / "kinds.json").read_text(
        encoding="utf-8"
    )
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass(frozen=True, slots=True)
class FieldProblem:
    where: str  # file:line:column of the YAML field holding the expression
    field: str  # spec.validations[0].expression
    line: int  # inside the expression
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field} (expression {self.line}:{self.column}): {self.message}"


def matched_kinds(policy: CompiledPolicy) -> tuple[list[dict[str, Any]], list[str]]:
    """The known kinds the policy's resourceRules match, and the rules' resources that are
    not known (custom resources, subresources)."""
    known = _kinds()["kinds"]
    constraints = policy.spec.match_constraints
    found: list[dict[str, Any]] = []
    unknown: list[str] = []
    for rule in constraints.resource_rules if constraints else ():
        for resource in rule.resources:
            hits = [
                k
                for k in known
                if ("*" in rule.api_groups or k["group"] in rule.api_groups)
                and resource in ("*", "*/*", k["resource"])
            ]
            if not hits:
                unknown.append(resource)
            found.extend(h for h in hits if h not in found)
    return found, unknown


def _walk(definition: Any, steps: list[str], called: bool) -> tuple[int, str] | None:
    """None if the path exists; else the index of the first bad step and why."""
    definitions = _kinds()["definitions"]
    current: Any = definition
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if last and called:
            return None  # a method call (startsWith, all, size...) ends the path
        if isinstance(current, str) and current in definitions:
            fields = definitions[current]
            if step not in fields:
                return i, f"no field {step!r} in {current}"
            current = fields[step]
        elif isinstance(current, list) and current[0] == "map":
            current = current[1]
        elif current == "dyn":
            return None
        else:
            what = current[0] if isinstance(current, list) else current
            return i, f"a {what} has no field {step!r}"
    return None


def _position(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _undeclared_variables(policy: CompiledPolicy) -> list[FieldProblem]:
    """`variables.x` where the policy declares no x (or declares it later: variables may
    only read those declared before them)."""
    problems: list[FieldProblem] = []
    declared = [name for name, _ in policy.variables]
    for expr in expressions_of(policy):
        if expr.field.startswith("spec.matchConditions"):
            continue  # matchConditions cannot read variables; the compiler says so
        visible = set(declared)
        if expr.field.startswith("spec.variables["):
            index = int(expr.field.split("[", 1)[1].split("]", 1)[0])
            visible = set(declared[:index])
        for name, offset in variable_references(expr.source):
            if name in visible:
                continue
            line, column = _position(expr.source, offset)
            w = expr.where
            problems.append(
                FieldProblem(
                    f"{w.file}:{w.line}:{w.column}",
                    expr.field,
                    line,
                    column,
                    f"no variable {name!r} is declared before this expression",
                )
            )
    return problems


def check_policy(policy: CompiledPolicy) -> tuple[list[FieldProblem], list[str]]:
    """Field paths that exist in none of the matched kinds, and notes on what was not checked."""
    kinds, unknown = matched_kinds(policy)
    notes = [f"policy {policy.name}: no schema for {r}: its paths are not checked" for r in unknown]
    problems = _undeclared_variables(policy)
    if not kinds:
        return problems, notes
    for expr in expressions_of(policy):
        source = expr.source
        masked = _STRING.sub(lambda m: " " * len(m.group()), source)
        for match in _PATH.finditer(masked):
            steps_text = match.group(2)
            steps = [(m.group(1), match.start(2) + m.start(1)) for m in _STEP.finditer(steps_text)]
            called = match.group(3) is not None
            outcomes = [_walk(k["definition"], [s for s, _ in steps], called) for k in kinds]
            if any(o is None for o in outcomes):
                continue
            index, why = min((o for o in outcomes if o is not None), key=lambda o: -o[0])
            line, column = _position(source, steps[index][1])
            names = ", ".join(k["kind"] for k in kinds)
            w = expr.where
            problems.append(
                FieldProblem(
                    f"{w.file}:{w.line}:{w.column}",
                    expr.field,
                    line,
                    column,
                    f"{why} (matched kinds: {names})",
                )
            )
    return problems, notes
