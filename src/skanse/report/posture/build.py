"""Layer results in, one posture document out (kind `skanse.posture`, schema_version 1).

The document is what `skanse report -f json` writes and what the HTML and PDF show; its
schema is docs/schemas/posture-report-v1.schema.json. Nothing here re-runs a check: every
number comes from a layer's own result document (see `documents`).

Layers: kubernetes (manifests), dockerfile, network, images (SBOM, vulnerabilities,
signatures), runtime (alerts), host. A layer with no result is "not-assessed", never a pass;
one whose inputs could not all be checked is "partial".
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from skanse.checks.network.netpol import DATABASE_PORTS
from skanse.controls import CONTROL_TITLES, CROSSWALK, FRAMEWORKS
from skanse.model import Framework, Severity
from skanse.report.posture.alerts import AlertJoin, alert_time
from skanse.report.posture.documents import ResultDocument
from skanse.report.posture.findings import all_findings
from skanse.report.posture.names import LAYERS, image_key, workload_label
from skanse.report.posture.risk import (
    SEVERITY_UNKNOWN,
    Evidence,
    EvidenceKind,
    Risk,
    RiskSubject,
    rank,
    score,
    severity_of,
    vulnerability_rating,
)

__all__ = [
    "LAYERS",
    "SCHEMA_VERSION",
    "attach_history",
    "build_posture",
    "image_key",
    "vulnerability_rating",
]

SCHEMA_VERSION = 1
# check layer (CheckMeta.layer) -> report layer
_CHECK_LAYER = {
    "kubernetes": "kubernetes",
    "dockerfile": "dockerfile",
    "network": "network",
    "host": "host",
    "image": "images",
    "runtime": "runtime",
}
_SEVERITIES = [s.value for s in Severity]


def _counts(items: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(_SEVERITIES, 0)
    for s in items:
        counts[severity_of(s).value] += 1
    return counts


def _resource_key(resource: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(resource.get("kind") or ""),
        str(resource.get("namespace") or ""),
        str(resource.get("name") or ""),
    )


def _provenance(doc: ResultDocument) -> dict[str, Any]:
    data = doc.data
    tool: Mapping[str, Any] = data["tool"] if isinstance(data.get("tool"), Mapping) else {}
    scan: Mapping[str, Any] = data["scan"] if isinstance(data.get("scan"), Mapping) else {}
    policy: dict[str, Any] = {}
    targets: list[str] = []
    started = finished = None
    if doc.kind in ("skanse.scan", "skanse.host-audit"):
        targets = list(scan.get("targets") or [])
        policy = {"profile": scan.get("profile"), "pss": scan.get("pss")}
        started, finished = scan.get("started"), scan.get("finished")
    elif doc.kind == "skanse.vuln":
        targets = [str(data.get("target"))]
        database = data.get("database") or {}
        policy = {"database_built": database.get("built"), "only_fixed": None}
        started, finished = scan.get("started"), scan.get("finished")
    elif doc.kind == "skanse.verification":
        targets = [str(i.get("image")) for i in data.get("images", [])]
        keys = sorted({k for i in data.get("images", []) for k in i.get("keys", [])})
        policy = {"keys": keys}
        finished = data.get("checked")
    elif doc.kind == "skanse.netpol-list":
        targets = list(data.get("targets") or [])
        finished = data.get("generated")
    elif doc.kind == "skanse.runtime-alerts":
        times = sorted(str(a.get("time")) for a in data.get("alerts", []) if a.get("time"))
        started, finished = (times[0], times[-1]) if times else (None, None)
        targets = [doc.origin]
    return {
        "kind": doc.kind,
        "origin": doc.origin,
        "tool_version": tool.get("version"),
        "schema_version": data.get("schema_version"),
        "targets": targets,
        "started": started,
        "finished": finished,
        "policy": {k: v for k, v in policy.items() if v is not None},
    }


class _Estate:
    """Everything the documents say, gathered per layer before the document is written."""

    def __init__(self) -> None:
        self.findings: list[dict[str, Any]] = []  # with "layer" and "origin" added
        self.checks: dict[str, dict[str, Any]] = {}  # id -> check (controls included)
        self.ran: dict[str, set[str]] = defaultdict(set)  # layer -> check ids that ran
        self.resources: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
        self.problems: dict[str, list[str]] = defaultdict(list)
        self.not_applicable: list[dict[str, Any]] = []
        self.could_not: set[str] = set()
        self.workloads: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.connections: list[dict[str, Any]] = []
        self.network_assessed = False
        self.vulns: list[Mapping[str, Any]] = []
        self.verifications: list[Mapping[str, Any]] = []
        self.alerts: list[Mapping[str, Any]] = []
        self.runtime_assessed = False
        self.host_facts: dict[str, str] = {}
        self.host_assessed = False
        self.warnings: list[str] = []

    def add(self, doc: ResultDocument) -> None:
        match doc.kind:
            case "skanse.scan" | "skanse.host-audit":
                self._add_scan(doc)
            case "skanse.vuln":
                self.vulns.append(doc.data)
            case "skanse.verification":
                self.verifications.extend(doc.data.get("images", []))
            case "skanse.netpol-list":
                self.network_assessed = True
                self.connections.extend(doc.data.get("connections", []))
                for p in doc.data.get("problems", []):
                    self.problems["network"].append(f"{p.get('file')}: {p.get('message')}")
            case "skanse.runtime-alerts":
                self.runtime_assessed = True
                self.alerts.extend(doc.data.get("alerts", []))
                self.problems["runtime"].extend(doc.problems)
            case _:
                self.warnings.append(f"{doc.origin}: {doc.kind} is not a layer result; ignored")

    def _add_scan(self, doc: ResultDocument) -> None:
        data = doc.data
        host = doc.kind == "skanse.host-audit"
        layer_of: dict[str, str] = {}
        for check in data.get("checks", []):
            layer = _CHECK_LAYER.get(str(check.get("layer") or ""), "")
            if not layer:  # older files: the id says the layer
                layer = _layer_from_id(str(check.get("id")), host)
            layer_of[str(check["id"])] = layer
            self.checks.setdefault(str(check["id"]), {**check, "layer": layer})
        evaluations = data.get("evaluations")
        if evaluations is None:  # older files: every listed check ran on what was scanned
            if (data.get("summary") or {}).get("objects"):
                for cid, layer in layer_of.items():
                    self.ran[layer].add(cid)
        else:
            for e in evaluations:
                for cid in e.get("checks", []):
                    layer = layer_of.get(cid) or _layer_from_id(cid, host)
                    self.ran[layer].add(cid)
                    self.resources[layer].add(_resource_key(e.get("resource") or {}))
        for finding in data.get("findings", []):
            layer = layer_of.get(finding["check_id"]) or _layer_from_id(finding["check_id"], host)
            self.findings.append({**finding, "layer": layer, "origin": doc.origin})
            self.resources[layer].add(_resource_key(finding.get("resource") or {}))
        for problem in data.get("problems", []):
            layer = "host" if host else _problem_layer(problem)
            self.problems[layer].append(f"{problem.get('file')}: {problem.get('message')}")
            if problem.get("check_id"):
                self.could_not.add(str(problem["check_id"]))
        for w in data.get("workloads", []):
            key = _resource_key(w.get("resource") or {})
            self.workloads[key] = dict(w)
        if host:
            self.host_assessed = True
            self.host_facts.update({str(k): str(v) for k, v in (data.get("facts") or {}).items()})
            self.not_applicable.extend(data.get("not_applicable", []))
            self.ran["host"].difference_update(self.could_not)


def _layer_from_id(check_id: str, host: bool) -> str:
    if host or check_id.startswith("SKN-HOST"):
        return "host"
    if check_id.startswith("SKN-DF"):
        return "dockerfile"
    if check_id.startswith("SKN-NET"):
        return "network"
    return "kubernetes"


def _problem_layer(problem: Mapping[str, Any]) -> str:
    name = str(problem.get("file") or "").rsplit("/", 1)[-1]
    if name.startswith(("Dockerfile", "Containerfile")) or name.endswith(".Dockerfile"):
        return "dockerfile"
    return "kubernetes"


# -- the network: who reaches what ------------------------------------------------------------


def _ports_of(connection: Mapping[str, Any]) -> Mapping[str, list[list[int]]]:
    ports = connection.get("ports")
    return ports if isinstance(ports, Mapping) else {}


def _allows(connection: Mapping[str, Any], protocol: str, port: int) -> bool:
    return any(lo <= port <= hi for lo, hi in _ports_of(connection).get(protocol, []))


def _reach(estate: _Estate) -> tuple[dict[str, bool], dict[str, bool], set[str]]:
    """(label -> reaches a database port, label -> accepts outside connections, databases)."""
    databases: dict[str, list[int]] = {}
    for w in estate.workloads.values():
        ports = [
            p["port"]
            for p in w.get("ports", [])
            if p.get("protocol", "TCP") == "TCP" and p.get("port") in DATABASE_PORTS
        ]
        if ports:
            databases[workload_label(w["resource"])] = ports
    to_db: dict[str, bool] = {}
    outside: dict[str, bool] = {}
    for c in estate.connections:
        src, dst = c.get("source") or {}, c.get("destination") or {}
        if "external" in src and dst.get("workload"):
            outside[str(c["dst"])] = True
        if src.get("workload") and str(c["dst"]) in databases and c["src"] != c["dst"]:
            if any(_allows(c, "TCP", p) for p in databases[str(c["dst"])]):
                to_db[str(c["src"])] = True
    return to_db, outside, set(databases)


# -- images -----------------------------------------------------------------------------------


def _images(estate: _Estate) -> list[dict[str, Any]]:
    by_key: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(reference: str, digest: str | None) -> dict[str, Any]:
        key = image_key(reference)
        found = by_key.get(key)
        if found is None and digest:
            found = next((e for e in by_key.values() if e["digest"] == digest), None)
        if found is None:
            found = by_key[key] = {
                "image": reference,
                "digest": digest,
                "sbom": None,
                "vulnerabilities": None,
                "signature": {"status": "not-checked", "reason": "no signature verification"},
                "attestation": {"status": "not-checked", "what": None, "reason": None},
                "workloads": [],
            }
        if digest and not found["digest"]:
            found["digest"] = digest
        return found

    for v in estate.vulns:
        subject = v.get("subject") or {}
        e = entry(str(v.get("target")), subject.get("manifest_digest"))
        summary = v.get("summary") or {}
        live = [m for m in v.get("matches", []) if not m.get("suppressed")]
        e["sbom"] = {
            "packages": summary.get("packages"),
            "checked": summary.get("checked"),
            "by_type": summary.get("packages_by_type") or {},
            "distro": v.get("distro"),
        }
        e["vulnerabilities"] = {
            "by_severity": summary.get("by_severity") or {},
            "total": len(live),
            "fixable": sum(1 for m in live if m.get("fixed_version")),
            "suppressed": summary.get("suppressed") or 0,
            "severity_unknown": sum(
                1 for m in live if SEVERITY_UNKNOWN in vulnerability_rating(m)[1]
            ),
            "top": [
                {
                    "id": m.get("id"),
                    "severity": m.get("severity"),
                    "ranked_as": vulnerability_rating(m)[0].value,
                    "rating_notes": list(vulnerability_rating(m)[1]),
                    "kev": m.get("kev") is True,
                    "epss": m.get("epss"),
                    "package": f"{m['package']['name']} {m['package']['version']}",
                    "fixed_version": m.get("fixed_version"),
                    "aliases": [*m.get("aliases", []), *m.get("related", [])],
                }
                for m in sorted(live, key=lambda m: -vulnerability_rating(m)[0].rank)[:10]
            ],
        }
        e["_matches"] = live
    for ver in estate.verifications:
        e = entry(str(ver.get("image")), ver.get("digest"))
        if ver.get("what") != "signature":  # an SBOM (or other) attestation
            e["attestation"] = {
                "status": "verified" if ver.get("verified") else "not-verified",
                "what": ver.get("what"),
                "reason": ver.get("reason"),
            }
            continue
        e["signature"] = {
            "status": "verified" if ver.get("verified") else "not-verified",
            "reason": ver.get("reason"),
            "keys": list(ver.get("verified_keys") or []),
        }
    for w in estate.workloads.values():
        for image in w.get("images", []):
            key = image_key(image)
            if key in by_key:
                by_key[key]["workloads"].append(workload_label(w["resource"]))
    return list(by_key.values())


# -- runtime ----------------------------------------------------------------------------------


def _runtime(estate: _Estate) -> dict[str, Any]:
    from skanse.rules.loader import Priority

    if not estate.runtime_assessed:
        return {"status": "not-assessed"}
    by_rule: dict[str, dict[str, Any]] = {}
    by_priority: Counter[str] = Counter()
    join = AlertJoin(estate.workloads.values())
    joined: Counter[str] = Counter()
    rule_workloads: defaultdict[str, set[str]] = defaultdict(set)  # membership, not a scan
    for alert in estate.alerts:
        rule, priority = str(alert.get("rule")), str(alert.get("priority"))
        by_priority[priority] += 1
        parsed = Priority.parse(priority)
        item = by_rule.setdefault(
            rule,
            {
                "rule": rule,
                "priority": priority,
                "severity": (parsed.severity if parsed is not None else Severity.INFO).value,
                "count": 0,
                "workloads": [],
                "first": None,
                "last": None,
                "example": alert.get("output"),
            },
        )
        item["count"] += 1
        workload, how = join(alert)
        joined[how] += 1
        if workload and workload not in rule_workloads[rule]:
            rule_workloads[rule].add(workload)
            item["workloads"].append(workload)
        when = alert.get("time") or alert_time(alert)
        if when:
            item["first"] = min(item["first"] or when, when)
            item["last"] = max(item["last"] or when, when)
    rules = sorted(by_rule.values(), key=lambda r: (-Severity(r["severity"]).rank, -r["count"]))
    return {
        "status": "partial" if estate.problems.get("runtime") else "assessed",
        "alerts": len(estate.alerts),
        "by_priority": dict(by_priority.most_common()),
        "by_severity": _counts(r["severity"] for r in rules for _ in range(r["count"])),
        "rules": rules,
        "joined_by": dict(joined.most_common()),
    }


# -- risks ------------------------------------------------------------------------------------


def _risks(estate: _Estate, images: list[dict[str, Any]]) -> list[Risk]:
    to_db, outside, _ = _reach(estate)
    by_label: dict[str, list[Evidence]] = defaultdict(list)
    for f in estate.findings:
        if f.get("suppressed") or f["layer"] not in ("kubernetes", "network"):
            continue
        label = workload_label(f["resource"])
        text = f"{f['check_id']}: {f['message']}"
        by_label[label].append(Evidence(EvidenceKind.CONFIG, severity_of(f["severity"]), text))
    image_by_key = {image_key(i["image"]): i for i in images}
    runtime = _runtime(estate)
    alert_evidence: dict[str, list[Evidence]] = defaultdict(list)
    for rule in runtime.get("rules", []):
        for label in rule["workloads"]:
            alert_evidence[label].append(
                Evidence(
                    EvidenceKind.RUNTIME,
                    Severity(rule["severity"]),
                    f"{rule['rule']} ({rule['priority']}, {rule['count']} alert(s))",
                )
            )
    risks: list[Risk | None] = []
    for w in estate.workloads.values():
        label = workload_label(w["resource"])
        evidence = list(by_label.get(label, [])) + alert_evidence.get(label, [])
        for reference in w.get("images", []):
            image = image_by_key.get(image_key(reference))
            if image is None:
                continue
            for m in image.get("_matches", []):
                rated, notes = vulnerability_rating(m)
                evidence.append(
                    Evidence(
                        EvidenceKind.VULNERABILITY,
                        rated,
                        f"{m.get('id')} in {m['package']['name']} {m['package']['version']}"
                        + (f", fixed in {m['fixed_version']}" if m.get("fixed_version") else "")
                        + (f" ({'; '.join(notes)})" if notes else ""),
                        fixable=bool(m.get("fixed_version")),
                    )
                )
            if image["signature"]["status"] == "not-verified":
                evidence.append(
                    Evidence(
                        EvidenceKind.SIGNATURE,
                        Severity.HIGH,
                        f"{reference}: {image['signature']['reason']}",
                    )
                )
        resource = w["resource"]
        subject = RiskSubject(resource["kind"], resource["name"], resource.get("namespace"))
        assessed = estate.network_assessed
        risks.append(
            score(
                subject,
                evidence,
                reaches_database=to_db.get(label, False) if assessed else None,
                reachable_from_outside=outside.get(label, False) if assessed else None,
                images=w.get("images", []),
            )
        )
    for layer in ("dockerfile", "host"):
        subjects: dict[tuple[str, str, str], list[Evidence]] = defaultdict(list)
        for f in estate.findings:
            if f["layer"] == layer and not f.get("suppressed"):
                text = f"{f['check_id']}: {f['message']}"
                subjects[_resource_key(f["resource"])].append(
                    Evidence(EvidenceKind.CONFIG, severity_of(f["severity"]), text)
                )
        for (kind, _, name), evidence in subjects.items():
            risks.append(score(RiskSubject(kind, name), evidence))
    return rank(risks)


def _risk_document(position: int, risk: Risk) -> dict[str, Any]:
    return {
        "rank": position,
        "subject": {
            "kind": risk.subject.kind,
            "namespace": risk.subject.namespace,
            "name": risk.subject.name,
        },
        "score": risk.score,
        "worst": risk.worst.value,
        "contributions": [
            {"kind": kind.value, "points": points, "worst": text, "count": count}
            for kind, points, text, count in risk.contributions
        ],
        "reach": list(risk.reach),
        "images": list(risk.images),
    }


# -- layers, suppressions, controls, trend --------------------------------------------------------


def _layer_summary(estate: _Estate, layer: str, images: list[dict[str, Any]]) -> dict[str, Any]:
    findings = [f for f in estate.findings if f["layer"] == layer]
    live = [f for f in findings if not f.get("suppressed")]
    if layer == "images":
        assessed = any(i["vulnerabilities"] is not None for i in images) or any(
            i["signature"]["status"] != "not-checked" for i in images
        )
        live_severities = [
            vulnerability_rating(m)[0].value for i in images for m in i.get("_matches", [])
        ] + ["HIGH" for i in images if i["signature"]["status"] == "not-verified"]
        return {
            "name": LAYERS[layer],
            "status": "assessed" if assessed else "not-assessed",
            "subjects": len(images),
            "checks_run": None,
            "checks_passed": None,
            "checks_failed": None,
            "findings": len(live_severities),
            "by_severity": _counts(str(s) for s in live_severities),
            "suppressed": sum(
                int((i["vulnerabilities"] or {}).get("suppressed", 0)) for i in images
            ),
            "problems": estate.problems.get(layer, []),
        }
    if layer == "runtime":
        runtime = _runtime(estate)
        assessed = runtime["status"] != "not-assessed"
        return {
            "name": LAYERS[layer],
            "status": runtime["status"],
            "subjects": len({w for r in runtime.get("rules", []) for w in r["workloads"]}),
            "checks_run": None,
            "checks_passed": None,
            "checks_failed": len(runtime.get("rules", [])) if assessed else None,
            "findings": runtime.get("alerts", 0),
            "by_severity": runtime.get("by_severity", _counts([])),
            "suppressed": 0,
            "problems": estate.problems.get(layer, []),
        }
    ran = estate.ran.get(layer, set())
    failed = {f["check_id"] for f in live}
    assessed = bool(ran) or bool(findings)
    if layer == "network" and estate.network_assessed:
        assessed = True
    status = "not-assessed"
    if assessed:
        status = "partial" if estate.problems.get(layer) else "assessed"
    return {
        "name": LAYERS[layer],
        "status": status,
        "subjects": len(estate.resources.get(layer, set())),
        "checks_run": len(ran) if assessed else None,
        "checks_passed": len(ran - failed) if assessed else None,
        "checks_failed": len(failed) if assessed else None,
        "findings": len(live),
        "by_severity": _counts(f["severity"] for f in live),
        "suppressed": len(findings) - len(live),
        "problems": estate.problems.get(layer, []),
    }


def _suppressions(
    estate: _Estate, images: list[dict[str, Any]], today: dt.date
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str | None, bool], dict[str, Any]] = {}

    def add(s: Mapping[str, Any], check_id: str, layer: str, expired: bool) -> None:
        key = (str(s.get("origin")), str(s.get("reason")), s.get("expires"), expired)
        group = groups.setdefault(
            key,
            {
                "origin": s.get("origin"),
                "source": s.get("source"),
                "reason": s.get("reason"),
                "expires": s.get("expires"),
                "expired": expired,
                "expires_in_days": None,
                "layer": layer,
                "checks": [],
                "findings": 0,
            },
        )
        if s.get("expires"):
            try:
                group["expires_in_days"] = (dt.date.fromisoformat(s["expires"]) - today).days
            except ValueError:
                pass
        if check_id not in group["checks"]:
            group["checks"].append(check_id)
        group["findings"] += 1

    for f in estate.findings:
        if f.get("suppression"):
            add(f["suppression"], f["check_id"], f["layer"], False)
        for s in f.get("expired_suppressions", []):
            add(s, f["check_id"], f["layer"], True)
    for v in estate.vulns:
        for m in v.get("matches", []):
            if m.get("suppression"):
                add(m["suppression"], str(m.get("id")), "images", False)
    return sorted(
        groups.values(), key=lambda g: (not g["expired"], g["expires"] or "9999", str(g["origin"]))
    )


_STATUS_ORDER = {"not-met": 0, "met-with-exceptions": 1, "met": 2, "not-assessed": 3}


def _controls(estate: _Estate, layers: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    live_by_check: Counter[str] = Counter()
    suppressed_by_check: Counter[str] = Counter()
    for f in estate.findings:
        (suppressed_by_check if f.get("suppressed") else live_by_check)[f["check_id"]] += 1
    ran = {cid for ids in estate.ran.values() for cid in ids}
    checks = dict(estate.checks)
    for cid, meta in _known_checks().items():
        checks.setdefault(cid, meta)
    layer_evidence = _layer_evidence(estate, layers)
    controls: dict[tuple[str, str], dict[str, Any]] = {}
    shadowed = _shadowed_evidence(estate, ran)
    for check in checks.values():
        cid = str(check["id"])
        note_through = ""
        if cid in layer_evidence:
            status, live_by_check[cid], suppressed_by_check[cid] = layer_evidence[cid]
        elif cid in shadowed:
            status, live_by_check[cid], suppressed_by_check[cid], note_through = shadowed[cid]
        elif live_by_check[cid]:
            status = "not-met"
        elif cid in ran:
            status = "met-with-exceptions" if suppressed_by_check[cid] else "met"
        else:
            status = "not-assessed"
        for ref in _with_crosswalk(check.get("controls", [])):
            key = (str(ref["framework"]), str(ref["control"]))
            entry = controls.setdefault(
                key,
                {
                    "framework": key[0],
                    "control": key[1],
                    "title": CONTROL_TITLES.get((Framework(key[0]), key[1]), "")
                    if key[0] in {f.value for f in Framework}
                    else "",
                    "status": "not-assessed",
                    "evidence": [],
                },
            )
            entry["evidence"].append(
                {
                    "check_id": cid,
                    "title": check.get("title"),
                    "status": status,
                    "findings": live_by_check[cid],
                    "suppressed": suppressed_by_check[cid],
                    "approximate": bool(ref.get("approximate")),
                    "note": "; ".join(n for n in (ref.get("note") or "", note_through) if n),
                }
            )
    for entry in controls.values():
        statuses = {e["status"] for e in entry["evidence"]}
        for candidate in ("not-met", "met-with-exceptions", "met"):
            if candidate in statuses:
                entry["status"] = candidate
                break
        entry["approximate_only"] = all(e["approximate"] for e in entry["evidence"])
    order = [f.value for f in Framework]
    return sorted(
        controls.values(),
        key=lambda c: (
            order.index(c["framework"]) if c["framework"] in order else 99,
            _STATUS_ORDER[c["status"]],
            _natural(c["control"]),
        ),
    )


def _with_crosswalk(refs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A check's controls plus the ISO/IEC 27001, NSM and GDPR controls its NSA/CISA sections
    stand for (skanse.controls.CROSSWALK); results written before the crosswalk get it too."""
    out = list(refs)
    seen = {(str(r.get("framework")), str(r.get("control"))) for r in out}
    for ref in list(out):
        if ref.get("framework") != Framework.NSA_CISA.value:
            continue
        for framework, control in CROSSWALK.get(str(ref.get("control")), ()):
            if (framework.value, control) in seen:
                continue
            seen.add((framework.value, control))
            out.append(
                {
                    "framework": framework.value,
                    "control": control,
                    "approximate": True,
                    "note": f"through NSA/CISA {ref.get('control')}",
                }
            )
    return out


