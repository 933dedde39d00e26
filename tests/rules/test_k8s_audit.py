"""Kubernetes audit detections: Falco's legacy k8s audit fixtures through `runtime replay`.

The cases are ported (as facts) from falcosecurity/falco test/falco_k8s_audit_tests.yaml at
commit 059a281 (the commit the corpus legacy_tests/ were copied from): rules files, the audit
event fixture, and the expected detection counts (an empty dict: no alert at all). `@stable`
and `@k8s` are today's falco_rules.yaml and k8s_audit_rules.yaml from the corpus; the other
files are the fixture rules in legacy_tests/rules/k8s_audit/.

Two upstream changes since 2023 are accounted for, not papered over:
* RENAMED: four generic rules were renamed in k8s_audit_rules.yaml (plugins k8saudit).
* LIST_RENAMED: trust_nginx_container.yaml appends to falco_sensitive_mount_images and
  falco_hostnetwork_images, which today's ruleset no longer defines; loading it is an error
  (as in Falco), and the test checks exactly that error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skanse.rules.engine import Engine
from skanse.rules.loader import ERROR_NO_PREVIOUS_LIST, RulesFile, load_rules
from skanse.rules.replay import replay
from tests.conftest import CORPORA

pytestmark = pytest.mark.corpus

FALCO = CORPORA / "falco"
LEGACY = FALCO / "legacy_tests"

RENAMED = {
    "K8s Role/Clusterrole Created": "K8s ClusterRole Created",
    "K8s Role/Clusterrole Deleted": "K8s ClusterRole Deleted",
    "K8s Role/Clusterrolebinding Created": "K8s ClusterRoleBinding Created",
    "K8s Role/Clusterrolebinding Deleted": "K8s ClusterRoleBinding Deleted",
}
LIST_RENAMED = {"falco_sensitive_mount_images", "falco_hostnetwork_images"}

K8S_CASES = [
    (
        "compat_engine_v4_create_disallowed_pod",
        ("@stable", "engine_v4_k8s_audit_rules.yaml", "engine_v4/allow_only_apache_container.yaml"),
        "create_nginx_pod_unprivileged",
        {"Create Disallowed Pod": 1},
    ),
    (
        "compat_engine_v4_create_allowed_pod",
        ("@stable", "engine_v4_k8s_audit_rules.yaml", "engine_v4/allow_nginx_container.yaml"),
        "create_nginx_pod_unprivileged",
        {},
    ),
    (
        "compat_engine_v4_create_privileged_pod",
        ("@stable", "engine_v4_k8s_audit_rules.yaml"),
        "create_nginx_pod_privileged",
        {"Create Privileged Pod": 1},
    ),
    (
        "compat_engine_v4_create_privileged_trusted_pod",
        ("@stable", "@k8s", "engine_v4_k8s_audit_rules.yaml", "trust_nginx_container.yaml"),
        "create_nginx_pod_privileged",
        {},
    ),
    (
        "compat_engine_v4_create_unprivileged_pod",
        ("@stable", "engine_v4_k8s_audit_rules.yaml"),
        "create_nginx_pod_unprivileged",
        {},
    ),
    (
        "compat_engine_v4_create_hostnetwork_pod",
        ("@stable", "engine_v4_k8s_audit_rules.yaml"),
        "create_nginx_pod_hostnetwork",
        {"Create HostNetwork Pod": 1},
    ),
    (
        "compat_engine_v4_create_hostnetwork_trusted_pod",
        ("@stable", "@k8s", "engine_v4_k8s_audit_rules.yaml", "trust_nginx_container.yaml"),
        "create_nginx_pod_hostnetwork",
        {},
    ),
    (
        "user_outside_allowed_set",
        ("@stable", "@k8s", "allow_namespace_foo.yaml"),
        "some-user_creates_namespace_foo",
        {"Disallowed K8s User": 1},
    ),
    (
        "user_in_allowed_set",
        (
            "@stable",
            "@k8s",
            "allow_namespace_foo.yaml",
            "allow_user_some-user.yaml",
            "disallow_kactivity.yaml",
        ),
        "some-user_creates_namespace_foo",
        {},
    ),
    (
        "create_disallowed_pod",
        ("@stable", "@k8s", "allow_only_apache_container.yaml"),
        "create_nginx_pod_unprivileged",
        {"Create Disallowed Pod": 1},
    ),
    (
        "create_allowed_pod",
        ("@stable", "@k8s", "allow_nginx_container.yaml"),
        "create_nginx_pod_unprivileged",
        {},
    ),
    (
        "create_privileged_pod",
        ("@stable", "@k8s"),
        "create_nginx_pod_privileged",
        {"Create Privileged Pod": 1},
    ),
    (
        "create_privileged_no_secctx_1st_container_2nd_container_pod",
        ("@stable", "@k8s"),
        "create_nginx_pod_no_secctx_1st_container_privileged_2nd_container",
        {"Create Privileged Pod": 1},
    ),
    (
        "create_privileged_2nd_container_pod",
        ("@stable", "@k8s"),
        "create_nginx_pod_privileged_2nd_container",
        {"Create Privileged Pod": 1},
    ),
    (
        "create_privileged_trusted_pod",
        ("@stable", "@k8s", "trust_nginx_container.yaml"),
        "create_nginx_pod_privileged",
        {},
    ),
    ("create_unprivileged_pod", ("@stable", "@k8s"), "create_nginx_pod_unprivileged", {}),
    (
        "create_unprivileged_trusted_pod",
        ("@stable", "@k8s", "trust_nginx_container.yaml"),
        "create_nginx_pod_unprivileged",
        {},
    ),
    (
        "create_sensitive_mount_pod",
        ("@stable", "@k8s"),
        "create_nginx_pod_sensitive_mount",
        {"Create Sensitive Mount Pod": 1},
    ),
    (
        "create_sensitive_mount_2nd_container_pod",
        ("@stable", "@k8s"),
        "create_nginx_pod_sensitive_mount_2nd_container",
        {"Create Sensitive Mount Pod": 1},
    ),
    (
        "create_sensitive_mount_trusted_pod",
        ("@stable", "@k8s", "trust_nginx_container.yaml"),
        "create_nginx_pod_sensitive_mount",
        {},
    ),
    ("create_unsensitive_mount_pod", ("@stable", "@k8s"), "create_nginx_pod_unsensitive_mount", {}),
    (
        "create_unsensitive_mount_trusted_pod",
        ("@stable", "@k8s", "trust_nginx_container.yaml"),
        "create_nginx_pod_unsensitive_mount",
        {},
    ),
    (
        "create_hostnetwork_pod",
        ("@stable", "@k8s"),
        "create_nginx_pod_hostnetwork",
        {"Create HostNetwork Pod": 1},
    ),
    (
        "create_hostnetwork_trusted_pod",
        ("@stable", "@k8s", "trust_nginx_container.yaml"),
        "create_nginx_pod_hostnetwork",
        {},
    ),
    ("create_nohostnetwork_pod", ("@stable", "@k8s"), "create_nginx_pod_nohostnetwork", {}),
    (
        "create_nohostnetwork_trusted_pod",
        ("@stable", "@k8s", "trust_nginx_container.yaml"),
        "create_nginx_pod_nohostnetwork",
        {},
    ),
    (
        "create_nodeport_service",
        ("@stable", "@k8s", "disallow_kactivity.yaml"),
        "create_nginx_service_nodeport",
        {"Create NodePort Service": 1},
    ),
    (
        "create_nonodeport_service",
        ("@stable", "@k8s", "disallow_kactivity.yaml"),
        "create_nginx_service_nonodeport",
        {},
    ),
    (
        "create_configmap_private_creds",
        ("@stable", "@k8s", "disallow_kactivity.yaml"),
        "create_configmap_sensitive_values",
        {"Create/Modify Configmap With Private Credentials": 6},
    ),
    (
        "create_configmap_no_private_creds",
        ("@stable", "@k8s", "disallow_kactivity.yaml"),
        "create_configmap_no_sensitive_values",
        {},
    ),
    (
        "anonymous_user",
        ("@stable", "@k8s"),
        "anonymous_creates_namespace_foo",
        {"Anonymous Request Allowed": 1},
    ),
    ("pod_exec", ("@stable", "@k8s"), "exec_pod", {"Attach/Exec Pod": 1}),
    ("pod_attach", ("@stable", "@k8s"), "attach_pod", {"Attach/Exec Pod": 1}),
    (
        "namespace_outside_allowed_set",
        ("@stable", "@k8s", "allow_user_some-user.yaml"),
        "some-user_creates_namespace_foo",
        {"Create Disallowed Namespace": 1},
    ),
    (
        "namespace_in_allowed_set",
        ("@stable", "@k8s", "allow_namespace_foo.yaml", "disallow_kactivity.yaml"),
        "minikube_creates_namespace_foo",
        {},
    ),
    (
        "create_pod_in_kube_system_namespace",
        ("@stable", "@k8s"),
        "create_pod_kube_system_namespace",
        {"Pod Created in Kube Namespace": 1},
    ),
    (
        "create_pod_in_kube_public_namespace",
        ("@stable", "@k8s"),
        "create_pod_kube_public_namespace",
        {"Pod Created in Kube Namespace": 1},
    ),
    (
        "create_serviceaccount_in_kube_system_namespace",
        ("@stable", "@k8s"),
        "create_serviceaccount_kube_system_namespace",
        {"Service Account Created in Kube Namespace": 1},
    ),
    (
        "create_serviceaccount_in_kube_public_namespace",
        ("@stable", "@k8s"),
        "create_serviceaccount_kube_public_namespace",
        {"Service Account Created in Kube Namespace": 1},
    ),
    (
        "system_clusterrole_deleted",
        ("@stable", "@k8s"),
        "delete_cluster_role_kube_aggregator",
        {"System ClusterRole Modified/Deleted": 1},
    ),
    (
        "system_clusterrole_modified",
        ("@stable", "@k8s"),
        "modify_cluster_role_node_problem_detector",
        {"System ClusterRole Modified/Deleted": 1},
    ),
    (
        "attach_cluster_admin_role",
        ("@stable", "@k8s"),
        "attach_cluster_admin_role",
        {"Attach to cluster-admin Role": 1},
    ),
    (
        "create_cluster_role_wildcard_resources",
        ("@stable", "@k8s"),
        "create_cluster_role_wildcard_resources",
        {"ClusterRole With Wildcard Created": 1},
    ),
    (
        "create_cluster_role_wildcard_verbs",
        ("@stable", "@k8s"),
        "create_cluster_role_wildcard_verbs",
        {"ClusterRole With Wildcard Created": 1},
    ),
    (
        "create_writable_cluster_role",
        ("@stable", "@k8s"),
        "create_cluster_role_write_privileges",
        {"ClusterRole With Write Privileges Created": 1},
    ),
    (
        "create_pod_exec_cluster_role",
        ("@stable", "@k8s"),
        "create_cluster_role_pod_exec",
        {"ClusterRole With Pod Exec Created": 1},
    ),
    ("create_deployment", ("@stable", "@k8s"), "create_deployment", {"K8s Deployment Created": 1}),
    ("delete_deployment", ("@stable", "@k8s"), "delete_deployment", {"K8s Deployment Deleted": 1}),
    ("create_service", ("@stable", "@k8s"), "create_service", {"K8s Service Created": 1}),
    ("delete_service", ("@stable", "@k8s"), "delete_service", {"K8s Service Deleted": 1}),
    ("create_configmap", ("@stable", "@k8s"), "create_configmap", {"K8s ConfigMap Created": 1}),
    ("delete_configmap", ("@stable", "@k8s"), "delete_configmap", {"K8s ConfigMap Deleted": 1}),
    (
        "create_namespace",
        ("@stable", "@k8s", "allow_namespace_foo.yaml", "allow_user_some-user.yaml"),
        "some-user_creates_namespace_foo",
        {"K8s Namespace Created": 1},
    ),
    ("delete_namespace", ("@stable", "@k8s"), "delete_namespace_foo", {"K8s Namespace Deleted": 1}),
    (
        "create_serviceaccount",
        ("@stable", "@k8s"),
        "create_serviceaccount",
        {"K8s Serviceaccount Created": 1},
    ),
    (
        "delete_serviceaccount",
        ("@stable", "@k8s"),
        "delete_serviceaccount",
        {"K8s Serviceaccount Deleted": 1},
    ),
    (
        "create_clusterrole",
        ("@stable", "@k8s"),
        "create_clusterrole",
        {"K8s Role/Clusterrole Created": 1},
    ),
    (
        "delete_clusterrole",
        ("@stable", "@k8s"),
        "delete_clusterrole",
        {"K8s Role/Clusterrole Deleted": 1},
    ),
    (
        "create_clusterrolebinding",
        ("@stable", "@k8s"),
        "create_clusterrolebinding",
        {"K8s Role/Clusterrolebinding Created": 1},
    ),
    (
        "delete_clusterrolebinding",
        ("@stable", "@k8s"),
        "delete_clusterrolebinding",
        {"K8s Role/Clusterrolebinding Deleted": 1},
    ),
    ("create_secret", ("@stable", "@k8s"), "create_secret", {"K8s Secret Created": 1}),
    (
        "create_service_account_token_secret",
        ("@stable", "@k8s"),
        "create_service_account_token_secret",
        {},
    ),
    ("create_kube_system_secret", ("@stable", "@k8s"), "create_kube_system_secret", {}),
    ("delete_secret", ("@stable", "@k8s"), "delete_secret", {"K8s Secret Deleted": 1}),
    ("fal_01_003", ("@stable", "@k8s"), "fal_01_003", {}),
    (
        "json_pointer_correct_parse",
        ("single_rule_with_json_pointer.yaml",),
        "create_nginx_pod_unprivileged",
        {"json_pointer_example": 1},
    ),
]


def _path(name: str) -> Path:
    if name == "@stable":
        return FALCO / "falco_rules.yaml"
    if name == "@k8s":
        return FALCO / "k8s_audit_rules.yaml"
    return LEGACY / "rules" / "k8s_audit" / name


@pytest.mark.parametrize(
    ("case", "files", "trace", "counts"), K8S_CASES, ids=[c[0] for c in K8S_CASES]
)
def test_k8s_audit_fixture(
    case: str, files: tuple[str, ...], trace: str, counts: dict[str, int]
) -> None:
    if not LEGACY.exists():
        pytest.skip("corpus not present")
    paths = [_path(f) for f in files]
    result = load_rules([RulesFile(p.name, p.read_bytes()) for p in paths])
    if "trust_nginx_container.yaml" in files and "@k8s" in files:
        failed = {d.item_name for d in result.errors if d.message == ERROR_NO_PREVIOUS_LIST}
        assert failed == LIST_RENAMED
        assert result.ruleset is None
        return
    assert result.errors == ()
    assert result.ruleset is not None
    engine = Engine(result.ruleset, source="k8s_audit", rule_matching="all")
    with (LEGACY / "trace_files" / "k8s_audit" / f"{trace}.json").open("rb") as stream:
        alerts, summary = replay(engine, stream)
    assert summary.problems == []
    got: dict[str, int] = {}
    for item in alerts:
        got[item.alert.rule] = got.get(item.alert.rule, 0) + 1
    if not counts:
        assert got == {}
    for rule, count in counts.items():
        assert got.get(RENAMED.get(rule, rule), 0) == count, got


def test_misconfigured_kubelet_story(cli) -> None:
    """Anonymous requests, exec into pods, privileged pods: one audit log, every detection."""
    if not LEGACY.exists():
        pytest.skip("corpus not present")
    lines = []
    for name in ("anonymous_creates_namespace_foo", "exec_pod", "create_nginx_pod_privileged"):
        lines.append((LEGACY / "trace_files" / "k8s_audit" / f"{name}.json").read_text().strip())
    log = ("\n".join(lines) + "\n").encode()
    result = cli(
        "runtime",
        "replay",
        "--source",
        "k8s_audit",
        "-",
        "--rules",
        str(FALCO / "k8s_audit_rules.yaml"),
        "--rule-matching",
        "all",
        "-f",
        "jsonl",
        stdin=log,
    )
    assert result.code == 0, result.stderr
    import json

    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    rules = {a["rule"] for a in alerts}
    assert {"Anonymous Request Allowed", "Attach/Exec Pod", "Create Privileged Pod"} <= rules
    for alert in alerts:
        assert set(alert) == {
            "time",
            "rule",
            "priority",
            "source",
            "hostname",
            "output",
            "output_fields",
            "tags",
        }
        assert alert["source"] == "k8s_audit"
    exec_alert = next(a for a in alerts if a["rule"] == "Attach/Exec Pod")
    assert exec_alert["priority"] == "Notice"
    assert exec_alert["output_fields"]["ka.user.name"] == "minikube-user"
    assert "replayed 3 event(s)" in result.stderr
