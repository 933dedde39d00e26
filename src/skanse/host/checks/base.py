"""What a host check yields: a violation that knows its file and line, and how to fix it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from skanse.checks._registry import Check, CheckSet, Violation
from skanse.host.facts import AuditContext, HostFacts
from skanse.model import CheckID, CheckMeta, ControlRef, Layer, Severity

__all__ = [
    "DockerFix",
    "HostCheckFn",
    "HostViolation",
    "KubeletFix",
    "SysctlFix",
    "host_check",
]


@dataclass(frozen=True, slots=True)
class SysctlFix:
    key: str
    value: str
    breaks: str = ""  # what this value breaks on some hosts, said in the fix file


@dataclass(frozen=True, slots=True)
class KubeletFix:
    path: tuple[str, ...]  # KubeletConfiguration field
    value: object


@dataclass(frozen=True, slots=True)
class DockerFix:
    key: str  # daemon.json key
    value: object


@dataclass(frozen=True, slots=True)
class HostViolation(Violation):
    """A violation on a host: the file (inside the audited root) and line it comes from."""

    file: str = ""
    line: int = 1
    fix: SysctlFix | KubeletFix | DockerFix | None = None


HostCheckFn = Callable[[HostFacts, AuditContext], Iterable[HostViolation]]


def host_check(
    checks: CheckSet,
    *,
    id: str,
    title: str,
    severity: Severity,
    description: str,
    remediation: str,
    references: tuple[str, ...],
    aliases: tuple[str, ...] = (),
    fixable: bool = False,
    controls: tuple[ControlRef, ...] = (),
) -> Callable[[HostCheckFn], HostCheckFn]:
    """Register the decorated function as a host check in `checks`."""

    def register(fn: HostCheckFn) -> HostCheckFn:
        meta = CheckMeta(
            id=CheckID(id),
            title=title,
            severity=severity,
            layer=Layer.HOST,
            description=description,
            remediation=remediation,
            references=references,
            aliases=aliases,
            fixable=fixable,
            controls=controls,
        )
        checks.add(Check(meta=meta, run=fn, kinds=None, package=checks.package))
        return fn

    return register
