"""Host fixture trees from a small spec: files, symbolic links, process command lines.

A spec is the mapping the host check examples use (skanse/host/checks/examples/*.yaml):

    profile: k8s-node                      # optional: the audit profile for this tree
    cis: cis-1.23                          # optional: the CIS benchmark
    files: {/proc/sys/kernel/kptr_restrict: "2", /etc/docker/daemon.json: "{}"}
    processes: {"4242": [/usr/bin/kubelet, --config=/var/lib/kubelet/config.yaml]}
    uids: {"4242": 0}                      # Uid: line of /proc/<pid>/status (default 0)
    environ: {"1": [container=lxc]}        # /proc/<pid>/environ
    links: {/proc/1/ns/pid: "pid:[4026531836]"}
    dirs: [/sys/bus/virtio/devices/virtio0]
    modes: {/run/docker.sock: "0660"}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from skanse.host.facts import AuditContext, HostProfile


def _place(root: Path, inner: str) -> Path:
    assert inner.startswith("/"), inner
    path = root / inner.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def materialize(spec: dict[str, Any] | str, root: Path) -> AuditContext:
    """Write the tree under `root`; return the audit context the spec asks for."""
    if isinstance(spec, str):
        spec = yaml.safe_load(spec)
    assert isinstance(spec, dict)
    root.mkdir(parents=True, exist_ok=True)
    for inner in spec.get("dirs") or ():
        (root / inner.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for inner, content in (spec.get("files") or {}).items():
        _place(root, inner).write_text(str(content), encoding="utf-8")
    uids = {str(k): int(v) for k, v in (spec.get("uids") or {}).items()}
    for pid, argv in (spec.get("processes") or {}).items():
        cmdline = "\0".join(str(a) for a in argv) + "\0"
        _place(root, f"/proc/{pid}/cmdline").write_bytes(cmdline.encode())
        uid = uids.get(str(pid), 0)
        status = f"Name:\t{Path(str(argv[0])).name}\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        _place(root, f"/proc/{pid}/status").write_text(status)
    for pid, variables in (spec.get("environ") or {}).items():
        data = "\0".join(variables) + "\0"
        _place(root, f"/proc/{pid}/environ").write_bytes(data.encode())
    for inner, target in (spec.get("links") or {}).items():
        _place(root, inner).symlink_to(target)
    for inner, mode in (spec.get("modes") or {}).items():
        os.chmod(_place(root, inner), int(str(mode), 8))
    return AuditContext(
        profile=HostProfile(spec.get("profile", "generic")),
        benchmark=spec.get("cis", "cis-1.12"),
    )
