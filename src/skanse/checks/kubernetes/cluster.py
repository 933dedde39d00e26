"""Facts about the whole set of scanned objects that single-object checks need."""

from __future__ import annotations

from collections.abc import Iterable

from skanse.checks.kubernetes.base import ClusterIndex
from skanse.sources.kubernetes import POD_TEMPLATE_PATHS, K8sObject, as_dict, as_list

__all__ = ["build_cluster_index", "default_deny_directions"]


def _selects_everything(selector: object) -> bool:
    selector = as_dict(selector)
    return not as_dict(selector.get("matchLabels")) and not as_list(
        selector.get("matchExpressions")
    )


def default_deny_directions(policy: dict[str, object]) -> frozenset[str]:
    """Directions a networking.k8s.io/v1 NetworkPolicy denies for every pod of its namespace.

    It must select all pods (`podSelector: {}`), and for each direction it isolates, allow
    nothing. policyTypes defaults to Ingress, plus Egress when egress rules are present.
    """
    spec = as_dict(policy.get("spec"))
    if not _selects_everything(spec.get("podSelector")):
        return frozenset()
    ingress, egress = as_list(spec.get("ingress")), as_list(spec.get("egress"))
    types = spec.get("policyTypes")
    if isinstance(types, list):
        directions = {str(t) for t in types}
    else:
        directions = {"Ingress"} | ({"Egress"} if egress else set())
    denied = set()
    if "Ingress" in directions and not ingress:
        denied.add("Ingress")
    if "Egress" in directions and not egress:
        denied.add("Egress")
    return frozenset(denied)


def build_cluster_index(objects: Iterable[K8sObject], default_namespace: str) -> ClusterIndex:
    from skanse.netpol.facts import LazyNetwork

    objects = list(objects)
    deny: dict[str, set[str]] = {}
    accounts: dict[tuple[str, str], bool | None] = {}
    namespaces: dict[str, dict[str, object]] = {}
    workloads: dict[str, list[K8sObject]] = {}
    for obj in objects:
        namespace = obj.namespace or default_namespace
        if obj.kind == "Namespace" and obj.api_version == "v1":
            namespaces[obj.name] = obj.data
        elif obj.kind in POD_TEMPLATE_PATHS:
            workloads.setdefault(namespace, []).append(obj)
        elif obj.kind == "NetworkPolicy":
            deny.setdefault(namespace, set()).update(default_deny_directions(obj.data))
        elif obj.kind == "ServiceAccount":
            value = obj.data.get("automountServiceAccountToken")
            accounts[(namespace, obj.name)] = value if isinstance(value, bool) else None
    return ClusterIndex(
        default_namespace=default_namespace,
        default_deny={ns: frozenset(d) for ns, d in deny.items()},
        service_accounts=accounts,
        network=LazyNetwork(objects, default_namespace),
        namespaces=namespaces,
        workloads_by_namespace={ns: tuple(objs) for ns, objs in workloads.items()},
    )
