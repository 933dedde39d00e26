"""Kubelet checks (CIS Kubernetes Benchmark section 4.2), SKN-HOST-050 to SKN-HOST-060.

Each check reads the kubelet's *effective* value (flag over config file over the kubelet's
own default, see skanse.host.kubelet), names the CIS id of the benchmark in use, and points
at the file and line the value came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from skanse.checks._registry import CheckSet
from skanse.errors import FactNotApplicable, FactUnavailable
from skanse.host.checks.base import HostViolation, KubeletFix, host_check
from skanse.host.cis import STRONG_CIPHERS
from skanse.host.facts import AuditContext, HostFacts, HostProfile
from skanse.host.kubelet import KubeletConfig, Setting
from skanse.model import Severity

__all__ = ["CIS_IDS", "KUBELET_CHECKS"]

KUBELET_CHECKS = CheckSet(__name__)

_OLD = ("cis-1.23", "cis-1.24")
_NEW = ("cis-1.10", "cis-1.11", "cis-1.12")


def _ids(old: str | None, new: str | None, *, cis_1_10: str | None = "same") -> dict[str, str]:
    ids = {b: old for b in _OLD if old} | {b: new for b in _NEW if new}
    if cis_1_10 != "same":
        ids.pop("cis-1.10", None)
        if cis_1_10:
            ids["cis-1.10"] = cis_1_10
    return ids


# check id -> benchmark -> CIS control id (verified against kube-bench's cfg files in tests)
CIS_IDS: dict[str, dict[str, str]] = {
    "SKN-HOST-050": _ids("4.2.1", "4.2.1"),
    "SKN-HOST-051": _ids("4.2.2", "4.2.2"),
    "SKN-HOST-052": _ids("4.2.3", "4.2.3"),
    "SKN-HOST-053": _ids("4.2.4", "4.2.4"),
    "SKN-HOST-054": _ids("4.2.10", "4.2.9"),
    "SKN-HOST-055": _ids("4.2.11", "4.2.10"),
    "SKN-HOST-056": _ids("4.2.13", "4.2.12"),
    "SKN-HOST-057": _ids(None, "4.2.13"),
    "SKN-HOST-058": _ids(None, "4.2.14", cis_1_10=None),  # CIS 1.11 added seccomp-default
    "SKN-HOST-059": _ids("4.2.6", None),
    "SKN-HOST-060": _ids("4.2.7", "4.2.6"),
}

_CIS_URL = "https://www.cisecurity.org/benchmark/kubernetes"
_AUTH_DOC = "https://kubernetes.io/docs/reference/access-authn-authz/kubelet-authn-authz/"
_CONFIG_DOC = "https://kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1/"
_TLS_DOC = "https://kubernetes.io/docs/reference/access-authn-authz/kubelet-tls-bootstrapping/"


def _aliases(check_id: str) -> tuple[str, ...]:
    return tuple(f"CIS-{b.removeprefix('cis-')}-{i}" for b, i in CIS_IDS[check_id].items())


def _kubelet(facts: HostFacts, ctx: AuditContext) -> KubeletConfig:
    try:
        return facts.kubelet()
    except FactNotApplicable as exc:
        if ctx.profile is HostProfile.K8S_NODE:
            # a node is expected to have a kubelet: its absence is not a pass
            raise FactUnavailable(
                f"the k8s-node profile expects a kubelet: {exc.message}",
                path=exc.path,
                kind="missing",
            ) from None
        raise


def _cis(check_id: str, ctx: AuditContext) -> str:
    control = CIS_IDS[check_id].get(ctx.benchmark)
    if control is None:
        return f"[not in CIS {ctx.benchmark}]"
    return f"[CIS {ctx.benchmark} {control}]"


def _violation(
    check_id: str,
    ctx: AuditContext,
    setting: Setting,
    message: str,
    fix: KubeletFix | None,
    severity: Severity | None = None,
) -> HostViolation:
    return HostViolation(
        f"{_cis(check_id, ctx)} {message} ({setting.origin})",
        pointer=(setting.field.flag or "") if setting.source == "flag" else setting.field.pointer,
        severity=severity,
        file=setting.file,
        line=setting.line,
        fix=fix,
    )


def _kubelet_check(
    id: str,
    title: str,
    severity: Severity,
    description: str,
    remediation: str,
    references: tuple[str, ...],
) -> Callable[
    [Callable[[KubeletConfig, AuditContext], Iterator[HostViolation]]],
    Callable[[HostFacts, AuditContext], Iterator[HostViolation]],
]:
    """Register a check over the effective kubelet configuration."""

    def register(
        fn: Callable[[KubeletConfig, AuditContext], Iterator[HostViolation]],
    ) -> Callable[[HostFacts, AuditContext], Iterator[HostViolation]]:
        def run(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
            return fn(_kubelet(facts, ctx), ctx)

        host_check(
            KUBELET_CHECKS,
            id=id,
            title=title,
            severity=severity,
            description=description,
            remediation=remediation,
            references=(*references, _CIS_URL),
            aliases=_aliases(id),
            fixable=True,
        )(run)
        return run

    return register


@_kubelet_check(
    "SKN-HOST-050",
    "Kubelet allows anonymous requests",
    Severity.CRITICAL,
    "With anonymous authentication, anyone who reaches the kubelet's port 10250 is "
    "'system:anonymous'; with AlwaysAllow that means exec into every pod on the node.",
    "Set `authentication: anonymous: enabled: false` in the kubelet config (or "
    "`--anonymous-auth=false`) and restart the kubelet.",
    (_AUTH_DOC, _CONFIG_DOC),
)
def anonymous_auth(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("authentication.anonymous.enabled")
    if s.value is not False:
        yield _violation(
            "SKN-HOST-050",
            ctx,
            s,
            "anonymous authentication is enabled",
            KubeletFix(s.field.path, False),
        )


@_kubelet_check(
    "SKN-HOST-051",
    "Kubelet authorizes every request (AlwaysAllow)",
    Severity.CRITICAL,
    "AlwaysAllow lets any authenticated (or, with anonymous auth, any) client run commands "
    "in pods, read logs and secrets mounted on the node.",
    "Set `authorization: mode: Webhook` (with `authentication: webhook: enabled: true`) in "
    "the kubelet config, or `--authorization-mode=Webhook`.",
    (_AUTH_DOC, _CONFIG_DOC),
)
def authorization_mode(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("authorization.mode")
    modes = [m.strip() for m in str(s.value).split(",")]
    if "AlwaysAllow" in modes:
        yield _violation(
            "SKN-HOST-051",
            ctx,
            s,
            f"authorization mode is {s.value}",
            KubeletFix(s.field.path, "Webhook"),
        )


@_kubelet_check(
    "SKN-HOST-052",
    "Kubelet does not verify client certificates",
    Severity.HIGH,
    "Without a client CA the kubelet cannot authenticate the API server's client "
    "certificate, so certificate authentication of kubelet API callers is off.",
    "Set `authentication: x509: clientCAFile:` to the cluster CA (kubeadm: "
    "/etc/kubernetes/pki/ca.crt) or `--client-ca-file`.",
    (_AUTH_DOC, _CONFIG_DOC),
)
def client_ca(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("authentication.x509.clientCAFile")
    if not s.value:
        yield _violation("SKN-HOST-052", ctx, s, "no client CA file is set", None)


@_kubelet_check(
    "SKN-HOST-053",
    "Kubelet read-only port is open",
    Severity.HIGH,
    "The read-only port (10255) serves pod specs, environment and metrics without any "
    "authentication; miners and attackers scan for it.",
    "Set `readOnlyPort: 0` in the kubelet config (or `--read-only-port=0`).",
    (_CONFIG_DOC,),
)
def read_only_port(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("readOnlyPort")
    if s.value != 0:
        yield _violation(
            "SKN-HOST-053",
            ctx,
            s,
            f"the unauthenticated read-only port {s.value} is open",
            KubeletFix(s.field.path, 0),
        )


@_kubelet_check(
    "SKN-HOST-054",
    "Kubelet serves a self-signed certificate",
    Severity.MEDIUM,
    "Without tlsCertFile/tlsPrivateKeyFile or serverTLSBootstrap the kubelet generates a "
    "self-signed serving certificate that the API server cannot verify.",
    "Set `serverTLSBootstrap: true` (certificates signed by the cluster CA and rotated), or "
    "`tlsCertFile` and `tlsPrivateKeyFile`.",
    (_TLS_DOC, _CONFIG_DOC),
)
def serving_certificate(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    cert, key = kc.get("tlsCertFile"), kc.get("tlsPrivateKeyFile")
    bootstrap = kc.get("serverTLSBootstrap")
    if bootstrap.value is True:
        gates = kc.get("featureGates").value
        if isinstance(gates, Mapping) and gates.get("RotateKubeletServerCertificate") is False:
            yield _violation(
                "SKN-HOST-054",
                ctx,
                kc.get("featureGates"),
                "serverTLSBootstrap is on but the RotateKubeletServerCertificate feature gate "
                "is off",
                None,
            )
        return
    if cert.value and key.value:
        return
    missing = cert if not cert.value else key
    yield _violation(
        "SKN-HOST-054",
        ctx,
        missing,
        "neither serverTLSBootstrap nor a serving certificate and key is set: the kubelet "
        "serves a self-signed certificate",
        KubeletFix(bootstrap.field.path, True),
    )


@_kubelet_check(
    "SKN-HOST-055",
    "Kubelet client certificate is not rotated",
    Severity.MEDIUM,
    "rotateCertificates defaults to false: the kubelet keeps its client certificate until it "
    "expires and the node drops out of the cluster, or someone copies a long-lived key.",
    "Set `rotateCertificates: true` in the kubelet config (or `--rotate-certificates`).",
    (_TLS_DOC, _CONFIG_DOC),
)
def rotate_certificates(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("rotateCertificates")
    if s.value is not True:
        yield _violation(
            "SKN-HOST-055",
            ctx,
            s,
            "client certificate rotation is off",
            KubeletFix(s.field.path, True),
        )


@_kubelet_check(
    "SKN-HOST-056",
    "Kubelet accepts weak TLS cipher suites",
    Severity.LOW,
    "Unset, the kubelet uses Go's default TLS 1.2 suites, which include CBC-mode suites with "
    "SHA-1; listed suites outside the forward-secret AEAD set are weaker still.",
    "Set `tlsCipherSuites` to forward-secret AEAD suites (TLS_ECDHE_*_WITH_AES_*_GCM_*, "
    "TLS_ECDHE_*_WITH_CHACHA20_POLY1305), or `tlsMinVersion: VersionTLS13`.",
    (_CONFIG_DOC,),
)
def cipher_suites(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    if kc.get("tlsMinVersion").value == "VersionTLS13":
        return  # TLS 1.3 suites are fixed and strong; the list only applies to TLS 1.2
    s = kc.get("tlsCipherSuites")
    suites: list[Any] = list(s.value)
    # TLS 1.3 names are accepted in the list but mean nothing there: the fix omits them
    fix = KubeletFix(s.field.path, sorted(c for c in STRONG_CIPHERS if c.startswith("TLS_ECDHE_")))
    if not suites:
        yield _violation(
            "SKN-HOST-056",
            ctx,
            s,
            "no cipher suites are set: Go's defaults include CBC/SHA-1 suites",
            fix,
        )
        return
    weak = [c for c in suites if c not in STRONG_CIPHERS]
    if weak:
        yield _violation(
            "SKN-HOST-056", ctx, s, f"weak cipher suites allowed: {', '.join(weak)}", fix
        )


@_kubelet_check(
    "SKN-HOST-057",
    "Kubelet sets no per-pod PID limit",
    Severity.MEDIUM,
    "Without podPidsLimit one pod can fork until the node runs out of PIDs (fork bombs, "
    "runaway miners), starving the kubelet and every other pod.",
    "Set `podPidsLimit` to a positive value (for example 4096) in the kubelet config, or "
    "`--pod-max-pids`.",
    (_CONFIG_DOC, "https://kubernetes.io/docs/concepts/policy/pid-limiting/"),
)
def pod_pids_limit(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("podPidsLimit")
    if not (isinstance(s.value, int) and s.value > 0):
        yield _violation(
            "SKN-HOST-057",
            ctx,
            s,
            f"podPidsLimit is {s.value} (unlimited)",
            KubeletFix(s.field.path, 4096),
        )


@_kubelet_check(
    "SKN-HOST-058",
    "Kubelet runs pods without a seccomp profile by default",
    Severity.MEDIUM,
    "With seccompDefault false, every pod that names no seccomp profile runs Unconfined: "
    "all syscalls, including the ones container escapes use.",
    "Set `seccompDefault: true` in the kubelet config (or `--seccomp-default`): pods get the "
    "runtime's default profile.",
    (_CONFIG_DOC, "https://kubernetes.io/docs/tutorials/security/seccomp/"),
)
def seccomp_default(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("seccompDefault")
    if s.value is not True:
        yield _violation(
            "SKN-HOST-058",
            ctx,
            s,
            "seccompDefault is false: pods without a profile run Unconfined",
            KubeletFix(s.field.path, True),
        )


@_kubelet_check(
    "SKN-HOST-059",
    "Kubelet does not protect kernel defaults",
    Severity.LOW,
    "With protectKernelDefaults the kubelet refuses to start when kernel tunables differ from "
    "what it expects, instead of silently changing them.",
    "Set the six kernel values the kubelet expects (see SKN-HOST-038 to 043), then "
    "`protectKernelDefaults: true`.",
    (_CONFIG_DOC,),
)
def protect_kernel_defaults(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("protectKernelDefaults")
    if s.value is not True:
        yield _violation(
            "SKN-HOST-059",
            ctx,
            s,
            "protectKernelDefaults is false",
            KubeletFix(s.field.path, True),
        )


@_kubelet_check(
    "SKN-HOST-060",
    "Kubelet does not manage its iptables chains",
    Severity.LOW,
    "With makeIPTablesUtilChains false the kubelet does not keep its KUBE-FIREWALL chains, "
    "which drop martian traffic to localhost services.",
    "Remove `makeIPTablesUtilChains: false` (the default is true) or set it to true.",
    (_CONFIG_DOC,),
)
def iptables_util_chains(kc: KubeletConfig, ctx: AuditContext) -> Iterator[HostViolation]:
    s = kc.get("makeIPTablesUtilChains")
    if s.value is not True:
        yield _violation(
            "SKN-HOST-060",
            ctx,
            s,
            "makeIPTablesUtilChains is false",
            KubeletFix(s.field.path, True),
        )
