"""`skanse host audit` on the machine the tests run on, as root and as an unprivileged user.

The development and CI machines are Firecracker microVMs whose root file system keeps a
stale /.dockerenv (systemd-detect-virt says "docker" there). The virtualization assertion
uses the kernel's release name (Firecracker guest kernels here are named `*-fc-*`), a fact
skanse does not look at, and is skipped on other machines.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._nobody import NobodyPython

NOBODY = 65534
FIRECRACKER_HERE = "-fc-" in platform.release()


def _audit(*extra: str, as_nobody: NobodyPython | None = None) -> tuple[int, dict, str]:
    python = as_nobody.argv if as_nobody else (sys.executable,)
    command = [*python, "-m", "skanse", "host", "audit", "--no-config", "-f", "json"]
    if as_nobody:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is not installed")
        drop = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all"]
        command = [setpriv, *drop, *command]
    run = subprocess.run(
        [*command, *extra],
        capture_output=True,
        timeout=60,
        check=False,
        cwd="/",
        env=as_nobody.env if as_nobody else None,
    )
    assert run.stdout, run.stderr.decode()
    return run.returncode, json.loads(run.stdout), run.stderr.decode()


def _check_report(code: int, doc: dict, stderr: str) -> None:
    assert code in (0, 1), stderr  # findings or none; never an error exit
    assert doc["summary"]["objects"] == 1
    assert not [p for p in doc["problems"] if p["kind"] == "internal"], doc["problems"]
    for problem in doc["problems"]:
        assert "could not" in problem["message"] and problem["file"], problem
    for na in doc["not_applicable"]:
        assert na["reason"], na
    if FIRECRACKER_HERE:
        assert doc["facts"]["isolation"] == "a KVM/Firecracker virtual machine (dedicated kernel)"
        if Path("/.dockerenv").exists():
            assert "leftover" in doc["facts"]["isolation notes"]  # the stale marker
        assert not [f for f in doc["findings"] if f["check_id"] == "SKN-HOST-090"]


def _ran(doc: dict) -> set[str]:
    listed = {c["id"] for c in doc["checks"]}
    skipped = {p["message"].split()[0] for p in doc["problems"]}
    skipped |= {n["check_id"] for n in doc["not_applicable"]}
    return listed - skipped


def test_audit_as_the_current_user() -> None:
    for profile in ("generic", "k8s-node"):
        code, doc, stderr = _audit("--profile", profile)
        _check_report(code, doc, stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_audit_as_root_and_as_an_unprivileged_user(nobody: NobodyPython) -> None:
    root_code, root_doc, root_err = _audit()
    code, doc, stderr = _audit(as_nobody=nobody)
    _check_report(root_code, root_doc, root_err)
    _check_report(code, doc, stderr)
    # fewer checks run unprivileged, and each one that did not is explained
    assert _ran(doc) <= _ran(root_doc)
    if FIRECRACKER_HERE:  # net.core.bpf_jit_harden is readable by root only
        assert "SKN-HOST-003" in _ran(root_doc) - _ran(doc)
    for problem in doc["problems"]:
        if problem["message"].split()[0] in _ran(root_doc):
            assert "permission denied (run as root" in problem["message"], problem
    if FIRECRACKER_HERE:
        # the CPUID leaf needs root; unprivileged, the same verdict comes from the other signals
        root_evidence = root_doc["facts"]["isolation evidence"]
        assert "KVMKVMKVM" in root_evidence
        assert "KVMKVMKVM" not in doc["facts"]["isolation evidence"]
        assert "/dev/cpu/0/cpuid" in doc["facts"]["isolation signals unreadable"]
