"""The zero-trust profile's checks beyond the Pod Security Standards.

The standard skanse enforces: pods run with UID and GID >= 10000 and an fsGroup, a read-only
root filesystem, no added capabilities, no service account token unless the workload needs
the API, images pinned by digest, CPU and memory limits, and a default-deny NetworkPolicy in
every namespace that holds workloads. The PSS restricted controls (runAsNonRoot, seccomp,
allowPrivilegeEscalation, drop ALL, no host namespaces...) are part of the profile too.

Linux-only fields are not checked on Windows pods: the API server rejects them there.
"""

from __future__ import annotations

from collections.abc import Iterator

from skanse.checks._registry import Violation
from skanse.checks.kubernetes.base import ZERO_TRUST, CheckContext, K8sCheckSet
from skanse.controls import (
    GDPR_SECURITY,
    NSA_FILESYSTEM,
    NSA_IMAGES,
    NSA_NETWORK_POLICIES,
    NSA_NON_ROOT,
    NSA_POD_SECURITY,
    NSA_RESOURCES,
    NSA_TOKENS,
    cis,
    gdpr,
    nsa,
)
from skanse.model import Severity
from skanse.oci.reference import split_reference
from skanse.sources.kubernetes import (
    POD_TEMPLATE_PATHS,
    ContainerView,
    K8sObject,
    PodSpecView,
    as_dict,
    as_list,
)

__all__ = ["MIN_ID", "ZERO_TRUST_CHECKS"]

ZERO_TRUST_CHECKS = K8sCheckSet(__name__)

# UIDs and GIDs below this collide with system accounts on hosts and in base images.
MIN_ID = 10000


