"""PSA's exact reasons and details, so users can diff skanse against `kubectl --dry-run=server`.

The cases and expected strings are those of the upstream unit tests
(kubernetes/pod-security-admission, policy/check_*_test.go), rewritten as YAML pods.
"""

from __future__ import annotations

import pytest

from skanse.checks.kubernetes.pss import CONTROLS, evaluate
from skanse.checks.kubernetes.pss_policy import parse_policy
from skanse.sources.kubernetes import pod_spec
from skanse.sources.manifests import ReadLimits, read_bytes

_BY_ID = {c.id: c for c in CONTROLS}


def _run(control_id: str, spec_yaml: str, metadata: str = "{}"):
    text = f"apiVersion: v1\nkind: Pod\nmetadata: {metadata}\nspec:\n{spec_yaml}"
    parsed = read_bytes("pod.yaml", text.encode(), ReadLimits())
    assert not parsed.problems, parsed.problems
    pod = pod_spec(parsed.objects[0])
    assert pod is not None
    impl = _BY_ID[control_id].impl_for(37)
    assert impl is not None
    return impl.fn(pod)


CASES = [
    (
        "runAsNonRoot",
        "  containers: [{name: a}]\n",
        "runAsNonRoot != true",
        'pod or container "a" must set securityContext.runAsNonRoot=true',
    ),
    (
        "runAsNonRoot",
        "  securityContext: {runAsNonRoot: true}\n  containers:\n"
        "  - {name: a}\n  - {name: b, securityContext: {}}\n"
        "  - {name: c, securityContext: {runAsNonRoot: false}}\n"
        "  - {name: d, securityContext: {runAsNonRoot: false}}\n"
        "  - {name: e, securityContext: {runAsNonRoot: true}}\n",
        "runAsNonRoot != true",
        'containers "c", "d" must not set securityContext.runAsNonRoot=false',
    ),
    (
        "runAsNonRoot",
        "  containers:\n  - {name: a}\n  - {name: b, securityContext: {}}\n"
        "  - {name: d, securityContext: {runAsNonRoot: true}}\n",
        "runAsNonRoot != true",
        'pod or containers "a", "b" must set securityContext.runAsNonRoot=true',
    ),
    (
        "capabilities_restricted",
        "  containers:\n"
        "  - {name: a, securityContext: {capabilities: {add: [FOO, BAR]}}}\n"
        "  - {name: b, securityContext: {capabilities: {add: [BAR, BAZ]}}}\n"
        "  - {name: c, securityContext: {capabilities: {add: [NET_BIND_SERVICE, CHOWN], "
        "drop: [ALL, FOO]}}}\n",
        "unrestricted capabilities",
        'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; '
        'containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in '
        "securityContext.capabilities.add",
    ),
    (
        "hostPorts",
        "  containers:\n  - {name: a, ports: [{hostPort: 0}]}\n"
        "  - {name: b, ports: [{hostPort: 0}, {hostPort: 20}]}\n",
        "hostPort",
        'container "b" uses hostPort 20',
    ),
    (
        "hostPorts",
        "  containers:\n  - {name: a, ports: [{hostPort: 0}]}\n"
        "  - {name: b, ports: [{hostPort: 0}, {hostPort: 10}, {hostPort: 20}]}\n"
        "  - {name: c, ports: [{hostPort: 0}, {hostPort: 10}, {hostPort: 30}]}\n",
        "hostPort",
        'containers "b", "c" use hostPorts 10, 20, 30',
    ),
    (
        "seLinuxOptions",
        "  securityContext: {seLinuxOptions: {type: foo, user: bar, role: baz}}\n  containers:\n"
        "  - {name: a, securityContext: {seLinuxOptions: {type: container_t}}}\n"
        "  - {name: d, securityContext: {seLinuxOptions: {type: container_engine_t}}}\n"
        "  - {name: e, securityContext: {seLinuxOptions: {type: bar}}}\n"
        "  - {name: f, securityContext: {seLinuxOptions: {user: bar}}}\n"
        "  - {name: g, securityContext: {seLinuxOptions: {role: baz}}}\n",
        "seLinuxOptions",
        'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
        'types "bar", "foo"; user may not be set; role may not be set',
    ),
    (
        "seccompProfile_restricted",
        "  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers:\n"
        "  - {name: a}\n  - {name: b, securityContext: {}}\n"
        "  - {name: c, securityContext: {seccompProfile: {type: Unconfined}}}\n"
        "  - {name: d, securityContext: {seccompProfile: {type: Unconfined}}}\n"
        "  - {name: e, securityContext: {seccompProfile: {type: RuntimeDefault}}}\n",
        "seccompProfile",
        'containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined"',
    ),
    (
        "seccompProfile_restricted",
        "  containers:\n  - {name: a}\n  - {name: b, securityContext: {}}\n"
        "  - {name: d, securityContext: {seccompProfile: {type: RuntimeDefault}}}\n",
        "seccompProfile",
        'pod or containers "a", "b" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost"',
    ),
    (
        "appArmorProfile",
        "  securityContext: {appArmorProfile: {type: RuntimeDefault}}\n  initContainers:\n"
        "  - {name: bar, securityContext: {appArmorProfile: {type: Unconfined}}}\n"
        "  containers: [{name: foo}]\n",
        "forbidden AppArmor profile",
        'container "bar" must not set AppArmor profile type to "Unconfined"',
    ),
    (
        "restrictedVolumes",
        "  containers: [{name: a}]\n  volumes:\n  - {name: a1, emptyDir: {}}\n"
        "  - {name: b1, hostPath: {path: /}}\n  - {name: b5, nfs: {server: s, path: /}}\n"
        "  - {name: b11, cephfs: {monitors: [m]}}\n",
        "restricted volume types",
        'volumes "b1", "b5", "b11" use restricted volume types "cephfs", "hostPath", "nfs"',
    ),
    (
        "hostNamespaces",
        "  hostNetwork: true\n  hostIPC: true\n  containers: [{name: a}]\n",
        "host namespaces",
        "hostNetwork=true, hostIPC=true",
    ),
]


