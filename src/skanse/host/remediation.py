"""Writing the fixes: a sysctl.d file, a kubelet config drop-in, a daemon.json; applying sysctls.

Nothing is changed on the host unless `apply_sysctls` is called (`--apply`), and then only
after a backup of the values it replaces is on disk. Every file is written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skanse.errors import FactUnavailable
from skanse.files import write_atomic
from skanse.host.audit import PlannedFix
from skanse.host.checks.base import DockerFix, KubeletFix, SysctlFix
from skanse.host.root import HostRoot
from skanse.host.sysctl import key_path, parse_sysctl_conf

__all__ = [
    "ApplyResult",
    "FixFiles",
    "apply_sysctls",
    "daemon_json",
    "kubelet_drop_in",
    "sysctl_conf",
    "write_fix_files",
]


def _header(what: str, profile: str) -> list[str]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [f"# {what}, written by `skanse host audit --profile {profile}` on {stamp}."]


def sysctl_conf(fixes: Sequence[PlannedFix], profile: str) -> str:
    """A sysctl.d file: each setting preceded by a comment naming the check it fixes."""
    lines = _header("Kernel parameters that fix failing skanse checks", profile)
    lines += [
        "# Install as /etc/sysctl.d/99-skanse.conf; apply now with `sysctl -p <this file>`.",
        "",
    ]
    seen: set[str] = set()
    for planned in fixes:
        fix = planned.fix
        if not isinstance(fix, SysctlFix) or fix.key in seen:
            continue
        seen.add(fix.key)
        reason = planned.message.replace("\n", " ")
        lines.append(f"# {planned.check_id}: {reason}")
        if fix.breaks:
            lines.append(f"# WARNING: {fix.breaks}. On a container host audit with")
            lines.append("# --profile container-node (or k8s-node), which keeps it.")
        lines.append(f"{fix.key} = {fix.value}")
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value)  # JSON scalars and flow lists are valid YAML


def kubelet_drop_in(fixes: Sequence[PlannedFix], profile: str) -> str:
    """A partial KubeletConfiguration: usable as a `--config-dir` drop-in or merged by hand."""
    tree: dict[str, Any] = {}
    comments: dict[tuple[str, ...], str] = {}
    for planned in fixes:
        fix = planned.fix
        if not isinstance(fix, KubeletFix):
            continue
        node = tree
        for key in fix.path[:-1]:
            node = node.setdefault(key, {})
        node[fix.path[-1]] = fix.value
        comments[fix.path] = f"{planned.check_id}: {planned.message}"
    lines = _header("Kubelet settings that fix failing skanse checks", profile)
    lines += [
        "# Merge into the kubelet's --config file, or place it in its --config-dir",
        "# (for example /etc/kubernetes/kubelet.conf.d/99-skanse.conf), then restart it.",
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
    ]

    def emit(node: Mapping[str, Any], path: tuple[str, ...], indent: int) -> None:
        for key, value in node.items():
            here = (*path, key)
            pad = "  " * indent
            if isinstance(value, dict):
                lines.append(f"{pad}{key}:")
                emit(value, here, indent + 1)
                continue
            if here in comments:
                lines.append(f"{pad}# {comments[here]}")
            lines.append(f"{pad}{key}: {_yaml_scalar(value)}")

    emit(tree, (), 0)
    return "\n".join(lines) + "\n"


def daemon_json(fixes: Sequence[PlannedFix], current: Mapping[str, Any]) -> str:
    """The current daemon.json with the fixes merged in (JSON has no comments)."""
    merged = dict(current)
    for planned in fixes:
        fix = planned.fix
        if isinstance(fix, DockerFix):
            if fix.key == "insecure-registries":
                merged.pop(fix.key, None)
            else:
                merged[fix.key] = fix.value
    return json.dumps(merged, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True, slots=True)
class FixFiles:
    sysctl: Path | None
    kubelet: Path | None
    docker: Path | None


def _sibling(path: Path, suffix: str) -> Path:
    stem = path.name[: -len(".conf")] if path.name.endswith(".conf") else path.name
    return path.with_name(stem + suffix)


def write_fix_files(
    path: str | os.PathLike[str],
    fixes: Sequence[PlannedFix],
    *,
    profile: str,
    docker_config: Mapping[str, Any] | None,
) -> FixFiles:
    """Write the sysctl file at `path` and the kubelet/daemon.json fixes next to it.

    A file is written only when there is something for it to fix.
    """
    target = Path(path)
    kinds = {type(p.fix) for p in fixes}
    written_sysctl = written_kubelet = written_docker = None
    if SysctlFix in kinds:
        write_atomic(target, sysctl_conf(fixes, profile))
        written_sysctl = target
    if KubeletFix in kinds:
        written_kubelet = _sibling(target, ".kubelet.yaml")
        write_atomic(written_kubelet, kubelet_drop_in(fixes, profile))
    if DockerFix in kinds:
        written_docker = _sibling(target, ".daemon.json")
        write_atomic(written_docker, daemon_json(fixes, docker_config or {}))
    return FixFiles(written_sysctl, written_kubelet, written_docker)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    backup: Path
    applied: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]  # (key, reason)


def apply_sysctls(root: HostRoot, conf: str | os.PathLike[str], *, backup_dir: Path) -> ApplyResult:
    """`sysctl -p conf` against `root`: back up the current values, then set each key.

    As `sysctl -p`, a key that cannot be set is reported and the others are still set. The
    backup is itself a sysctl file: `sysctl -p` on it restores the previous values.
    """
    settings = parse_sysctl_conf(Path(conf).read_text(encoding="utf-8"), str(conf))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    backup = backup_dir / f"skanse-sysctl-backup-{stamp}.conf"
    lines = [f"# Values before `skanse host audit --apply` on {stamp}; restore: sysctl -p {backup}"]
    for setting in settings:
        try:
            current = root.read_text(key_path(setting.key), limit=65536).strip()
        except FileNotFoundError:
            lines.append(f"# {setting.key}: not present in this kernel")
            continue
        except FactUnavailable as exc:
            lines.append(f"# {setting.key}: could not read the current value ({exc.message})")
            continue
        lines.append(f"{setting.key} = {current}")
    write_atomic(backup, "\n".join(lines) + "\n", mode=0o600)
    applied: list[str] = []
    failed: list[tuple[str, str]] = []
    for setting in settings:
        try:
            # no O_CREAT: a key the kernel lacks must fail, not become a new file; opened
            # through the root's directories, so no link swapped in meanwhile is followed
            fd = root.open(key_path(setting.key), os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            try:
                os.write(fd, setting.value.encode() + b"\n")
            finally:
                os.close(fd)
        except OSError as exc:
            failed.append((setting.key, exc.strerror or str(exc)))
            continue
        applied.append(setting.key)
    return ApplyResult(backup, tuple(applied), tuple(failed))
