"""Read a directory of policies, bindings, params and namespaces; compile every expression.

Files are read with the scan's own YAML reader, so every object and every expression keeps
its file, line and column. Everything wrong is collected and raised once, located, as a
`PolicyLoadError`: a policy that cannot be loaded never silently checks nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skanse.errors import PolicyLoadError
from skanse.model import Location, Severity
from skanse.policy.celenv import CelCompileError, CompiledExpression, new_env
from skanse.policy.cost import (
    LOAD_LIST_SIZE,
    LOAD_STRING_SIZE,
    PER_CALL_LIMIT,
    CostShape,
    safe_size,
    shape_of,
)
from skanse.policy.inline import closure, compose, compose_all, variables_read
from skanse.policy.model import API_GROUP, BindingSpec, MatchResources, PolicySpec
from skanse.policy.sizing import (
    Bound,
    Concrete,
    Node,
    Record,
    Sized,
    cost_of,
    parse,
    variables_of,
)
from skanse.sources.kubernetes import K8sObject, as_dict
from skanse.sources.manifests import ReadLimits, read_path

__all__ = [
    "SEVERITY_ANNOTATION",
    "WITH_VARIABLES",
    "Binding",
    "CompiledPolicy",
    "Expr",
    "PolicySet",
    "bounds_at",
    "estimate",
    "expressions_of",
    "load_objects",
    "load_policies",
    "policy_set",
    "roots_of",
]

SEVERITY_ANNOTATION = "skanse.io/severity"
POLICY_KIND = "ValidatingAdmissionPolicy"
BINDING_KIND = "ValidatingAdmissionPolicyBinding"
_YAML_SUFFIXES = (".yaml", ".yml", ".json")
# The variables each kind of expression may read (matchConditions see no `variables`).
_BASE = ("object", "oldObject", "request", "params", "namespaceObject")
WITH_VARIABLES = (*_BASE, "variables")


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled expression, where it is written, and its cost shape."""

    compiled: CompiledExpression
    shape: CostShape
    where: Location  # the YAML field holding the expression
    field: str  # e.g. spec.validations[1].expression
    reads_variables: bool = True  # False: it never names `variables`
    # The expression with the variables it reads bound inside it (skanse.policy.inline),
    # and the cost shape of that whole text; None where it could not be built.
    inlined: CompiledExpression | None = None
    inlined_shape: CostShape | None = None
    # The parsed trees the run-time bound prices (skanse.policy.sizing); None where the text
    # is beyond its parser: the coarse bound of the shape applies.
    tree: Node | None = None
    inlined_tree: Node | None = None

    @property
    def source(self) -> str:
        return self.compiled.source


