"""Fixes for Kubernetes workloads: the pod and container securityContext of the standard.

Each fix is attached to the check it resolves and is planned from the finding's JSON
pointer and the object's current data. Plans are simulated on the plain data as they are
made, so a later fix sees what an earlier one did (allowPrivilegeEscalation is decided
after `privileged` is fixed) and two findings never produce the same edit twice.

What the fixes write: runAsNonRoot true; runAsUser, runAsGroup and fsGroup 10001 where
unset or root; seccompProfile RuntimeDefault; privileged and allowPrivilegeEscalation false;
readOnlyRootFilesystem true with an emptyDir at /tmp; capabilities drop ALL and no added
capabilities; automountServiceAccountToken false. Values the user set that are compliant
are never touched (a fix only runs for a finding), and pod-level settings are written per
container instead when a sibling container's finding of the same check is suppressed, so a
suppression keeps its container exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from skanse.checks.kubernetes.defaults import (
    DROP_CAPABILITIES,
    ESCALATING_CAPABILITIES,
    NON_ROOT_ID,
    SECCOMP_PROFILE_TYPE,
)
from skanse.checks.kubernetes.zerotrust import MIN_ID
from skanse.fix.model import Change, Declined
from skanse.fix.ops import (
    AppendValue,
    EditConflict,
    Op,
    RemoveKey,
    RemoveValues,
    SetValue,
    apply_op,
    get_pointer,
    split_pointer,
)
from skanse.model import CheckID, Finding
from skanse.sources.kubernetes import (
    ContainerView,
    K8sObject,
    PodSpecView,
    as_dict,
    as_list,
    forget_derived,
    pod_spec,
)
from skanse.sources.yamlpos import join_pointer

__all__ = ["K8S_FIXES", "K8sFix", "ObjectPlan", "plan_object"]

TMP = "/tmp"  # noqa: S108 - the mount point a read-only root filesystem needs, not a temp file


@dataclass(frozen=True, slots=True)
class Edit:
    """Operations (relative to the object) and what they do, in words."""

    ops: tuple[Op, ...]
    description: str
    safe: bool = True  # see Change.safe


@dataclass(frozen=True, slots=True)
class Decline:
    reason: str


Step = Edit | Decline


@dataclass(frozen=True, slots=True)
class Target:
    """What a fix is given: the object (data as fixed so far), its pod and the finding."""

    obj: K8sObject
    pod: PodSpecView
    pointer: str  # the finding's pointer relative to the object
    # pointers (relative) of suppressed findings of the same check in this object
    suppressed: tuple[str, ...] = ()

    def container(self) -> ContainerView | None:
        """The container the pointer is in, or None for a pod-level pointer."""
        return self.pod.container_at(self.pointer)

    def value(self) -> object:
        return get_pointer(self.obj.data, self.pointer)

    def siblings_suppressed(self) -> bool:
        """A finding of this check in another container is suppressed: pod-level settings
        would change that container, so the fix goes on each container instead."""
        return bool(self.suppressed)


@dataclass(frozen=True, slots=True)
class K8sFix:
    """A fix for one check. `complete`: it resolves every finding of the check, which is
    what `CheckMeta.fixable` says (a test keeps the two in step)."""

    check_id: CheckID
    complete: bool
    plan: Callable[[Target], Iterator[Step]]


def _who(c: ContainerView | None) -> str:
    return "pod" if c is None else f'container "{c.name}"'


def _sc(target: Target, c: ContainerView | None) -> str:
    return (
        f"{c.pointer}/securityContext" if c is not None else target.pod.pointer("securityContext")
    )


def _set(
    target: Target,
    c: ContainerView | None,
    name: str,
    value: object,
    shown: str,
    *,
    safe: bool = True,
) -> Edit:
    return Edit(
        (SetValue(f"{_sc(target, c)}/{name}", value),),
        f"{_who(c)}: set securityContext.{name}: {shown}",
        safe,
    )


def _pod_or_each(
    target: Target, name: str, value: object, shown: str, *, safe: bool = True
) -> Iterator[Step]:
    """Set a field at pod level, or on the finding's container when a sibling's finding is
    suppressed (the pod level would reach that container too)."""
    c = target.container()
    if c is not None and target.siblings_suppressed():
        yield _set(target, c, name, value, shown, safe=safe)
    elif target.pod.security_context.get(name) != value:
        yield _set(target, None, name, value, shown, safe=safe)


def _runs_as_non_root(pod: PodSpecView, c: ContainerView | None) -> bool:
    """The manifest itself says the container's user is not root (a UID above 0, or
    runAsNonRoot: true), so its processes hold no capability by default."""
    for sc in ((c.security_context,) if c is not None else ()) + (pod.security_context,):
        user = sc.get("runAsUser")
        if _is_int(user):
            return user > 0
        if sc.get("runAsNonRoot") is True:
            return True
    return False


# Capabilities well-known workloads need to do their job (a fix never removes them). The
# key is the last part of the image repository.
KNOWN_WORKLOAD_CAPABILITIES: Mapping[str, frozenset[str]] = {
    "node-exporter": frozenset({"SYS_TIME"}),  # the timex collector reads the clock state
    "controller": frozenset({"NET_BIND_SERVICE"}),  # ingress-nginx binds 80/443 as UID 101
    "kube-proxy": frozenset({"NET_ADMIN", "SYS_MODULE"}),
    "node-problem-detector": frozenset({"SYSLOG"}),
}
PRIVILEGED_PORT_LIMIT = 1024


def _image_repository(image: object) -> str:
    reference = str(image or "").split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def needed_capabilities(c: ContainerView) -> dict[str, str]:
    """Capabilities the container needs, with why: NET_BIND_SERVICE for a declared port
    below 1024, and what a known workload image needs."""
    needed: dict[str, str] = {}
    for port in as_list(c.data.get("ports")):
        number = as_dict(port).get("containerPort")
        if _is_int(number) and 0 < number < PRIVILEGED_PORT_LIMIT:
            needed["NET_BIND_SERVICE"] = f"it declares port {number}, below 1024"
            break
    repository = _image_repository(c.data.get("image"))
    for cap in sorted(KNOWN_WORKLOAD_CAPABILITIES.get(repository, ())):
        needed.setdefault(cap, f"{repository} needs it")
    return needed


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# The fixes, in the order they run.


def _fix_run_as_non_root(target: Target) -> Iterator[Step]:
    """runAsNonRoot: true at pod level; an explicit false on a container becomes true.

    Unsafe unless the manifest already runs the containers as a UID above 0: an image whose
    user is root would no longer start."""
    c = target.container()
    containers = [c] if c is not None else list(target.pod.containers())
    safe = bool(containers) and all(_runs_as_non_root(target.pod, x) for x in containers)
    if c is not None and c.security_context.get("runAsNonRoot") not in (None, True):
        yield _set(target, c, "runAsNonRoot", True, "true", safe=False)
    elif c is None:
        if target.pod.security_context.get("runAsNonRoot") is not True:
            yield _set(target, None, "runAsNonRoot", True, "true", safe=safe)
    else:
        yield from _pod_or_each(target, "runAsNonRoot", True, "true", safe=safe)


def _fix_run_as_user_zero(target: Target) -> Iterator[Step]:
    """runAsUser 0 (explicit root) becomes 10001 where it is set (unsafe: the author chose
    root, and files in the image or on volumes may belong to it)."""
    value = target.value()
    if _is_int(value) and value == 0:
        yield _set(
            target, target.container(), "runAsUser", NON_ROOT_ID, str(NON_ROOT_ID), safe=False
        )


def _id_fix(name: str, what: str) -> Callable[[Target], Iterator[Step]]:
    def fix(target: Target) -> Iterator[Step]:
        value = target.value()
        c = target.container()
        level = None if target.pointer.rsplit("/", 2)[0] == target.pod.spec_pointer else c
        # unsafe: a new UID or GID can lose access to files owned by the image's user
        if value is None:
            yield from _pod_or_each(target, name, NON_ROOT_ID, str(NON_ROOT_ID), safe=False)
        elif _is_int(value) and value == 0:
            yield _set(target, level, name, NON_ROOT_ID, str(NON_ROOT_ID), safe=False)
        elif _is_int(value) and value >= MIN_ID:
            return  # an earlier fix (runAsUser 0 -> 10001) resolved it
        elif _is_int(value) and value > 0:
            yield Decline(
                f"{_who(level)} keeps {name}={value}: a non-root {what} set in the manifest "
                f"(skanse fix does not renumber it; raise it to 10000 or above by hand)"
            )
        else:
            yield Decline(f"{_who(level)} sets {name} to {value!r}, which is not a {what} number")

    fix.__doc__ = (
        f"{name} 10001 where it is unset (at pod level) or 0.\n\n"
        f"Partly fixable, so the check is not marked `fixable`: a {what} that the manifest "
        f"sets to a non-root value below 10000 (1000, say) is kept, because renumbering it "
        "can break file ownership inside the image or on volumes (an fsGroup: volumes may "
        "already be owned by it); the finding stays for a person to decide."
    )
    return fix


def _fix_seccomp(target: Target) -> Iterator[Step]:
    """seccompProfile type RuntimeDefault: where a bad type is set, else at pod level (the
    legacy annotations of policy versions before v1.19 become runtime/default)."""
    pointer = target.pointer
    annotations = join_pointer(target.pod.metadata_pointer, "annotations") + "/"
    if pointer.startswith(annotations):
        key = split_pointer(pointer)[-1]
        yield Edit(
            (SetValue(pointer, "runtime/default"),),
            f"set annotation {key}: runtime/default",
            safe=False,  # the author chose another profile
        )
        return
    c = target.container()
    if pointer.endswith("/seccompProfile/type"):
        yield Edit(
            (SetValue(pointer, SECCOMP_PROFILE_TYPE),),
            f"{_who(c)}: set securityContext.seccompProfile.type: RuntimeDefault",
            safe=False,  # the author chose another profile (Unconfined)
        )
        return
    profile = as_dict(target.pod.security_context.get("seccompProfile"))
    if profile.get("type") in ("RuntimeDefault", "Localhost"):
        return  # an earlier finding's fix already covers this container
    level = c if c is not None and target.siblings_suppressed() else None
    yield Edit(
        (SetValue(f"{_sc(target, level)}/seccompProfile", {"type": SECCOMP_PROFILE_TYPE}),),
        f"{_who(level)}: set securityContext.seccompProfile.type: RuntimeDefault",
    )


def _fix_privileged(target: Target) -> Iterator[Step]:
    """privileged: false where it is set to anything else."""
    c = target.container()
    if c is not None and c.security_context.get("privileged") not in (None, False):
        yield _set(target, c, "privileged", False, "false", safe=False)


def _fix_privilege_escalation(target: Target) -> Iterator[Step]:
    """allowPrivilegeEscalation: false on every container.

    The API server rejects that value on a container that stays privileged or adds
    SYS_ADMIN; that only happens when the finding about those is suppressed or its check
    disabled (a fix never overrides either), and the finding is then declined with the
    reason."""
    c = target.container()
    if c is None:
        return
    sc = c.security_context
    caps = {str(x) for x in as_list(as_dict(sc.get("capabilities")).get("add"))}
    if sc.get("privileged") not in (None, False):
        yield Decline(
            f'container "{c.name}" stays privileged (SKN-K8S-002 is suppressed or not run): '
            "the API server rejects allowPrivilegeEscalation=false on a privileged container"
        )
    elif caps & ESCALATING_CAPABILITIES:
        yield Decline(
            f'container "{c.name}" keeps SYS_ADMIN (its capability findings are suppressed or '
            "not run): the API server rejects allowPrivilegeEscalation=false with it"
        )
    elif sc.get("allowPrivilegeEscalation") is not False:
        # Unsafe when the author wrote a value, or when the container needs a capability
        # (a port below 1024...) that a non-root binary may hold as a file capability:
        # no_new_privs makes exec ignore file capabilities.
        explicit = sc.get("allowPrivilegeEscalation") is not None
        safe = not explicit and not needed_capabilities(c)
        yield _set(target, c, "allowPrivilegeEscalation", False, "false", safe=safe)


def _remove_added(
    c: ContainerView, keep: frozenset[str], what: str = "securityContext.capabilities.add"
) -> Iterator[Step]:
    """Remove added capabilities (unsafe: the author added them) except those in `keep` and
    those the container needs, which are kept and reported."""
    base = f"{c.pointer}/securityContext/capabilities"
    added = as_list(as_dict(c.security_context.get("capabilities")).get("add"))
    needed = needed_capabilities(c)
    for cap in added:
        if str(cap) in needed and str(cap) not in keep:
            yield Decline(f'container "{c.name}" keeps {cap}: {needed[str(cap)]}')
    bad = tuple(x for x in added if str(x) not in keep and str(x) not in needed)
    if not bad:
        return
    names = ", ".join(str(x) for x in bad)
    if len(bad) == len(added):
        yield Edit(
            (RemoveKey(f"{base}/add"),),
            f'container "{c.name}": remove {what}',
            safe=False,
        )
    else:
        yield Edit(
            (RemoveValues(f"{base}/add", bad),),
            f'container "{c.name}": remove {names} from {what}',
            safe=False,
        )


def _fix_drop_all(target: Target) -> Iterator[Step]:
    """capabilities.drop contains ALL; added capabilities other than NET_BIND_SERVICE go
    (unsafe), except those the container needs.

    Dropping ALL is safe for a container the manifest runs as non-root (it holds no
    capability anyway), keeping NET_BIND_SERVICE when it declares a port below 1024 (the
    binary may carry it as a file capability); for a root container it is unsafe (its
    entrypoint may chown or switch users)."""
    c = target.container()
    if c is None:
        return
    caps = c.security_context.get("capabilities")
    base = f"{c.pointer}/securityContext/capabilities"
    if target.pointer.startswith(f"{base}/add"):
        yield from _remove_added(c, frozenset({"NET_BIND_SERVICE"}))
        return
    safe = _runs_as_non_root(target.pod, c)
    drop = as_dict(caps).get("drop")
    if isinstance(drop, list):
        if "ALL" not in drop:
            yield Edit(
                (AppendValue(f"{base}/drop", "ALL"),),
                f'container "{c.name}": add ALL to securityContext.capabilities.drop',
                safe,
            )
    else:
        yield Edit(
            (SetValue(f"{base}/drop", list(DROP_CAPABILITIES)),),
            f'container "{c.name}": set securityContext.capabilities.drop: [ALL]',
            safe,
        )
    added = {str(x) for x in as_list(as_dict(caps).get("add"))}
    for cap, why in needed_capabilities(c).items():
        if cap in added:
            continue
        add = as_dict(caps).get("add")
        op: Op = (
            AppendValue(f"{base}/add", cap)
            if isinstance(add, list)
            else SetValue(f"{base}/add", [cap])
        )
        yield Edit((op,), f'container "{c.name}": keep {cap} ({why})', safe)


def _fix_no_added_capabilities(target: Target) -> Iterator[Step]:
    """No capabilities.add at all (the zero-trust standard allows none); unsafe, and the
    capabilities the container needs are kept and reported."""
    c = target.container()
    if c is None:
        return
    yield from _remove_added(c, frozenset())


def _mounts_tmp(c: ContainerView) -> bool:
    return any(
        str(as_dict(m).get("mountPath", "")).rstrip("/") == TMP
        for m in as_list(c.data.get("volumeMounts"))
    )


def _tmp_volume(pod: PodSpecView) -> tuple[str, bool]:
    """(name, exists): an emptyDir volume named tmp to reuse, or a free name for a new one."""
    volumes = {str(as_dict(v).get("name")): as_dict(v) for v in as_list(pod.spec.get("volumes"))}
    existing = volumes.get("tmp")
    if existing is not None and set(existing) == {"name", "emptyDir"}:
        return "tmp", True
    for candidate in ("tmp", "skanse-tmp", *(f"skanse-tmp-{i}" for i in range(1, 100))):
        if candidate not in volumes:
            return candidate, False
    raise EditConflict("no free volume name for /tmp")


def _fix_read_only_root(target: Target) -> Iterator[Step]:
    """readOnlyRootFilesystem: true, and an emptyDir mounted at /tmp (unless something is
    mounted there already) so programs that write temporary files keep working.

    Always unsafe: a program may write elsewhere than /tmp, and an explicit false says the
    author knows it does."""
    c = target.container()
    if c is None or c.security_context.get("readOnlyRootFilesystem") is True:
        return
    yield _set(target, c, "readOnlyRootFilesystem", True, "true", safe=False)
    if _mounts_tmp(c):
        return
    name, exists = _tmp_volume(target.pod)
    mount = AppendValue(f"{c.pointer}/volumeMounts", {"name": name, "mountPath": TMP})
    if exists:
        yield Edit(
            (mount,),
            f'container "{c.name}": mount the emptyDir volume "{name}" at /tmp',
            safe=False,
        )
    else:
        volume = AppendValue(target.pod.pointer("volumes"), {"name": name, "emptyDir": {}})
        yield Edit(
            (volume, mount),
            f'container "{c.name}": mount a new emptyDir volume "{name}" at /tmp',
            safe=False,
        )


def _fix_service_account_token(target: Target) -> Iterator[Step]:
    """automountServiceAccountToken: false on the pod (an explicit true is never a finding).

    Safe for a pod on the default service account; unsafe for one that names its own (it
    was probably given one to talk to the API server)."""
    spec = target.pod.spec
    if not isinstance(spec.get("automountServiceAccountToken"), bool):
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        yield Edit(
            (SetValue(target.pod.pointer("automountServiceAccountToken"), False),),
            "pod: set automountServiceAccountToken: false",
            safe=account == "default",
        )


def _fix(check: str, complete: bool, plan: Callable[[Target], Iterator[Step]]) -> K8sFix:
    return K8sFix(CheckID(check), complete, plan)


# Order matters: identity first, then privileged and capabilities before
# allowPrivilegeEscalation (which depends on them), then the filesystem and the token.
K8S_FIXES: tuple[K8sFix, ...] = (
    _fix("SKN-K8S-015", True, _fix_run_as_non_root),
    _fix("SKN-K8S-016", True, _fix_run_as_user_zero),
    _fix("SKN-K8S-020", False, _id_fix("runAsUser", "UID")),
    _fix("SKN-K8S-021", False, _id_fix("runAsGroup", "GID")),
    _fix("SKN-K8S-022", False, _id_fix("fsGroup", "GID")),
    _fix("SKN-K8S-017", True, _fix_seccomp),
    _fix("SKN-K8S-009", True, _fix_seccomp),
    _fix("SKN-K8S-002", True, _fix_privileged),
    _fix("SKN-K8S-018", False, _fix_drop_all),
    _fix("SKN-K8S-024", False, _fix_no_added_capabilities),
    _fix("SKN-K8S-014", True, _fix_privilege_escalation),
    _fix("SKN-K8S-023", True, _fix_read_only_root),
    _fix("SKN-K8S-025", True, _fix_service_account_token),
)
_BY_CHECK: Mapping[str, K8sFix] = {f.check_id: f for f in K8S_FIXES}


@dataclass(slots=True)
class ObjectPlan:
    """The operations for one object (pointers relative to it) and what they resolve."""

    obj: K8sObject
    ops: list[Op] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    declined: list[Declined] = field(default_factory=list)


def plan_object(
    obj: K8sObject,
    findings: Sequence[Finding],
    suppressed: Sequence[Finding] = (),
    *,
    unsafe: bool = False,
) -> ObjectPlan:
    """Plan the fixes for an object's unsuppressed findings, simulating them on `obj.data`
    (which is changed in place: it becomes the expected result). Unsafe edits are planned
    only with `unsafe`."""
    plan = ObjectPlan(obj)
    by_check: dict[str, list[Finding]] = {}
    for finding in findings:
        by_check.setdefault(finding.check_id, []).append(finding)
    hidden: dict[str, list[str]] = {}
    for finding in suppressed:
        hidden.setdefault(finding.check_id, []).append(_relative(obj, finding))
    for fix in K8S_FIXES:
        for finding in by_check.get(fix.check_id, ()):
            pod = pod_spec(obj)
            if pod is None:
                continue
            target = Target(obj, pod, _relative(obj, finding), tuple(hidden.get(fix.check_id, ())))
            try:
                steps = list(fix.plan(target))
            except EditConflict as exc:
                steps = [Decline(str(exc))]
            for step in steps:
                if isinstance(step, Decline):
                    plan.declined.append(
                        Declined(fix.check_id, finding.resource, finding.location.line, step.reason)
                    )
                    continue
                if not step.safe and not unsafe:
                    continue
                try:
                    for op in step.ops:
                        apply_op(obj.data, op)
                except EditConflict as exc:
                    plan.declined.append(
                        Declined(
                            fix.check_id,
                            finding.resource,
                            finding.location.line,
                            f"cannot edit: {exc}",
                        )
                    )
                    continue
                finally:
                    # obj.data changed: the views cached on obj (pod_spec's securityContexts
                    # read once) describe the object before this step. Brought up to date
                    # in place where they can be: made again after every step, a pod of
                    # n containers cost n**2.
                    if not pod.refresh(op.pointer for op in step.ops):
                        forget_derived(obj)
                plan.ops.extend(step.ops)
                plan.changes.append(
                    Change(
                        fix.check_id,
                        finding.resource,
                        finding.location.line,
                        step.description,
                        step.safe,
                    )
                )
    return plan


def _relative(obj: K8sObject, finding: Finding) -> str:
    pointer = finding.location.pointer
    return pointer[len(obj.base) :] if obj.base and pointer.startswith(obj.base) else pointer


def has_fix(check_id: str) -> bool:
    return check_id in _BY_CHECK


def fix_is_complete(check_id: str) -> bool:
    return _BY_CHECK[check_id].complete