def _hostpath_site(finding: Mapping[str, Any]) -> bool:
    pointer = str((finding.get("location") or {}).get("pointer") or "")
    return pointer.endswith("/hostPath")


def _added_beyond_baseline(finding: Mapping[str, Any]) -> bool:
    from skanse.checks.kubernetes.pss import BASELINE_CAPABILITIES

    pointer = str((finding.get("location") or {}).get("pointer") or "")
    if "/capabilities/add/" not in pointer:
        return False
    _, _, named = str(finding.get("message") or "").partition("must not include")
    names = re.findall(r'"([A-Za-z_]+)"', named.partition("in securityContext")[0])
    return any(n not in BASELINE_CAPABILITIES for n in names)


# Baseline Pod Security checks that the restricted level does not run, because a stricter
# restricted check replaces them (as Pod Security Admission does): the restricted check's
# findings say whether the baseline control holds. Its sites are data (the JSON pointer of
# each volume or added capability), so the baseline verdict is exact: a hostPath volume
# refused by "Volume Types" is a HostPath finding; an added SYS_ADMIN is a baseline
# Capabilities finding, an added CHOWN is not.
_SHADOWED: dict[str, tuple[str, Any]] = {
    "SKN-K8S-004": ("SKN-K8S-013", _hostpath_site),
    "SKN-K8S-003": ("SKN-K8S-018", _added_beyond_baseline),
}


