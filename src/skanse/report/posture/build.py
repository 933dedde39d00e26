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
import hashlib
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from skanse.checks.network.netpol import DATABASE_PORTS
from skanse.controls import CONTROL_TITLES, CROSSWALK, FRAMEWORKS
from skanse.model import Framework, Severity
from skanse.report.posture.documents import ResultDocument
from skanse.report.posture.risk import Evidence, EvidenceKind, Risk, RiskSubject, rank, score

__all__ = [
    "LAYERS",
    "SCHEMA_VERSION",
    "attach_history",
    "build_posture",
    "image_key",
    "vulnerability_rating",
]

SCHEMA_VERSION = 1
LAYERS: dict[str, str] = {
    "kubernetes": "Kubernetes manifests",
    "dockerfile": "Dockerfiles",
    "network": "Network policies",
    "images": "Images: SBOM, vulnerabilities, signatures",
    "runtime": "Runtime alerts",
    "host": "Host and kernel",
}
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


def _severity(value: object) -> Severity:
    try:
        return Severity.parse(str(value))
    except ValueError:
        return Severity.INFO  # UNKNOWN (vulnerabilities without a rating) ranks lowest


# EPSS: the estimated probability of exploitation in the next 30 days (FIRST.org). At 10% or
# more a vulnerability is ranked at least HIGH, whatever its base severity.
EPSS_HIGH = 0.1
SEVERITY_UNKNOWN = "severity unknown"


def vulnerability_rating(match: Mapping[str, Any]) -> tuple[Severity, tuple[str, ...]]:
    """The severity a vulnerability match is ranked at, and why when it is not its own.

    CISA KEV listing ranks CRITICAL (exploited in the wild); an EPSS score of 10% or more
    ranks at least HIGH; a match without a usable severity takes its CVSS base score when
    it has one, else ranks MEDIUM and says "severity unknown": an unrated vulnerability is
    not a harmless one.
    """
    notes: list[str] = []
    try:
        rated: Severity | None = Severity.parse(str(match.get("severity")))
    except ValueError:
        rated = None
    cvss = match.get("cvss")
    score = cvss.get("score") if isinstance(cvss, Mapping) else None
    if rated is None and isinstance(score, (int, float)) and not isinstance(score, bool):
        rated = _cvss_severity(float(score))
        notes.append(f"severity from CVSS {score}")
    if rated is None:
        rated = Severity.MEDIUM
        notes.append(SEVERITY_UNKNOWN)
    epss = match.get("epss")
    probability = epss.get("score") if isinstance(epss, Mapping) else None
    if isinstance(probability, (int, float)) and not isinstance(probability, bool):
        if probability >= EPSS_HIGH and rated < Severity.HIGH:
            rated = Severity.HIGH
            notes.append(f"EPSS {probability:.2f}")
    if match.get("kev") is True:
        rated = Severity.CRITICAL
        notes.append("CISA KEV: exploited in the wild")
    return rated, tuple(notes)


def _cvss_severity(score: float) -> Severity | None:
    """CVSS v3/v4 qualitative rating of a base score (0 is None)."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0:
        return Severity.LOW
    return None


def _counts(items: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(_SEVERITIES, 0)
    for s in items:
        counts[_severity(s).value] += 1
    return counts


def image_key(reference: str) -> tuple[str, str]:
    """(repository, tag or digest) with Docker's defaults: `nginx` is
    `docker.io/library/nginx:latest`."""
    from skanse.oci.reference import parse_reference

    try:
        ref = parse_reference(reference)
    except Exception:  # a malformed image name in a manifest is compared as written
        return (reference, "")
    return (ref.repository, ref.digest or ref.tag or "latest")


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


def _workload_label(resource: Mapping[str, Any]) -> str:
    """netpol's name for a workload: ns/name[Kind]."""
    namespace = resource.get("namespace") or "default"
    return f"{namespace}/{resource.get('name')}[{resource.get('kind')}]"


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
            databases[_workload_label(w["resource"])] = ports
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
            "suppressed": summary.get("suppressed", 0),
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
                by_key[key]["workloads"].append(_workload_label(w["resource"]))
    return list(by_key.values())


# -- runtime ----------------------------------------------------------------------------------


