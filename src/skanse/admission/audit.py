"""What the webhook would do with the objects that already run.

Input is what `kubectl get pods,deployments,statefulsets,daemonsets,jobs,cronjobs -A -o json`
prints (a List; YAML works too). Every Pod and workload goes through the webhook's own
evaluator with the same policy (profile, mode per namespace, exemptions, suppressions), so
the audit and the webhook cannot disagree. The result is a `ScanResult` for the usual
renderers, plus a verdict per object, and optionally PolicyReports (`wgpolicyk8s.io/v1alpha2`,
one per namespace, ClusterPolicyReport for cluster-scoped objects).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from skanse.admission.evaluate import Evaluator, ObjectVerdict, ReviewLimits
from skanse.admission.policy import Mode
from skanse.model import (
    Evaluation,
    Finding,
    InputProblem,
    ProblemKind,
    ResourceRef,
    ScanResult,
    SkippedDocument,
)
from skanse.report.policyreport import new_report, result_entry
from skanse.sources.kubernetes import POD_TEMPLATE_PATHS, K8sObject, pod_spec
from skanse.sources.manifests import ManifestFile, ReadLimits, read_bytes

__all__ = ["AuditResult", "ObjectAudit", "audit", "policy_reports", "summary_line"]


@dataclass(frozen=True, slots=True)
class ObjectAudit:
    resource: ResourceRef
    namespace: str
    mode: Mode | None  # None: exempt
    decision: str  # deny | warn | audit | allow | exempt | error
    verdict: ObjectVerdict | None
    reason: str = ""
    uid: str = ""


@dataclass(frozen=True, slots=True)
class AuditResult:
    result: ScanResult
    objects: tuple[ObjectAudit, ...] = field(default_factory=tuple)

    def count(self, decision: str) -> int:
        return sum(1 for o in self.objects if o.decision == decision)


def audit(
    path: str,
    data: bytes,
    evaluator: Evaluator,
    *,
    limits: ReadLimits | None = None,
    review_limits: ReviewLimits | None = None,
) -> AuditResult:
    """Evaluate every Pod and workload in one kubectl dump as the webhook would, within the
    webhook's caps (`ReviewLimits`): an object past them could not be checked, as there."""
    started = dt.datetime.now(dt.UTC)
    caps = review_limits or ReviewLimits()
    manifest: ManifestFile = read_bytes(path, data, limits or ReadLimits())
    policy = evaluator.policy
    findings: list[Finding] = []
    evaluations: list[Evaluation] = []
    problems: list[InputProblem] = list(manifest.problems)
    skipped: list[SkippedDocument] = list(manifest.skipped)
    warnings: list[str] = list(manifest.warnings)
    objects: list[ObjectAudit] = []
    checked = 0
    for obj in manifest.objects:
        if obj.kind not in POD_TEMPLATE_PATHS:
            skipped.append(
                SkippedDocument(
                    obj.file,
                    obj.document.index,
                    f"{obj.resource}: the webhook does not check this kind",
                    obj.location().line,
                )
            )
            continue
        namespace = obj.namespace or ""
        uid = _uid(obj)
        exempt = policy.exemption(namespace, "", ())
        if exempt is not None:
            objects.append(ObjectAudit(obj.resource, namespace, None, "exempt", None, exempt, uid))
            continue
        mode = policy.mode_for(namespace)
        if pod_spec(obj) is None:
            problems.append(
                InputProblem(
                    obj.file,
                    ProblemKind.PARSE,
                    f"{obj.resource} has no pod spec: could not check it",
                    line=obj.location().line,
                    document=obj.document.index,
                )
            )
            objects.append(
                ObjectAudit(obj.resource, namespace, mode, "error", None, "no pod spec", uid)
            )
            continue
        too_big = caps.too_many_containers(obj)
        if too_big is not None:
            problems.append(_too_large(obj, too_big))
            objects.append(ObjectAudit(obj.resource, namespace, mode, "error", None, too_big, uid))
            continue
        verdict = evaluator.evaluate(obj, namespace)
        too_big = caps.too_many_findings(verdict)
        if too_big is not None:
            problems.append(_too_large(obj, too_big))
            objects.append(ObjectAudit(obj.resource, namespace, mode, "error", None, too_big, uid))
            continue
        checked += 1
        findings.extend(verdict.findings)
        warnings.extend(verdict.warnings)
        problems.extend(
            InputProblem(obj.file, ProblemKind.INTERNAL, p, line=obj.location().line)
            for p in verdict.problems
        )
        evaluations.append(Evaluation(obj.resource, obj.location(), verdict.ran))
        objects.append(
            ObjectAudit(
                obj.resource,
                namespace,
                mode,
                _decision(verdict, mode, policy.fail_on),
                verdict,
                "",
                uid,
            )
        )
    result = ScanResult(
        findings=tuple(findings),
        checks=tuple(c.meta for c in evaluator.checks),
        evaluations=tuple(evaluations),
        problems=tuple(problems),
        skipped=tuple(skipped),
        targets=(path,),
        files_scanned=1,
        objects_scanned=checked,
        profile=policy.profile.value,
        pss=str(policy.pss),
        warnings=tuple(dict.fromkeys(warnings)),
        started=started,
        finished=dt.datetime.now(dt.UTC),
    )
    return AuditResult(result, tuple(objects))


