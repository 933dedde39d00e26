"""Kubernetes objects as read from manifests, and the one pod-spec extractor.

A `K8sObject` is one object's plain data with the document it came from, so any JSON pointer
into it resolves to a file, line and column. `pod_spec()` finds the pod template of every
workload kind and reports JSON pointers for the spec, its metadata and each container; every
layer (checks, fix, netpol, admission) uses it instead of knowing the workload shapes itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from skanse.model import ANNOTATION_PREFIX, Location, ResourceRef
from skanse.sources.yamlpos import YamlDocument, join_pointer

__all__ = [
    "BUILTIN_KINDS",
    "POD_TEMPLATE_PATHS",
    "ContainerView",
    "K8sObject",
    "PodSpecView",
    "as_dict",
    "as_list",
    "forget_derived",
    "ignore_annotations",
    "pod_spec",
    "recall",
    "remember",
]

# Where each workload kind keeps its pod (spec, metadata): JSON pointer tokens.
POD_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "ReplicationController": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    # OpenShift's DeploymentConfig has the Deployment shape and is common in real repos.
    "DeploymentConfig": ("spec", "template"),
}

# Kinds served by a stock API server (and common aggregated APIs): anything else is a custom
# resource, counted and listed rather than checked.
BUILTIN_KINDS: frozenset[str] = frozenset(
    {
        *POD_TEMPLATE_PATHS,
        "APIService", "Binding", "CertificateSigningRequest", "ClusterRole",
        "ClusterRoleBinding", "ComponentStatus", "ConfigMap", "ControllerRevision",
        "CSIDriver", "CSINode", "CSIStorageCapacity", "CustomResourceDefinition",
        "DeviceClass", "EndpointSlice", "Endpoints", "Event", "FlowSchema",
        "HorizontalPodAutoscaler", "Ingress", "IngressClass", "IPAddress", "Lease",
        "LimitRange", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration", "Namespace", "NetworkPolicy", "Node",
        "PersistentVolume", "PersistentVolumeClaim", "PodDisruptionBudget",
        "PodSecurityPolicy", "PriorityClass", "PriorityLevelConfiguration",
        "ResourceClaim", "ResourceClaimTemplate", "ResourceQuota", "ResourceSlice",
        "Role", "RoleBinding", "RuntimeClass", "Secret", "Service", "ServiceAccount",
        "ServiceCIDR", "StorageClass", "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration",
        "VolumeAttachment", "VolumeAttributesClass", "PodSecurityPolicyList",
        "ImageStream", "Route", "BuildConfig", "Template",
    }
)  # fmt: skip


def as_dict(value: object) -> dict[str, object]:
    """`value` if it is a mapping, else an empty one (wrong shapes read as absent)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[object]:
    """`value` if it is a sequence, else an empty one."""
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class K8sObject:
    """One Kubernetes object and where it came from.

    `base` is the pointer of the object inside its document: "" for a top-level object,
    "/items/3" for the fourth item of a `kind: List`.
    """

    data: dict[str, object]
    file: str
    document: YamlDocument
    base: str = ""
    # Views derived from `data` (the pod spec), computed once: every pod check asks for them.
    _derived: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def kind(self) -> str:
        return _text(self.data.get("kind")) or ""

    @property
    def api_version(self) -> str:
        return _text(self.data.get("apiVersion")) or ""

    @property
    def metadata(self) -> dict[str, object]:
        return as_dict(self.data.get("metadata"))

    @property
    def name(self) -> str:
        meta = self.metadata
        return _text(meta.get("name")) or _text(meta.get("generateName")) or "<unnamed>"

    @property
    def namespace(self) -> str | None:
        return _text(self.metadata.get("namespace"))

    @property
    def annotations(self) -> dict[str, object]:
        return as_dict(self.metadata.get("annotations"))

    @property
    def resource(self) -> ResourceRef:
        return ResourceRef(
            kind=self.kind,
            name=self.name,
            namespace=self.namespace,
            api_version=self.api_version or None,
        )

    def location(self, pointer: str = "") -> Location:
        """The location of `pointer` (relative to this object) in its file."""
        full = self.base + pointer
        line, column = self.document.position(full)
        return Location(
            file=self.file,
            line=line,
            column=column,
            pointer=full,
            document=self.document.index,
        )