def _shadowed_evidence(estate: _Estate, ran: set[str]) -> dict[str, tuple[str, int, int, str]]:
    """(status, findings, suppressed, note) of baseline checks assessed through restricted."""
    out: dict[str, tuple[str, int, int, str]] = {}
    for baseline, (restricted, counts) in _SHADOWED.items():
        if baseline in ran or restricted not in ran:
            continue
        relevant = [f for f in estate.findings if f["check_id"] == restricted and counts(f)]
        live = sum(1 for f in relevant if not f.get("suppressed"))
        muted = len(relevant) - live
        status = "not-met" if live else ("met-with-exceptions" if muted else "met")
        note = f"assessed through {restricted}, which the restricted level runs in its place"
        out[baseline] = (status, live, muted, note)
    return out


# Evidence that is a whole layer's result rather than one registered check's.
_VULN_EVIDENCE = "vulnerability matching"
_RUNTIME_EVIDENCE = "runtime detection"


def _known_checks() -> dict[str, dict[str, Any]]:
    """Every check skanse has, so a control whose checks did not run shows "not assessed"."""
    from skanse.checks._all import REGISTRY
    from skanse.host.checks._all import HOST_REGISTRY
    from skanse.report.json_report import control_documents
    from skanse.rules.replay import RUNTIME_CONTROLS
    from skanse.signing.report import ATTESTATION_CHECK, SIGNATURE_CHECK
    from skanse.vuln.scan import VULN_CONTROLS

    metas = [c.meta for c in (*REGISTRY.all(), *HOST_REGISTRY.all())]
    metas += [SIGNATURE_CHECK, ATTESTATION_CHECK]
    known = {
        str(m.id): {
            "id": str(m.id),
            "title": m.title,
            "layer": _CHECK_LAYER[m.layer.value],
            "controls": control_documents(m.controls),
        }
        for m in metas
    }
    known[_VULN_EVIDENCE] = {
        "id": _VULN_EVIDENCE,
        "title": "known vulnerabilities in the images",
        "layer": "images",
        "controls": control_documents(VULN_CONTROLS),
    }
    known[_RUNTIME_EVIDENCE] = {
        "id": _RUNTIME_EVIDENCE,
        "title": "runtime rules raised no alert",
        "layer": "runtime",
        "controls": control_documents(RUNTIME_CONTROLS),
    }
    return known