@pytest.mark.parametrize(("control", "spec", "reason", "detail"), CASES)
def test_reason_and_detail_are_psas(control: str, spec: str, reason: str, detail: str) -> None:
    result = _run(control, spec)
    assert result is not None
    assert result.reason == reason
    assert result.detail == detail


def test_apparmor_annotations_are_listed_sorted_and_quoted_as_psa_does() -> None:
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    values = {"": "bogus", "a": "", "b": "runtime/default", "c": "localhost/",
              "d": "localhost/foo", "e": "unconfined", "f": "unknown"}  # fmt: skip
    metadata = (
        "{annotations: {" + ", ".join(f"'{prefix}{k}': '{v}'" for k, v in values.items()) + "}}"
    )
    result = _run("appArmorProfile", "  containers: [{name: a}]\n", metadata)
    assert result is not None
    assert result.reason == "forbidden AppArmor profiles"
    assert result.detail == "annotations must not set AppArmor profile type to " + ", ".join(
        [
            f'"{prefix}="bogus""',
            f'"{prefix}e="unconfined""',
            f'"{prefix}f="unknown""',
        ]
    )


def test_a_volume_without_a_source_is_the_api_servers_default_emptydir() -> None:
    """PSA's unit test calls an empty VolumeSource "unknown", but the API server defaults it
    to emptyDir before admission, which is why the upstream fixture restrictedvolumes0 passes.
    skanse follows what the cluster admits; an unknown *named* source still fails closed."""
    assert _run("restrictedVolumes", "  containers: [{name: a}]\n  volumes: [{name: c1}]\n") is None
    result = _run(
        "restrictedVolumes", "  containers: [{name: a}]\n  volumes: [{name: x, foo: {}}]\n"
    )
    assert (
        result is not None and result.detail == 'volume "x" uses restricted volume type "unknown"'
    )


def test_denial_message_joins_controls_in_psa_order() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostPID: true\n"
        "  containers: [{name: a, securityContext: {privileged: true}}]\n"
    )
    pod = pod_spec(read_bytes("p.yaml", text.encode(), ReadLimits()).objects[0])
    assert pod is not None
    denial = evaluate(pod, parse_policy("baseline@v1.30"))
    assert denial.message == (
        'violates PodSecurity "baseline:v1.30": host namespaces (hostPID=true), '
        'privileged (container "a" must not set securityContext.privileged=true)'
    )
