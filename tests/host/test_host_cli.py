"""`skanse host audit` end to end: exit codes, formats, suppressions, fix files, --apply."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, SCHEMAS

from .trees import materialize

FIXTURES = Path(__file__).parent / "fixtures"


def tree(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    materialize((FIXTURES / f"{name}.yaml").read_text(), root)
    return root


def test_hardened_node_exits_zero_and_says_what_it_is(cli, tmp_path: Path) -> None:
    root = tree("hardened-node", tmp_path)
    r = cli("host", "audit", "--no-config", "--root", str(root), "--profile", "k8s-node")
    assert r.code == 0, r.stdout + r.stderr
    assert "isolation: a QEMU virtual machine (dedicated kernel)" in r.stdout
    assert "0 findings" in r.stdout and "11 not applicable" in r.stdout
    assert "profile k8s-node" in r.stdout and "Pod Security" not in r.stdout


def test_story_kubelet_fails_and_the_knobs_work(cli, tmp_path: Path) -> None:
    root = str(tree("misconfigured-kubelet", tmp_path))
    base = ("host", "audit", "--no-config", "--root", root, "--profile", "k8s-node")
    r = cli(*base)
    assert r.code == 1
    assert "SKN-HOST-050" in r.stdout and "/proc/2210/cmdline:1" in r.stdout
    only = cli(*base, "--severity", "critical", "-f", "json")
    doc = json.loads(only.stdout)
    assert {f["check_id"] for f in doc["findings"]} == {"SKN-HOST-050", "SKN-HOST-051"}
    assert cli(*base, "--exit-zero").code == 0
    assert cli(*base, "--fail-on", "critical").code == 1
    assert cli(*base, "--cis", "k8s-1.24", "-f", "json").code == 1
    old = json.loads(cli(*base, "--cis", "k8s-1.24", "-f", "json").stdout)
    messages = {f["check_id"]: f["message"] for f in old["findings"]}
    assert messages["SKN-HOST-059"].startswith("[CIS cis-1.24 4.2.6]")
    assert messages["SKN-HOST-058"].startswith("[not in CIS cis-1.24]")
    assert cli(*base, "--strict").code == 2  # the isolation check could not run on this tree


def test_host_checks_lists_the_host_registry(cli) -> None:
    r = cli("host", "checks", "-f", "json")
    rows = json.loads(r.stdout)
    assert r.code == 0 and len(rows) == 74
    anonymous = next(row for row in rows if row["id"] == "SKN-HOST-050")
    assert anonymous["severity"] == "CRITICAL" and "CIS-1.23-4.2.1" in anonymous["aliases"]
    assert "SKN-HOST-090" in cli("host", "checks").stdout


def test_usage_errors(cli, tmp_path: Path) -> None:
    assert cli("host", "audit", "--apply", "--root", str(tmp_path)).code == 2
    assert cli("host").code == 2
    r = cli("host", "audit", "--root", str(tmp_path), "--cis", "k8s-1.26")
    assert r.code == 2 and "cis-1.8" in r.stderr


def test_every_format_renders_host_results(cli, tmp_path: Path) -> None:
    root = str(tree("docker-root-host", tmp_path))
    base = ("host", "audit", "--no-config", "--root", root)
    doc = json.loads(cli(*base, "-f", "json").stdout)
    schema = json.loads((ROOT / "docs/schemas/scan-result-v1.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["facts"]["docker"].startswith("running, PID 640")
    assert doc["not_applicable"] and all(n["reason"] for n in doc["not_applicable"])
    finding = next(f for f in doc["findings"] if f["check_id"] == "SKN-HOST-070")
    assert finding["resource"] == {
        "kind": "Host",
        "namespace": None,
        "name": "build-01",
        "api_version": None,
    }
    junit = ET.fromstring(cli(*base, "-f", "junit").stdout)  # noqa: S314 - our own output
    cases = junit.findall(".//testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    skipped = [s for c in cases if (s := c.find("skipped")) is not None]
    assert {c.get("name", "").split("]")[1][1:] for c in failed} >= {"SKN-HOST-070"}
    assert any("not applicable" in (s.get("message") or "") for s in skipped)
    out = tmp_path / "host.sarif"
    assert cli(*base, "-f", "sarif", "-o", str(out)).code == 1
    sarif = json.loads(out.read_text())
    run = sarif["runs"][0]
    assert "SKN-HOST-070" in {r["ruleId"] for r in run["results"]}
    assert run["properties"]["facts"]["docker"].startswith("running")
    schema_path = SCHEMAS / "sarif-schema-2.1.0.json"
    if schema_path.exists():
        jsonschema.validate(sarif, json.loads(schema_path.read_text()))


def test_suppressions_from_skanse_yaml(cli, tmp_path: Path) -> None:
    root = str(tree("docker-root-host", tmp_path))
    config = tmp_path / "skanse.yaml"
    config.write_text(
        "suppressions:\n"
        "  - id: docker-bench-2.2\n"  # a peer's id works too
        "    reason: build host, containers talk on purpose\n"
        "  - id: [SKN-HOST-073, SKN-HOST-076]\n"
        "    reason: ephemeral CI runner\n"
        "    expires: 2000-01-01\n"
    )
    r = cli("host", "audit", "--config", str(config), "--root", root, "-f", "json")
    doc = json.loads(r.stdout)
    suppressed = {f["check_id"] for f in doc["findings"] if f["suppressed"]}
    assert suppressed == {"SKN-HOST-072"}
    assert "expired" in r.stderr  # the expired entry applies no more and says so


def test_fix_file_writes_sysctl_kubelet_and_daemon_json_fixes(cli, tmp_path: Path) -> None:
    spec = yaml.safe_load((FIXTURES / "misconfigured-kubelet.yaml").read_text())
    spec["files"].update(
        {
            "/proc/sys/kernel/kptr_restrict": "0",
            "/proc/sys/fs/protected_fifos": "1",
            "/etc/docker/daemon.json": '{"log-driver": "json-file", "icc": true}\n',
        }
    )
    spec["processes"]["640"] = ["/usr/bin/dockerd"]
    root = tmp_path / "root"
    materialize(spec, root)
    fix = tmp_path / "out" / "99-skanse.conf"
    fix.parent.mkdir()
    config = tmp_path / "skanse.yaml"
    config.write_text("suppressions:\n  - id: SKN-HOST-022\n    reason: accepted\n")
    r = cli(
        "host", "audit", "--config", str(config), "--root", str(root),
        "--profile", "k8s-node", "--fix-file", str(fix),
    )  # fmt: skip
    assert r.code == 1
    text = fix.read_text()
    lines = text.splitlines()
    i = lines.index("kernel.kptr_restrict = 2")
    assert lines[i - 1].startswith("# SKN-HOST-001: kernel.kptr_restrict is 0")
    assert "fs.protected_fifos" not in text  # its finding is suppressed
    assert "wrote sysctl fixes to" in r.stderr
    kubelet = yaml.safe_load((tmp_path / "out" / "99-skanse.kubelet.yaml").read_text())
    assert kubelet["kind"] == "KubeletConfiguration"
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["authorization"]["mode"] == "Webhook"
    assert kubelet["readOnlyPort"] == 0
    assert kubelet["seccompDefault"] is True
    assert "# SKN-HOST-053:" in (tmp_path / "out" / "99-skanse.kubelet.yaml").read_text()
    daemon = json.loads((tmp_path / "out" / "99-skanse.daemon.json").read_text())
    assert daemon["log-driver"] == "json-file"  # existing settings are kept
    assert daemon["icc"] is False and daemon["no-new-privileges"] is True
    assert daemon["userns-remap"] == "default"
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}
    # nothing on the host changed without --apply
    assert (root / "proc/sys/kernel/kptr_restrict").read_text() == "0"


def test_apply_writes_a_backup_then_sets_the_values(cli, tmp_path: Path) -> None:
    root = tmp_path / "root"
    materialize(
        {
            "files": {
                "/proc/sys/kernel/kptr_restrict": "0",
                "/proc/sys/kernel/dmesg_restrict": "0",
                "/proc/sys/kernel/randomize_va_space": "2",
            }
        },
        root,
    )
    fix = tmp_path / "99-skanse.conf"
    r = cli("host", "audit", "--no-config", "--root", str(root), "--fix-file", str(fix), "--apply")
    assert r.code == 1  # the report is of the state before the fixes
    assert "applied 2 setting(s)" in r.stderr
    assert (root / "proc/sys/kernel/kptr_restrict").read_text().strip() == "2"
    assert (root / "proc/sys/kernel/dmesg_restrict").read_text().strip() == "1"
    [backup] = list(tmp_path.glob("skanse-sysctl-backup-*.conf"))
    assert "kernel.kptr_restrict = 0" in backup.read_text().splitlines()
    assert backup.stat().st_mode & 0o777 == 0o600
    again = cli("host", "audit", "--no-config", "--root", str(root), "-f", "json")
    assert json.loads(again.stdout)["findings"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")
def test_apply_on_the_real_kernel_inside_a_network_namespace(tmp_path: Path) -> None:
    """sysctl -p semantics on real /proc/sys: per-netns keys in a throwaway namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    conf = tmp_path / "fix.conf"
    conf.write_text(
        "# SKN-HOST-025\nnet.ipv4.conf.all.accept_redirects = 0\n"
        "# SKN-HOST-035\nnet.ipv4.conf.all.log_martians = 1\n"
        "no.such.key = 1\n"
    )
    host_before = Path("/proc/sys/net/ipv4/conf/all/log_martians").read_text()
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from skanse.host.remediation import apply_sysctls\n"
        "from skanse.host.root import HostRoot\n"
        "r = apply_sysctls(HostRoot('/'), sys.argv[1], backup_dir=Path(sys.argv[2]))\n"
        "values = [Path('/proc/sys/net/ipv4/conf/all/' + k).read_text().strip()\n"
        "          for k in ('accept_redirects', 'log_martians')]\n"
        "print(json.dumps({'applied': r.applied, 'failed': r.failed, 'values': values}))\n"
    )
    run = subprocess.run(
        [unshare, "--net", sys.executable, "-c", script, str(conf), str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if run.returncode != 0 and b"unshare failed" in run.stderr:
        pytest.skip(f"network namespaces unavailable: {run.stderr.decode().strip()}")
    assert run.returncode == 0, run.stderr.decode()
    result = json.loads(run.stdout)
    assert result["applied"] == [
        "net.ipv4.conf.all.accept_redirects",
        "net.ipv4.conf.all.log_martians",
    ]
    assert [key for key, _ in result["failed"]] == ["no.such.key"]  # reported, others still set
    assert result["values"] == ["0", "1"]
    assert Path("/proc/sys/net/ipv4/conf/all/log_martians").read_text() == host_before
    [backup] = list(tmp_path.glob("skanse-sysctl-backup-*.conf"))
    assert "net.ipv4.conf.all.log_martians = " in backup.read_text()


def test_fix_file_follows_the_reported_severities(cli, tmp_path: Path) -> None:
    root = tmp_path / "root"
    materialize(
        {"files": {"/proc/sys/kernel/kptr_restrict": "0", "/proc/sys/kernel/sysrq": "1"}}, root
    )
    fix = tmp_path / "fix.conf"
    base = ("host", "audit", "--no-config", "--root", str(root), "--fix-file", str(fix))
    assert cli(*base, "--severity", "medium").code == 1
    assert "kernel.kptr_restrict = 2" in fix.read_text()  # MEDIUM: reported and fixed
    assert "kernel.sysrq" not in fix.read_text()  # LOW: not reported, not fixed
    cli(*base)
    assert "kernel.sysrq = 0" in fix.read_text()