ContainerKind = Literal["initContainers", "containers", "ephemeralContainers"]


@dataclass(frozen=True, slots=True)
class ContainerView:
    """One container of a pod spec, with its pointer relative to the object."""

    data: dict[str, object]
    pointer: str
    kind: ContainerKind
    index: int
    # data's securityContext (empty if absent or not a mapping), read once: every check asks
    security_context: dict[str, object]

    @property
    def name(self) -> str:
        name = self.data.get("name")
        return name if isinstance(name, str) else ""


@dataclass(frozen=True, slots=True)
class PodSpecView:
    """A pod spec found in an object: the spec, the pod metadata and their pointers."""

    obj: K8sObject
    spec: dict[str, object]
    metadata: dict[str, object]
    spec_pointer: str
    metadata_pointer: str
    # spec's securityContext (empty if absent or not a mapping), read once
    security_context: dict[str, object]
    # a list so that `refresh` can replace one container's view in place
    _containers: list[ContainerView] = field(default_factory=list)
    # container pointer -> position in _containers, made on the first `container_at`
    _positions: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_windows(self) -> bool:
        return as_dict(self.spec.get("os")).get("name") == "windows"

    @property
    def host_users_disabled(self) -> bool:
        """`hostUsers: false`: the pod runs in a user namespace."""
        return self.spec.get("hostUsers") is False

    @property
    def annotations(self) -> dict[str, object]:
        return as_dict(self.metadata.get("annotations"))

    def containers(self) -> Iterator[ContainerView]:
        """Init, regular, then ephemeral containers: the order Pod Security Admission visits."""
        return iter(self._containers)

    def pointer(self, *tokens: str | int) -> str:
        """A pointer under the pod spec: view.pointer('securityContext', 'runAsUser')."""
        return join_pointer(self.spec_pointer, *tokens)

    def container_at(self, pointer: str) -> ContainerView | None:
        """The container that `pointer` (relative to the object) is at or under, or None."""
        position = self._position(pointer)
        return None if position is None else self._containers[position]

    def _position(self, pointer: str) -> int | None:
        if not self._positions and self._containers:
            self._positions.update((c.pointer, n) for n, c in enumerate(self._containers))
        prefix = self.spec_pointer + "/"
        if not pointer.startswith(prefix):
            return None
        tokens = pointer[len(prefix) :].split("/", 2)
        if len(tokens) < 2 or tokens[0] not in _CONTAINER_LISTS:
            return None
        return self._positions.get(f"{prefix}{tokens[0]}/{tokens[1]}")

    def refresh(self, pointers: Iterable[str]) -> bool:
        """Bring this view up to date after edits at `pointers` (relative to the object),
        in place, in time linear in the edits: a container whose securityContext the edits
        made or replaced is read again. False when that is not enough (the spec, its
        securityContext, the pod metadata or a container list itself changed): the view
        must then be made again."""
        node: object = self.obj.data
        for token in _TEMPLATE_POINTERS[self.obj.kind][0]:
            node = node.get(token) if isinstance(node, dict) else None
        if (
            not isinstance(node, dict)
            or node.get("spec") is not self.spec
            or not _same(self.metadata, node.get("metadata"))
            or not _same(self.security_context, self.spec.get("securityContext"))
        ):
            return False
        prefix = self.spec_pointer + "/"
        for pointer in pointers:
            tokens = pointer[len(prefix) :].split("/", 2) if pointer.startswith(prefix) else []
            if not tokens or tokens[0] not in _CONTAINER_LISTS:
                continue
            position = self._position(pointer + "/")  # `.../containers/-` names none
            if position is None:
                return False
            view = self._containers[position]
            items = self.spec.get(view.kind)
            if not isinstance(items, list) or len(items) <= view.index:
                return False
            if items[view.index] is not view.data:
                return False
            live = view.data.get("securityContext")
            if not _same(view.security_context, live):
                self._containers[position] = replace(view, security_context=as_dict(live))
        return True