def _too_large(obj: K8sObject, reason: str) -> InputProblem:
    return InputProblem(
        obj.file,
        ProblemKind.TOO_LARGE,
        f"{obj.resource}: {reason}",
        line=obj.location().line,
        document=obj.document.index,
    )


def _decision(verdict: ObjectVerdict, mode: Mode, fail_on: Any) -> str:
    if verdict.problems:
        return "error" if mode is not Mode.ENFORCE else "deny"
    if not verdict.failing(fail_on):
        return "allow"
    return {Mode.ENFORCE: "deny", Mode.WARN: "warn", Mode.AUDIT: "audit"}[mode]


def _uid(obj: K8sObject) -> str:
    value = obj.metadata.get("uid")
    return value if isinstance(value, str) else ""


def _reference(item: ObjectAudit) -> dict[str, str]:
    ref = {
        "apiVersion": item.resource.api_version or "",
        "kind": item.resource.kind,
        "name": item.resource.name,
    }
    if item.resource.namespace:
        ref["namespace"] = item.resource.namespace
    if item.uid:
        ref["uid"] = item.uid
    return ref


def policy_reports(
    audited: AuditResult, evaluator: Evaluator, now: dt.datetime | None = None
) -> dict[str, Any]:
    """PolicyReports as one `v1 List`: results for failing, warned and suppressed checks
    (and errors) per object; passes are counted in each report's summary only."""
    now = now or dt.datetime.now(dt.UTC)
    timestamp = {"seconds": int(now.timestamp()), "nanos": 0}
    meta = {c.id: c.meta for c in evaluator.checks}
    policy_name = f"skanse-{evaluator.policy.profile.value}"
    reports: dict[str, dict[str, Any]] = {}
    for item in audited.objects:
        if item.verdict is None and item.decision != "error":
            continue
        report = reports.get(item.namespace)
        if report is None:
            report = reports[item.namespace] = new_report(item.namespace, "skanse-admission-audit")
        summary, results = report["summary"], report["results"]
        ref = _reference(item)
        if item.verdict is None:
            summary["error"] += 1
            results.append(
                result_entry(
                    policy_name, "pod-spec", "error", None, item.reason, ref, timestamp, ""
                )
            )
            continue
        by_check: dict[str, list[Finding]] = {}
        for f in item.verdict.findings:
            by_check.setdefault(f.check_id, []).append(f)
        failing = set(item.verdict.failing(evaluator.policy.fail_on))
        for check_id in item.verdict.ran:
            found = by_check.get(check_id, [])
            if not found:
                summary["pass"] += 1
                continue
            live = [f for f in found if not f.suppressed]
            if not live:
                result = "skip"
            elif any(f in failing for f in live) and item.mode is Mode.ENFORCE:
                result = "fail"
            else:
                result = "warn"
            summary[result] += 1
            shown = live or found
            message = "; ".join(f.message for f in shown)
            properties = {"mode": item.mode.value if item.mode else "", "decision": item.decision}
            suppressions = [f.suppression for f in found if f.suppression is not None]
            if result == "skip" and suppressions:
                properties["suppressed"] = suppressions[0].reason
                properties["suppressed_by"] = suppressions[0].origin
            check = meta.get(check_id)
            results.append(
                result_entry(
                    policy_name,
                    check_id,
                    result,
                    check.severity.value.lower() if check else None,
                    message,
                    ref,
                    timestamp,
                    check.title if check else "",
                    properties,
                )
            )
        for problem in item.verdict.problems:
            summary["error"] += 1
            results.append(
                result_entry(policy_name, "internal", "error", None, problem, ref, timestamp, "")
            )
    return {"apiVersion": "v1", "kind": "List", "items": list(reports.values())}


def summary_line(audited: AuditResult) -> str:
    counts = {d: audited.count(d) for d in ("deny", "warn", "audit", "allow", "exempt", "error")}
    return (
        f"{len(audited.objects)} object(s): {counts['deny']} would be denied, "
        f"{counts['warn']} allowed with warnings, {counts['audit']} allowed and audited, "
        f"{counts['allow']} pass, {counts['exempt']} exempt, {counts['error']} could not be "
        "checked"
    )
