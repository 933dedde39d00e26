"""Evaluate policies on one admission request, as the API server's validating plugin does.

For each policy and each of its bindings: matchConstraints and the binding's matchResources
(rules, exclusions, namespace and object selectors), then the params the binding names, then
matchConditions (any false skips, an error goes to failurePolicy), variables, validations
(false: the message, messageExpression or the default; an error: failurePolicy) and audit
annotations. Every expression is first priced on the request (`skanse.policy.sizing`,
per operand) and not run past the cost limits of `skanse.policy.cost`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from skanse.model import Location
from skanse.policy.celenv import new_env
from skanse.policy.cost import (
    BINDING_BUDGET,
    MAX_DEPTH,
    PER_CALL_LIMIT,
    InputSizes,
    input_sizes,
)
from skanse.policy.load import (
    WITH_VARIABLES,
    Binding,
    CompiledPolicy,
    Expr,
    PolicySet,
    as_labels,
    estimate,
    roots_of,
)
from skanse.policy.model import LabelSelector, MatchResources, ResourceRule
from skanse.policy.sizing import Bound, Record, Sized, variables_of
from skanse.sources.kubernetes import as_dict

__all__ = [
    "CLUSTER_KINDS",
    "Attributes",
    "Decision",
    "PolicyResult",
    "evaluate",
    "resource_of",
    "resources_match",
    "selector_matches",
]

_MAX_MESSAGE = 5 * 1024  # MaxEvaluatedMessageExpressionSizeBytes
_ENV = new_env(WITH_VARIABLES)
# Kinds whose objects have no namespace (the common built-ins; others go by the request).
CLUSTER_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "StorageClass",
        "CustomResourceDefinition",
        "PriorityClass",
        "RuntimeClass",
        "IngressClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "PodSecurityPolicy",
        "CertificateSigningRequest",
    }
)
_IRREGULAR = {"Endpoints": "endpoints"}
NAME_LABEL = "kubernetes.io/metadata.name"


def resource_of(kind: str) -> str:
    """The plural resource of a kind, as the API server names it (Ingress -> ingresses)."""
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


@dataclass(frozen=True, slots=True)
class Attributes:
    """What one admission request says: the object, the old object and who asks."""

    object: dict[str, Any] | None
    old_object: dict[str, Any] | None = None
    operation: str = "CREATE"
    group: str = ""
    version: str = "v1"
    kind: str = ""
    resource: str = ""
    sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    username: str = ""
    groups: tuple[str, ...] = ()
    dry_run: bool = False
    namespace_object: dict[str, Any] | None = None

    @classmethod
    def for_object(
        cls, data: dict[str, Any], default_namespace: str = "default", operation: str = "CREATE"
    ) -> Attributes:
        """The CREATE request that `kubectl apply` of this object would make."""
        api_version = str(data.get("apiVersion") or "")
        group, _, version = api_version.rpartition("/")
        kind = str(data.get("kind") or "")
        meta = as_dict(data.get("metadata"))
        namespace = "" if kind in CLUSTER_KINDS else str(meta.get("namespace") or default_namespace)
        if kind == "Namespace" and not group and meta.get("name"):
            # The API server labels every namespace with its name before admission.
            labels = {**as_dict(meta.get("labels")), NAME_LABEL: str(meta["name"])}
            data = {**data, "metadata": {**meta, "labels": labels}}
        return cls(
            object=data,
            operation=operation,
            group=group,
            version=version,
            kind=kind,
            resource=resource_of(kind),
            name=str(meta.get("name") or ""),
            namespace=namespace,
        )

    def request(self) -> dict[str, Any]:
        return {
            "kind": {"group": self.group, "version": self.version, "kind": self.kind},
            "resource": {"group": self.group, "version": self.version, "resource": self.resource},
            "subResource": self.sub_resource,
            "requestKind": {"group": self.group, "version": self.version, "kind": self.kind},
            "requestResource": {
                "group": self.group,
                "version": self.version,
                "resource": self.resource,
            },
            "name": self.name,
            "namespace": self.namespace,
            "operation": self.operation,
            "userInfo": {"username": self.username, "groups": list(self.groups)},
            "dryRun": self.dry_run,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """One validation that failed (or could not be evaluated) under one binding."""

    policy: str
    binding: str
    index: int | None  # the validation; None for what is not one (params, conditions)
    actions: tuple[str, ...]
    message: str
    reason: str
    error: bool  # an evaluation error under failurePolicy Fail, not a plain false
    where: Location | None


@dataclass(slots=True)
class PolicyResult:
    decisions: list[Decision] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)
    # (policy, binding) pairs that matched the request and whose matchConditions held
    matched: list[tuple[str, str]] = field(default_factory=list)

    def denials(self) -> list[Decision]:
        return [d for d in self.decisions if "Deny" in d.actions]

    def warnings(self) -> list[Decision]:
        return [d for d in self.decisions if "Warn" in d.actions]

    def audits(self) -> list[Decision]:
        return [d for d in self.decisions if "Audit" in d.actions]


# -- matching -----------------------------------------------------------------------------


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def _listed(pattern_list: list[str], value: str) -> bool:
    return "*" in pattern_list or value in pattern_list


def _resource_listed(resources: list[str], resource: str, sub: str) -> bool:
    full = f"{resource}/{sub}" if sub else resource
    for r in resources:
        if r in ("*", full) or (r == "*/*" and sub):
            return True
        if "/" in r:
            head, _, tail = r.partition("/")
            if (head == "*" and tail == sub) or (head == resource and tail == "*" and sub):
                return True
    return False


def _rule_matches(rule: ResourceRule, a: Attributes, exact: bool) -> bool:
    if rule.operations and not _listed(rule.operations, a.operation):
        return False
    if not rule.operations:
        return False
    if not _listed(rule.api_groups, a.group):
        return False
    if exact and not _listed(rule.api_versions, a.version):
        return False
    if not _resource_listed(rule.resources, a.resource, a.sub_resource):
        return False
    if rule.scope == "Cluster" and a.namespace:
        return False
    if rule.scope == "Namespaced" and not a.namespace:
        return False
    return not (rule.resource_names and a.name not in rule.resource_names)


def _namespace_labels(a: Attributes, known: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    obj = a.namespace_object or known.get(a.namespace)
    labels = as_labels(obj)
    labels.setdefault(NAME_LABEL, a.namespace)
    return labels


def resources_match(
    m: MatchResources | None, a: Attributes, namespaces: Mapping[str, dict[str, Any]]
) -> bool:
    if m is None:
        return True
    exact = m.match_policy == "Exact"
    if m.resource_rules and not any(_rule_matches(r, a, exact) for r in m.resource_rules):
        return False
    if any(_rule_matches(r, a, exact) for r in m.exclude_resource_rules):
        return False
    if m.namespace_selector is not None:
        if a.kind == "Namespace" and a.group == "":
            if not selector_matches(m.namespace_selector, as_labels(a.object)):
                return False
        elif a.namespace and not selector_matches(
            m.namespace_selector, _namespace_labels(a, namespaces)
        ):
            return False
    if m.object_selector is not None:
        labels = as_labels(a.object if a.operation != "DELETE" else a.old_object)
        old = as_labels(a.old_object) if a.old_object is not None else None
        if not selector_matches(m.object_selector, labels) and not (
            old is not None and selector_matches(m.object_selector, old)
        ):
            return False
    return True


def _params(
    policy: CompiledPolicy, binding: Binding, a: Attributes, ps: PolicySet
) -> list[dict[str, Any] | None] | None:
    """The params to evaluate with: [None] without paramKind; [] when none are found."""
    kind = policy.spec.param_kind
    ref = binding.spec.param_ref
    if kind is None or ref is None:
        return [None]
    namespace = ref.namespace or a.namespace
    found: list[dict[str, Any] | None] = []
    for obj in ps.params:
        if obj.kind != kind.kind or obj.api_version != kind.api_version:
            continue
        if obj.namespace and namespace and obj.namespace != namespace:
            continue
        if ref.name:
            if obj.metadata.get("name") == ref.name:
                found.append(obj.data)
        elif selector_matches(ref.selector, as_labels(obj.data)):
            found.append(obj.data)
    return found


# -- evaluation ---------------------------------------------------------------------------


class _Budget:
    """The cost bounds of one binding's evaluation: each expression priced on the inputs
    (`roots`, skanse.policy.sizing) before it runs; `sizes` are the longest list and string
    anywhere in them, for the inputs and expressions the pricing cannot follow."""

    def __init__(
        self,
        sizes: InputSizes,
        safe_size: int,
        roots: dict[str, Sized],
        variables: tuple[tuple[str, Expr], ...],
    ) -> None:
        self.fallback = Bound(sizes.longest_list, sizes.longest_string)
        self.spent = 0
        self.roots = roots
        self._variables = variables
        self._bounded: list[Record] = []  # the variables' bounds, made when first needed
        # Inputs within the policy set's safe size cannot pass a limit: nothing to count.
        self.unlimited = max(sizes.longest_list, sizes.longest_string) <= safe_size

    def variables(self) -> Record:
        if not self._bounded:
            trees = tuple((name, e.tree) for name, e in self._variables)
            self._bounded.append(variables_of(trees, self.roots, self.fallback))
        return self._bounded[0]

    def charge(self, expr: Expr, inlined: bool = False) -> str | None:
        if self.unlimited:
            return None
        cost = estimate(expr, inlined, self.roots, self.variables(), self.fallback)
        if cost > PER_CALL_LIMIT:
            return (
                f"operation cancelled: estimated cost {cost:,} of {expr.field} exceeds "
                f"the per-expression limit {PER_CALL_LIMIT:,} for this input"
            )
        self.spent += cost
        if self.spent > BINDING_BUDGET:
            return (
                f"validation failed due to running out of cost budget: {expr.field} brings "
                f"the estimate to {self.spent:,}, over {BINDING_BUDGET:,}"
            )
        return None


def _run(
    expr: Expr, activation: Any, budget: _Budget, *, plain: bool = False, inlined: bool = False
) -> tuple[Any, str | None]:
    """The value (plain Python values when `plain`: variables are fed back to the runtime)
    or the error of one expression (its `inlined` form: with its variables bound inside)."""
    compiled = expr.inlined if inlined and expr.inlined is not None else expr.compiled
    refused = budget.charge(expr, inlined and expr.inlined is not None)
    if refused is not None:
        return None, refused
    try:
        value = compiled.program.eval(activation)
    except RuntimeError as exc:  # the runtime's iteration budget, an internal failure
        return None, str(exc)
    if value.type().name() == "ERROR":
        return None, str(value.value())
    return (value.plain_value() if plain else value.value()), None


def _all_validations(policy: CompiledPolicy, activation: Any) -> list[Any] | None:
    """Every validation's value from one evaluation, or None when one of them fails."""
    combined = policy.all_validations
    if combined is None:
        return None
    try:
        value = combined.program.eval(activation)
    except RuntimeError:  # the runtime's iteration budget, shared by all of them
        return None
    if value.type().name() == "ERROR":
        return None
    values: list[Any] = value.plain_value()
    return values


