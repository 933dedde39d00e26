"""Routing parameters per interface (SKN-HOST-044), the container-node profile, and what
the audit says when even root may not read a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skanse.host.audit import audit_host
from skanse.host.facts import AuditContext, HostProfile
from skanse.host.remediation import apply_sysctls, sysctl_conf, write_fix_files
from skanse.host.root import HostRoot, _unavailable
from tests.host.trees import materialize

# A node after the fix file of the earlier audit was applied: every `all` value hardened,
# while the interfaces and `default` kept the kernel's defaults.
AFTER_ALL_ONLY = {
    "dirs": ["/proc/sys/kernel"],
    "files": {
        "/proc/sys/net/ipv4/conf/all/send_redirects": "0",
        "/proc/sys/net/ipv4/conf/default/send_redirects": "1",
        "/proc/sys/net/ipv4/conf/eth0/send_redirects": "1",
        "/proc/sys/net/ipv4/conf/all/accept_redirects": "0",
        "/proc/sys/net/ipv4/conf/eth0/accept_redirects": "1",
        "/proc/sys/net/ipv4/conf/eth0/forwarding": "0",
        "/proc/sys/net/ipv4/conf/all/accept_source_route": "0",
        "/proc/sys/net/ipv4/conf/eth0/accept_source_route": "1",  # AND with all: off
        "/proc/sys/net/ipv4/conf/all/log_martians": "1",
        "/proc/sys/net/ipv4/conf/eth0/log_martians": "0",  # OR with all: on
        "/proc/sys/net/ipv6/conf/all/accept_redirects": "0",
        "/proc/sys/net/ipv6/conf/default/accept_redirects": "1",
        "/proc/sys/net/ipv6/conf/eth0/accept_redirects": "1",
        "/proc/sys/net/ipv6/conf/all/accept_ra": "0",
        "/proc/sys/net/ipv6/conf/eth0/accept_ra": "1",
        "/proc/sys/net/ipv6/conf/eth0/forwarding": "0",
        "/proc/sys/net/ipv6/conf/cni0/accept_ra": "1",
        "/proc/sys/net/ipv6/conf/cni0/forwarding": "1",  # a forwarding interface ignores 1
        "/proc/sys/net/ipv6/conf/all/accept_source_route": "0",
        "/proc/sys/net/ipv6/conf/eth0/accept_source_route": "0",
    },
}


def _interface_findings(root: Path, ctx: AuditContext) -> set[str]:
    report = audit_host(HostRoot(root), ctx)
    return {f.location.pointer for f in report.result.findings if f.check_id == "SKN-HOST-044"}


def test_each_interface_and_default_is_checked_with_the_kernels_rule(tmp_path: Path) -> None:
    ctx = materialize(AFTER_ALL_ONLY, tmp_path)
    assert _interface_findings(tmp_path, ctx) == {
        "net.ipv4.conf.default.send_redirects",
        "net.ipv4.conf.eth0.send_redirects",
        "net.ipv4.conf.eth0.accept_redirects",  # not forwarding: all OR eth0
        "net.ipv6.conf.default.accept_redirects",
        "net.ipv6.conf.eth0.accept_redirects",
        "net.ipv6.conf.eth0.accept_ra",
    }


def test_applying_the_fix_file_leaves_no_interface_finding(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ctx = materialize(AFTER_ALL_ONLY, root)
    report = audit_host(HostRoot(root), ctx)
    conf = tmp_path / "99-skanse.conf"
    write_fix_files(conf, report.fixes, profile="generic", docker_config=None)
    text = conf.read_text(encoding="utf-8")
    assert "net.ipv4.conf.default.send_redirects = 0" in text
    assert "net.ipv6.conf.eth0.accept_ra = 0" in text
    result = apply_sysctls(HostRoot(root), conf, backup_dir=tmp_path)
    assert not result.failed
    assert _interface_findings(root, ctx) == set()


def test_a_vlan_interface_is_fixed_in_the_slash_form(tmp_path: Path) -> None:
    spec = {
        "dirs": ["/proc/sys/kernel"],
        "files": {
            "/proc/sys/net/ipv4/conf/all/send_redirects": "0",
            "/proc/sys/net/ipv4/conf/eth0.100/send_redirects": "1",
        },
    }
    root = tmp_path / "root"
    ctx = materialize(spec, root)
    report = audit_host(HostRoot(root), ctx)
    conf = tmp_path / "fix.conf"
    conf.write_text(sysctl_conf(report.fixes, "generic"), encoding="utf-8")
    assert "net/ipv4/conf/eth0.100/send_redirects = 0" in conf.read_text()
    assert not apply_sysctls(HostRoot(root), conf, backup_dir=tmp_path).failed
    assert (root / "proc/sys/net/ipv4/conf/eth0.100/send_redirects").read_text().strip() == "0"


USERNS = {"files": {"/proc/sys/user/max_user_namespaces": "63000"}}


def test_the_generic_fix_warns_what_turning_user_namespaces_off_breaks(tmp_path: Path) -> None:
    ctx = materialize(USERNS, tmp_path)
    report = audit_host(HostRoot(tmp_path), ctx)
    text = sysctl_conf(report.fixes, "generic")
    assert "user.max_user_namespaces = 0" in text
    assert "WARNING: 0 breaks rootless Docker and Podman" in text
    assert "--profile container-node" in text


def test_the_container_node_profile_keeps_user_namespaces_and_forwarding(
    tmp_path: Path,
) -> None:
    spec = {
        "files": {
            "/proc/sys/user/max_user_namespaces": "63000",
            "/proc/sys/net/ipv4/ip_forward": "1",
            "/proc/sys/kernel/kptr_restrict": "0",
        }
    }
    materialize(spec, tmp_path)
    ctx = AuditContext(profile=HostProfile.CONTAINER_NODE)
    report = audit_host(HostRoot(tmp_path), ctx)
    failed = {str(f.check_id) for f in report.result.findings}
    assert "SKN-HOST-017" not in failed and "SKN-HOST-036" not in failed
    assert "SKN-HOST-001" in failed  # the rest of the generic baseline still applies
    generic = audit_host(HostRoot(tmp_path), AuditContext(profile=HostProfile.GENERIC))
    assert {"SKN-HOST-017", "SKN-HOST-036"} <= {str(f.check_id) for f in generic.result.findings}


def test_container_node_is_a_profile_of_the_cli(cli: object, tmp_path: Path) -> None:
    materialize(USERNS, tmp_path)
    run = cli("host", "audit", "--root", str(tmp_path), "--profile", "container-node")  # type: ignore[operator]
    assert "SKN-HOST-017" not in run.stdout


def test_root_refused_is_not_told_to_run_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    message = _unavailable(PermissionError(13, "Permission denied"), "/proc/1/environ").message
    assert "run as root" not in message and "hidepid" in message
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    message = _unavailable(PermissionError(13, "Permission denied"), "/proc/1/environ").message
    assert "run as root to check this" in message
