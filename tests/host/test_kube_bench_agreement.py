"""skanse's kubelet verdicts next to kube-bench's, case by case.

kube-bench's verdicts come from its own cfg files (../shared/corpora/kube-bench), evaluated by
tests/host/kube_bench.py; that evaluator is first checked against kube-bench's integration
output (Expected_output.data) on a kind node. Every disagreement must be one that
docs/host.md lists, with the kubelet's actual behaviour as the reason, and every listed one
must still happen: a new disagreement or a fixed one fails this test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from skanse.host.audit import audit_host
from skanse.host.checks.kubelet import CIS_IDS
from skanse.host.facts import AuditContext, HostProfile
from skanse.host.root import HostRoot
from tests.conftest import ROOT, corpus_path

from .kube_bench import evaluate, kubelet_conf_path
from .trees import materialize

pytestmark = pytest.mark.corpus

FIXTURES = Path(__file__).parent / "fixtures"
KC = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
CA = "authentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n"
SECURE_AUTH = (
    "authentication:\n  anonymous:\n    enabled: false\n  x509:\n"
    "    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: Webhook\n"
)
HARDENED_STALE = KC + SECURE_AUTH + "readOnlyPort: 0\n"


def _fixture(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())


CASES: dict[str, dict[str, Any]] = {
    "kind-node": _fixture("kind-node"),
    "config-omits-defaults": {
        "processes": {"9": ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"]},
        "files": {"/var/lib/kubelet/config.yaml": KC + CA},
    },
    "explicit-insecure-values": {
        "processes": {"9": ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"]},
        "files": {
            "/var/lib/kubelet/config.yaml": KC
            + SECURE_AUTH
            + "rotateCertificates: true\nseccompDefault: false\npodPidsLimit: -1\n"
        },
    },
    "flags-only-kubelet": {
        "processes": {
            "9": [
                "/usr/bin/kubelet",
                "--anonymous-auth=false",
                "--authorization-mode=Webhook",
                "--client-ca-file=/etc/kubernetes/pki/ca.crt",
                "--rotate-certificates=true",
            ]
        },
    },
    "story-kubelet-stale-config": _fixture("misconfigured-kubelet"),
    "config-at-nonstandard-path": {
        "processes": {"9": ["/usr/bin/kubelet", "--config=/etc/kubernetes/custom/kubelet.yaml"]},
        "files": {
            "/etc/kubernetes/custom/kubelet.yaml": KC
            + "authentication:\n  anonymous:\n    enabled: true\n  x509:\n"
            + "    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: AlwaysAllow\n",
            "/var/lib/kubelet/config.yaml": HARDENED_STALE,
        },
    },
}
BENCHMARK = {"kind-node": "cis-1.23"}  # the others: cis-1.12

# (case, check) -> (kube-bench verdict, skanse verdict); docs/host.md explains each
DISAGREEMENTS = {
    ("config-omits-defaults", "SKN-HOST-050"): ("FAIL", "pass"),
    ("config-omits-defaults", "SKN-HOST-051"): ("FAIL", "pass"),
    ("config-omits-defaults", "SKN-HOST-055"): ("PASS", "fail"),
    ("explicit-insecure-values", "SKN-HOST-057"): ("PASS", "fail"),
    ("explicit-insecure-values", "SKN-HOST-058"): ("PASS", "fail"),
    ("flags-only-kubelet", "SKN-HOST-053"): ("PASS", "fail"),
    ("story-kubelet-stale-config", "SKN-HOST-053"): ("PASS", "fail"),
    ("story-kubelet-stale-config", "SKN-HOST-055"): ("PASS", "fail"),
    ("config-at-nonstandard-path", "SKN-HOST-050"): ("PASS", "fail"),
    ("config-at-nonstandard-path", "SKN-HOST-051"): ("PASS", "fail"),
    ("config-at-nonstandard-path", "SKN-HOST-055"): ("PASS", "fail"),
}


@pytest.fixture(scope="module")
def config_yaml() -> dict[str, Any]:
    return yaml.safe_load(corpus_path("kube-bench", "cfg", "config.yaml").read_text())


def _kube_bench(spec: dict[str, Any], root: Path, benchmark: str, config_yaml: dict) -> dict:
    [kubelet] = [p for p in spec["processes"].values() if p[0].endswith("/kubelet")]
    cmdline = " ".join(kubelet)  # what `ps -fC kubelet` shows
    node_yaml = corpus_path("kube-bench", "cfg", benchmark, "node.yaml")
    return evaluate(node_yaml, cmdline, kubelet_conf_path(config_yaml, root))


def _skanse(root: Path, benchmark: str) -> dict[str, str]:
    ctx = AuditContext(profile=HostProfile.K8S_NODE, benchmark=benchmark)
    result = audit_host(HostRoot(root), ctx).result
    failing = {f.check_id for f in result.findings}
    ran = {c for e in result.evaluations for c in e.check_ids}
    return {c: ("fail" if c in failing else "pass") for c in CIS_IDS if c in ran}


def test_the_evaluator_reproduces_kube_bench_integration_output(
    tmp_path: Path, config_yaml: dict
) -> None:
    expected = {}
    text = corpus_path("kube-bench", "integration", "testdata", "Expected_output.data")
    for line in text.read_text().splitlines():
        if m := re.match(r"\[(PASS|FAIL|WARN|INFO)\] (4\.2\.\d+) ", line):
            expected[m.group(2)] = m.group(1)
    assert len(expected) == 13
    materialize(CASES["kind-node"], tmp_path)
    assert _kube_bench(CASES["kind-node"], tmp_path, "cis-1.23", config_yaml) == expected


@pytest.mark.parametrize("case", list(CASES))
def test_disagreements_are_exactly_the_documented_ones(
    case: str, tmp_path: Path, config_yaml: dict
) -> None:
    benchmark = BENCHMARK.get(case, "cis-1.12")
    materialize(CASES[case], tmp_path)
    theirs = _kube_bench(CASES[case], tmp_path, benchmark, config_yaml)
    ours = _skanse(tmp_path, benchmark)
    found = {}
    for check_id, verdict in ours.items():
        control = CIS_IDS[check_id].get(benchmark)
        if control is None or control not in theirs:
            continue
        kube_bench_passes = theirs[control] == "PASS"
        if kube_bench_passes != (verdict == "pass"):
            found[(case, check_id)] = (theirs[control], verdict)
    documented = {k: v for k, v in DISAGREEMENTS.items() if k[0] == case}
    assert found == documented


def test_every_disagreement_is_explained_in_docs() -> None:
    doc = (ROOT / "docs" / "host.md").read_text()
    for case, check_id in DISAGREEMENTS:
        row = [ln for ln in doc.splitlines() if f"`{case}`" in ln and check_id in ln]
        assert row, f"docs/host.md has no row for {case} / {check_id}"
        assert "skanse" in row[0] or "kube-bench" in row[0]
