"""wg-policy PolicyReports (`wgpolicyk8s.io/v1alpha2`): one per namespace, a
ClusterPolicyReport for objects without one, as a `v1 List` that `kubectl apply -f` takes.

The report and result shapes are shared with `skanse admission audit`. For a scan, each
check that ran on an object is a result when it found something (`fail`, or `skip` when
every finding is suppressed, with the justification) and counts as `pass` in the summary
otherwise; an input that could not be checked is an `error` result naming the file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from skanse.model import CheckID, Finding, ResourceRef, ScanResult
from skanse.printable import json_escaped
from skanse.report._info import ReportInfo

__all__ = ["POLICY_REPORT_API", "SOURCE", "new_report", "render", "result_entry"]

POLICY_REPORT_API = "wgpolicyk8s.io/v1alpha2"
SOURCE = "skanse"


def new_report(namespace: str, name: str) -> dict[str, Any]:
    """An empty PolicyReport for `namespace` (a ClusterPolicyReport for "")."""
    report: dict[str, Any] = {
        "apiVersion": POLICY_REPORT_API,
        "kind": "PolicyReport" if namespace else "ClusterPolicyReport",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": SOURCE}},
        "summary": {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0},
        "results": [],
    }
    if namespace:
        report["metadata"]["namespace"] = namespace
    return report


def result_entry(
    policy: str,
    rule: str,
    result: str,
    severity: str | None,
    message: str,
    ref: dict[str, str] | None,
    timestamp: dict[str, int],
    category: str,
    properties: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One PolicyReport result."""
    entry: dict[str, Any] = {
        "source": SOURCE,
        "policy": policy,
        "rule": rule,
        "result": result,
        "scored": True,
        "timestamp": timestamp,
        "message": message,
    }
    if ref is not None:
        entry["resources"] = [ref]
    if category:
        entry["category"] = category
    if severity:
        entry["severity"] = severity
    if properties:
        entry["properties"] = properties
    return entry


def _reference(resource: ResourceRef) -> dict[str, str]:
    ref = {
        "apiVersion": resource.api_version or "",
        "kind": resource.kind,
        "name": resource.name,
    }
    if resource.namespace:
        ref["namespace"] = resource.namespace
    return ref


def render(result: ScanResult, info: ReportInfo, now: dt.datetime | None = None) -> str:
    now = now or result.finished or dt.datetime.now(dt.UTC)
    timestamp = {"seconds": int(now.timestamp()), "nanos": 0}
    metas = {c.id: c for c in result.checks}
    policy = f"skanse-{result.profile or 'scan'}"
    by_case: dict[tuple[CheckID, ResourceRef, str], list[Finding]] = defaultdict(list)
    for f in result.findings:
        by_case[(f.check_id, f.resource, f.location.file)].append(f)
    reports: dict[str, dict[str, Any]] = {}

    def report_for(namespace: str) -> dict[str, Any]:
        if namespace not in reports:
            reports[namespace] = new_report(namespace, "skanse-scan")
        return reports[namespace]

    for evaluation in result.evaluations:
        resource = evaluation.resource
        report = report_for(resource.namespace or "")
        for check_id in evaluation.check_ids:
            meta = metas.get(check_id)
            if meta is None:  # filtered out by --severity
                continue
            found = by_case.get((check_id, resource, evaluation.location.file), [])
            if not found:
                report["summary"]["pass"] += 1
                continue
            live = [f for f in found if not f.suppressed]
            outcome = "fail" if live else "skip"
            report["summary"][outcome] += 1
            properties = {"file": f"{found[0].location.file}:{found[0].location.line}"}
            if not live and found[0].suppression is not None:
                properties["suppressed"] = found[0].suppression.reason
                properties["suppressed_by"] = found[0].suppression.origin
            report["results"].append(
                result_entry(
                    policy,
                    check_id,
                    outcome,
                    meta.severity.value.lower(),
                    "; ".join(f.message for f in (live or found)),
                    _reference(resource),
                    timestamp,
                    meta.title,
                    properties,
                )
            )
    for problem in result.problems:
        report = report_for("")
        report["summary"]["error"] += 1
        where = f"{problem.file}:{problem.line}" if problem.line else problem.file
        report["results"].append(
            result_entry(
                policy, problem.kind.value, "error", None, problem.message, None, timestamp, "",
                {"file": where},
            )
        )  # fmt: skip
    document = {"apiVersion": "v1", "kind": "List", "items": list(reports.values())}
    return json_escaped(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