def _layer_evidence(
    estate: _Estate, layers: Mapping[str, Mapping[str, Any]]
) -> dict[str, tuple[str, int, int]]:
    """(status, findings, suppressed) of the evidence that whole layers give."""
    out: dict[str, tuple[str, int, int]] = {}
    if estate.vulns:
        live = sum(1 for v in estate.vulns for m in v.get("matches", []) if not m.get("suppressed"))
        muted = sum(1 for v in estate.vulns for m in v.get("matches", []) if m.get("suppressed"))
        status = "not-met" if live else ("met-with-exceptions" if muted else "met")
        out[_VULN_EVIDENCE] = (status, live, muted)
    else:
        out[_VULN_EVIDENCE] = ("not-assessed", 0, 0)
    signatures = [v for v in estate.verifications if v.get("what") == "signature"]
    failed = sum(1 for v in signatures if not v.get("verified"))
    out["SKN-SIG-001"] = (
        ("not-met" if failed else "met") if signatures else "not-assessed",
        failed,
        0,
    )
    attestations = [v for v in estate.verifications if v.get("what") != "signature"]
    failed = sum(1 for v in attestations if not v.get("verified"))
    out["SKN-SIG-002"] = (
        ("not-met" if failed else "met") if attestations else "not-assessed",
        failed,
        0,
    )
    runtime = layers["runtime"]
    if runtime["status"] == "not-assessed":
        out[_RUNTIME_EVIDENCE] = ("not-assessed", 0, 0)
    else:
        out[_RUNTIME_EVIDENCE] = (
            "not-met" if runtime["findings"] else "met",
            runtime["findings"],
            0,
        )
    return out


