"""The host audit pipeline: host root -> facts -> checks -> a ScanResult and the fixes.

Every check runs; one that cannot establish what it needs becomes an `InputProblem` ("could
not check", with the reason), one whose subject does not exist here becomes a
`NotApplicable`, and neither is ever a pass. Suppressions, severity filters and the exit
decision come afterwards from `skanse.results`, as for every other scan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from skanse.checks._registry import Check, Registry, Violation
from skanse.errors import FactNotApplicable, FactUnavailable, HostFactError
from skanse.host.checks._all import HOST_REGISTRY
from skanse.host.checks.base import DockerFix, HostViolation, KubeletFix, SysctlFix
from skanse.host.facts import AuditContext, HostFacts
from skanse.host.root import HostRoot
from skanse.model import (
    CheckID,
    Evaluation,
    Finding,
    InputProblem,
    Location,
    NotApplicable,
    ProblemKind,
    ResourceRef,
    ScanResult,
)

__all__ = ["AuditReport", "PlannedFix", "audit_host"]


@dataclass(frozen=True, slots=True)
class PlannedFix:
    check_id: CheckID
    message: str
    fix: SysctlFix | KubeletFix | DockerFix


@dataclass(frozen=True, slots=True)
class AuditReport:
    result: ScanResult
    fixes: tuple[PlannedFix, ...]
    facts: HostFacts


_DEFAULT_CONTEXT = AuditContext()


def _hostname(root: HostRoot) -> str:
    for path in ("/proc/sys/kernel/hostname", "/etc/hostname"):
        try:
            text = root.read_text(path, limit=4096).strip()
        except (FileNotFoundError, FactUnavailable):
            continue
        if text:
            return text.splitlines()[0]
    return str(root.path)


def _host_violation(v: Violation) -> HostViolation:
    """Host checks yield HostViolations; a plain one still counts, pointing at the root."""
    if isinstance(v, HostViolation):
        return v
    return HostViolation(v.message, pointer=v.pointer, severity=v.severity)


def _problem(check: Check[Any, Any], exc: FactUnavailable) -> InputProblem:
    try:
        kind = ProblemKind(exc.kind)
    except ValueError:
        kind = ProblemKind.UNREADABLE
    return InputProblem(
        exc.path or "/",
        kind,
        f"{check.id} ({check.meta.title}) could not check: {exc.message}",
        check_id=check.id,
    )


def _describe_facts(facts: HostFacts, ctx: AuditContext) -> dict[str, str]:
    described = {"profile": ctx.profile.value, "CIS benchmark": ctx.benchmark}
    try:
        iso = facts.isolation()
        described["isolation"] = iso.summary()
        described["isolation evidence"] = "\n".join(str(e) for e in iso.evidence) or "none"
        if iso.notes:
            described["isolation notes"] = "\n".join(iso.notes)
        if iso.unreadable:
            described["isolation signals unreadable"] = "\n".join(iso.unreadable)
    except HostFactError as exc:
        described["isolation"] = f"unknown: {exc.diagnostics()}"
    try:
        kc = facts.kubelet()
        where = kc.config_file or "no config file (flags only)"
        described["kubelet"] = f"{kc.how_found}; config: {where}" + (
            f"; drop-ins: {', '.join(kc.drop_ins)}" if kc.drop_ins else ""
        )
    except HostFactError as exc:
        described["kubelet"] = exc.message
    for name, get in (("docker", facts.docker), ("containerd", facts.containerd)):
        try:
            runtime = get()
        except HostFactError as exc:
            described[name] = exc.message
            continue
        process = runtime.process
        running = f"running, PID {process.pid}" if process else "installed, not running"
        path = getattr(runtime, "daemon_json_path", None) or getattr(runtime, "config_path", "")
        described[name] = f"{running}; config: {path}"
    try:
        conf = facts.containers_conf()
        storage = conf.storage.path if conf.storage else "none (built-in defaults)"
        files = ", ".join(conf.sources) or "none (built-in defaults)"
        described["podman/CRI-O"] = f"containers.conf: {files}; storage.conf: {storage}"
    except HostFactError as exc:
        described["podman/CRI-O"] = exc.message
    return described


def _evaluations(
    host: ResourceRef, root: HostRoot, ran: list[CheckID], findings: list[Finding]
) -> tuple[Evaluation, ...]:
    """Checks that ran, grouped by the file their findings point at (JUnit matches on it);
    the checks that passed are evaluated at the root."""
    by_file: dict[str, list[CheckID]] = {}
    failed: set[CheckID] = set()
    for finding in findings:
        ids = by_file.setdefault(finding.location.file, [])
        if finding.check_id not in ids:
            ids.append(finding.check_id)
        failed.add(finding.check_id)
    passed = tuple(c for c in ran if c not in failed)
    evaluations = [Evaluation(host, Location(file=str(root.path)), passed)]
    evaluations += [Evaluation(host, Location(file=f), tuple(ids)) for f, ids in by_file.items()]
    return tuple(evaluations)


def audit_host(
    root: HostRoot,
    ctx: AuditContext = _DEFAULT_CONTEXT,
    *,
    registry: Registry = HOST_REGISTRY,
) -> AuditReport:
    """Run every host check against `root`. Nothing here raises for what the host holds."""
    started = dt.datetime.now(dt.UTC)
    facts = HostFacts(root)
    host = ResourceRef(kind="Host", name=_hostname(root))
    findings: list[Finding] = []
    problems: list[InputProblem] = []
    not_applicable: list[NotApplicable] = []
    fixes: list[PlannedFix] = []
    ran: list[CheckID] = []
    for check in registry.all():
        try:
            violations = [_host_violation(v) for v in check.run(facts, ctx)]
        except FactNotApplicable as exc:
            not_applicable.append(NotApplicable(check.id, exc.message, exc.path))
            continue
        except FactUnavailable as exc:
            problems.append(_problem(check, exc))
            continue
        except Exception as exc:  # a bug in a check must not pass the host silently
            problems.append(
                InputProblem(
                    str(root.path),
                    ProblemKind.INTERNAL,
                    f"check {check.id} failed: {type(exc).__name__}: {exc}",
                    check_id=check.id,
                )
            )
            continue
        ran.append(check.id)
        for v in violations:
            findings.append(
                Finding(
                    check_id=check.id,
                    severity=v.severity or check.meta.severity,
                    title=check.meta.title,
                    message=v.message,
                    location=Location(file=v.file or "/", line=v.line, pointer=v.pointer),
                    resource=host,
                )
            )
            if v.fix is not None:
                fixes.append(PlannedFix(check.id, v.message, v.fix))
    problems.extend(
        InputProblem(
            exc.path,
            ProblemKind.UNREADABLE,
            f"boot-time sysctl settings could not be read: {exc.message}",
        )
        for exc in facts.sysctls.config_problems()
    )
    warnings: list[str] = []
    try:
        warnings.extend(facts.kubelet().warnings)
    except HostFactError:
        pass
    described = _describe_facts(facts, ctx)
    result = ScanResult(
        findings=tuple(findings),
        checks=tuple(c.meta for c in registry.all()),
        evaluations=_evaluations(host, root, ran, findings),
        problems=tuple(problems),
        targets=(str(root.path),),
        files_scanned=root.files_read,
        objects_scanned=1 if ran else 0,
        profile=ctx.profile.value,
        warnings=tuple(warnings),
        not_applicable=tuple(not_applicable),
        facts=described,
        started=started,
        finished=dt.datetime.now(dt.UTC),
    )
    return AuditReport(result, tuple(fixes), facts)