def _located(expr: Expr) -> str:
    w = expr.where
    return f"{w.file}:{w.line}"


def _evaluate_binding(
    policy: CompiledPolicy,
    binding: Binding,
    params: dict[str, Any] | None,
    base: dict[str, Any],
    budget: _Budget,
    out: PolicyResult,
) -> None:
    actions = tuple(binding.spec.validation_actions)
    fail = policy.spec.failure_policy == "Fail"
    # One activation serves every expression (the runtime reads the Python values in place:
    # building it per expression would convert the object again each time).
    data = {**base, "params": params, "variables": {}}
    activation = _ENV.activation(data)

    def failed(index: int | None, message: str, expr: Expr | None) -> None:
        if fail:
            out.decisions.append(
                Decision(
                    policy.name,
                    binding.name,
                    index,
                    actions,
                    message,
                    "Invalid",
                    True,
                    expr.where if expr else None,
                )
            )

    for name, cond in policy.conditions:
        value, error = _run(cond, activation, budget)
        if error is not None:
            out.matched.append((policy.name, binding.name))
            failed(None, f"matchCondition {name!r} ({_located(cond)}) failed: {error}", cond)
            return
        if value is not True:
            return
    out.matched.append((policy.name, binding.name))
    exact: list[Any] = []  # the activation with every variable, made when first needed

    def with_variables() -> Any:
        if not exact:
            variables: dict[str, Any] = {}
            current = activation
            for name, var in policy.variables:
                value, error = _run(var, current, budget, plain=True)
                # A variable that fails is left out: an expression reading it fails in
                # turn (the API server evaluates variables lazily, with the same outcome).
                if error is None:
                    variables[name] = value
                    current = _ENV.activation({**data, "variables": dict(variables)})
            exact.append(current)
        return exact[0]

    def run(expr: Expr, plain: bool = False) -> tuple[Any, str | None]:
        if not expr.reads_variables:
            return _run(expr, activation, budget, plain=plain)
        if expr.inlined is not None:
            value, error = _run(expr, activation, budget, plain=plain, inlined=True)
            if error is None:
                return value, None
        # No inlined form, or it failed: evaluate exactly as the API server does.
        return _run(expr, with_variables(), budget, plain=plain)

    # One evaluation for all validations where the budget needs no accounting per expression;
    # if any of them fails, each is run on its own below, so errors stay the API server's.
    values = _all_validations(policy, activation) if budget.unlimited else None
    for index, v in enumerate(policy.validations):
        value, error = (values[index], None) if values is not None else run(v.expression)
        if error is not None:
            failed(
                index,
                f"expression '{v.expression.source}' resulted in error: {error}",
                v.expression,
            )
            continue
        if value is True:
            continue
        if value is not False:
            failed(index, f"expression '{v.expression.source}' did not return a bool", v.expression)
            continue
        message = v.message or f"failed expression: {v.expression.source.strip()}"
        if v.message_expression is not None:
            text, error = run(v.message_expression, plain=True)
            # As the API server: an error, a non-string, a blank, multi-line or too long
            # result falls back to the static message.
            if (
                error is None
                and isinstance(text, str)
                and text.strip()
                and "\n" not in text
                and len(text.encode("utf-8")) <= _MAX_MESSAGE
            ):
                message = text
        out.decisions.append(
            Decision(
                policy.name,
                binding.name,
                index,
                actions,
                message,
                v.reason or "Invalid",
                False,
                v.expression.where,
            )
        )
    for key, expr in policy.audit:
        value, error = run(expr, plain=True)
        if error is None and isinstance(value, str):
            out.audit_annotations[f"{policy.name}/{key}"] = value


