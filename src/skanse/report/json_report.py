"""skanse's own JSON: `schema_version` first; fields are only ever added within a version.

The schema is published in `docs/schemas/scan-result-v1.schema.json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skanse.model import (
    ControlRef,
    Finding,
    InputProblem,
    Location,
    ResourceRef,
    ScanResult,
    SkippedDocument,
    Suppression,
)
from skanse.report._info import ReportInfo, in_report_order, summary_counts
from skanse.report._json import dumps

__all__ = [
    "SCHEMA_VERSION",
    "control_documents",
    "render",
    "suppression_document",
    "to_document",
]

SCHEMA_VERSION = 1


def _location(loc: Location) -> dict[str, Any]:
    return {
        "file": loc.file,
        "line": loc.line,
        "column": loc.column,
        "pointer": loc.pointer,
        "document": loc.document,
    }


def _resource(ref: ResourceRef) -> dict[str, Any]:
    return {
        "kind": ref.kind,
        "namespace": ref.namespace,
        "name": ref.name,
        "api_version": ref.api_version,
    }


def suppression_document(s: Suppression) -> dict[str, Any]:
    return {
        "source": s.source.value,
        "reason": s.reason,
        "origin": s.origin,
        "expires": s.expires.isoformat() if s.expires else None,
    }


def _finding(f: Finding) -> dict[str, Any]:
    suppression = suppression_document(f.suppression) if f.suppression is not None else None
    return {
        "check_id": f.check_id,
        "severity": f.severity.value,
        "title": f.title,
        "message": f.message,
        "resource": _resource(f.resource),
        "location": _location(f.location),
        "fingerprint": f.fingerprint,
        "suppressed": f.suppressed,
        "suppression": suppression,
        "expired_suppressions": [suppression_document(s) for s in f.expired_suppressions],
    }


def _problem(p: InputProblem) -> dict[str, Any]:
    return {
        "file": p.file,
        "kind": p.kind.value,
        "message": p.message,
        "line": p.line,
        "column": p.column,
        "document": p.document,
        "check_id": p.check_id,
    }


def control_documents(refs: Iterable[ControlRef]) -> list[dict[str, Any]]:
    return [
        {
            "framework": r.framework.value,
            "control": r.control,
            "approximate": r.approximate,
            "note": r.note,
        }
        for r in refs
    ]


def _skipped(s: SkippedDocument) -> dict[str, Any]:
    return {"file": s.file, "document": s.document, "line": s.line, "reason": s.reason}


def to_document(result: ScanResult, info: ReportInfo) -> dict[str, Any]:
    findings = in_report_order(result.findings)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": info.kind,
        "tool": {"name": "skanse", "version": info.tool_version},
        "scan": {
            "targets": list(result.targets),
            "profile": result.profile,
            "pss": result.pss,
            "started": result.started.isoformat() if result.started else None,
            "finished": result.finished.isoformat() if result.finished else None,
        },
        "summary": {
            "files": result.files_scanned,
            "objects": result.objects_scanned,
            "findings": sum(1 for f in result.findings if not f.suppressed),
            "suppressed": sum(1 for f in result.findings if f.suppressed),
            "by_severity": summary_counts(result.findings),
            "problems": len(result.problems),
            "skipped": len(result.skipped),
            "not_applicable": len(result.not_applicable),
            "exit_code": info.exit_code,
        },
        "checks": [
            {
                "id": c.id,
                "title": c.title,
                "severity": c.severity.value,
                "aliases": list(c.aliases),
                "pss_control": c.pss_control,
                "layer": c.layer.value,
                "controls": control_documents(c.controls),
            }
            for c in result.checks
        ],
        "findings": [_finding(f) for f in findings],
        "problems": [_problem(p) for p in result.problems],
        "skipped": [_skipped(s) for s in result.skipped],
        "unknown_kinds": dict(result.unknown_kinds),
        "warnings": list(result.warnings),
        "not_applicable": [
            {"check_id": n.check_id, "reason": n.reason, "file": n.file}
            for n in result.not_applicable
        ],
        "facts": dict(result.facts),
        "evaluations": [
            {
                "resource": _resource(e.resource),
                "file": e.location.file,
                "line": e.location.line,
                "checks": list(e.check_ids),
            }
            for e in result.evaluations
        ],
        "workloads": [
            {
                "resource": _resource(w.resource),
                "images": list(w.images),
                "ports": [{"protocol": proto, "port": port} for proto, port in w.ports],
                "host_network": w.host_network,
                "container_ids": list(w.container_ids),
            }
            for w in result.workloads
        ],
    }


def render(result: ScanResult, info: ReportInfo) -> str:
    return dumps(to_document(result, info))