def _int_value(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _effective(pod: PodSpecView, c: ContainerView, field: str) -> tuple[object, bool]:
    """The container's value of a securityContext field, else the pod's; True when it is the
    pod's."""
    value = c.security_context.get(field)
    if value is not None:
        return value, False
    value = pod.security_context.get(field)
    return value, value is not None


def _effective_pointer(pod: PodSpecView, c: ContainerView, field: str, from_pod: bool) -> str:
    if from_pod:
        return pod.pointer("securityContext", field)
    return f"{c.pointer}/securityContext/{field}"


def _id_check(pod: PodSpecView, field: str, what: str, short: str) -> Iterator[Violation]:
    if pod.is_windows:
        return
    for c in pod.containers():
        value, from_pod = _effective(pod, c, field)
        number = _int_value(value)
        if value is None:
            yield Violation(
                f'container "{c.name}" does not set {field}: the image decides the {what}, '
                f"which may be root or a {short} below {MIN_ID}",
                _effective_pointer(pod, c, field, from_pod),
            )
        elif number is None or number < MIN_ID:
            yield Violation(
                f'container "{c.name}" runs with {field}={value} (must be {MIN_ID} or above)',
                _effective_pointer(pod, c, field, from_pod),
            )


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-020",
    controls=(
        nsa(NSA_NON_ROOT, approximate=True, note="skanse also requires UID >= 10000"),
        cis("5.2.7", approximate=True),
        GDPR_SECURITY,
    ),
    title="Container UID is unset or below 10000",
    severity=Severity.MEDIUM,
    remediation="Set securityContext.runAsUser to 10000 or above (the pod level covers all "
    "containers), and build the image with a matching numeric USER.",
    references=("https://kubernetes.io/docs/tasks/configure-pod-container/security-context/",),
    aliases=("KSV-0020", "CKV_K8S_40"),
    profiles=(ZERO_TRUST,),
    description=(
        "Containers run with a numeric UID of 10000 or above, so that a process that escapes the "
        "container is not root and does not share a UID with a system account on the host."
    ),
)
def run_as_user_high(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    return _id_check(pod, "runAsUser", "user", "UID")


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-021",
    controls=(
        nsa(NSA_NON_ROOT, approximate=True, note="the guide warns against root group membership"),
        GDPR_SECURITY,
    ),
    title="Container GID is unset or below 10000",
    severity=Severity.MEDIUM,
    remediation="Set securityContext.runAsGroup to 10000 or above at pod level.",
    references=("https://kubernetes.io/docs/tasks/configure-pod-container/security-context/",),
    aliases=("KSV-0021",),
    profiles=(ZERO_TRUST,),
    description=(
        "Containers run with a primary GID of 10000 or above (unset means the image's group, "
        "usually root)."
    ),
)
def run_as_group_high(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    return _id_check(pod, "runAsGroup", "group", "GID")


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-022",
    controls=(cis("5.7.3", approximate=True), GDPR_SECURITY),
    title="Pod fsGroup is unset or below 10000",
    severity=Severity.LOW,
    remediation="Set spec.securityContext.fsGroup to 10000 or above so volumes are owned by a "
    "non-root group the containers share.",
    references=("https://kubernetes.io/docs/tasks/configure-pod-container/security-context/",),
    profiles=(ZERO_TRUST,),
    description=(
        "The pod sets an fsGroup of 10000 or above, so writable volumes belong to a non-root "
        "group instead of root."
    ),
)
def fs_group_high(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    if pod.is_windows:
        return
    value = pod.security_context.get("fsGroup")
    pointer = pod.pointer("securityContext", "fsGroup")
    number = _int_value(value)
    if value is None:
        yield Violation("pod does not set securityContext.fsGroup", pointer)
    elif number is None or number < MIN_ID:
        yield Violation(f"pod sets fsGroup={value} (must be {MIN_ID} or above)", pointer)


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-023",
    controls=(nsa(NSA_FILESYSTEM), cis("5.7.3", approximate=True), GDPR_SECURITY),
    title="Container root filesystem is writable",
    severity=Severity.MEDIUM,
    remediation="Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir at the "
    "paths the program writes to (for example /tmp).",
    references=(
        "https://kubernetes.io/docs/tasks/configure-pod-container/security-context/",
        "https://kubernetes.io/docs/concepts/storage/volumes/#emptydir",
    ),
    aliases=("KSV-0014", "CKV_K8S_22"),
    profiles=(ZERO_TRUST,),
    fixable=True,
    description=(
        "Every container mounts its root filesystem read-only, so an intruder cannot replace "
        "binaries or drop tools into the image; scratch space comes from emptyDir volumes."
    ),
)
def read_only_root_filesystem(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    if pod.is_windows:
        return
    for c in pod.containers():
        if c.security_context.get("readOnlyRootFilesystem") is not True:
            yield Violation(
                f'container "{c.name}" must set securityContext.readOnlyRootFilesystem=true',
                f"{c.pointer}/securityContext/readOnlyRootFilesystem",
            )


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-024",
    controls=(cis("5.2.9"), nsa(NSA_POD_SECURITY, approximate=True), GDPR_SECURITY),
    title="Container adds capabilities",
    severity=Severity.MEDIUM,
    remediation="Remove securityContext.capabilities.add; with a UID of 10000 or above even "
    "NET_BIND_SERVICE has no effect, so listen on a port above 1024 instead.",
    references=("https://man7.org/linux/man-pages/man7/capabilities.7.html",),
    aliases=("KSV-0022", "CKV_K8S_25"),
    profiles=(ZERO_TRUST,),
    fixable=False,  # a capability the container needs is kept
    description=(
        "Containers drop every capability and add none back (restricted still allows "
        "NET_BIND_SERVICE; the zero-trust standard does not)."
    ),
)
def no_added_capabilities(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    if pod.is_windows:
        return
    for c in pod.containers():
        added = as_list(as_dict(c.security_context.get("capabilities")).get("add"))
        if added:
            names = ", ".join(str(x) for x in added)
            yield Violation(
                f'container "{c.name}" adds capabilities {names}',
                f"{c.pointer}/securityContext/capabilities/add",
            )


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-025",
    controls=(cis("5.1.6"), nsa(NSA_TOKENS), GDPR_SECURITY),
    title="Service account token is mounted by default",
    severity=Severity.MEDIUM,
    remediation="Set spec.automountServiceAccountToken: false (or on the ServiceAccount); set "
    "it to true explicitly only for workloads that call the Kubernetes API.",
    references=(
        "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/",
    ),
    aliases=("CKV_K8S_38",),
    profiles=(ZERO_TRUST,),
    fixable=True,
    description=(
        "A pod gets an API token only when it asks for one: `automountServiceAccountToken` is "
        "false on the pod or on its ServiceAccount (when that is part of the scan). An explicit "
        "`true` on the pod declares that the workload needs the API and passes."
    ),
)
def service_account_token(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    if isinstance(pod.spec.get("automountServiceAccountToken"), bool):
        return  # false, or true declared on purpose
    account = pod.spec.get("serviceAccountName") or pod.spec.get("serviceAccount") or "default"
    namespace = ctx.cluster.namespace_of(pod.obj)
    if ctx.cluster.service_accounts.get((namespace, str(account))) is False:
        return
    yield Violation(
        f'the token of service account "{account}" is mounted into every container; set '
        "automountServiceAccountToken: false unless the workload calls the Kubernetes API",
        pod.pointer("automountServiceAccountToken"),
    )


def _images(pod: PodSpecView) -> Iterator[tuple[ContainerView, str]]:
    for c in pod.containers():
        image = c.data.get("image")
        if isinstance(image, str) and image.strip():
            yield c, image.strip()


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-026",
    controls=(
        nsa(NSA_IMAGES, approximate=True, note="a moving tag defeats image review"),
        GDPR_SECURITY,
    ),
    title="Image uses the latest tag or no tag",
    severity=Severity.HIGH,
    remediation="Reference images by digest (name@sha256:...) or at least by a fixed version "
    "tag; never :latest.",
    references=("https://kubernetes.io/docs/concepts/containers/images/#image-names",),
    aliases=("KSV-0013", "CKV_K8S_14"),
    profiles=(ZERO_TRUST,),
    description=(
        "An image without a tag or with `:latest` changes under the workload at every pull; what "
        "runs is not what was reviewed. A digest pins the image whatever the tag says."
    ),
)
def image_not_latest(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    for c, image in _images(pod):
        _, tag, digest = split_reference(image)
        if digest is None and (tag is None or tag == "latest"):
            what = "the latest tag" if tag else "no tag (implicitly latest)"
            yield Violation(f'container "{c.name}" image {image} uses {what}', f"{c.pointer}/image")


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-027",
    controls=(
        nsa(NSA_IMAGES, approximate=True),
        cis("5.5.1", approximate=True, note="pinning by digest, not an admission webhook"),
        GDPR_SECURITY,
    ),
    title="Image is not pinned by digest",
    severity=Severity.LOW,
    remediation="Append the image digest: name:tag@sha256:<digest> (crane digest or "
    "skopeo inspect prints it); tags can be moved, digests cannot.",
    references=("https://kubernetes.io/docs/concepts/containers/images/#image-names",),
    aliases=("CKV_K8S_43",),
    profiles=(ZERO_TRUST,),
    description=(
        "Images are referenced by digest, so the bytes that run are the bytes that were built, "
        "scanned and signed."
    ),
)
def image_digest(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    for c, image in _images(pod):
        if split_reference(image)[2] is None:
            yield Violation(
                f'container "{c.name}" image {image} is not pinned by digest', f"{c.pointer}/image"
            )


def _limit_check(pod: PodSpecView, resource: str) -> Iterator[Violation]:
    for c in pod.containers():
        if c.kind == "ephemeralContainers":
            continue  # the API forbids resources on ephemeral containers
        limits = as_dict(as_dict(c.data.get("resources")).get("limits"))
        if limits.get(resource) in (None, "", 0, "0"):
            yield Violation(
                f'container "{c.name}" has no {resource} limit',
                f"{c.pointer}/resources/limits/{resource}",
            )


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-028",
    controls=(nsa(NSA_RESOURCES), gdpr("32(1)(b)", note="availability and resilience")),
    title="Container has no CPU limit",
    severity=Severity.LOW,
    remediation="Set resources.limits.cpu on every container (and a LimitRange per namespace "
    "as a safety net).",
    references=("https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/",),
    aliases=("KSV-0011", "CKV_K8S_11"),
    profiles=(ZERO_TRUST,),
    description=(
        "Every container has a CPU limit, so one compromised pod (a crypto-miner) cannot take the"
        " node's CPU from its neighbours."
    ),
)
def cpu_limit(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    return _limit_check(pod, "cpu")


@ZERO_TRUST_CHECKS.pod_check(
    id="SKN-K8S-029",
    controls=(nsa(NSA_RESOURCES), gdpr("32(1)(b)", note="availability and resilience")),
    title="Container has no memory limit",
    severity=Severity.MEDIUM,
    remediation="Set resources.limits.memory on every container.",
    references=("https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/",),
    aliases=("KSV-0018", "CKV_K8S_13"),
    profiles=(ZERO_TRUST,),
    description=(
        "Every container has a memory limit, so one pod cannot drive the node out of memory and "
        "get its neighbours killed."
    ),
)
def memory_limit(pod: PodSpecView, ctx: CheckContext) -> Iterator[Violation]:
    return _limit_check(pod, "memory")


@ZERO_TRUST_CHECKS.object_check(
    id="SKN-K8S-030",
    controls=(
        nsa(NSA_NETWORK_POLICIES),
        cis("5.3.2"),
        GDPR_SECURITY,
        gdpr("32(2)", note="limits who can reach personal data"),
    ),
    title="Namespace has no default-deny NetworkPolicy",
    severity=Severity.HIGH,
    kinds=POD_TEMPLATE_PATHS,
    remediation="Add a NetworkPolicy with podSelector: {} and policyTypes [Ingress, Egress] and "
    "no rules to the workload's namespace, then allow the connections it needs explicitly "
    "(skanse fix --network-policies writes it).",
    references=(
        "https://kubernetes.io/docs/concepts/services-networking/network-policies/"
        "#default-policies",
    ),
    aliases=("CKV2_K8S_6",),
    profiles=(ZERO_TRUST,),
    fixable=True,
    per_namespace=True,
    description=(
        "Every namespace that runs workloads denies all ingress and egress by default: a "
        "NetworkPolicy in the same namespace selects every pod (`podSelector: {}`) and isolates "
        "both directions without allowing anything. A policy in another namespace never counts."
    ),
)
def namespace_default_deny(obj: K8sObject, ctx: CheckContext) -> Iterator[Violation]:
    namespace = ctx.cluster.namespace_of(obj)
    missing = [
        d for d in ("Ingress", "Egress") if d not in ctx.cluster.default_deny.get(namespace, ())
    ]
    if not missing:
        return
    # A namespace lacks the policy once, however many workloads it runs: each workload
    # reports it with the same message, naming how many are left open, and one is kept once
    # suppressions are known (per_namespace).
    members = ctx.cluster.workloads_by_namespace.get(namespace, ())
    pointer = "/metadata/namespace" if obj.namespace else "/metadata"
    affected = ""
    if len(members) > 1:
        affected = (
            f" ({len(members)} workloads in it are open, this one and {len(members) - 1} more)"
        )
    yield Violation(
        f'namespace "{namespace}" has no default-deny NetworkPolicy for '
        f"{' and '.join(missing)}{affected}",
        pointer,
    )
