"""The scan pipeline: sources -> checks -> raw findings, for manifests and Dockerfiles.

Suppressions, severity filters and the exit decision are applied afterwards by
`skanse.results`, so that the same raw result can be rendered, filtered and compared.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skanse.checks._all import REGISTRY
from skanse.checks._registry import Check, Registry, Violation
from skanse.checks.dockerfile.base import DockerfileContext
from skanse.checks.kubernetes.base import CheckContext
from skanse.checks.kubernetes.cluster import build_cluster_index
from skanse.checks.kubernetes.pss_policy import LATEST_MINOR, RESTRICTED, PSSPolicy
from skanse.checks.profiles import Profile, select_checks
from skanse.model import (
    ANNOTATION_PREFIX,
    CheckID,
    Evaluation,
    Finding,
    InputProblem,
    Layer,
    Location,
    ProblemKind,
    ResourceRef,
    ScanResult,
    SkippedDocument,
    Suppression,
    SuppressionSource,
    WorkloadInfo,
)
from skanse.sources.buildcontext import archive_sources
from skanse.sources.dockerfile import DockerfileInput, read_dockerfile, read_dockerfile_bytes
from skanse.sources.files import STDIN, Input, InputType, discover, is_dockerfile_name
from skanse.sources.ignores import InlineIgnore
from skanse.sources.kubernetes import (
    BUILTIN_KINDS,
    POD_TEMPLATE_PATHS,
    K8sObject,
    as_dict,
    as_list,
    ignore_annotations,
    pod_spec,
)
from skanse.sources.kustomize import kustomize_roles, plan_render, render
from skanse.sources.manifests import ManifestFile, ReadLimits, read_bytes, read_path

__all__ = [
    "ANNOTATION_PREFIX",
    "ObjectChecked",
    "ScanOptions",
    "check_object",
    "scan",
    "scan_manifests",
    "selected_checks",
    "workload_info",
]

# Layers whose checks look at Kubernetes objects read from manifests.
_MANIFEST_LAYERS = frozenset({Layer.KUBERNETES, Layer.NETWORK})
STDIN_NAME = "<stdin>"


@dataclass(frozen=True, slots=True)
class ScanOptions:
    profile: Profile = Profile.ZERO_TRUST
    pss: PSSPolicy = PSSPolicy(RESTRICTED, LATEST_MINOR)
    # The namespace of objects that name none (where `kubectl apply` would put them).
    namespace: str = "default"
    limits: ReadLimits = ReadLimits()
    input_type: InputType = InputType.AUTO
    enable: frozenset[str] = field(default_factory=frozenset)  # opt-in checks, by id or alias
    disable: frozenset[str] = field(default_factory=frozenset)
    # build kustomize directories with `kubectl kustomize` and scan what they build
    render: bool = False
    # The build context of every Dockerfile read from a file (`docker build -f FILE DIR`'s
    # DIR): where ADD's sources are looked at. None: each Dockerfile's own directory.
    build_context: str | None = None


def _stdin_type(data: bytes) -> InputType:
    """A Dockerfile on standard input starts (after comments) with FROM or ARG."""
    for raw in data[:65536].decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword = line.split(None, 1)[0].upper()
            return InputType.DOCKERFILE if keyword in ("FROM", "ARG") else InputType.KUBERNETES
    return InputType.KUBERNETES


@dataclass(frozen=True, slots=True)
class _Declared:
    """Suppressions declared next to one subject: its annotations and its file's comments."""

    annotations: tuple[tuple[frozenset[CheckID], Suppression], ...] = ()
    inline: tuple[tuple[frozenset[CheckID], Suppression, InlineIgnore], ...] = ()
    # The inline ones by (check, document, scope), each with its place in `inline`: testing
    # every ignore against every finding was quadratic (8,000 ignored COPY lines: 6 s).
    _by_scope: dict[tuple[CheckID, int, str], list[tuple[int, Suppression]]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[tuple[CheckID, int, str], list[tuple[int, Suppression]]] = {}
        for place, (ids, suppression, ignore) in enumerate(self.inline):
            for check_id in ids:
                key = (check_id, ignore.document, ignore.scope)
                index.setdefault(key, []).append((place, suppression))
        object.__setattr__(self, "_by_scope", index)

    def applying_to(self, check_id: CheckID, location: Location) -> list[Suppression]:
        found = [s for ids, s in self.annotations if check_id in ids]
        # the scopes that cover the pointer (InlineIgnore.covers): "", the pointer itself,
        # and each of its prefixes that a "/" follows
        pointer = location.pointer
        scopes = {""} | {pointer} | {pointer[:i] for i, c in enumerate(pointer) if c == "/"}
        inline = sorted(
            entry
            for scope in scopes
            for entry in self._by_scope.get((check_id, location.document, scope), ())
        )
        return found + [s for _, s in inline]


@dataclass(slots=True)
class _Collector:
    """What the scan accumulates while it walks the inputs."""

    registry: Registry
    findings: list[Finding] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    skipped: list[SkippedDocument] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def run(
        self,
        subject: Any,
        checks: Iterable[Check[Any, Any]],
        ctx: Any,
        resource: ResourceRef,
        where: Location,
        locate: Callable[[str], Location],
        declared: _Declared,
    ) -> None:
        """Run `checks` on one subject; a check that crashes is an internal problem, not a pass."""
        ran: list[CheckID] = []
        any_declared = bool(declared.annotations or declared.inline)
        for check in checks:
            try:
                violations: list[Violation] = list(check.run(subject, ctx))
            except Exception as exc:  # a bug in a check must not pass the subject silently
                self.problems.append(
                    InputProblem(
                        where.file,
                        ProblemKind.INTERNAL,
                        f"check {check.id} failed on {resource}: {type(exc).__name__}: {exc}",
                        line=where.line,
                        document=where.document,
                    )
                )
                continue
            ran.append(check.id)
            for violation in violations:
                location = locate(violation.pointer)
                self.findings.append(
                    Finding(
                        check_id=check.id,
                        severity=violation.severity or check.meta.severity,
                        title=check.meta.title,
                        message=violation.message,
                        location=location,
                        resource=resource,
                        declared_suppressions=(
                            tuple(declared.applying_to(check.id, location)) if any_declared else ()
                        ),
                    )
                )
        self.evaluations.append(Evaluation(resource, where, tuple(ran)))

    def resolve(self, names: Iterable[str], where: str) -> frozenset[CheckID]:
        ids: set[CheckID] = set()
        for name in names:
            resolved = self.registry.resolve(name)
            if not resolved:
                self.warnings.append(f"{where}: unknown check id {name} in a suppression")
            ids.update(resolved)
        return frozenset(ids)

    def inline(
        self, path: str, ignores: Iterable[InlineIgnore]
    ) -> tuple[tuple[frozenset[CheckID], Suppression, InlineIgnore], ...]:
        resolved = []
        for ignore in ignores:
            where = f"{path}:{ignore.line}"
            suppression = Suppression(
                SuppressionSource.INLINE, ignore.reason, where, ignore.expires
            )
            resolved.append((self.resolve(ignore.ids, where), suppression, ignore))
        return tuple(resolved)


def scan(
    targets: Sequence[str],
    options: ScanOptions = ScanOptions(),
    *,
    stdin: bytes | None = None,
    registry: Registry = REGISTRY,
    on_file: Callable[[str], None] | None = None,
    stdin_name: str = STDIN_NAME,
) -> ScanResult:
    """Scan files, directories and `-` (standard input, given as `stdin`, reported under
    `stdin_name`; its name also decides its type when it names a Dockerfile).

    Nothing here raises for a bad input; problems are part of the result.
    """
    started = dt.datetime.now(dt.UTC)
    out = _Collector(registry)
    manifests: list[ManifestFile] = []
    dockerfiles: list[DockerfileInput] = []
    contexts: dict[int, str] = {}  # id of a Dockerfile read from a file -> its build context
    limit = options.limits.max_file_bytes
    files = 0
    items = list(discover(targets, options.input_type))
    k8s_paths = [i.path for i in items if isinstance(i, Input) and i.type is InputType.KUBERNETES]
    roles = dict(kustomize_roles(k8s_paths))
    if options.render:
        roles.update(_render_kustomize(k8s_paths, options, manifests, out))
    for item in items:
        if isinstance(item, InputProblem):
            out.problems.append(item)
            continue
        files += 1
        if item.path in roles and item.type is InputType.KUBERNETES:
            out.skipped.append(SkippedDocument(item.path, 0, roles[item.path]))
            continue
        kind = item.type
        if item.path == STDIN:
            data = stdin or b""
            if kind is InputType.AUTO and stdin_name != STDIN_NAME:
                named = os.path.basename(stdin_name)
                kind = InputType.DOCKERFILE if is_dockerfile_name(named) else InputType.AUTO
            kind = kind if kind is not InputType.AUTO else _stdin_type(data)
            if kind is InputType.DOCKERFILE:
                dockerfiles.append(read_dockerfile_bytes(stdin_name, data, limit))
            else:
                manifests.append(read_bytes(stdin_name, data, options.limits))
        elif kind is InputType.DOCKERFILE:
            dockerfiles.append(read_dockerfile(item.path, limit))
            # the build context, unless given, is the Dockerfile's directory (`docker build .`)
            contexts[id(dockerfiles[-1])] = options.build_context or (
                os.path.dirname(item.path) or "."
            )
        else:
            manifests.append(read_path(item.path, options.limits))
        if on_file is not None:
            on_file(item.path)

    checks = selected_checks(options, registry)
    objects = _scan_manifests(out, manifests, checks, options)
    workloads = tuple(
        info
        for mf in manifests
        for obj in mf.objects
        if (info := workload_info(obj, options.namespace)) is not None
    )
    _scan_dockerfiles(out, dockerfiles, contexts, checks)
    unknown = Counter(
        f"{o.api_version} {o.kind}"
        for mf in manifests
        for o in mf.objects
        if o.kind not in BUILTIN_KINDS
    )
    return ScanResult(
        findings=tuple(out.findings),
        checks=tuple(c.meta for c in checks),
        evaluations=tuple(out.evaluations),
        problems=tuple(out.problems),
        skipped=tuple(out.skipped),
        targets=tuple(targets),
        files_scanned=files,
        objects_scanned=objects + sum(1 for d in dockerfiles if d.dockerfile is not None),
        unknown_kinds=dict(sorted(unknown.items())),
        profile=options.profile.value,
        pss=str(options.pss),
        warnings=tuple(out.warnings),
        started=started,
        finished=dt.datetime.now(dt.UTC),
        workloads=workloads,
    )


def _render_kustomize(
    paths: list[str], options: ScanOptions, manifests: list[ManifestFile], out: _Collector
) -> dict[str, str]:
    """Build each top kustomization with `kubectl kustomize` and read what it builds; the
    files of its tree are then covered (skipped with the reason)."""
    plan = plan_render(paths)
    names: dict[str, str] = {}
    for root in plan.roots:
        shown = os.path.relpath(root) if not os.path.relpath(root).startswith("..") else root
        built = render(root)
        if isinstance(built, str):
            out.problems.append(InputProblem(root, ProblemKind.UNRENDERED, built))
            continue
        names[root] = f"<kubectl kustomize {shown}>"
        manifests.append(read_bytes(names[root], built, options.limits))
    return {
        path: f"built by kubectl kustomize {os.path.relpath(root)}; scanned from what it builds"
        for path, root in plan.covered.items()
        if root in names
    }


def workload_info(obj: K8sObject, default_namespace: str = "default") -> WorkloadInfo | None:
    """The images and container ports of a workload (None for objects without a pod spec)."""
    pod = pod_spec(obj)
    if pod is None:
        return None
    images: list[str] = []
    ports: list[tuple[str, int]] = []
    for container in pod.containers():
        image = container.data.get("image")
        if isinstance(image, str) and image and image not in images:
            images.append(image)
        for port in as_list(container.data.get("ports")):
            entry = as_dict(port)
            number = entry.get("containerPort")
            if isinstance(number, int) and not isinstance(number, bool):
                protocol = entry.get("protocol")
                ports.append((protocol if isinstance(protocol, str) else "TCP", number))
    ref = obj.resource
    resource = ResourceRef(ref.kind, ref.name, ref.namespace or default_namespace, ref.api_version)
    return WorkloadInfo(
        resource,
        tuple(images),
        tuple(ports),
        host_network=pod.spec.get("hostNetwork") is True,
        container_ids=_container_ids(obj),
    )


def _container_ids(obj: K8sObject) -> tuple[str, ...]:
    """`containerd://<64 hex>` of a live Pod's container statuses, as 12-hex short ids."""
    if obj.kind != "Pod":
        return ()
    status = as_dict(obj.data.get("status"))
    ids: list[str] = []
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for entry in as_list(status.get(key)):
            raw = as_dict(entry).get("containerID")
            if not isinstance(raw, str):
                continue
            hexid = raw.rpartition("://")[2].lower()
            if len(hexid) >= 12 and all(c in "0123456789abcdef" for c in hexid):
                ids.append(hexid[:12])
    return tuple(dict.fromkeys(ids))


# Kept for callers that scan manifests only; `scan` decides by file name.
scan_manifests = scan


def _scan_manifests(
    out: _Collector,
    manifests: list[ManifestFile],
    checks: list[Check[Any, Any]],
    options: ScanOptions,
) -> int:
    objects = [obj for mf in manifests for obj in mf.objects]
    k8s_checks = [c for c in checks if c.meta.layer in _MANIFEST_LAYERS]
    ctx = CheckContext(pss=options.pss, cluster=build_cluster_index(objects, options.namespace))
    for_kind: dict[str, list[Check[Any, Any]]] = {}
    for_all = [c for c in k8s_checks if c.kinds is None]
    for check in k8s_checks:
        for kind in check.kinds or ():
            for_kind.setdefault(kind, []).append(check)
    for mf in manifests:
        out.problems.extend(mf.problems)
        out.skipped.extend(mf.skipped)
        out.warnings.extend(mf.warnings)
        ignores = out.inline(mf.path, mf.ignores)
        for obj in mf.objects:
            if obj.kind in POD_TEMPLATE_PATHS and pod_spec(obj) is None:
                # A kustomize patch or another partial object: nothing to check until it is
                # merged, and saying so beats passing it.
                out.skipped.append(
                    SkippedDocument(
                        obj.file,
                        obj.document.index,
                        f"{obj.resource} has no pod spec (a patch or partial object? "
                        "scan the rendered output: kustomize build | skanse scan -)",
                        obj.location().line,
                    )
                )
                continue
            declared = _Declared(_annotation_suppressions(obj, out), ignores)
            out.run(
                obj,
                [*for_kind.get(obj.kind, ()), *for_all],
                ctx,
                obj.resource,
                obj.location(),
                obj.location,
                declared,
            )
    return len(objects)


def _scan_dockerfiles(
    out: _Collector,
    dockerfiles: list[DockerfileInput],
    contexts: dict[int, str],
    checks: list[Check[Any, Any]],
) -> None:
    df_checks = [c for c in checks if c.meta.layer is Layer.DOCKERFILE]
    for item in dockerfiles:
        out.problems.extend(item.problems)
        out.skipped.extend(item.skipped)
        out.warnings.extend(item.warnings)
        df = item.dockerfile
        if df is None:
            continue
        context = contexts.get(id(item))
        archives = archive_sources(df, context) if context is not None else frozenset()
        ctx = DockerfileContext(archives)
        declared = _Declared(inline=out.inline(item.path, item.ignores))
        out.run(df, df_checks, ctx, df.resource, df.location(), df.location, declared)


def _annotation_suppressions(
    obj: K8sObject, out: _Collector
) -> tuple[tuple[frozenset[CheckID], Suppression], ...]:
    """`ignore.skanse.io/<ID>: "<reason>"` on the object or on its pod template."""
    found = []
    for key, name, reason in ignore_annotations(obj):
        where = f"{obj.file}: {obj.resource} annotation {key}"
        if not reason:
            out.warnings.append(f"{where} has no reason and is not applied")
            continue
        ids = out.resolve([name], where)
        found.append((ids, Suppression(SuppressionSource.ANNOTATION, reason, f"annotation {key}")))
    return tuple(found)


# -- one object at a time, for callers that are not scans (the admission webhook) -------------


@dataclass(frozen=True, slots=True)
class ObjectChecked:
    """What `check_object` found: findings before config suppressions, and what went wrong."""

    findings: tuple[Finding, ...]
    problems: tuple[InputProblem, ...]  # checks that crashed: "could not check", never a pass
    warnings: tuple[str, ...]  # annotation suppressions without a reason or naming no check
    ran: tuple[CheckID, ...]


def selected_checks(options: ScanOptions, registry: Registry = REGISTRY) -> list[Check[Any, Any]]:
    """The checks a scan with `options` runs: profile, PSS level and version, enable, disable."""
    disabled = {i for name in options.disable for i in registry.resolve(name)}
    enabled = {i for name in options.enable for i in registry.resolve(name)}
    return [
        c
        for c in select_checks(registry, options.profile, options.pss)
        if c.id not in disabled and (not c.meta.opt_in or c.id in enabled)
    ]


def check_object(
    obj: K8sObject,
    checks: Sequence[Check[Any, Any]],
    ctx: CheckContext,
    registry: Registry = REGISTRY,
) -> ObjectChecked:
    """Run `checks` on one object exactly as `scan` does for each object of a file.

    `ignore.skanse.io/<ID>` annotations become declared suppressions of the findings (apply
    `.skanse.yaml` entries and expiry with `skanse.results.apply_suppressions`), and a check
    that raises is an internal problem rather than a pass.
    """
    out = _Collector(registry)
    declared = _Declared(_annotation_suppressions(obj, out))
    out.run(obj, checks, ctx, obj.resource, obj.location(), obj.location, declared)
    ran = out.evaluations[0].check_ids if out.evaluations else ()
    return ObjectChecked(tuple(out.findings), tuple(out.problems), tuple(out.warnings), ran)
