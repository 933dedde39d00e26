"""Run the policy's checks on one object: the code path shared by the webhook and the audit.

The checks are the scan's (`skanse.scan.selected_checks` and `check_object`), with the same
suppressions (`skanse.results.apply_suppressions`). What one admission request cannot
decide is left out rather than guessed, and said so in `NOT_DECIDED`:

* SKN-K8S-030 (a default-deny NetworkPolicy in the namespace) and the SKN-NET checks need
  the namespace's NetworkPolicies; run `skanse scan` or `skanse netpol` over the cluster.
* SKN-K8S-025 (service account token) needs the ServiceAccount's automount setting. For a
  Pod the request itself says: the API server's ServiceAccount admission plugin runs before
  webhooks and mounts the token at /var/run/secrets/kubernetes.io/serviceaccount only when
  automount is on, so a Pod without that mount has it off. For a workload template nothing
  says, so the check runs on the Pods the workload creates instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skanse.admission.policy import Policy, PolicyException
from skanse.checks._all import REGISTRY
from skanse.checks._registry import Check, Registry
from skanse.checks.kubernetes.base import CheckContext, ClusterIndex
from skanse.checks.kubernetes.defaults import SERVICE_ACCOUNT_MOUNT_PATH
from skanse.config import ConfigSuppression
from skanse.model import (
    CheckID,
    Finding,
    Layer,
    ScanResult,
    Severity,
    Suppression,
    SuppressionSource,
)
from skanse.results import apply_suppressions
from skanse.scan import ScanOptions, check_object, selected_checks
from skanse.sources.kubernetes import (
    POD_TEMPLATE_PATHS,
    K8sObject,
    PodSpecView,
    as_dict,
    as_list,
    pod_spec,
)
from skanse.sources.yamlpos import YamlDocument

__all__ = [
    "NOT_DECIDED",
    "POD_ONLY",
    "Evaluator",
    "ObjectVerdict",
    "ReviewLimits",
    "admission_object",
    "finding_key",
    "new_findings",
    "token_mounted",
]

# Checks one request cannot decide, and why (see the module docstring).
NOT_DECIDED: Mapping[str, str] = {
    "SKN-K8S-030": "needs the NetworkPolicies of the namespace",
}
POD_ONLY: Mapping[str, str] = {
    "SKN-K8S-025": "needs the ServiceAccount; decided on the Pods the workload creates",
}


def admission_object(data: dict[str, Any], file: str, api_version: str, kind: str) -> K8sObject:
    """A K8sObject for an object that arrived as JSON (a request, a kubectl dump item).

    Positions in JSON the API server wrote mean nothing to the user, so the document has no
    position table; findings locate themselves by JSON pointer. The kind and apiVersion come
    from the request when the object leaves them out.
    """
    if data.get("kind") != kind or data.get("apiVersion") != api_version:
        data = {**data, "apiVersion": api_version, "kind": kind}
    return K8sObject(data, file, YamlDocument(0, data, 1, 1))


def token_mounted(pod: PodSpecView) -> bool:
    """Whether a container mounts the service account token where automount puts it."""
    for c in pod.containers():
        for mount in as_list(c.data.get("volumeMounts")):
            if as_dict(mount).get("mountPath") in (
                SERVICE_ACCOUNT_MOUNT_PATH,
                SERVICE_ACCOUNT_MOUNT_PATH + "/",
            ):
                return True
    return False


@dataclass(frozen=True, slots=True)
class ObjectVerdict:
    """The findings on one object with suppressions applied, and what could not be checked."""

    findings: tuple[Finding, ...]
    problems: tuple[str, ...]  # checks that could not run: never a pass
    warnings: tuple[str, ...]  # suppressions without a reason, expired, naming no check
    ran: tuple[CheckID, ...]

    @property
    def unsuppressed(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.suppressed)

    @property
    def suppressed(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.suppressed)

    def failing(self, fail_on: Severity | None) -> tuple[Finding, ...]:
        """Unsuppressed findings that deny: at or above `fail_on`, or all without it."""
        return tuple(f for f in self.unsuppressed if fail_on is None or f.severity >= fail_on)


@dataclass(frozen=True, slots=True)
class ReviewLimits:
    """Hard caps on one review. Past them the answer is "could not check" (a denial in
    enforce mode), never a timeout: containers are counted before any check runs, findings
    before any line of the answer is built. The audit applies the same caps, so it never
    passes an object the webhook would refuse to check."""

    # Containers of all kinds (init, regular, ephemeral) in one pod spec. The API server sets
    # no limit; 1,000 is far past any real pod and still answered in milliseconds.
    containers: int = 1000
    # Findings on one object: each becomes a line of the answer, so the cap bounds its work.
    findings: int = 5000

    def too_many_containers(self, obj: K8sObject, which: str = "the pod spec") -> str | None:
        """Why `obj` has too many containers to check, or None."""
        pod = pod_spec(obj)
        count = sum(1 for _ in pod.containers()) if pod is not None else 0
        if count > self.containers:
            return (
                f"{which} has {count} containers, more than the {self.containers} "
                "skanse checks in one review: could not check it"
            )
        return None

    def too_many_findings(self, verdict: ObjectVerdict) -> str | None:
        """Why `verdict` has too many findings to answer one by one, or None."""
        if len(verdict.findings) > self.findings:
            return (
                f"{len(verdict.findings)} findings, more than the {self.findings} "
                "one answer lists: could not check it finding by finding"
            )
        return None


class Evaluator:
    """The policy's checks, selected once, run on one object at a time."""

    def __init__(
        self,
        policy: Policy,
        *,
        registry: Registry = REGISTRY,
        suppressions: Sequence[ConfigSuppression] = (),
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ) -> None:
        self.policy = policy
        self.registry = registry
        self.suppressions = tuple(suppressions)
        self.today = today
        options = ScanOptions(
            profile=policy.profile,
            pss=policy.pss,
            enable=policy.enable,
            disable=policy.disable,
        )
        checks = [
            c
            for c in selected_checks(options, registry)
            if c.meta.layer is Layer.KUBERNETES and c.id not in NOT_DECIDED
        ]
        self.checks: tuple[Check[Any, Any], ...] = tuple(checks)
        self._for_kind: dict[str, tuple[Check[Any, Any], ...]] = {}
        for kind in POD_TEMPLATE_PATHS:
            self._for_kind[kind] = tuple(
                c
                for c in checks
                if (c.kinds is None or kind in c.kinds) and (kind == "Pod" or c.id not in POD_ONLY)
            )
        self._contexts: dict[tuple[str, tuple[tuple[str, str], ...]], CheckContext] = {}
        self._annotation_ids: frozenset[str] | None = None
        if policy.annotation_suppressions is not None:
            self._annotation_ids = frozenset(
                check for name in policy.annotation_suppressions for check in registry.resolve(name)
            )
        # each exception with the check ids it covers (aliases resolved once)
        self._exceptions: tuple[tuple[PolicyException, frozenset[str], Suppression], ...] = tuple(
            (
                e,
                frozenset(c for name in e.checks for c in registry.resolve(name)),
                Suppression(
                    SuppressionSource.CONFIG,
                    e.reason,
                    f"admission policy exception {e.name}",
                    e.expires,
                ),
            )
            for e in policy.exceptions
        )

    def _with_exceptions(
        self, obj: K8sObject, namespace: str, findings: tuple[Finding, ...]
    ) -> tuple[Finding, ...]:
        """Declare the policy's exceptions whose scope holds `obj` on the findings they cover;
        `apply_suppressions` then honours them until they expire, like any suppression."""
        if not self._exceptions:
            return findings
        name = obj.name or ""
        scoped = [
            (ids, suppression)
            for e, ids, suppression in self._exceptions
            if e.covers(namespace, obj.kind, name)
        ]
        if not scoped:
            return findings
        out: list[Finding] = []
        for f in findings:
            extra = tuple(s for ids, s in scoped if f.check_id in ids)
            if extra:
                f = dataclasses.replace(f, declared_suppressions=(*f.declared_suppressions, *extra))
            out.append(f)
        return tuple(out)

    def _without_refused_annotations(
        self, findings: tuple[Finding, ...]
    ) -> tuple[tuple[Finding, ...], list[str]]:
        """Drop annotation suppressions of checks the policy does not let annotations
        suppress; each refusal is a warning naming the annotation."""
        allowed = self._annotation_ids or frozenset()
        kept: list[Finding] = []
        refused: list[str] = []
        for f in findings:
            declared = f.declared_suppressions
            if (
                declared
                and f.check_id not in allowed
                and any(s.source is SuppressionSource.ANNOTATION for s in declared)
            ):
                refused.append(
                    f"annotation ignore.skanse.io/{f.check_id} is not honoured: the admission "
                    "policy does not let annotations suppress this check"
                )
                declared = tuple(
                    s for s in declared if s.source is not SuppressionSource.ANNOTATION
                )
                f = dataclasses.replace(f, declared_suppressions=declared)
            kept.append(f)
        return tuple(kept), list(dict.fromkeys(refused))

    def checks_for(self, kind: str) -> tuple[Check[Any, Any], ...]:
        return self._for_kind.get(kind, ())

    def _context(self, obj: K8sObject, namespace: str) -> CheckContext:
        accounts: tuple[tuple[str, str], ...] = ()
        pod = pod_spec(obj) if obj.kind == "Pod" else None
        if pod is not None and not token_mounted(pod):
            account = pod.spec.get("serviceAccountName") or pod.spec.get("serviceAccount")
            accounts = ((namespace, str(account or "default")),)
        key = (namespace, accounts)
        ctx = self._contexts.get(key)
        if ctx is None:
            index = ClusterIndex(
                default_namespace=namespace,
                service_accounts=dict.fromkeys(accounts, False),
            )
            ctx = CheckContext(pss=self.policy.pss, cluster=index)
            if len(self._contexts) < 4096:  # one per namespace and account, bounded
                self._contexts[key] = ctx
        return ctx

    def evaluate(self, obj: K8sObject, namespace: str) -> ObjectVerdict:
        """Findings of the policy's checks on `obj` (a Pod or workload) in `namespace`."""
        checked = check_object(
            obj, self.checks_for(obj.kind), self._context(obj, namespace), self.registry
        )
        findings = checked.findings
        warnings = list(checked.warnings)
        if self._annotation_ids is not None:
            findings, refused = self._without_refused_annotations(findings)
            warnings.extend(refused)
        findings = self._with_exceptions(obj, namespace, findings)
        # with nothing declared and no .skanse.yaml entries there is nothing to apply (and
        # rebuilding every finding was a fifth of the cost of a pod with many findings)
        if findings and (self.suppressions or any(f.declared_suppressions for f in findings)):
            applied = apply_suppressions(
                ScanResult(findings=findings, checks=()),
                self.suppressions,
                self.registry.resolve,
                self.today(),
            )
            findings = applied.findings
            warnings.extend(applied.warnings)
        return ObjectVerdict(
            findings=findings,
            problems=tuple(p.message for p in checked.problems),
            warnings=tuple(warnings),
            ran=checked.ran,
        )