@dataclass(frozen=True, slots=True)
class CompiledValidation:
    expression: Expr
    message: str
    message_expression: Expr | None
    reason: str


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    name: str
    obj: K8sObject
    spec: PolicySpec
    conditions: tuple[tuple[str, Expr], ...]
    variables: tuple[tuple[str, Expr], ...]
    validations: tuple[CompiledValidation, ...]
    audit: tuple[tuple[str, Expr], ...]
    severity: Severity | None
    # Every validation's expression in one list, with the variables they read bound once
    # around it (skanse.policy.inline.compose_all); None where it could not be built.
    all_validations: CompiledExpression | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    name: str
    spec: BindingSpec
    obj: K8sObject | None  # None: the implicit binding of a policy that has none


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[CompiledPolicy, ...]
    bindings: tuple[Binding, ...]
    params: tuple[K8sObject, ...] = ()
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # Inputs no larger than this cannot pass a cost limit (skanse.policy.cost.safe_size).
    safe_size: int = 0
    # The bindings of each policy, in order (looked up on every request).
    _by_policy: dict[str, tuple[Binding, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_policy: dict[str, list[Binding]] = {}
        for b in self.bindings:
            by_policy.setdefault(b.spec.policy_name, []).append(b)
        object.__setattr__(self, "_by_policy", {k: tuple(v) for k, v in by_policy.items()})

    def bindings_of(self, policy: str) -> tuple[Binding, ...]:
        return self._by_policy.get(policy, ())


def _files(paths: Sequence[str]) -> list[str]:
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                # Hidden entries are skipped: a ConfigMap volume keeps each file twice, in
                # `..data/` and a `..<timestamp>/` directory, behind the visible symlinks.
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(
                    os.path.join(root, n)
                    for n in sorted(names)
                    if n.endswith(_YAML_SUFFIXES) and not n.startswith(".")
                )
        else:
            found.append(path)
    return found


def load_objects(paths: Sequence[str], problems: list[str]) -> list[K8sObject]:
    """Every Kubernetes object in `paths` (files or directories, YAML or JSON)."""
    objects: list[K8sObject] = []
    for file in _files(paths):
        if not os.path.exists(file):
            problems.append(f"{file}: no such file or directory")
            continue
        read = read_path(file, ReadLimits())
        problems.extend(f"{p.file}:{p.line or 1}: {p.message}" for p in read.problems)
        objects.extend(read.objects)
    return objects


def _at(obj: K8sObject, pointer: str) -> str:
    loc = obj.location(pointer)
    return f"{loc.file}:{loc.line}:{loc.column}"


def _pointer(field_path: str) -> str:
    # spec.validations[1].expression -> /spec/validations/1/expression
    return "/" + field_path.replace("[", ".").replace("]", "").replace(".", "/")


def _compile(
    obj: K8sObject, field_path: str, source: str, names: tuple[str, ...], problems: list[str]
) -> Expr | None:
    where = obj.location(_pointer(field_path))
    try:
        compiled = new_env(names).compile(source)
    except CelCompileError as exc:
        for position, message in exc.errors:
            problems.append(
                f"{where.file}:{where.line}:{where.column}: {obj.resource}: {field_path} "
                f"(expression {position.line}:{position.column}): {message}"
            )
        return None
    shape = shape_of(source)
    # The sizes of operands (`x in list`) are not known before an object comes: at run time
    # they are charged in full; here the expression's own shape is judged.
    estimate = shape.bound(LOAD_LIST_SIZE, LOAD_STRING_SIZE, operands=False)
    if estimate > PER_CALL_LIMIT:
        problems.append(
            f"{where.file}:{where.line}:{where.column}: {obj.resource}: {field_path}: "
            f"estimated cost {estimate:,} exceeds the per-expression limit {PER_CALL_LIMIT:,} "
            f"with lists of {LOAD_LIST_SIZE:,} items ({shape.nesting} nested comprehensions)"
        )
        return None
    return Expr(compiled, shape, where, field_path, tree=parse(source))


def _spec(obj: K8sObject, model: type[Any], problems: list[str]) -> Any:
    try:
        return model.model_validate(obj.data.get("spec") or {})
    except ValidationError as exc:
        for error in exc.errors():
            path = "/spec/" + "/".join(str(p) for p in error["loc"])
            dotted = "spec" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]
            )
            problems.append(f"{_at(obj, path)}: {obj.resource}: {dotted}: {error['msg']}")
        return None


def _rules_need_operations(
    obj: K8sObject, pointer: str, match: MatchResources | None, problems: list[str]
) -> None:
    """The API server rejects a rule without operations (ValidateRuleWithOperations)."""
    if match is None:
        return
    for name, rules in (
        ("resourceRules", match.resource_rules),
        ("excludeResourceRules", match.exclude_resource_rules),
    ):
        for i, rule in enumerate(rules):
            if not rule.operations:
                at = f"{pointer}/{name}/{i}"
                dotted = f"{pointer[1:].replace('/', '.')}.{name}[{i}]"
                problems.append(
                    f"{_at(obj, at)}: {obj.resource}: {dotted}.operations: "
                    "Required value (the API server rejects a rule without operations)"
                )


def _severity(obj: K8sObject, problems: list[str]) -> Severity | None:
    value = obj.annotations.get(SEVERITY_ANNOTATION)
    if value is None:
        return None
    try:
        return Severity(str(value).upper())
    except ValueError:
        problems.append(
            f"{_at(obj, '/metadata/annotations')}: {obj.resource}: {SEVERITY_ANNOTATION} "
            f"must be one of {', '.join(s.value for s in Severity)}, not {value!r}"
        )
        return None


