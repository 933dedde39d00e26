"""Policies as checks: what lets `scan`, the webhook and the report use them unchanged.

Each validation of each policy is one check, `VAP:<policy>/<index>`, aliased by the policy's
name so that `ignore.skanse.io/<policy>` and `.skanse.yaml` suppressions can name either.
All the checks of a policy share one evaluation per object (a policy's match, params and
variables are worked out once, not once per validation). An evaluation error under
failurePolicy Fail is raised, which the scan reports as "could not check", never a pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from skanse.checks._registry import Check, Registry, Violation
from skanse.checks.kubernetes.base import CheckContext
from skanse.model import CheckID, CheckMeta, Layer, Severity
from skanse.policy.engine import Attributes, Decision, evaluate
from skanse.policy.load import CompiledPolicy, PolicySet
from skanse.sources.kubernetes import K8sObject

__all__ = [
    "PolicyEvaluationError",
    "check_id",
    "policy_checks",
    "severity_of",
    "with_policies",
]

_ALL_PROFILES = frozenset({"pss-baseline", "pss-restricted", "zero-trust"})
_BY_ACTION = {"Deny": Severity.HIGH, "Warn": Severity.MEDIUM, "Audit": Severity.LOW}


class PolicyEvaluationError(Exception):
    """A validation that could not be evaluated (failurePolicy Fail): "could not check"."""


def check_id(policy: str, index: int) -> CheckID:
    return CheckID(f"VAP:{policy}/{index}")


def severity_of(policy: CompiledPolicy, actions: Iterable[str]) -> Severity:
    """The `skanse.io/severity` annotation, else by the binding's strongest action."""
    if policy.severity is not None:
        return policy.severity
    found = [_BY_ACTION[a] for a in actions if a in _BY_ACTION]
    return max(found) if found else Severity.HIGH


@dataclass(slots=True)
class _Shared:
    """The last object's decisions, shared by the checks of one policy set."""

    policies: PolicySet
    last: K8sObject | None = None
    decisions: tuple[Decision, ...] = ()

    def decisions_for(self, obj: K8sObject, ctx: CheckContext) -> tuple[Decision, ...]:
        if obj is not self.last:
            attributes = Attributes.for_object(obj.data, ctx.cluster.default_namespace)
            scanned = ctx.cluster.namespaces.get(attributes.namespace)
            if scanned is not None and attributes.namespace not in self.policies.namespaces:
                # a Namespace among the scanned manifests (those given with the policies win)
                attributes = dataclasses.replace(attributes, namespace_object=dict(scanned))
            result = evaluate(self.policies, attributes)
            self.last, self.decisions = obj, tuple(result.decisions)
        return self.decisions


def _run_for(
    shared: _Shared, policy: CompiledPolicy, index: int
) -> Callable[[K8sObject, CheckContext], Iterator[Violation]]:
    """The check of one validation: its share of the policy's decisions on the object (the
    decisions that belong to no validation, such as missing params, go to validation 0)."""

    def run(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
        for d in shared.decisions_for(obj, ctx):
            if d.policy != policy.name:
                continue
            mine = d.index == index or (d.index is None and index == 0)
            if not mine:
                continue
            where = f" ({d.where.file}:{d.where.line})" if d.where is not None else ""
            if d.error:
                raise PolicyEvaluationError(
                    f"policy {d.policy}, binding {d.binding}: {d.message}{where}"
                )
            actions = ", ".join(d.actions)
            # a policy judges the whole object: the finding points at the object
            yield Violation(
                f"{d.message} [{d.reason}; binding {d.binding}: {actions}]",
                "",
                severity_of(policy, d.actions),
            )

    return run


def policy_checks(policies: PolicySet) -> list[Check[Any, Any]]:
    """One check per validation (a policy with only audit annotations has none)."""
    shared = _Shared(policies)
    checks: list[Check[Any, Any]] = []
    for policy in policies.policies:
        actions = [a for b in policies.bindings_of(policy.name) for a in b.spec.validation_actions]
        for index, validation in enumerate(policy.validations):
            title = validation.message or f"{policy.name}: {validation.expression.source.strip()}"
            meta = CheckMeta(
                id=check_id(policy.name, index),
                title=title[:200],
                severity=severity_of(policy, actions),
                layer=Layer.KUBERNETES,
                description=(
                    f"ValidatingAdmissionPolicy {policy.name}, validation {index}: "
                    f"{validation.expression.source.strip()}"
                ),
                remediation=validation.message or "Change the object so the expression holds.",
                references=(f"{policy.obj.file}:{validation.expression.where.line}",),
                aliases=(f"VAP:{policy.name}", policy.name),
                profiles=_ALL_PROFILES,
            )
            checks.append(Check(meta, _run_for(shared, policy, index), None, __name__))
    return checks


def with_policies(registry: Registry, policies: PolicySet | None) -> Registry:
    """`registry` plus the checks of `policies` (the same registry when there are none)."""
    if policies is None:
        return registry
    return Registry(registry.all(), policy_checks(policies))
