"""Default-deny NetworkPolicies for the namespaces that run workloads and have none.

Driven by SKN-K8S-030 findings: one policy per namespace, selecting every pod and isolating
both directions with no rule, so nothing is allowed until a policy says so. Workloads that
name no namespace get a policy that names none either, so it lands wherever they do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from skanse.fix.model import Change
from skanse.model import CheckID, Finding

__all__ = ["CHECK_ID", "NamespacePolicy", "default_deny_yaml", "policies_for"]

CHECK_ID = CheckID("SKN-K8S-030")
POLICY_NAME = "default-deny"
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    namespace: str | None  # None: the namespace the workloads are applied to
    name: str
    findings: tuple[Finding, ...]


def policies_for(
    findings: Iterable[Finding], default_namespace: str, taken: Iterable[tuple[str, str]] = ()
) -> list[NamespacePolicy]:
    """One policy per namespace named by the findings, in first-seen order.

    `taken` holds (namespace, name) of NetworkPolicies that already exist, so the new one
    never replaces an existing policy of the same name when applied.
    """
    used = set(taken)
    grouped: dict[str, list[Finding]] = {}
    explicit: set[str] = set()
    for finding in findings:
        namespace = finding.resource.namespace or default_namespace
        if finding.resource.namespace:
            explicit.add(namespace)
        grouped.setdefault(namespace, []).append(finding)
    policies = []
    for namespace, own in grouped.items():
        name = POLICY_NAME
        counter = 1
        while (namespace, name) in used:
            counter += 1
            name = f"{POLICY_NAME}-{counter}"
        policies.append(
            NamespacePolicy(namespace if namespace in explicit else None, name, tuple(own))
        )
    return policies


def _scalar(text: str) -> str:
    return text if _LABEL.match(text) else json.dumps(text)


def default_deny_yaml(policies: Sequence[NamespacePolicy]) -> str:
    head = (
        "# Default-deny NetworkPolicies written by skanse fix (SKN-K8S-030): every pod in these\n"
        "# namespaces gets no ingress and no egress until another policy allows it. Add the\n"
        "# policies your workloads need (DNS to kube-system, their clients, their backends)\n"
        "# before you apply these.\n"
    )
    documents = []
    for policy in policies:
        namespace = f"  namespace: {_scalar(policy.namespace)}\n" if policy.namespace else ""
        documents.append(
            "apiVersion: networking.k8s.io/v1\n"
            "kind: NetworkPolicy\n"
            "metadata:\n"
            f"  name: {_scalar(policy.name)}\n"
            f"{namespace}"
            "spec:\n"
            "  podSelector: {}\n"
            "  policyTypes:\n"
            "  - Ingress\n"
            "  - Egress\n"
        )
    return head + "---\n".join(documents)


def changes_for(policies: Sequence[NamespacePolicy], default_namespace: str) -> list[Change]:
    changes = []
    for policy in policies:
        first = policy.findings[0]
        where = policy.namespace or f"{default_namespace} (implicit)"
        changes.append(
            Change(
                CHECK_ID,
                first.resource,
                first.location.line,
                f'NetworkPolicy "{policy.name}" denies all ingress and egress in namespace {where}',
            )
        )
    return changes