def _compile_policy(obj: K8sObject, problems: list[str]) -> CompiledPolicy | None:
    spec: PolicySpec | None = _spec(obj, PolicySpec, problems)
    if spec is None:
        return None
    before = len(problems)
    if spec.match_constraints is None or not spec.match_constraints.resource_rules:
        problems.append(
            f"{_at(obj, '/spec')}: {obj.resource}: spec.matchConstraints.resourceRules is "
            "required (a policy without it matches nothing)"
        )
    _rules_need_operations(obj, "/spec/matchConstraints", spec.match_constraints, problems)
    if not spec.validations and not spec.audit_annotations:
        problems.append(
            f"{_at(obj, '/spec')}: {obj.resource}: a policy needs validations or auditAnnotations"
        )
    conditions = []
    for i, cond in enumerate(spec.match_conditions):
        expr = _compile(
            obj, f"spec.matchConditions[{i}].expression", cond.expression, _BASE, problems
        )
        if expr is not None:
            conditions.append((cond.name, expr))
    variables = []
    for i, var in enumerate(spec.variables):
        expr = _compile(
            obj, f"spec.variables[{i}].expression", var.expression, WITH_VARIABLES, problems
        )
        if expr is not None:
            variables.append((var.name, expr))
    validations = []
    for i, v in enumerate(spec.validations):
        expr = _compile(
            obj, f"spec.validations[{i}].expression", v.expression, WITH_VARIABLES, problems
        )
        message_expr = None
        if v.message_expression:
            message_expr = _compile(
                obj,
                f"spec.validations[{i}].messageExpression",
                v.message_expression,
                WITH_VARIABLES,
                problems,
            )
        if expr is not None:
            validations.append(CompiledValidation(expr, v.message, message_expr, v.reason))
    audit = []
    for i, a in enumerate(spec.audit_annotations):
        expr = _compile(
            obj,
            f"spec.auditAnnotations[{i}].valueExpression",
            a.value_expression,
            WITH_VARIABLES,
            problems,
        )
        if expr is not None:
            audit.append((a.key, expr))
    severity = _severity(obj, problems)
    if len(problems) > before:
        return None
    reads = {name: variables_read(e.source) for name, e in variables}
    order = [name for name, _ in variables]
    sources = {name: e.source for name, e in variables}

    def fast(expr: Expr) -> Expr:
        return _inlined(expr, reads, order, sources)

    return CompiledPolicy(
        all_validations=_all_validations(
            [v.expression.source for v in validations], reads, order, sources
        ),
        name=obj.metadata.get("name") or "",  # type: ignore[arg-type]
        obj=obj,
        spec=spec,
        conditions=tuple(conditions),
        variables=tuple(variables),
        validations=tuple(
            CompiledValidation(
                fast(v.expression),
                v.message,
                fast(v.message_expression) if v.message_expression else None,
                v.reason,
            )
            for v in validations
        ),
        audit=tuple((key, fast(e)) for key, e in audit),
        severity=severity,
    )


def _inlined(
    expr: Expr,
    reads: dict[str, frozenset[str] | None],
    order: list[str],
    sources: dict[str, str],
) -> Expr:
    wanted = variables_read(expr.source)
    if wanted is not None and not wanted:
        return dataclasses.replace(expr, reads_variables=False)
    chain = closure(wanted, reads, order) if wanted is not None else None
    if chain is None:
        return expr
    text = compose(expr.source, [(name, sources[name]) for name in chain])
    try:
        compiled = new_env(WITH_VARIABLES).compile(text)
    except CelCompileError:
        return expr  # e.g. past the runtime's nesting limit: the exact evaluation remains
    return dataclasses.replace(
        expr, inlined=compiled, inlined_shape=shape_of(text), inlined_tree=parse(text)
    )


def _all_validations(
    expressions: list[str],
    reads: dict[str, frozenset[str] | None],
    order: list[str],
    sources: dict[str, str],
) -> CompiledExpression | None:
    """The validations' expressions as one list expression with their variables bound around
    it, so that one evaluation judges them all (None: fewer than two, or not expressible)."""
    if len(expressions) < 2:
        return None
    wanted: set[str] = set()
    for source in expressions:
        names = variables_read(source)
        if names is None:
            return None
        wanted |= names
    chain = closure(frozenset(wanted), reads, order)
    if chain is None:
        return None
    text = compose_all(expressions, [(name, sources[name]) for name in chain])
    try:
        return new_env(WITH_VARIABLES).compile(text)
    except CelCompileError:
        return None


def _is(obj: K8sObject, kind: str) -> bool:
    return obj.kind == kind and obj.api_version.split("/")[0] == API_GROUP


