"""The sensor's DaemonSet: exactly the privileges it needs, and `skanse scan` finds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from skanse.runtime.config import SensorConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "sensor"


def _docs() -> list[dict]:
    docs: list[dict] = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _daemonset() -> dict:
    (ds,) = [d for d in _docs() if d["kind"] == "DaemonSet"]
    return ds


def test_skanse_scan_finds_nothing_unsuppressed_and_every_suppression_has_a_reason(cli) -> None:
    result = cli("scan", str(DEPLOY), "-f", "json")
    assert result.code == 0, result.stdout
    report = json.loads(result.stdout)
    findings = report["findings"]
    assert findings, "the node agent's privileges must show up as (suppressed) findings"
    assert all(f.get("suppression") for f in findings)
    assert all(len(f["suppression"]["reason"]) > 20 for f in findings)


def test_capabilities_are_exactly_the_documented_set() -> None:
    container = _daemonset()["spec"]["template"]["spec"]["containers"][0]
    security = container["securityContext"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert set(security["capabilities"]["add"]) == {
        "BPF",
        "PERFMON",
        "SYS_PTRACE",
        "DAC_READ_SEARCH",
        "KILL",
        "SYS_ADMIN",
        "NET_ADMIN",
    }
    assert security["privileged"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["seccompProfile"]["type"] == "RuntimeDefault"


def test_host_access_is_hostpid_and_named_mounts_only() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert not pod.get("hostNetwork") and not pod.get("hostIPC")
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    writable = {path for path, m in mounts.items() if not m.get("readOnly")}
    assert writable == {"/sys/fs/cgroup", "/var/lib/skanse", "/tmp"}  # freeze, journal, scratch
    host = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {
        "/sys/kernel/btf",
        "/sys/fs/cgroup",
        "/etc",
        "/var/lib/docker/containers",
        "/run/containerd/io.containerd.runtime.v2.task",  # not containerd.sock
        "/var/lib/containerd/io.containerd.metadata.v1.bolt",  # metadata, not the content
        "/run/containers/storage",
        "/var/lib/containers/storage/overlay-containers",
        "/var/lib/containers/storage/overlay-images",
        "/var/lib/skanse",
    }


def test_the_shipped_configuration_is_valid() -> None:
    (config_map,) = [d for d in _docs() if d["kind"] == "ConfigMap"]
    config = SensorConfig.model_validate(yaml.safe_load(config_map["data"]["sensor.yaml"]))
    assert config.host_root == "/host"
    assert config.metrics is not None and config.metrics.port == 9376
    container = _daemonset()["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == config.metrics.port


def test_rbac_grants_only_what_quarantine_uses() -> None:
    (role,) = [d for d in _docs() if d["kind"] == "ClusterRole"]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("",), ("pods",)): {"get", "patch"},
        (("networking.k8s.io",), ("networkpolicies",)): {"get", "create"},
    }