# How a pod is named after its controller: Deployment `name-<hash>-<5>`, StatefulSet
# `name-<ordinal>`, DaemonSet and Job `name-<5>`, CronJob `name-<minute>-<5>`.
_CONTROLLERS = frozenset(
    {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
)


def _alert_field(fields: Mapping[str, Any], name: str) -> str | None:
    """A field of an alert's output_fields; None when absent, null or Falco's `<NA>`."""
    value = fields.get(name)
    if value is None or value == "<NA>" or value == "":
        return None
    return str(value)


class _AlertJoin:
    """Which workload an alert came from, in order of certainty:

    1. `container.id` (Falco's 12-hex short id) among the container ids of scanned live Pods;
    2. `k8s.ns.name` and `k8s.pod.name` (appended to every alert): the pod itself when it was
       scanned, else the workload of that namespace whose name the pod's name continues
       (the longest such name, so `api-gateway-...` is not taken for `api`);
    3. the image (`container.image.repository` with its tag or digest): the one workload
       that runs it, in the alert's namespace when that is known.

    An alert that none of these settles (a host process, an image several workloads run)
    is attached to nothing and counted as such: a guess would put its score on the wrong
    workload.
    """

    def __init__(self, workloads: Iterable[Mapping[str, Any]]) -> None:
        self.by_container: dict[str, str] = {}
        self.by_namespace: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self.images: list[tuple[str, tuple[str, str], str | None]] = []  # (label, key, ns)
        for w in workloads:
            resource = w.get("resource") or {}
            label = _workload_label(resource)
            namespace = str(resource.get("namespace") or "default")
            for cid in w.get("container_ids") or ():
                self.by_container[str(cid)[:12]] = label
            if resource.get("kind") in _CONTROLLERS:
                self.by_namespace[namespace].append(
                    (str(resource.get("name")), str(resource.get("kind")), label)
                )
            for image in w.get("images") or ():
                self.images.append((label, image_key(str(image)), namespace))

    def __call__(self, alert: Mapping[str, Any]) -> tuple[str | None, str]:
        fields = alert.get("output_fields")
        fields = fields if isinstance(fields, Mapping) else {}
        container = _alert_field(fields, "container.id")
        if container == "host":
            return None, "host"
        if container and container[:12] in self.by_container:
            return self.by_container[container[:12]], "container id"
        namespace = _alert_field(fields, "k8s.ns.name")
        pod = _alert_field(fields, "k8s.pod.name")
        if namespace and pod:
            candidates = self.by_namespace.get(namespace, [])
            exact = [label for name, kind, label in candidates if kind == "Pod" and name == pod]
            if exact:
                return exact[0], "pod name"
            owners = [
                (name, label)
                for name, kind, label in candidates
                if kind != "Pod" and pod.startswith(f"{name}-")
            ]
            if owners:
                return max(owners, key=lambda o: len(o[0]))[1], "pod name"
        repository = _alert_field(fields, "container.image.repository")
        if repository:
            tag = _alert_field(fields, "container.image.tag")
            digest = _alert_field(fields, "container.image.digest")
            reference = repository + (f"@{digest}" if digest else f":{tag}" if tag else "")
            wanted = image_key(reference)
            matches = {
                label
                for label, key, ns in self.images
                if key[0] == wanted[0]
                and (not (tag or digest) or key[1] == wanted[1])
                and (namespace is None or ns == namespace)
            }
            if len(matches) == 1:
                return matches.pop(), "image"
            if matches:
                return None, "image run by several workloads"
        return None, "no workload"


def _runtime(estate: _Estate) -> dict[str, Any]:
    from skanse.rules.loader import Priority

    if not estate.runtime_assessed:
        return {"status": "not-assessed"}
    by_rule: dict[str, dict[str, Any]] = {}
    by_priority: Counter[str] = Counter()
    join = _AlertJoin(estate.workloads.values())
    joined: Counter[str] = Counter()
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
        if workload and workload not in item["workloads"]:
            item["workloads"].append(workload)
        when = alert.get("time") or _alert_time(alert)
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


def _alert_time(alert: Mapping[str, Any]) -> str | None:
    """`evt.time` (integer nanoseconds, as Falco's JSON output) as an ISO 8601 time."""
    fields = alert.get("output_fields")
    value = fields.get("evt.time") if isinstance(fields, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        when = dt.datetime.fromtimestamp(value / 1e9, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return when.isoformat().replace("+00:00", "Z")


# -- risks ------------------------------------------------------------------------------------


def _risks(estate: _Estate, images: list[dict[str, Any]]) -> list[Risk]:
    to_db, outside, _ = _reach(estate)
    by_label: dict[str, list[Evidence]] = defaultdict(list)
    for f in estate.findings:
        if f.get("suppressed") or f["layer"] not in ("kubernetes", "network"):
            continue
        label = _workload_label(f["resource"])
        text = f"{f['check_id']}: {f['message']}"
        by_label[label].append(Evidence(EvidenceKind.CONFIG, _severity(f["severity"]), text))
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
        label = _workload_label(w["resource"])
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
                    Evidence(EvidenceKind.CONFIG, _severity(f["severity"]), text)
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
        label = _workload_label(f["resource"])
        checks_by_label[label].append(f["check_id"])
        if label not in worst_by_label or _severity(f["severity"]) > _severity(
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
        "findings": _findings(estate),
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


def _check_metas() -> dict[str, Any]:
    from skanse.checks._all import REGISTRY
    from skanse.host.checks._all import HOST_REGISTRY

    return {str(c.meta.id): c.meta for c in (*REGISTRY.all(), *HOST_REGISTRY.all())}


def _fix_command(finding: Mapping[str, Any], fixable: bool) -> str | None:
    """The command that fixes a finding, when skanse has one (its remediation says the rest)."""
    if not fixable:
        return None
    file = str((finding.get("location") or {}).get("file") or "")
    quoted = shlex.quote(file) if file else "."
    if finding["layer"] == "host":
        return "skanse host audit --fix-file /etc/sysctl.d/99-skanse.conf --apply"
    if finding["check_id"] == "SKN-K8S-030":
        return f"skanse fix --network-policies -- {quoted}"
    if finding["layer"] in ("kubernetes", "dockerfile"):
        return f"skanse fix -- {quoted}"
    return None


def _vulnerability_findings(estate: _Estate) -> list[dict[str, Any]]:
    """Each vulnerability match as a finding of the images layer: the image is where it is,
    the fix is the package version that has none of it."""
    out = []
    for v in estate.vulns:
        image = str(v.get("target"))
        for m in v.get("matches", []):
            package = m.get("package") or {}
            rated, notes = vulnerability_rating(m)
            fixed = m.get("fixed_version")
            name = f"{package.get('name')} {package.get('version')}"
            out.append(
                {
                    "layer": "images",
                    "check_id": str(m.get("id")),
                    "severity": rated.value,
                    "title": "known vulnerability",
                    "message": f"{m.get('id')} in {name}"
                    + (f" ({'; '.join(notes)})" if notes else ""),
                    "file": image,
                    "line": None,
                    "pointer": None,
                    "resource": {"kind": "Image", "namespace": None, "name": image},
                    "fix": None,
                    "remediation": (
                        f"upgrade {package.get('name')} to {fixed} or later"
                        if fixed
                        else "no fixed version yet: remove the package, or accept the risk "
                        "with a suppression that says why"
                    ),
                    "suppressed": bool(m.get("suppressed")),
                    "origin": None,
                    # the same advisory in the same package of the same repository, whatever
                    # the tag: fixed when an upgrade removes it
                    "fingerprint": hashlib.sha256(
                        "\x1f".join(
                            (image_key(image)[0], str(m.get("id")), str(package.get("name")))
                        ).encode()
                    ).hexdigest()[:32],
                }
            )
    return out


def _findings(estate: _Estate) -> list[dict[str, Any]]:
    """Every finding of every layer with where it is and how to fix it (suppressed ones too,
    marked): the list an engineer works through, file by file."""
    metas = _check_metas()
    out = []
    for f in estate.findings:
        meta = metas.get(str(f["check_id"]))
        location = f.get("location") or {}
        out.append(
            {
                "layer": f["layer"],
                "check_id": f["check_id"],
                "severity": _severity(f["severity"]).value,
                "title": f.get("title") or (meta.title if meta is not None else ""),
                "message": f.get("message"),
                "file": location.get("file"),
                "line": location.get("line"),
                "pointer": location.get("pointer"),
                "resource": f.get("resource"),
                "fix": _fix_command(f, bool(meta is not None and meta.fixable)),
                "remediation": meta.remediation if meta is not None else None,
                "suppressed": bool(f.get("suppressed")),
                "origin": f.get("origin"),
                "fingerprint": f.get("fingerprint"),
            }
        )
    out.extend(_vulnerability_findings(estate))
    layer_order = list(LAYERS)
    out.sort(
        key=lambda f: (
            f["suppressed"],
            layer_order.index(f["layer"]) if f["layer"] in layer_order else 99,
            -_severity(f["severity"]).rank,
            str(f["file"] or ""),
            int(f["line"] or 0),
            f["check_id"],
        )
    )
    return out


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
            for f in sorted(findings, key=lambda f: (-_severity(f["severity"]).rank, f["check_id"]))
        ],
    }