def policy_set(objects: Iterable[K8sObject], problems: list[str]) -> PolicySet:
    """Policies, bindings, params and namespaces from already-read objects."""
    policies: list[CompiledPolicy] = []
    bindings: list[Binding] = []
    others: list[K8sObject] = []
    namespaces: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    names: set[str] = set()
    for obj in objects:
        name = obj.metadata.get("name")
        if _is(obj, POLICY_KIND) or _is(obj, BINDING_KIND):
            if not isinstance(name, str) or not name:
                problems.append(f"{_at(obj, '/metadata')}: {obj.kind} needs metadata.name")
                continue
        if _is(obj, POLICY_KIND):
            if name in names:
                problems.append(f"{_at(obj, '/metadata/name')}: policy {name} is defined twice")
                continue
            names.add(str(name))
            policy = _compile_policy(obj, problems)
            if policy is not None:
                policies.append(policy)
        elif _is(obj, BINDING_KIND):
            spec = _spec(obj, BindingSpec, problems)
            if spec is not None:
                before = len(problems)
                _rules_need_operations(obj, "/spec/matchResources", spec.match_resources, problems)
                if len(problems) > before:
                    continue
                actions = set(spec.validation_actions)
                if {"Deny", "Warn"} <= actions:
                    problems.append(
                        f"{_at(obj, '/spec/validationActions')}: {obj.resource}: Deny and Warn "
                        "may not be used together"
                    )
                    continue
                bindings.append(Binding(str(name), spec, obj))
        else:
            if obj.kind == "Namespace" and obj.api_version == "v1" and isinstance(name, str):
                namespaces[name] = obj.data
            others.append(obj)
    warnings.extend(
        f"{_at(b.obj, '/spec/policyName')}: binding {b.name} names policy "
        f"{b.spec.policy_name}, which is not among the policies loaded"
        for b in bindings
        if b.spec.policy_name not in names and b.obj is not None
    )
    bound = {b.spec.policy_name for b in bindings}
    for policy in policies:
        if policy.name not in bound:
            # A policy given without a binding is applied as `kubectl apply` plus a plain
            # binding would: every matched object, action Deny, no params.
            bindings.append(
                Binding(
                    f"{policy.name} (implicit)",
                    BindingSpec.model_validate({"policyName": policy.name}),
                    None,
                )
            )
        if policy.spec.param_kind is not None:
            for b in bindings:
                if b.spec.policy_name == policy.name and b.spec.param_ref is None:
                    # The API server evaluates such a binding with `params` null.
                    where = _at(b.obj, "/spec") if b.obj is not None else policy.obj.file
                    warnings.append(
                        f"{where}: binding {b.name} has no paramRef although policy "
                        f"{policy.name} has a paramKind: its expressions see params as null"
                    )
    safe = safe_size(lambda size: [bounds_at(p, size) for p in policies])
    return PolicySet(
        tuple(policies), tuple(bindings), tuple(others), namespaces, tuple(warnings), safe
    )


def roots_of(values: Mapping[str, Any]) -> dict[str, Sized]:
    """What the run-time bound reads of an evaluation's inputs (object, params...)."""
    return {name: Concrete((values.get(name),)) for name in _BASE}


def estimate(
    expr: Expr, inlined: bool, roots: Mapping[str, Sized], variables: Record, fallback: Bound
) -> int:
    """The run-time bound of one expression (its `inlined` form) on the inputs `roots`
    describe, `variables` bounded from theirs: priced per operand where it has a tree, else
    the shape's bound with every list and string at the `fallback`'s sizes."""
    tree = expr.inlined_tree if inlined else expr.tree
    shape = expr.inlined_shape if inlined and expr.inlined_shape is not None else expr.shape
    if tree is not None:
        # The inlined form binds its variables inside itself.
        env = roots if inlined else {**roots, "variables": variables}
        cost = cost_of(tree, env, fallback)
        if cost is not None:
            return cost
    return shape.bound(fallback.n, fallback.s)


def bounds_at(policy: CompiledPolicy, size: int) -> list[int]:
    """Every expression's bound (both forms) when no list or string is longer than `size`."""
    fallback = Bound(size, size)
    roots: dict[str, Sized] = dict.fromkeys(_BASE, fallback)
    variables = variables_of(tuple((n, e.tree) for n, e in policy.variables), roots, fallback)
    found = []
    for e in expressions_of(policy):
        found.append(estimate(e, False, roots, variables, fallback))
        if e.inlined is not None:
            found.append(estimate(e, True, roots, variables, fallback))
    return found


def expressions_of(policy: CompiledPolicy) -> list[Expr]:
    found = [e for _, e in policy.conditions] + [e for _, e in policy.variables]
    for v in policy.validations:
        found.append(v.expression)
        if v.message_expression is not None:
            found.append(v.message_expression)
    return found + [e for _, e in policy.audit]


def load_policies(paths: Sequence[str | Path]) -> PolicySet:
    """Load and compile every policy under `paths`; PolicyLoadError lists all that is wrong."""
    problems: list[str] = []
    objects = load_objects([str(p) for p in paths], problems)
    policies = policy_set(objects, problems)
    if problems:
        raise PolicyLoadError(problems)
    if not policies.policies:
        where = ", ".join(str(p) for p in paths)
        raise PolicyLoadError([f"{where}: no ValidatingAdmissionPolicy found"])
    return policies


def as_labels(obj: dict[str, Any] | None) -> dict[str, str]:
    labels = as_dict(as_dict((obj or {}).get("metadata")).get("labels"))
    return {str(k): str(v) for k, v in labels.items()}