def finding_key(finding: Finding, data: object) -> tuple[str, str, str]:
    """What makes two findings the same across an UPDATE: the check, its message (which
    names the container) and what it is about: the value at its pointer in the object
    `data` it was found in. Not the pointer itself, which shifts when containers are
    reordered. The value matters because several messages name only the volume or the
    container: "volume logs uses hostPath" said the same for /var/log and for /etc, so an
    UPDATE that moved a hostPath to /proc/1/root passed as adding nothing new."""
    subject = _value_at(data, finding.location.pointer)
    shown = "" if subject is None else json.dumps(subject, sort_keys=True, default=str)
    return (finding.check_id, finding.message, shown)


def _value_at(data: object, pointer: str) -> object:
    """The value at a JSON pointer, or None when the path is missing. (skanse.fix.ops has
    one too, but importing skanse.fix would bring its engine into the webhook.)"""
    node = data
    for token in pointer.split("/")[1:] if pointer else ():
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def new_findings(
    now: Sequence[Finding], before: Sequence[Finding], *, now_in: object, before_in: object
) -> Iterator[Finding]:
    """Findings of `now` (on the object `now_in`) that `before` (on `before_in`) did not
    have, as a multiset."""
    remaining: dict[tuple[str, str, str], int] = {}
    for f in before:
        key = finding_key(f, before_in)
        remaining[key] = remaining.get(key, 0) + 1
    for f in now:
        key = finding_key(f, now_in)
        if remaining.get(key, 0) > 0:
            remaining[key] -= 1
        else:
            yield f
