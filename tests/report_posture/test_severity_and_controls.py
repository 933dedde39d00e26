"""Severity honesty (unknown ranks medium and says so; KEV, EPSS and CVSS count) and the
control view of baseline Pod Security controls under the restricted level."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from skanse.config import LoadedConfig
from skanse.report.posture.build import build_posture
from skanse.report.posture.collect import run_scan
from skanse.report.posture.documents import ResultDocument

SHOP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: web}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: s
          image: "reg.example/web/shop:2"
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
"""


def _match(vid: str, severity: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": vid,
        "aliases": [],
        "related": [],
        "severity": severity,
        "cvss": None,
        "severity_source": None,
        "epss": None,
        "kev": False,
        "fixed_version": "1.2.4",
        "package": {"name": "lib", "version": "1.2.3"},
        "suppressed": False,
        **extra,
    }


def _vuln(matches: list[dict[str, Any]]) -> ResultDocument:
    return ResultDocument(
        "skanse.vuln",
        "vuln.json",
        {
            "schema_version": 1,
            "kind": "skanse.vuln",
            "tool": {"name": "skanse", "version": "test"},
            "target": "reg.example/web/shop:2",
            "subject": {"manifest_digest": None},
            "summary": {"packages": 1, "checked": 1, "by_severity": {}, "suppressed": 0},
            "matches": matches,
        },
    )


def _shop_vulnerability(tmp_path: Path, matches: list[dict[str, Any]]) -> dict[str, Any]:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "shop.yaml").write_text(SHOP)
    docs = [run_scan([str(tmp_path)], LoadedConfig.empty()), _vuln(copy.deepcopy(matches))]
    posture = build_posture(docs, tool_version="test")
    shop = next(r for r in posture["top_risks"] if r["subject"]["name"] == "shop")
    return next(c for c in shop["contributions"] if c["kind"] == "vulnerability")


def test_unknown_severity_ranks_as_medium_and_says_so(tmp_path: Path) -> None:
    matches = [_match(f"DSA-{i}", "UNKNOWN") for i in range(8)]
    term = _shop_vulnerability(tmp_path, matches)
    assert term["points"] == 10 and term["count"] == 8
    assert "severity unknown" in term["worst"]


def test_a_null_severity_with_a_cvss_score_takes_the_score(tmp_path: Path) -> None:
    cvss = {
        "score": 7.5,
        "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        "version": "3.1",
    }
    term = _shop_vulnerability(tmp_path, [_match("CVE-2018-18074", None, cvss=cvss)])
    assert term["points"] == 25 and "severity from CVSS 7.5" in term["worst"]


def test_kev_ranks_critical_and_epss_raises_to_high(tmp_path: Path) -> None:
    kev = _shop_vulnerability(tmp_path / "a", [_match("CVE-2024-3094", "LOW", kev=True)])
    assert kev["points"] == 40 and "CISA KEV" in kev["worst"]
    likely = _shop_vulnerability(
        tmp_path / "b",
        [
            _match("CVE-1", "MEDIUM", epss={"score": 0.42, "percentile": 0.97}),
            _match("CVE-2", "MEDIUM", epss={"score": 0.01, "percentile": 0.5}),
        ],
    )
    assert likely["points"] == 25 and "EPSS 0.42" in likely["worst"] and "CVE-1" in likely["worst"]


def test_the_images_layer_counts_unknown_as_medium_and_says_how_many(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(SHOP)
    docs = [
        run_scan([str(tmp_path)], LoadedConfig.empty()),
        _vuln([_match("DSA-1", "UNKNOWN"), _match("DSA-2", "HIGH")]),
    ]
    posture = build_posture(docs, tool_version="test")
    assert posture["layers"]["images"]["by_severity"]["MEDIUM"] == 1
    image = posture["images"][0]["vulnerabilities"]
    assert image["severity_unknown"] == 1
    assert image["top"][0]["id"] == "DSA-2"
    assert image["top"][1]["ranked_as"] == "MEDIUM"
    assert image["top"][1]["rating_notes"] == ["severity unknown"]


DOCKER_SOCK = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: ci, namespace: build}
spec:
  selector: {matchLabels: {app: ci}}
  template:
    metadata: {labels: {app: ci}}
    spec:
      containers:
        - name: runner
          image: "reg.example/ci/runner:1"
          securityContext: {capabilities: {add: [SYS_ADMIN, CHOWN]}}
          volumeMounts: [{name: docker, mountPath: /var/run/docker.sock}]
      volumes:
        - name: docker
          hostPath: {path: /var/run/docker.sock, type: Socket}
