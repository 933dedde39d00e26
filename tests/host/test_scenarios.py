"""The host trees of the issue, each audited end to end with the findings it must give.

Fixture specs live in tests/host/fixtures/*.yaml (format in tests/host/trees.py); each test
materializes one under tmp_path and runs the whole audit, not a single check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skanse.host.audit import AuditReport, audit_host
from skanse.host.facts import HostProfile
from skanse.host.root import HostRoot
from skanse.model import Severity

from .trees import materialize

FIXTURES = Path(__file__).parent / "fixtures"


def audit(name: str, tmp_path: Path, profile: HostProfile | None = None) -> AuditReport:
    ctx = materialize((FIXTURES / f"{name}.yaml").read_text(), tmp_path / name)
    if profile is not None:
        ctx = type(ctx)(profile=profile, benchmark=ctx.benchmark)
    return audit_host(HostRoot(tmp_path / name), ctx)


def failing(report: AuditReport) -> dict[str, Severity]:
    return {str(f.check_id): f.severity for f in report.result.findings}


def test_hardened_node_passes_every_check(tmp_path: Path) -> None:
    report = audit("hardened-node", tmp_path)
    r = report.result
    assert r.findings == ()
    assert r.problems == ()
    # only Docker and podman/CRI-O are absent from this node; everything else ran and passed
    assert {n.check_id for n in r.not_applicable} == {
        f"SKN-HOST-{n:03d}" for n in (*range(70, 78), 87, 88, 89)
    }
    ran = {c for e in r.evaluations for c in e.check_ids}
    assert {"SKN-HOST-001", "SKN-HOST-037", "SKN-HOST-050", "SKN-HOST-080", "SKN-HOST-090"} <= ran
    assert r.facts["isolation"] == "a QEMU virtual machine (dedicated kernel)"
    assert "running kubelet, PID 1490" in r.facts["kubelet"]
    assert report.fixes == ()


def test_hardened_node_in_the_generic_profile_flags_what_only_a_node_needs(
    tmp_path: Path,
) -> None:
    report = audit("hardened-node", tmp_path, HostProfile.GENERIC)
    # forwarding and unprivileged user namespaces are node necessities, not generic hardening
    assert failing(report) == {"SKN-HOST-017": Severity.LOW, "SKN-HOST-036": Severity.LOW}
    not_applicable = {str(n.check_id): n.reason for n in report.result.not_applicable}
    assert "k8s-node profile only" in not_applicable["SKN-HOST-038"]


def test_misconfigured_kubelet_of_the_story(tmp_path: Path) -> None:
    report = audit("misconfigured-kubelet", tmp_path)
    found = failing(report)
    assert found["SKN-HOST-050"] is Severity.CRITICAL  # anonymous auth on
    assert found["SKN-HOST-051"] is Severity.CRITICAL  # AlwaysAllow
    assert found["SKN-HOST-053"] is Severity.HIGH  # read-only port open
    by_id = {str(f.check_id): f for f in report.result.findings}
    # the flags of the running process are the source, not the stale config on disk
    assert by_id["SKN-HOST-050"].location.file == "/proc/2210/cmdline"
    assert "flag --anonymous-auth" in by_id["SKN-HOST-050"].message
    assert "[CIS cis-1.12 4.2.1]" in by_id["SKN-HOST-050"].message
    ro = by_id["SKN-HOST-053"]
    assert "10255" in ro.message and "no config file: the command-line default" in ro.message
    # the hardened /var/lib/kubelet/config.yaml is not what runs, so it must not count
    assert all("/var/lib/kubelet/config.yaml" not in f.location.file for f in by_id.values())
    assert "config: no config file (flags only)" in report.result.facts["kubelet"]


def test_kubelet_with_a_config_at_a_nonstandard_path(tmp_path: Path) -> None:
    """--config points elsewhere (kube-bench #1256/#948): that file is read, with lines."""
    spec = {
        "processes": {"77": ["/usr/bin/kubelet", "--config", "/opt/k8s/kubelet.json"]},
        "files": {
            "/opt/k8s/kubelet.json": (
                '{\n  "kind": "KubeletConfiguration",\n  "readOnlyPort": 10255,\n'
                '  "authentication": {"anonymous": {"enabled": true}}\n}\n'
            ),
            "/var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\nreadOnlyPort: 0\n",
        },
    }
    ctx = materialize(spec, tmp_path)
    report = audit_host(HostRoot(tmp_path), ctx)
    by_id = {str(f.check_id): f for f in report.result.findings}
    assert (by_id["SKN-HOST-053"].location.file, by_id["SKN-HOST-053"].location.line) == (
        "/opt/k8s/kubelet.json",
        3,
    )
    assert by_id["SKN-HOST-050"].location.line == 4
    # defaults of a config file apply to what it omits: Webhook authorization
    assert "SKN-HOST-051" not in by_id


def test_docker_host_with_a_root_daemon_and_no_userns(tmp_path: Path) -> None:
    report = audit("docker-root-host", tmp_path)
    found = failing(report)
    assert found == {
        "SKN-HOST-070": Severity.MEDIUM,  # root daemon, no userns-remap
        "SKN-HOST-071": Severity.MEDIUM,  # no-new-privileges
        "SKN-HOST-072": Severity.LOW,  # icc
        "SKN-HOST-073": Severity.LOW,  # live-restore
        "SKN-HOST-076": Severity.LOW,  # json-file without max-size
    }
    userns = next(f for f in report.result.findings if f.check_id == "SKN-HOST-070")
    assert "runs as root" in userns.message
    assert "running, PID 640" in report.result.facts["docker"]


def test_lxc_system_container_is_a_shared_kernel(tmp_path: Path) -> None:
    report = audit("lxc-container", tmp_path)
    [finding] = [f for f in report.result.findings if f.check_id == "SKN-HOST-090"]
    assert finding.severity is Severity.HIGH
    assert "an LXC container (shared kernel)" in finding.message
    assert "container=lxc" in finding.message  # the evidence is in the finding
    iso = report.facts.isolation()
    assert (iso.container, iso.kernel) == ("lxc", "shared")
    signals = {e.signal for e in iso.evidence if e.points_to.startswith("container")}
    assert {"PID 1 environment", "pid namespace", "user namespace", "user ID map"} <= signals


def test_openvz_container_is_a_shared_kernel(tmp_path: Path) -> None:
    report = audit("openvz-container", tmp_path)
    [finding] = [f for f in report.result.findings if f.check_id == "SKN-HOST-090"]
    assert finding.severity is Severity.HIGH
    assert "OpenVZ/Virtuozzo" in finding.message
    assert report.facts.isolation().container == "openvz"


def test_kvm_vm_with_a_stale_dockerenv_is_not_docker(tmp_path: Path) -> None:
    report = audit("kvm-stale-dockerenv", tmp_path)
    iso = report.facts.isolation()
    assert (iso.vm, iso.vmm, iso.container, iso.kernel) == ("kvm", "Firecracker", None, "dedicated")
    assert "SKN-HOST-090" in report.result.evaluations[0].check_ids  # passed (at the root)
    assert not [f for f in report.result.findings if f.check_id == "SKN-HOST-090"]
    assert report.result.facts["isolation"] == (
        "a KVM/Firecracker virtual machine (dedicated kernel)"
    )
    assert "leftover" in report.result.facts["isolation notes"]


def test_dockerenv_with_namespaces_that_agree_is_docker(tmp_path: Path) -> None:
    """The counter-case: the same marker plus a non-initial PID namespace is a container."""
    spec = {
        "files": {"/.dockerenv": "", "/proc/cpuinfo": "flags\t: fpu\n"},
        "links": {"/proc/1/ns/pid": "pid:[4026532777]"},
    }
    ctx = materialize(spec, tmp_path)
    iso = audit_host(HostRoot(tmp_path), ctx).facts.isolation()
    assert (iso.container, iso.kernel) == ("docker", "shared")


@pytest.mark.parametrize("name", ["lxc-container", "openvz-container"])
def test_shared_kernel_is_high_for_system_containers_in_both_profiles(
    name: str, tmp_path: Path
) -> None:
    for profile in HostProfile:
        report = audit(name, tmp_path / profile.value, profile)
        assert failing(report)["SKN-HOST-090"] is Severity.HIGH


@pytest.mark.parametrize(("protect", "severity"), [(True, Severity.MEDIUM), (False, Severity.LOW)])
def test_kubelet_kernel_values_matter_more_when_the_kubelet_protects_them(
    protect: bool, severity: Severity, tmp_path: Path
) -> None:
    spec = yaml.safe_load((FIXTURES / "hardened-node.yaml").read_text())
    spec["files"]["/proc/sys/vm/overcommit_memory"] = "0"
    config = spec["files"]["/var/lib/kubelet/config.yaml"]
    spec["files"]["/var/lib/kubelet/config.yaml"] = config.replace(
        "protectKernelDefaults: true", f"protectKernelDefaults: {str(protect).lower()}"
    )
    ctx = materialize(spec, tmp_path)
    found = failing(audit_host(HostRoot(tmp_path), ctx))
    assert found["SKN-HOST-038"] is severity
    assert ("SKN-HOST-059" in found) is not protect
