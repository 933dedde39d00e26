"""The scan pipeline for Kubernetes manifests: sources -> checks -> raw findings.

Suppressions, severity filters and the exit decision are applied afterwards by
`skanse.results`, so that the same raw result can be rendered, filtered and compared.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from skanse.checks._all import REGISTRY
from skanse.checks._registry import Check, Registry
from skanse.checks.kubernetes.base import CheckContext
from skanse.checks.kubernetes.cluster import build_cluster_index
from skanse.checks.kubernetes.pss_policy import LATEST_MINOR, RESTRICTED, PSSPolicy
from skanse.checks.profiles import Profile, select_checks
from skanse.model import (
    CheckID,
    Evaluation,
    Finding,
    InputProblem,
    ProblemKind,
    ScanResult,
    SkippedDocument,
    Suppression,
    SuppressionSource,
)
from skanse.sources.kubernetes import (
    BUILTIN_KINDS,
    POD_TEMPLATE_PATHS,
    K8sObject,
    as_dict,
    pod_spec,
)
from skanse.sources.manifests import (
    STDIN,
    InlineIgnore,
    ManifestFile,
    ReadLimits,
    discover,
    read_bytes,
    read_path,
)

__all__ = ["ANNOTATION_PREFIX", "ScanOptions", "scan_manifests"]

ANNOTATION_PREFIX = "ignore.skanse.io/"


@dataclass(frozen=True, slots=True)
class ScanOptions:
    profile: Profile = Profile.ZERO_TRUST
    pss: PSSPolicy = PSSPolicy(RESTRICTED, LATEST_MINOR)
    # The namespace of objects that name none (where `kubectl apply` would put them).
    namespace: str = "default"
    limits: ReadLimits = ReadLimits()


def scan_manifests(
    targets: Sequence[str],
    options: ScanOptions = ScanOptions(),
    *,
    stdin: bytes | None = None,
    registry: Registry = REGISTRY,
    on_file: Callable[[str], None] | None = None,
) -> ScanResult:
    """Scan files, directories and `-` (standard input, given as `stdin`) for findings.

    Nothing here raises for a bad input; problems are part of the result.
    """
    started = dt.datetime.now(dt.UTC)
    problems: list[InputProblem] = []
    parsed: list[ManifestFile] = []
    for item in discover(targets):
        if isinstance(item, InputProblem):
            problems.append(item)
            continue
        if item == STDIN:
            parsed.append(read_bytes("<stdin>", stdin or b"", options.limits))
        else:
            parsed.append(read_path(item, options.limits))
        if on_file is not None:
            on_file(item)

    objects = [obj for mf in parsed for obj in mf.objects]
    cluster = build_cluster_index(objects, options.namespace)
    ctx = CheckContext(pss=options.pss, cluster=cluster)
    checks = select_checks(registry, options.profile, options.pss)
    for_kind: dict[str, list[Check[Any, Any]]] = {}
    for_all = [c for c in checks if c.kinds is None]
    for check in checks:
        for kind in check.kinds or ():
            for_kind.setdefault(kind, []).append(check)

    findings: list[Finding] = []
    evaluations: list[Evaluation] = []
    skipped: list[SkippedDocument] = []
    warnings: list[str] = []
    unknown: Counter[str] = Counter()
    for mf in parsed:
        problems.extend(mf.problems)
        skipped.extend(mf.skipped)
        warnings.extend(mf.warnings)
        ignores = _resolve_inline(mf, registry, warnings)
        for obj in mf.objects:
            if obj.kind not in BUILTIN_KINDS:
                unknown[f"{obj.api_version} {obj.kind}"] += 1
            if obj.kind in POD_TEMPLATE_PATHS and pod_spec(obj) is None:
                # A kustomize patch or another partial object: nothing to check until it is
                # merged, and saying so beats passing it.
                skipped.append(
                    SkippedDocument(
                        obj.file,
                        obj.document.index,
                        f"{obj.resource} has no pod spec (a patch or partial object? "
                        "scan the rendered output: kustomize build | skanse scan -)",
                        obj.location().line,
                    )
                )
                continue
            declared = _annotation_suppressions(obj, registry, warnings)
            ran: list[CheckID] = []
            for check in [*for_kind.get(obj.kind, ()), *for_all]:
                try:
                    violations = list(check.run(obj, ctx))
                except Exception as exc:  # a bug in a check must not pass the object silently
                    problems.append(
                        InputProblem(
                            obj.file,
                            ProblemKind.INTERNAL,
                            f"check {check.id} failed on {obj.resource}: "
                            f"{type(exc).__name__}: {exc}",
                            line=obj.location().line,
                            document=obj.document.index,
                        )
                    )
                    continue
                ran.append(check.id)
                for violation in violations:
                    location = obj.location(violation.pointer)
                    candidates = [s for ids, s in declared if check.id in ids]
                    candidates += [
                        s
                        for ids, s, ignore in ignores
                        if check.id in ids and ignore.covers(location.document, location.pointer)
                    ]
                    findings.append(
                        Finding(
                            check_id=check.id,
                            severity=violation.severity or check.meta.severity,
                            title=check.meta.title,
                            message=violation.message,
                            location=location,
                            resource=obj.resource,
                            declared_suppressions=tuple(candidates),
                        )
                    )
            evaluations.append(Evaluation(obj.resource, obj.location(), tuple(ran)))

    return ScanResult(
        findings=tuple(findings),
        checks=tuple(c.meta for c in checks),
        evaluations=tuple(evaluations),
        problems=tuple(problems),
        skipped=tuple(skipped),
        targets=tuple(targets),
        files_scanned=len(parsed),
        objects_scanned=len(objects),
        unknown_kinds=dict(sorted(unknown.items())),
        profile=options.profile.value,
        pss=str(options.pss),
        warnings=tuple(warnings),
        started=started,
        finished=dt.datetime.now(dt.UTC),
    )


def _resolve_ids(
    names: Sequence[str], registry: Registry, where: str, warnings: list[str]
) -> frozenset[CheckID]:
    ids: set[CheckID] = set()
    for name in names:
        resolved = registry.resolve(name)
        if not resolved:
            warnings.append(f"{where}: unknown check id {name} in a suppression")
        ids.update(resolved)
    return frozenset(ids)


def _resolve_inline(
    mf: ManifestFile, registry: Registry, warnings: list[str]
) -> list[tuple[frozenset[CheckID], Suppression, InlineIgnore]]:
    resolved = []
    for ignore in mf.ignores:
        where = f"{mf.path}:{ignore.line}"
        ids = _resolve_ids(ignore.ids, registry, where, warnings)
        suppression = Suppression(SuppressionSource.INLINE, ignore.reason, where, ignore.expires)
        resolved.append((ids, suppression, ignore))
    return resolved


def _annotation_suppressions(
    obj: K8sObject, registry: Registry, warnings: list[str]
) -> list[tuple[frozenset[CheckID], Suppression]]:
    """`ignore.skanse.io/<ID>: "<reason>"` on the object or on its pod template."""
    found = []
    sources = [obj.annotations]
    pod = pod_spec(obj)
    if pod is not None and pod.metadata is not obj.metadata:
        sources.append(as_dict(pod.metadata.get("annotations")))
    for mapping in sources:
        for key, value in mapping.items():
            if not key.startswith(ANNOTATION_PREFIX):
                continue
            name = key[len(ANNOTATION_PREFIX) :]
            where = f"{obj.file}: {obj.resource} annotation {key}"
            reason = value.strip() if isinstance(value, str) else ""
            if not reason:
                warnings.append(f"{where} has no reason and is not applied")
                continue
            ids = _resolve_ids([name], registry, where, warnings)
            found.append(
                (ids, Suppression(SuppressionSource.ANNOTATION, reason, f"annotation {key}"))
            )
    return found