"""


def _control(posture: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in posture["controls"] if c["framework"] == "pss" and c["control"] == name)


def test_a_docker_socket_mount_fails_the_baseline_hostpath_and_capabilities_controls(
    tmp_path: Path,
) -> None:
    (tmp_path / "ci.yaml").write_text(DOCKER_SOCK)
    posture = build_posture([run_scan([str(tmp_path)], LoadedConfig.empty())], tool_version="test")
    hostpath = _control(posture, "HostPath Volumes")
    assert hostpath["status"] == "not-met"
    evidence = next(e for e in hostpath["evidence"] if e["check_id"] == "SKN-K8S-004")
    assert evidence["findings"] == 1 and "through SKN-K8S-013" in evidence["note"]
    assert _control(posture, "Capabilities")["status"] == "not-met"


def test_restricted_findings_that_the_baseline_allows_leave_it_met(tmp_path: Path) -> None:
    allowed = DOCKER_SOCK.replace("SYS_ADMIN, CHOWN", "CHOWN").replace(
        "hostPath: {path: /var/run/docker.sock, type: Socket}", "nfs: {server: nas, path: /x}"
    )
    (tmp_path / "ci.yaml").write_text(allowed)
    posture = build_posture([run_scan([str(tmp_path)], LoadedConfig.empty())], tool_version="test")
    assert _control(posture, "HostPath Volumes")["status"] == "met"
    assert _control(posture, "Capabilities")["status"] == "met"
    assert _control(posture, "Volume Types")["status"] == "not-met"
    json.dumps(posture)


def test_every_mapping_cites_a_section_id_as_its_source_writes_it() -> None:
    import re

    from skanse.controls import CONTROL_TITLES, CROSSWALK, NSA_UNVERIFIED, NSM_VERIFIED
    from skanse.model import Framework

    chapters = (
        "Kubernetes Pod security",
        "Network separation and hardening",
        "Authentication and authorization",
        "Audit logging and threat detection",
        "Upgrading and application security practices",
    )
    patterns = {
        Framework.CIS_KUBERNETES: r"\d+\.\d+(\.\d+)?",
        Framework.GDPR: r"32\((1|2)\)(\([a-d]\))?",
        Framework.ISO_27001: r"A\.[5-8]\.\d{1,2}",
        Framework.NSM: r"[1-4]\.\d{1,2}",
    }
    for (framework, control), title in CONTROL_TITLES.items():
        assert title, (framework, control)
        if framework in patterns:
            assert re.fullmatch(patterns[framework], control), (framework, control)
        if framework is Framework.NSA_CISA:
            assert control.startswith(chapters), control
    for section, targets in CROSSWALK.items():
        assert (Framework.NSA_CISA, section) in CONTROL_TITLES
        for target in targets:
            assert target in CONTROL_TITLES, target
    assert NSA_UNVERIFIED and NSM_VERIFIED <= {c for f, c in CONTROL_TITLES if f is Framework.NSM}
    # GDPR Art. 32(1)(a)-(d) are all in the catalogue
    assert {f"32(1)({p})" for p in "abcd"} <= {c for f, c in CONTROL_TITLES if f is Framework.GDPR}


def test_vulnerabilities_are_listed_where_to_fix_with_the_version_that_fixes_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "shop.yaml").write_text(SHOP)
    docs = [
        run_scan([str(tmp_path)], LoadedConfig.empty()),
        _vuln([_match("DSA-1", "UNKNOWN"), _match("CVE-2", "HIGH", fixed_version=None)]),
    ]
    posture = build_posture(docs, tool_version="test")
    vulns = {f["check_id"]: f for f in posture["findings"] if f["layer"] == "images"}
    assert vulns["DSA-1"]["remediation"] == "upgrade lib to 1.2.4 or later"
    assert (
        vulns["DSA-1"]["severity"] == "MEDIUM" and "severity unknown" in vulns["DSA-1"]["message"]
    )
    assert vulns["DSA-1"]["file"] == "reg.example/web/shop:2"
    assert vulns["CVE-2"]["remediation"].startswith("no fixed version yet")
    # the same advisory in the same package of another tag of the image is the same finding
    assert vulns["DSA-1"]["fingerprint"] != vulns["CVE-2"]["fingerprint"]
