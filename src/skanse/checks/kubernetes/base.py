"""What Kubernetes checks are given: the object, the pod spec, and a context of the scan."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skanse.checks._registry import Check, CheckSet, Violation
from skanse.checks.kubernetes.pss_policy import LATEST_MINOR, RESTRICTED, PSSPolicy
from skanse.model import CheckID, CheckMeta, Layer, Severity
from skanse.sources.kubernetes import (
    POD_TEMPLATE_PATHS,
    K8sObject,
    PodSpecView,
    pod_spec,
)

if TYPE_CHECKING:
    from skanse.netpol.facts import LazyNetwork

__all__ = [
    "PROFILE_PSS_BASELINE",
    "PROFILE_PSS_RESTRICTED",
    "ZERO_TRUST",
    "CheckContext",
    "ClusterIndex",
    "K8sCheck",
    "K8sCheckSet",
]

PROFILE_PSS_BASELINE = "pss-baseline"
PROFILE_PSS_RESTRICTED = "pss-restricted"
ZERO_TRUST = "zero-trust"


@dataclass(frozen=True, slots=True)
class ClusterIndex:
    """What checks need to know about the other objects of the same scan.

    Namespaces are resolved already (`default_namespace` for objects that name none), so a
    policy in namespace A can never satisfy a workload in namespace B.
    """

    default_namespace: str = "default"
    # namespace -> directions ("Ingress", "Egress") covered by a default-deny NetworkPolicy
    default_deny: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # (namespace, service account) -> its automountServiceAccountToken, when scanned
    service_accounts: Mapping[tuple[str, str], bool | None] = field(default_factory=dict)
    # the network model of the scan (namespaces, workloads, policies), built on first use
    network: LazyNetwork | None = None
    # Namespace objects of the scan by name (their labels decide namespaceSelectors)
    namespaces: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    # namespace -> the workload objects of the scan in it, in the order read
    workloads_by_namespace: Mapping[str, tuple[K8sObject, ...]] = field(default_factory=dict)

    def namespace_of(self, obj: K8sObject) -> str:
        return obj.namespace or self.default_namespace


@dataclass(frozen=True, slots=True)
class CheckContext:
    """The settings and cross-object facts a Kubernetes check may read."""

    pss: PSSPolicy = PSSPolicy(RESTRICTED, LATEST_MINOR)
    cluster: ClusterIndex = ClusterIndex()


K8sCheck = Check[K8sObject, CheckContext]


class K8sCheckSet(CheckSet):
    """Decorators that turn small functions into checks of Kubernetes objects, reported in
    `layer` (the network checks read the same objects and report as NETWORK)."""

    def __init__(self, module: str, *, layer: Layer = Layer.KUBERNETES) -> None:
        super().__init__(module)
        self.layer = layer

    def object_check(
        self,
        *,
        kinds: Iterable[str] | None,
        **meta: Any,
    ) -> Callable[[Callable[[K8sObject, CheckContext], Iterable[Violation]]], K8sCheck]:
        """A check over whole objects of the given kinds (None: every kind)."""

        def register(fn: Callable[[K8sObject, CheckContext], Iterable[Violation]]) -> K8sCheck:
            check: K8sCheck = Check(
                meta=_meta(meta, fn, self.layer),
                run=fn,
                kinds=frozenset(kinds) if kinds is not None else None,
                package=self.package,
            )
            self.add(check)
            return check

        return register

    def pod_check(
        self, **meta: Any
    ) -> Callable[[Callable[[PodSpecView, CheckContext], Iterable[Violation]]], K8sCheck]:
        """A check over the pod spec of every workload kind (Pod ... CronJob)."""

        def register(fn: Callable[[PodSpecView, CheckContext], Iterable[Violation]]) -> K8sCheck:
            def run(obj: K8sObject, ctx: CheckContext) -> Iterable[Violation]:
                pod = pod_spec(obj)
                return () if pod is None else fn(pod, ctx)

            check: K8sCheck = Check(
                meta=_meta(meta, fn, self.layer),
                run=run,
                kinds=frozenset(POD_TEMPLATE_PATHS),
                package=self.package,
            )
            self.add(check)
            return check

        return register


def _meta(meta: dict[str, Any], fn: Callable[..., object], layer: Layer) -> CheckMeta:
    description = meta.pop("description", None) or (fn.__doc__ or "").strip()
    if not description:
        raise TypeError(f"check {meta.get('id')} needs a description or a docstring")
    profiles = meta.pop("profiles", ())
    severity = meta.pop("severity")
    return CheckMeta(
        id=CheckID(meta.pop("id")),
        severity=severity if isinstance(severity, Severity) else Severity.parse(severity),
        layer=layer,
        description=description,
        profiles=frozenset(profiles),
        references=tuple(meta.pop("references", ())),
        aliases=tuple(meta.pop("aliases", ())),
        **meta,
    )
