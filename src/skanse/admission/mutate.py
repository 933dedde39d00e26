"""RFC 6902 JSON Patches that add secure defaults to a Pod or a workload's pod template.

Only what is unset is added (values in `skanse.checks.kubernetes.defaults`): seccomp RuntimeDefault
at pod level, `capabilities.drop: [ALL]`, `allowPrivilegeEscalation: false`, and
`runAsNonRoot: true` where a non-root user is known (runAsUser > 0): at pod level unless a
container runs as root (runAsUser: 0), since the kubelet would then refuse to start that
container; the other containers then get it one by one. With `set-user` the pod also gets
runAsUser, runAsGroup and fsGroup 10001 where unset. Windows pods get nothing:
the API server rejects these Linux fields there. `add` needs an existing parent, so a
missing securityContext is added whole rather than field by field.
"""

from __future__ import annotations

from typing import Any

from skanse.admission.policy import MutationSettings
from skanse.checks.kubernetes.defaults import (
    ALLOW_PRIVILEGE_ESCALATION,
    DROP_CAPABILITIES,
    ESCALATING_CAPABILITIES,
    NON_ROOT_ID,
    RUN_AS_NON_ROOT,
    SECCOMP_PROFILE_TYPE,
)
from skanse.sources.kubernetes import (
    ContainerView,
    K8sObject,
    PodSpecView,
    as_dict,
    as_list,
    pod_spec,
)
from skanse.sources.yamlpos import join_pointer

__all__ = ["JsonPatch", "defaults_patch"]

JsonPatch = list[dict[str, Any]]


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _add_fields(patch: JsonPatch, parent: object, pointer: str, fields: dict[str, Any]) -> None:
    """Add `fields` under `pointer`: one op per field if the parent mapping exists, else one
    op adding the parent with all of them (a null or malformed parent is replaced)."""
    if not fields:
        return
    if isinstance(parent, dict):
        for name, value in fields.items():
            patch.append({"op": "add", "path": join_pointer(pointer, name), "value": value})
    else:
        patch.append({"op": "add", "path": pointer, "value": fields})


def _runs_as_root(c: ContainerView) -> bool:
    """The container sets a user that is not positive (0: root) and leaves runAsNonRoot to
    the pod: a pod-level runAsNonRoot: true would stop it from starting."""
    context = as_dict(c.data.get("securityContext"))
    user = context.get("runAsUser")
    return user is not None and not _positive_int(user) and context.get("runAsNonRoot") is None


def _pod_defaults(
    pod: PodSpecView, settings: MutationSettings
) -> tuple[dict[str, Any], bool, object]:
    """Fields to add to the pod securityContext, whether the pod then runs as non-root, and
    the pod's user after them (which containers without their own inherit)."""
    context = pod.security_context
    adds: dict[str, Any] = {}
    if settings.set_user:
        for name in ("runAsUser", "runAsGroup", "fsGroup"):
            if context.get(name) is None:
                adds[name] = NON_ROOT_ID
    if context.get("seccompProfile") is None:
        adds["seccompProfile"] = {"type": SECCOMP_PROFILE_TYPE}
    user = context.get("runAsUser", adds.get("runAsUser"))
    if (
        context.get("runAsNonRoot") is None
        and _positive_int(user)
        and not any(_runs_as_root(c) for c in pod.containers())
    ):
        adds["runAsNonRoot"] = RUN_AS_NON_ROOT
    non_root = context.get("runAsNonRoot", adds.get("runAsNonRoot")) is True
    return adds, non_root, user


def _container_patch(
    patch: JsonPatch,
    c: ContainerView,
    pod_non_root: bool,
    pod_non_root_false: bool,
    pod_user: object,
) -> None:
    raw = c.data.get("securityContext")
    if raw is not None and not isinstance(raw, dict):
        return  # malformed: the API server rejects it; nothing sensible to add to
    context = as_dict(raw)
    pointer = join_pointer(c.pointer, "securityContext")
    adds: dict[str, Any] = {}
    capabilities_raw = context.get("capabilities")
    capabilities = as_dict(capabilities_raw)
    added = {str(x) for x in as_list(capabilities.get("add"))}
    if (
        context.get("allowPrivilegeEscalation") is None
        and context.get("privileged") is not True
        and not added & ESCALATING_CAPABILITIES
    ):
        adds["allowPrivilegeEscalation"] = ALLOW_PRIVILEGE_ESCALATION
    user = context.get("runAsUser", pod_user)  # its own, or the pod's it inherits
    if _positive_int(user) and context.get("runAsNonRoot") is None:
        if not pod_non_root and not pod_non_root_false:
            adds["runAsNonRoot"] = RUN_AS_NON_ROOT
    if capabilities_raw is None:
        adds["capabilities"] = {"drop": list(DROP_CAPABILITIES)}
    elif isinstance(capabilities_raw, dict):
        drop = capabilities_raw.get("drop")
        drop_pointer = join_pointer(pointer, "capabilities", "drop")
        if drop is None:
            patch.append({"op": "add", "path": drop_pointer, "value": list(DROP_CAPABILITIES)})
        elif isinstance(drop, list):
            for name in DROP_CAPABILITIES:
                if name not in drop:
                    patch.append({"op": "add", "path": drop_pointer + "/-", "value": name})
    _add_fields(patch, raw, pointer, adds)


def defaults_patch(obj: K8sObject, settings: MutationSettings) -> JsonPatch:
    """The patch that adds the defaults `obj` lacks (empty when it lacks none)."""
    pod = pod_spec(obj)
    if pod is None or pod.is_windows:
        return []
    patch: JsonPatch = []
    raw_context = pod.spec.get("securityContext")
    if raw_context is not None and not isinstance(raw_context, dict):
        return []
    pod_adds, pod_non_root, pod_user = _pod_defaults(pod, settings)
    _add_fields(patch, raw_context, pod.pointer("securityContext"), pod_adds)
    pod_non_root_false = pod.security_context.get("runAsNonRoot") is False
    for c in pod.containers():
        _container_patch(patch, c, pod_non_root, pod_non_root_false, pod_user)
    return patch
