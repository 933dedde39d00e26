"""SARIF 2.1.0 as GitHub code scanning reads it.

Rules come from check metadata with `security-severity` (tags include "security", which
GitHub requires to use it); URIs are relative to the repository root under `%SRCROOT%`;
`partialFingerprints` do not depend on line numbers; suppressed findings stay in the log
with their justification; inputs that could not be checked are tool notifications.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skanse.model import CheckMeta, Finding, ScanResult, Severity, SuppressionSource
from skanse.report._info import ReportInfo, in_report_order
from skanse.report._json import dumps

__all__ = ["SARIF_SCHEMA", "render", "to_document"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# GitHub's bands: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
}
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def _rule_name(title: str) -> str:
    """A PascalCase name from a title: 'Container runs privileged' -> ContainerRunsPrivileged."""
    words = re.split(r"[^A-Za-z0-9]+", title.replace("'", ""))
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def _rule(meta: CheckMeta) -> dict[str, Any]:
    tags = ["security", meta.layer.value]
    if meta.pss_level:
        tags.append(f"pss-{meta.pss_level}")
    properties: dict[str, Any] = {"tags": tags, "precision": "very-high"}
    if meta.severity in _SECURITY_SEVERITY:
        properties["security-severity"] = _SECURITY_SEVERITY[meta.severity]
    if meta.aliases:
        properties["aliases"] = list(meta.aliases)
    references = "\n".join(f"- {r}" for r in meta.references)
    rule: dict[str, Any] = {
        "id": meta.id,
        "name": _rule_name(meta.title),
        "shortDescription": {"text": meta.title},
        "fullDescription": {"text": meta.description},
        "help": {
            "text": f"{meta.remediation}\n\n{chr(10).join(meta.references)}".strip(),
            "markdown": f"**{meta.title}**\n\n{meta.description}\n\n**Fix:** {meta.remediation}"
            + (f"\n\n{references}" if references else ""),
        },
        "defaultConfiguration": {"level": _LEVEL[meta.severity]},
        "properties": properties,
    }
    if meta.references:
        rule["helpUri"] = meta.references[0]
    return rule


def _uri(path: str, root: Path) -> tuple[str, bool]:
    """A URI for `path`: relative to `root` when inside it (True), else absolute (False)."""
    if path.startswith("<"):
        return urllib.parse.quote(path.strip("<>")), True
    # string operations, not pathlib: this runs once per file (a large tree has thousands)
    absolute = os.path.abspath(path)
    prefix = str(root).rstrip(os.sep) + os.sep
    if not absolute.startswith(prefix):
        return Path(absolute).as_uri(), False
    return urllib.parse.quote(absolute[len(prefix) :].replace(os.sep, "/")), True


def _result(
    f: Finding, rule_index: Mapping[str, int], root: Path, uris: dict[str, tuple[str, bool]]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.check_id,
        "ruleIndex": rule_index[f.check_id],
        "level": _LEVEL[f.severity],
        "message": {"text": f"{f.message} [{f.resource}]"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(f.location.file, root, uris),
                    "region": {"startLine": f.location.line, "startColumn": f.location.column},
                },
                "logicalLocations": [{"fullyQualifiedName": str(f.resource), "kind": "resource"}],
            }
        ],
        "partialFingerprints": {"skanse/v1": f.fingerprint},
        "properties": {"jsonPointer": f.location.pointer, "document": f.location.document},
    }
    if f.suppression is not None:
        in_source = (SuppressionSource.INLINE, SuppressionSource.ANNOTATION)
        kind = "inSource" if f.suppression.source in in_source else "external"
        justification = f.suppression.reason
        if f.suppression.expires:
            justification += f" (expires {f.suppression.expires.isoformat()})"
        result["suppressions"] = [
            {"kind": kind, "status": "accepted", "justification": justification}
        ]
    return result


def to_document(result: ScanResult, info: ReportInfo) -> dict[str, Any]:
    root = Path(os.path.abspath(info.source_root))
    # Every finding's check is in result.checks (the severity filter keeps them together).
    metas = {c.id: c for c in result.checks}
    rules = [_rule(m) for m in metas.values()]
    index: dict[str, int] = {m: i for i, m in enumerate(metas)}
    findings = in_report_order(result.findings)
    uris: dict[str, tuple[str, bool]] = {}  # a file's URI, once per file, not per finding
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{p.kind.value}: {p.message}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(p.file, root, uris),
                        **({"region": {"startLine": p.line}} if p.line else {}),
                    }
                }
            ],
        }
        for p in result.problems
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "skanse",
                "version": info.tool_version,
                "semanticVersion": info.tool_version,
                "rules": rules,
            }
        },
        "automationDetails": {"id": f"skanse/scan/{result.profile}/"},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri() + "/"}},
        "results": [_result(f, index, root, uris) for f in findings],
        "invocations": [
            {
                "executionSuccessful": not any(p.kind.value == "internal" for p in result.problems),
                "toolExecutionNotifications": notifications,
                **({"exitCode": info.exit_code} if info.exit_code is not None else {}),
            }
        ],
        "properties": {"profile": result.profile, "pss": result.pss}
        | ({"facts": dict(result.facts)} if result.facts else {}),
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _artifact(path: str, root: Path, uris: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    found = uris.get(path)
    if found is None:
        found = uris[path] = _uri(path, root)
    uri, relative = found
    return {"uri": uri, "uriBaseId": "%SRCROOT%"} if relative else {"uri": uri}


def render(result: ScanResult, info: ReportInfo) -> str:
    return dumps(to_document(result, info))