def _pairs(ps: PolicySet, a: Attributes) -> Iterator[tuple[CompiledPolicy, Binding]]:
    for policy in ps.policies:
        if not resources_match(policy.spec.match_constraints, a, ps.namespaces):
            continue
        for binding in ps.bindings_of(policy.name):
            if resources_match(binding.spec.match_resources, a, ps.namespaces):
                yield policy, binding


def evaluate(
    ps: PolicySet, a: Attributes, sizes: InputSizes | None = None, size_hint: int | None = None
) -> PolicyResult:
    """Every decision of every matching policy and binding on one request.

    `size_hint` is an upper bound on the length of any list or string of the object and old
    object (the request body's length in bytes): when the policies cannot pass a cost limit
    on inputs that small, the inputs are not walked to measure them.
    """
    out = PolicyResult()
    pairs = list(_pairs(ps, a))
    if not pairs:
        return out
    namespace_object = a.namespace_object or ps.namespaces.get(a.namespace)
    base = {
        "object": a.object,
        "oldObject": a.old_object,
        "request": a.request(),
        "namespaceObject": namespace_object,
    }
    # A JSON text of n bytes nests at most n / 2 levels deep, holds no longer list or string.
    if sizes is None and size_hint is not None and size_hint <= min(ps.safe_size, 2 * MAX_DEPTH):
        extra = input_sizes([namespace_object])
        sizes = InputSizes(
            max(size_hint, extra.longest_list),
            max(size_hint, extra.longest_string),
            max(size_hint // 2, extra.depth),
        )
    if sizes is None:
        sizes = input_sizes([a.object, a.old_object, namespace_object])
    if sizes.depth > MAX_DEPTH:
        for policy, binding in pairs:
            out.matched.append((policy.name, binding.name))
            if policy.spec.failure_policy == "Fail":
                out.decisions.append(
                    Decision(
                        policy.name,
                        binding.name,
                        None,
                        tuple(binding.spec.validation_actions),
                        f"not evaluated: the input nests {sizes.depth:,} levels deep, more than "
                        f"the {MAX_DEPTH:,} the CEL runtime is given",
                        "Invalid",
                        True,
                        None,
                    )
                )
        return out
    for policy, binding in pairs:
        params_list = _params(policy, binding, a, ps)
        if not params_list:
            ref = binding.spec.param_ref
            if ref is not None and ref.parameter_not_found_action == "Deny":
                out.matched.append((policy.name, binding.name))
                out.decisions.append(
                    Decision(
                        policy.name,
                        binding.name,
                        None,
                        tuple(binding.spec.validation_actions),
                        "failed to configure binding: no params found for policy binding "
                        "with `Deny` parameterNotFoundAction",
                        "Invalid",
                        False,
                        None,
                    )
                )
            continue
        for params in params_list:
            with_params = sizes
            if params is not None:
                own = input_sizes([params])
                with_params = InputSizes(
                    max(sizes.longest_list, own.longest_list),
                    max(sizes.longest_string, own.longest_string),
                    max(sizes.depth, own.depth),
                )
            roots = roots_of({**base, "params": params})
            budget = _Budget(with_params, ps.safe_size, roots, policy.variables)
            _evaluate_binding(policy, binding, params, base, budget, out)
    return out
