"""`skanse fix`: scan, apply suppressions as `scan` does, fix what has a fix, write safely.

`plan_fixes` never writes: it returns every file's before and after, the changes attached
to the checks they resolve, what was declined and why, and the files it refused. The CLI
shows that as a diff (`--diff`), a verdict (`--check`) or hands it to `write_fixes`, which
writes each file atomically and only if it still holds the bytes that were planned.

Safety: a file is fixed only if it is a regular file inside the tree it was found under (a
symlink is followed only when its target is inside that tree, and the target is written);
a file that cannot be parsed is left byte-for-byte untouched and reported.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from skanse.checks._all import REGISTRY
from skanse.checks._registry import Registry
from skanse.config import ConfigSuppression
from skanse.files import write_atomic
from skanse.fix import dockerfile as df_fixes
from skanse.fix import kubernetes as k8s_fixes
from skanse.fix import netpol
from skanse.fix.dockerfile import fix_dockerfile
from skanse.fix.manifests import fix_manifest
from skanse.fix.model import FileFix, FixReport
from skanse.model import CheckID, Finding, InputProblem, Layer
from skanse.results import apply_suppressions
from skanse.scan import ScanOptions, scan
from skanse.sources.files import STDIN, read_file

__all__ = ["FixOptions", "has_fix", "is_complete", "plan_fixes", "write_fixes"]


@dataclass(frozen=True, slots=True)
class FixOptions:
    scan: ScanOptions = ScanOptions()
    # where to write default-deny NetworkPolicies (None: not written; SKN-K8S-030 is left)
    network_policies: str | None = None
    # apply unsafe fixes too (otherwise they are planned and shown, not applied)
    unsafe_fixes: bool = False
    # fix only findings of these checks (ids or aliases; empty: all), never of `ignore`
    select: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()


def has_fix(check_id: str) -> bool:
    """skanse fix has a fix for this check (complete or partial)."""
    return k8s_fixes.has_fix(check_id) or df_fixes.has_fix(check_id) or check_id == netpol.CHECK_ID


def is_complete(check_id: str) -> bool:
    """The fix resolves every finding of the check: what `CheckMeta.fixable` must say."""
    if check_id == netpol.CHECK_ID:
        return True  # with --network-policies
    if k8s_fixes.has_fix(check_id):
        return k8s_fixes.fix_is_complete(check_id)
    return df_fixes.has_fix(check_id) and df_fixes.fix_is_complete(check_id)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _tree_of(path: str, targets: Sequence[str]) -> str:
    """The real directory a discovered file belongs to: its target (or the target's parent
    when the target is the file itself)."""
    for target in targets:
        if target == STDIN:
            continue
        if os.path.abspath(path) == os.path.abspath(target):
            return os.path.realpath(os.path.dirname(os.path.abspath(target)))
        if _inside(os.path.abspath(path), os.path.abspath(target)):
            return os.path.realpath(target)
    return os.path.realpath(os.path.dirname(os.path.abspath(path)))


def _refusal(path: str, tree: str) -> tuple[str | None, str]:
    """(why the file may not be written, or None; the real path to write)."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})", path
    real = os.path.realpath(path)
    if stat.S_ISLNK(info.st_mode) and not _inside(real, tree):
        return f"is a symlink to {real}, outside the scanned tree {tree}; refused", path
    try:
        target = os.stat(real)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})", path
    if not stat.S_ISREG(target.st_mode):
        return "is not a regular file; refused", path
    return None, real


def plan_fixes(
    targets: Sequence[str],
    options: FixOptions = FixOptions(),
    *,
    suppressions: Sequence[ConfigSuppression] = (),
    today: dt.date | None = None,
    registry: Registry = REGISTRY,
    on_scan: Callable[[str], None] | None = None,
    on_file: Callable[[str], None] | None = None,
) -> FixReport:
    """Scan `targets` and plan the fixes for every unsuppressed finding that has one.
    `on_scan` is called with each file as it is scanned, `on_file` as its fixes are planned."""
    if STDIN in targets:
        from skanse.errors import UsageError

        raise UsageError("fix edits files in place; it cannot read standard input (-)")
    raw = scan(targets, options.scan, registry=registry, on_file=on_scan)
    result = apply_suppressions(raw, suppressions, registry.resolve, today or dt.date.today())
    live: dict[str, list[Finding]] = {}
    hidden: dict[str, list[Finding]] = {}
    policy_findings: list[Finding] = []
    not_fixable = suppressed = 0
    for finding in result.findings:
        if finding.suppressed:
            suppressed += 1
            hidden.setdefault(finding.location.file, []).append(finding)
        elif finding.check_id == netpol.CHECK_ID:
            policy_findings.append(finding)
        elif has_fix(finding.check_id):
            live.setdefault(finding.location.file, []).append(finding)
        else:
            not_fixable += 1
    layers = {c.id: c.layer for c in result.checks}
    chosen = _chosen(options, registry)
    for path in list(live):
        kept = [f for f in live[path] if chosen(f.check_id)]
        not_fixable += len(live[path]) - len(kept)
        if kept:
            live[path] = kept
        else:
            del live[path]
    files: list[FileFix] = []
    seen: set[str] = set()
    for path, findings in live.items():
        if on_file is not None:
            on_file(path)
        refused, write_path = _refusal(path, _tree_of(path, targets))
        if refused is not None:
            files.append(FileFix(path, write_path, None, None, problem=refused))
            continue
        if write_path in seen:
            continue  # the same file reached twice (a symlink inside the tree): fixed once
        seen.add(write_path)
        data = read_file(path, options.scan.limits.max_file_bytes)
        if isinstance(data, InputProblem):
            files.append(FileFix(path, write_path, None, None, problem=data.message))
            continue

        plan = functools.partial(
            _plan_file, path, write_path, data, findings, hidden.get(path, ()), layers, options
        )
        files.append(_with_pending(plan, options.unsafe_fixes))
    if policy_findings:
        if options.network_policies is None:
            not_fixable += len(policy_findings)
        else:
            files.append(_policy_file(options, result.findings, policy_findings))
    return FixReport(
        files=tuple(files),
        problems=result.problems,
        not_fixable=not_fixable,
        suppressed=suppressed,
        warnings=result.warnings,
    )