def _natural(text: str) -> tuple[Any, ...]:
    chunks = text.replace("(", ".").replace(")", ".").split(".")
    return tuple((0, int(c), "") if c.isdigit() else (1, 0, c) for c in chunks)


def _trend(
    layers: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if baseline is None:
        return None
    before = baseline.get("layers") or {}
    out: dict[str, Any] = {
        "baseline_generated": baseline.get("generated"),
        "layers": {},
    }
    for name, now in layers.items():
        then = before.get(name)
        if not isinstance(then, Mapping) or then.get("status") == "not-assessed":
            out["layers"][name] = {"compared": False}
            continue
        delta = {
            s: now["by_severity"].get(s, 0) - (then.get("by_severity") or {}).get(s, 0)
            for s in _SEVERITIES
        }
        out["layers"][name] = {
            "compared": now["status"] != "not-assessed",
            "findings_before": then.get("findings"),
            "findings_now": now["findings"],
            "delta_by_severity": delta,
        }
    return out


def build_posture(
    documents: Sequence[ResultDocument],
    *,
    tool_version: str,
    title: str = "Security posture",
    baseline: Mapping[str, Any] | None = None,
    generated: dt.datetime | None = None,
    inputs_note: Sequence[str] = (),
) -> dict[str, Any]:
    """The posture document for these layer results (see the module docstring)."""
    generated = generated or dt.datetime.now(dt.UTC)
    estate = _Estate()
    for doc in documents:
        estate.add(doc)
    images = _images(estate)
    layers = {name: _layer_summary(estate, name, images) for name in LAYERS}
    risks = _risks(estate, images)
    to_db, outside, databases = _reach(estate)
    worst_by_label: dict[str, str] = {}
    checks_by_label: dict[str, list[str]] = defaultdict(list)
    for f in estate.findings:
        if f.get("suppressed") or f["layer"] not in ("kubernetes", "network"):
            continue
        label = workload_label(f["resource"])
        checks_by_label[label].append(f["check_id"])
        if label not in worst_by_label or severity_of(f["severity"]) > severity_of(
            worst_by_label[label]
        ):
            worst_by_label[label] = f["severity"]
    for image in images:
        image.pop("_matches", None)
    summary = _counts(
        s for layer in layers.values() for s, n in layer["by_severity"].items() for _ in range(n)
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "skanse.posture",
        "tool": {"name": "skanse", "version": tool_version},
        "title": title,
        "generated": generated.isoformat(),
        "inputs": [_provenance(d) for d in documents],
        "notes": list(inputs_note),
        "summary": {
            "layers_assessed": [
                n for n, layer in layers.items() if layer["status"] != "not-assessed"
            ],
            "layers_not_assessed": [
                n for n, layer in layers.items() if layer["status"] == "not-assessed"
            ],
            "findings": sum(layer["findings"] for layer in layers.values()),
            "by_severity": summary,
        },
        "layers": layers,
        "trend": _trend(layers, baseline),
        "top_risks": [_risk_document(i, r) for i, r in enumerate(risks, start=1)],
        "findings": all_findings(estate.findings, estate.vulns),
        "network": {
            "status": "assessed" if estate.network_assessed else "not-assessed",
            "connections": [
                {
                    "src": c.get("src"),
                    "dst": c.get("dst"),
                    "conn": c.get("conn"),
                    "external": "external" in (c.get("source") or {})
                    or "external" in (c.get("destination") or {}),
                }
                for c in estate.connections
            ],
            "databases": sorted(databases),
            "reaches_database": sorted(k for k, v in to_db.items() if v),
            "reachable_from_outside": sorted(k for k, v in outside.items() if v),
            "findings": {k: sorted(set(v)) for k, v in sorted(checks_by_label.items())},
            "worst": worst_by_label,
        },
        "images": images,
        "host": {
            "status": layers["host"]["status"],
            "facts": estate.host_facts,
            "kernel": _host_group(estate, lambda cid: cid < "SKN-HOST-050"),
            "kubelet": _host_group(estate, lambda cid: "SKN-HOST-050" <= cid < "SKN-HOST-070"),
            "container_runtime": _host_group(
                estate, lambda cid: "SKN-HOST-070" <= cid < "SKN-HOST-090"
            ),
            "isolation": _host_group(estate, lambda cid: cid >= "SKN-HOST-090"),
            "could_not_check": sorted(estate.could_not),
            "not_applicable": len(estate.not_applicable),
        },
        "runtime": _runtime(estate),
        "suppressions": _suppressions(estate, images, generated.date()),
        "controls": _controls(estate, layers),
        "frameworks": {
            f.value: {"name": i.name, "edition": i.edition, "url": i.url}
            for f, i in FRAMEWORKS.items()
        },
        "warnings": estate.warnings,
    }


HISTORY_EVIDENCE = "report history"


def attach_history(posture: dict[str, Any], history: Mapping[str, Any]) -> None:
    """Add the trend (skanse.report.history.trend) to a posture document, and the runs as
    evidence for GDPR Art. 32(1)(d): a process of regularly testing and evaluating is met
    when this report is one of at least two recorded runs."""
    posture["history"] = dict(history)
    runs = history.get("runs") or []
    status = "met" if len(runs) >= 2 else "not-assessed"
    evidence = {
        "check_id": HISTORY_EVIDENCE,
        "title": "posture reports recorded over time",
        "status": status,
        "findings": 0,
        "suppressed": 0,
        "approximate": True,
        "note": (
            f"{len(runs)} recorded run(s) of cluster {history.get('cluster')}"
            + (f", the first on {runs[0]['generated']}" if runs else "")
        ),
    }
    controls = posture.setdefault("controls", [])
    entry = next(
        (
            c
            for c in controls
            if c["framework"] == Framework.GDPR.value and c["control"] == "32(1)(d)"
        ),
        None,
    )
    if entry is None:
        entry = {
            "framework": Framework.GDPR.value,
            "control": "32(1)(d)",
            "title": CONTROL_TITLES.get((Framework.GDPR, "32(1)(d)"), ""),
            "status": "not-assessed",
            "evidence": [],
            "approximate_only": True,
        }
        controls.append(entry)
    entry["evidence"].append(evidence)
    statuses = {e["status"] for e in entry["evidence"]}
    entry["status"] = next(
        (c for c in ("not-met", "met-with-exceptions", "met") if c in statuses), "not-assessed"
    )


def _host_group(estate: _Estate, member: Any) -> dict[str, Any]:
    ran = {c for c in estate.ran.get("host", set()) if member(c)}
    findings = [
        f
        for f in estate.findings
        if f["layer"] == "host" and member(f["check_id"]) and not f.get("suppressed")
    ]
    failed = {f["check_id"] for f in findings}
    return {
        "checks_run": len(ran),
        "passed": len(ran - failed),
        "failed": len(failed),
        "findings": [
            {
                "check_id": f["check_id"],
                "severity": f["severity"],
                "title": f["title"],
                "message": f["message"],
            }
            for f in sorted(
                findings, key=lambda f: (-severity_of(f["severity"]).rank, f["check_id"])
            )
        ],
    }