# kind -> (template path, spec pointer, metadata pointer), computed once
_TEMPLATE_POINTERS = {
    kind: (path, join_pointer("", *path, "spec"), join_pointer("", *path, "metadata"))
    for kind, path in POD_TEMPLATE_PATHS.items()
}


_CONTAINER_LISTS: tuple[ContainerKind, ...] = (
    "initContainers",
    "containers",
    "ephemeralContainers",
)


def _same(snapshot: dict[str, object], live: object) -> bool:
    """A view's `as_dict` snapshot still reads as `live` does."""
    return snapshot is live if isinstance(live, dict) else not snapshot


def _containers(spec: dict[str, object], spec_pointer: str) -> list[ContainerView]:
    views = []
    kind: ContainerKind
    for kind in _CONTAINER_LISTS:
        for index, item in enumerate(as_list(spec.get(kind))):
            if isinstance(item, dict):
                views.append(
                    ContainerView(
                        item,
                        f"{spec_pointer}/{kind}/{index}",
                        kind,
                        index,
                        as_dict(item.get("securityContext")),
                    )
                )
    return views


def remember(obj: K8sObject, key: str, value: object) -> None:
    """Keep `value` with `obj`'s views, for another reader of the same object to `recall`
    (a failing Pod Security control's result, which the webhook's PSA-worded message needs
    after its check has computed it). Dropped by `forget_derived`, as the views are."""
    obj._derived[key] = value


def recall(obj: K8sObject, key: str) -> object | None:
    """What `remember` kept with `obj` under `key`, or None."""
    return obj._derived.get(key)


def forget_derived(obj: K8sObject) -> None:
    """Drop the views cached on `obj`. The pod view refers back to its object, a cycle that
    only the garbage collector frees, walking the whole parsed object to find it; a caller
    done with an object it made (the webhook, once a review is answered) lets reference
    counting free it at once."""
    obj._derived.clear()


def pod_spec(obj: K8sObject) -> PodSpecView | None:
    """The pod spec of a workload object, or None if the kind has none (or it is malformed).

    Computed once per object (checks, fixes and the webhook all ask for it): the view is
    cached on the object, which is why the object's data must not be mutated afterwards.
    """
    if "pod" in obj._derived:
        cached = obj._derived["pod"]
        return cached if isinstance(cached, PodSpecView) else None
    view = _pod_spec(obj)
    obj._derived["pod"] = view
    return view


def _pod_spec(obj: K8sObject) -> PodSpecView | None:
    found = _TEMPLATE_POINTERS.get(obj.kind)
    if found is None:
        return None
    path, spec_pointer, metadata_pointer = found
    node: object = obj.data
    for token in path:
        node = node.get(token) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    spec = node.get("spec")
    if not isinstance(spec, dict):
        return None
    return PodSpecView(
        obj=obj,
        spec=spec,
        metadata=as_dict(node.get("metadata")),
        spec_pointer=spec_pointer,
        metadata_pointer=metadata_pointer,
        security_context=as_dict(spec.get("securityContext")),
        _containers=_containers(spec, spec_pointer),
    )


def ignore_annotations(obj: K8sObject) -> Iterator[tuple[str, str, str]]:
    """(key, check name, reason) of each `ignore.skanse.io/<check name>` annotation on the
    object or its pod template; the reason stripped ("" when there is none)."""
    sources = [obj.annotations]
    pod = pod_spec(obj)
    if pod is not None and pod.metadata is not obj.metadata:
        sources.append(pod.annotations)
    for mapping in sources:
        for key, value in mapping.items():
            if key.startswith(ANNOTATION_PREFIX):
                reason = value.strip() if isinstance(value, str) else ""
                yield key, key[len(ANNOTATION_PREFIX) :], reason
