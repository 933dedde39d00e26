"""Kubelet check ids per CIS benchmark, against kube-bench's own cfg files.

Each skanse kubelet check corresponds to a kube-bench test on a kubelet flag; the CIS id of
that flag's control is read from cfg/<benchmark>/node.yaml and must be the one skanse names.
"""

from __future__ import annotations

import pytest
import yaml

from skanse.errors import UsageError
from skanse.host.checks._all import HOST_REGISTRY
from skanse.host.checks.kubelet import CIS_IDS
from skanse.host.cis import BENCHMARKS, K8S_TO_BENCHMARK, STRONG_CIPHERS, parse_benchmark
from tests.conftest import corpus_path

# skanse check -> the kubelet flag kube-bench's control tests (the stable key across versions)
FLAG_OF_CHECK = {
    "SKN-HOST-050": "--anonymous-auth",
    "SKN-HOST-051": "--authorization-mode",
    "SKN-HOST-052": "--client-ca-file",
    "SKN-HOST-053": "--read-only-port",
    "SKN-HOST-054": "--tls-cert-file",
    "SKN-HOST-055": "--rotate-certificates",
    "SKN-HOST-056": "--tls-cipher-suites",
    "SKN-HOST-057": "--pod-max-pids",
    "SKN-HOST-058": "--seccomp-default",
    "SKN-HOST-059": "--protect-kernel-defaults",
    "SKN-HOST-060": "--make-iptables-util-chains",
}


def _kubelet_controls(benchmark: str) -> dict[str, str]:
    """flag -> CIS id for the 4.2 (kubelet) group of one benchmark."""
    node = yaml.safe_load(corpus_path("kube-bench", "cfg", benchmark, "node.yaml").read_text())
    assert node["version"] == benchmark
    controls: dict[str, str] = {}
    for group in node["groups"]:
        if str(group["id"]) != "4.2":
            continue
        for check in group["checks"]:
            for item in check.get("tests", {}).get("test_items", []):
                if item.get("flag"):
                    controls.setdefault(item["flag"], str(check["id"]))
    return controls


@pytest.mark.corpus
@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_cis_ids_match_kube_bench(benchmark: str) -> None:
    controls = _kubelet_controls(benchmark)
    for check_id, flag in FLAG_OF_CHECK.items():
        assert CIS_IDS[check_id].get(benchmark) == controls.get(flag), (check_id, benchmark)


def test_every_kubelet_check_has_a_flag_mapping_and_cis_aliases() -> None:
    kubelet_checks = {c.id for c in HOST_REGISTRY.all() if 50 <= int(c.id[-3:]) < 70}
    assert kubelet_checks == set(FLAG_OF_CHECK) == set(CIS_IDS)
    anonymous = HOST_REGISTRY.get("SKN-HOST-050")
    assert "CIS-1.12-4.2.1" in anonymous.meta.aliases
    # 4.2.6 means different controls in different benchmarks: the alias carries the version
    assert HOST_REGISTRY.resolve("cis-1.24-4.2.6") == ["SKN-HOST-059"]
    assert HOST_REGISTRY.resolve("CIS-1.12-4.2.6") == ["SKN-HOST-060"]


@pytest.mark.corpus
def test_kubernetes_versions_map_as_kube_bench_maps_them() -> None:
    config = yaml.safe_load(corpus_path("kube-bench", "cfg", "config.yaml").read_text())
    upstream = {k: v for k, v in config["version_mapping"].items() if k.startswith("1.")}
    for minor, benchmark in K8S_TO_BENCHMARK.items():
        assert upstream[minor] == benchmark, minor
    assert parse_benchmark("k8s-1.30") == "cis-1.11"
    assert parse_benchmark("v1.33.2") == "cis-1.12"
    assert parse_benchmark("cis-1.24") == "cis-1.24"
    with pytest.raises(UsageError, match=r"cis-1\.8"):
        parse_benchmark("k8s-1.26")
    with pytest.raises(UsageError, match="expected a benchmark"):
        parse_benchmark("nonsense")


@pytest.mark.corpus
def test_strong_ciphers_are_cis_1_12s_list_plus_tls13() -> None:
    node = (corpus_path("kube-bench", "cfg", "cis-1.12", "node.yaml")).read_text()
    data = yaml.safe_load(node)
    [item] = [
        item
        for group in data["groups"]
        for check in group["checks"]
        for item in check.get("tests", {}).get("test_items", [])
        if item.get("flag") == "--tls-cipher-suites"
    ]
    listed = set(item["compare"]["value"].split(","))
    tls13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
    assert STRONG_CIPHERS == listed | tls13