def _plan_file(
    path: str,
    write_path: str,
    data: bytes,
    findings: list[Finding],
    suppressed: Sequence[Finding],
    layers: dict[CheckID, Layer],
    options: FixOptions,
    unsafe: bool,
) -> FileFix:
    if layers.get(findings[0].check_id) is Layer.DOCKERFILE:
        return fix_dockerfile(
            path, write_path, data, findings, unsafe=unsafe, context=options.scan.build_context
        )
    return fix_manifest(
        path, write_path, data, findings, suppressed, options.scan.limits, unsafe=unsafe
    )


def _chosen(options: FixOptions, registry: Registry) -> Callable[[str], bool]:
    """Whether --select/--ignore let a check's findings be fixed."""

    def resolve(names: frozenset[str]) -> frozenset[str]:
        return frozenset(str(i) for name in names for i in registry.resolve(name))

    select, ignore = resolve(options.select), resolve(options.ignore)
    return lambda check_id: (not select or check_id in select) and check_id not in ignore


def _with_pending(plan: Callable[[bool], FileFix], unsafe_fixes: bool) -> FileFix:
    """The plan to apply, carrying the unsafe fixes it leaves out (and the bytes with them).
    The full plan is made first; the safe-only one only when the full plan holds unsafe
    fixes that are not to be applied (otherwise the two are the same)."""
    full = plan(True)
    pending = tuple(c for c in full.changes if not c.safe)
    if unsafe_fixes or full.problem is not None or not pending:
        return full
    safe = plan(False)
    declined = tuple(d for d in full.declined if d not in safe.declined)
    return replace(
        safe,
        declined=safe.declined + declined,
        pending=pending,
        pending_after=full.after,
    )


def _policy_file(
    options: FixOptions, findings: Sequence[Finding], policy_findings: list[Finding]
) -> FileFix:
    path = options.network_policies
    assert path is not None
    taken = {
        (f.resource.namespace or options.scan.namespace, f.resource.name)
        for f in findings
        if f.resource.kind == "NetworkPolicy"
    }
    policies = netpol.policies_for(policy_findings, options.scan.namespace, taken)
    changes = tuple(netpol.changes_for(policies, options.scan.namespace))
    if os.path.lexists(path):
        return FileFix(
            path,
            path,
            None,
            None,
            changes=(),
            problem="already exists; default-deny NetworkPolicies are written to a new file "
            "only (name another with --network-policies FILE)",
        )
    text = netpol.default_deny_yaml(policies)
    return FileFix(path, path, None, text.encode("utf-8"), changes, created=True)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    written: tuple[FileFix, ...]
    failed: tuple[FileFix, ...]


def write_fixes(report: FixReport) -> WriteOutcome:
    """Write every changed file atomically; a file whose bytes changed since it was planned,
    or that became something else than a regular file, is not written."""
    written, failed = [], []
    for item in report.changed:
        assert item.after is not None
        problem = _still_as_planned(item)
        if problem is not None:
            failed.append(replace(item, problem=problem))
            continue
        try:
            if item.created:
                _create(item.write_path, item.after)
            else:
                write_atomic(item.write_path, item.after)
        except OSError as exc:
            failed.append(replace(item, problem=f"could not be written: {exc.strerror or exc}"))
            continue
        written.append(item)
    return WriteOutcome(tuple(written), tuple(failed))


def _still_as_planned(item: FileFix) -> str | None:
    if item.created:
        return "appeared while fixing; not overwritten" if os.path.lexists(item.path) else None
    try:
        info = os.stat(item.write_path)
        current = read_file(item.write_path, max(len(item.before or b""), 1) + 1)
    except OSError as exc:
        return f"cannot be read again ({exc.strerror or exc})"
    if not stat.S_ISREG(info.st_mode):
        return "is no longer a regular file; not written"
    if isinstance(current, InputProblem) or current != item.before:
        return "changed while skanse fix ran; not written"
    return None


def _create(path: str, data: bytes) -> None:
    """A new file, complete or absent, never replacing something that appeared meanwhile."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, data, exclusive=True)
