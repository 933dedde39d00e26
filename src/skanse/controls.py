# ruff: noqa: E501  (control titles are data, quoted as the frameworks word them)
"""The compliance controls skanse's checks give evidence for, and how to cite them.

Each check names its controls next to its own metadata (`CheckMeta.controls`), built with the
helpers here (`cis("5.2.2")`, `pss("Privileged Containers")`, `nsa(NSA_NON_ROOT)`,
`gdpr("32(1)(b)")`); this module only holds the catalogue that a report needs to print them:
each framework's name, edition and address, and each control's title.

Editions and sources:
- CIS Kubernetes Benchmark v1.10.0: ids and titles as kube-bench's `cfg/cis-1.10`
  (policies.yaml section 5, node.yaml section 4.2) writes them.
- Pod Security Standards: the control names of the standard's baseline and restricted tables
  (kubernetes.io/docs/concepts/security/pod-security-standards/).
- NSA/CISA Kubernetes Hardening Guide v1.2 (August 2022): section titles; the guide has no
  control ids.
- GDPR (Regulation (EU) 2016/679) Article 32: the legal anchor, not a technical control; every
  mapping to it is approximate by nature (a technical check is evidence *towards* "appropriate
  technical measures", never proof of them).
"""

from __future__ import annotations

from dataclasses import dataclass

from skanse.model import ControlRef, Framework

__all__ = [
    "CONTROL_TITLES",
    "CROSSWALK",
    "FRAMEWORKS",
    "GDPR_SECURITY",
    "NSA_AUTH",
    "NSA_ENCRYPTION",
    "NSA_FILESYSTEM",
    "NSA_HARDENING",
    "NSA_IMAGES",
    "NSA_LOGGING",
    "NSA_NETWORK_POLICIES",
    "NSA_NON_ROOT",
    "NSA_POD_SECURITY",
    "NSA_RESOURCES",
    "NSA_SECRETS",
    "NSA_THREAT_DETECTION",
    "NSA_TOKENS",
    "NSA_UNVERIFIED",
    "NSA_UPGRADING",
    "NSM_VERIFIED",
    "FrameworkInfo",
    "cis",
    "crosswalk",
    "gdpr",
    "iso",
    "nsa",
    "nsm",
    "pss",
]


@dataclass(frozen=True, slots=True)
class FrameworkInfo:
    name: str
    edition: str
    url: str


FRAMEWORKS: dict[Framework, FrameworkInfo] = {
    Framework.ISO_27001: FrameworkInfo(
        "ISO/IEC 27001 Annex A (information security controls)",
        "2022",
        "https://www.iso.org/standard/27001",
    ),
    Framework.NSM: FrameworkInfo(
        "NSM Grunnprinsipper for IKT-sikkerhet",
        "2.0 (April 2020)",
        "https://nsm.no/regelverk-og-hjelp/rad-og-anbefalinger/grunnprinsipper-for-ikt-sikkerhet/",
    ),
    Framework.CIS_KUBERNETES: FrameworkInfo(
        "CIS Kubernetes Benchmark", "v1.10.0", "https://www.cisecurity.org/benchmark/kubernetes"
    ),
    Framework.PSS: FrameworkInfo(
        "Pod Security Standards",
        "Kubernetes v1.35",
        "https://kubernetes.io/docs/concepts/security/pod-security-standards/",
    ),
    Framework.NSA_CISA: FrameworkInfo(
        "NSA/CISA Kubernetes Hardening Guide",
        "v1.2 (August 2022)",
        "https://media.defense.gov/2022/Aug/29/2003066362/-1/-1/0/CTR_KUBERNETES_HARDENING_GUIDANCE_1.2_20220829.PDF",
    ),
    Framework.GDPR: FrameworkInfo(
        "GDPR Article 32 (security of processing)",
        "Regulation (EU) 2016/679",
        "https://eur-lex.europa.eu/eli/reg/2016/679/oj",
    ),
}

# NSA/CISA guide sections, cited as the guide writes them: "<chapter> > <section>" (the guide
# numbers pages, not sections). Checked against a transcription of the guide's text: the
# chapters and sections of v1.0 (August 2021) that v1.2 kept; the ones v1.1/v1.2 added or
# renamed (marked) could not be checked against the published v1.2 PDF here.
NSA_NON_ROOT = 'Kubernetes Pod security > "Non-root" containers and "rootless" container engines'
NSA_FILESYSTEM = "Kubernetes Pod security > Immutable container file systems"
NSA_IMAGES = "Kubernetes Pod security > Building secure container images"
NSA_POD_SECURITY = "Kubernetes Pod security > Pod security enforcement"  # v1.2 (not checked)
NSA_TOKENS = "Kubernetes Pod security > Protecting Pod service account tokens"
NSA_HARDENING = "Kubernetes Pod security > Hardening container environments"  # v1.2 (not checked)
NSA_NETWORK_POLICIES = "Network separation and hardening > Network policies"
NSA_RESOURCES = "Network separation and hardening > Resource policies"
NSA_ENCRYPTION = "Network separation and hardening > Encryption"
NSA_SECRETS = "Network separation and hardening > Secrets"
NSA_AUTH = "Authentication and authorization"
NSA_LOGGING = "Audit logging and threat detection > Logging"  # v1.1+ (not checked)
NSA_THREAT_DETECTION = (
    "Audit logging and threat detection > Threat detection"  # v1.1+ (not checked)
)
NSA_UPGRADING = "Upgrading and application security practices"
# The sections above whose wording could not be checked against the published v1.2 text.
NSA_UNVERIFIED = frozenset({NSA_POD_SECURITY, NSA_HARDENING, NSA_LOGGING, NSA_THREAT_DETECTION})

CONTROL_TITLES: dict[tuple[Framework, str], str] = {
    # CIS Kubernetes Benchmark v1.10.0, section 4.2 (kubelet) and 5 (policies)
    (Framework.CIS_KUBERNETES, "4.2.1"): "Ensure that the --anonymous-auth argument is set to false",
    (Framework.CIS_KUBERNETES, "4.2.2"): "Ensure that the --authorization-mode argument is not set to AlwaysAllow",
    (Framework.CIS_KUBERNETES, "4.2.3"): "Ensure that the --client-ca-file argument is set as appropriate",
    (Framework.CIS_KUBERNETES, "4.2.4"): "Verify that the --read-only-port argument is set to 0",
    (Framework.CIS_KUBERNETES, "4.2.5"): "Ensure that the --streaming-connection-idle-timeout argument is not set to 0",
    (Framework.CIS_KUBERNETES, "4.2.6"): "Ensure that the --make-iptables-util-chains argument is set to true",
    (Framework.CIS_KUBERNETES, "4.2.9"): "Ensure that the --tls-cert-file and --tls-private-key-file arguments are set as appropriate",
    (Framework.CIS_KUBERNETES, "4.2.10"): "Ensure that the --rotate-certificates argument is not set to false",
    (Framework.CIS_KUBERNETES, "4.2.12"): "Ensure that the Kubelet only makes use of Strong Cryptographic Ciphers",
    (Framework.CIS_KUBERNETES, "4.2.13"): "Ensure that a limit is set on pod PIDs",
    (Framework.CIS_KUBERNETES, "5.1.6"): "Ensure that Service Account Tokens are only mounted where necessary",
    (Framework.CIS_KUBERNETES, "5.2.2"): "Minimize the admission of privileged containers",
    (Framework.CIS_KUBERNETES, "5.2.3"): "Minimize the admission of containers wishing to share the host process ID namespace",
    (Framework.CIS_KUBERNETES, "5.2.4"): "Minimize the admission of containers wishing to share the host IPC namespace",
    (Framework.CIS_KUBERNETES, "5.2.5"): "Minimize the admission of containers wishing to share the host network namespace",
    (Framework.CIS_KUBERNETES, "5.2.6"): "Minimize the admission of containers with allowPrivilegeEscalation",
    (Framework.CIS_KUBERNETES, "5.2.7"): "Minimize the admission of root containers",
    (Framework.CIS_KUBERNETES, "5.2.8"): "Minimize the admission of containers with the NET_RAW capability",
    (Framework.CIS_KUBERNETES, "5.2.9"): "Minimize the admission of containers with added capabilities",
    (Framework.CIS_KUBERNETES, "5.2.10"): "Minimize the admission of containers with capabilities assigned",
    (Framework.CIS_KUBERNETES, "5.2.11"): "Minimize the admission of Windows HostProcess containers",
    (Framework.CIS_KUBERNETES, "5.2.12"): "Minimize the admission of HostPath volumes",
    (Framework.CIS_KUBERNETES, "5.2.13"): "Minimize the admission of containers which use HostPorts",
    (Framework.CIS_KUBERNETES, "5.3.2"): "Ensure that all Namespaces have NetworkPolicies defined",
    (Framework.CIS_KUBERNETES, "5.4.1"): "Prefer using Secrets as files over Secrets as environment variables",
    (Framework.CIS_KUBERNETES, "5.5.1"): "Configure Image Provenance using ImagePolicyWebhook admission controller",
    (Framework.CIS_KUBERNETES, "5.7.2"): "Ensure that the seccomp profile is set to docker/default in your Pod definitions",
    (Framework.CIS_KUBERNETES, "5.7.3"): "Apply SecurityContext to your Pods and Containers",
    # Pod Security Standards (baseline, then restricted)
    (Framework.PSS, "HostProcess"): "baseline: Windows pods must not run as HostProcess",
    (Framework.PSS, "Host Namespaces"): "baseline: sharing the host namespaces must be disallowed",
    (Framework.PSS, "Privileged Containers"): "baseline: privileged Pods disable most security mechanisms",
    (Framework.PSS, "Capabilities"): "baseline: adding capabilities beyond the default set must be disallowed",
    (Framework.PSS, "HostPath Volumes"): "baseline: HostPath volumes must be forbidden",
    (Framework.PSS, "Host Ports"): "baseline: HostPorts should be disallowed or restricted",
    (Framework.PSS, "Host Probes / Lifecycle Hooks"): "baseline: probes and lifecycle hooks must not target other hosts",
    (Framework.PSS, "AppArmor"): "baseline: the default AppArmor profile must not be overridden or disabled",
    (Framework.PSS, "SELinux"): "baseline: custom SELinux users or roles must not be set",
    (Framework.PSS, "/proc Mount Type"): "baseline: the default /proc masks are required",
    (Framework.PSS, "Seccomp"): "seccomp must not be Unconfined (baseline) and must be set (restricted)",
    (Framework.PSS, "Sysctls"): "baseline: only the safe subset of sysctls",
    (Framework.PSS, "Volume Types"): "restricted: only the listed non-core volume types",
    (Framework.PSS, "Privilege Escalation"): "restricted: privilege escalation must not be allowed",
    (Framework.PSS, "Running as Non-root"): "restricted: containers must run as non-root users",
    (Framework.PSS, "Running as Non-root user"): "restricted: containers must not set runAsUser to 0",
    (Framework.PSS, "Capabilities (restricted)"): "restricted: drop ALL, add back only NET_BIND_SERVICE",
    # NSA/CISA Kubernetes Hardening Guide v1.2
    (Framework.NSA_CISA, NSA_NON_ROOT): "run containers as non-root users; prefer rootless engines",
    (Framework.NSA_CISA, NSA_FILESYSTEM): "read-only root file systems where possible",
    (Framework.NSA_CISA, NSA_IMAGES): "minimal, scanned and trusted images from trusted repositories",
    (Framework.NSA_CISA, NSA_POD_SECURITY): "enforce pod security (Pod Security Admission restricted)",
    (Framework.NSA_CISA, NSA_TOKENS): "do not mount service account tokens that are not needed",
    (Framework.NSA_CISA, NSA_HARDENING): "hypervisor-backed or sandboxed isolation, kernel hardening",
    (Framework.NSA_CISA, NSA_NETWORK_POLICIES): "default-deny network policies, allow what is needed",
    (Framework.NSA_CISA, NSA_RESOURCES): "limits on CPU, memory and other resources",
    (Framework.NSA_CISA, NSA_ENCRYPTION): "encrypt traffic between components",
    (Framework.NSA_CISA, NSA_SECRETS): "keep secrets out of images and plain configuration",
    (Framework.NSA_CISA, NSA_AUTH): "authenticate every request; no anonymous or AlwaysAllow access",
    (Framework.NSA_CISA, NSA_LOGGING): "record what happens in the cluster and on its nodes",
    (Framework.NSA_CISA, NSA_THREAT_DETECTION): "alert on suspicious activity at run time",
    (Framework.NSA_CISA, NSA_UPGRADING): "apply security patches and updates promptly",
    # GDPR Article 32
    (Framework.GDPR, "32(1)(a)"): "the pseudonymisation and encryption of personal data",
    (Framework.GDPR, "32(1)(b)"): "ongoing confidentiality, integrity, availability and resilience of processing systems and services",
    (Framework.GDPR, "32(1)(c)"): "the ability to restore the availability and access to personal data in a timely manner in the event of a physical or technical incident",
    (Framework.GDPR, "32(1)(d)"): "a process for regularly testing, assessing and evaluating the effectiveness of the measures",
    (Framework.GDPR, "32(2)"): "account for the risks of unauthorised disclosure of, or access to, personal data",
    # ISO/IEC 27001:2022 Annex A (control numbers and titles as the standard's Table A.1)
    (Framework.ISO_27001, "A.5.15"): "Access control",
    (Framework.ISO_27001, "A.8.2"): "Privileged access rights",
    (Framework.ISO_27001, "A.8.5"): "Secure authentication",
    (Framework.ISO_27001, "A.8.6"): "Capacity management",
    (Framework.ISO_27001, "A.8.8"): "Management of technical vulnerabilities",
    (Framework.ISO_27001, "A.8.9"): "Configuration management",
    (Framework.ISO_27001, "A.8.15"): "Logging",
    (Framework.ISO_27001, "A.8.16"): "Monitoring activities",
    (Framework.ISO_27001, "A.8.20"): "Networks security",
    (Framework.ISO_27001, "A.8.22"): "Segregation of networks",
    (Framework.ISO_27001, "A.8.24"): "Use of cryptography",
    (Framework.ISO_27001, "A.8.25"): "Secure development life cycle",
    # NSM Grunnprinsipper for IKT-sikkerhet 2.0: principle numbers and titles (Norwegian)
    (Framework.NSM, "2.1"): "Ivareta sikkerhet i anskaffelses- og utviklingsprosesser",
    (Framework.NSM, "2.3"): "Ivareta en sikker konfigurasjon",
    (Framework.NSM, "2.4"): "Beskytt virksomhetens nettverk",
    (Framework.NSM, "2.5"): "Kontroller dataflyt",
    (Framework.NSM, "2.6"): "Ha kontroll på identiteter og tilganger",
    (Framework.NSM, "2.7"): "Beskytt data i ro og i transitt",
    (Framework.NSM, "3.1"): "Oppdag og fjern kjente sårbarheter og trusler",
    (Framework.NSM, "3.2"): "Etabler sikkerhetsovervåkning",
}  # fmt: skip

# Principle numbers of NSM's edition whose titles could be checked against its published
# table of contents (the rest are cited from the web edition's menu, not checked here).
NSM_VERIFIED = frozenset({"2.1", "2.3"})


def _ref(framework: Framework, control: str, approximate: bool, note: str) -> ControlRef:
    if (framework, control) not in CONTROL_TITLES:
        raise ValueError(f"unknown {framework.value} control {control!r}: add its title first")
    return ControlRef(framework, control, approximate, note)


def cis(control: str, *, approximate: bool = False, note: str = "") -> ControlRef:
    """A CIS Kubernetes Benchmark v1.10.0 recommendation (`5.2.2`)."""
    return _ref(Framework.CIS_KUBERNETES, control, approximate, note)


def pss(control: str, *, approximate: bool = False, note: str = "") -> ControlRef:
    """A Pod Security Standards control by its name in the standard (`Privileged Containers`)."""
    return _ref(Framework.PSS, control, approximate, note)


def nsa(section: str, *, approximate: bool = False, note: str = "") -> ControlRef:
    """A section of the NSA/CISA Kubernetes Hardening Guide v1.2 (the NSA_* constants)."""
    return _ref(Framework.NSA_CISA, section, approximate, note)


def gdpr(point: str, *, note: str = "") -> ControlRef:
    """A point of GDPR Article 32; always approximate (a legal duty, not a technical test)."""
    return _ref(Framework.GDPR, point, True, note)


def iso(control: str, *, approximate: bool = True, note: str = "") -> ControlRef:
    """An ISO/IEC 27001:2022 Annex A control (`A.8.9`); approximate unless said otherwise (an
    Annex A control is organisational as much as technical)."""
    return _ref(Framework.ISO_27001, control, approximate, note)


def nsm(principle: str, *, note: str = "") -> ControlRef:
    """A principle of NSM's Grunnprinsipper for IKT-sikkerhet (`2.3`); always approximate."""
    return _ref(Framework.NSM, principle, True, note)


# What each NSA/CISA section gives evidence for in the other catalogues. A check that cites
# a section cites these too (marked approximate, with the section as the reason), so the
# ISO/IEC 27001, NSM and GDPR views follow from one reviewed table instead of 60 checks.
CROSSWALK: dict[str, tuple[tuple[Framework, str], ...]] = {
    NSA_NON_ROOT: ((Framework.ISO_27001, "A.8.2"), (Framework.NSM, "2.3")),
    NSA_FILESYSTEM: ((Framework.ISO_27001, "A.8.9"), (Framework.NSM, "2.3")),
    NSA_IMAGES: (
        (Framework.ISO_27001, "A.8.8"),
        (Framework.ISO_27001, "A.8.25"),
        (Framework.NSM, "2.1"),
        (Framework.NSM, "3.1"),
    ),
    NSA_POD_SECURITY: ((Framework.ISO_27001, "A.8.9"), (Framework.NSM, "2.3")),
    NSA_TOKENS: ((Framework.ISO_27001, "A.8.2"), (Framework.ISO_27001, "A.8.5"), (Framework.NSM, "2.6")),
    NSA_HARDENING: ((Framework.ISO_27001, "A.8.9"), (Framework.NSM, "2.3")),
    NSA_NETWORK_POLICIES: (
        (Framework.ISO_27001, "A.8.20"),
        (Framework.ISO_27001, "A.8.22"),
        (Framework.NSM, "2.4"),
        (Framework.NSM, "2.5"),
    ),
    NSA_RESOURCES: ((Framework.ISO_27001, "A.8.6"), (Framework.NSM, "2.3")),
    NSA_ENCRYPTION: ((Framework.ISO_27001, "A.8.24"), (Framework.NSM, "2.7"), (Framework.GDPR, "32(1)(a)")),
    NSA_SECRETS: ((Framework.ISO_27001, "A.8.24"), (Framework.NSM, "2.7"), (Framework.GDPR, "32(1)(a)")),
    NSA_AUTH: ((Framework.ISO_27001, "A.5.15"), (Framework.ISO_27001, "A.8.5"), (Framework.NSM, "2.6")),
    NSA_LOGGING: ((Framework.ISO_27001, "A.8.15"), (Framework.NSM, "3.2")),
    NSA_THREAT_DETECTION: ((Framework.ISO_27001, "A.8.16"), (Framework.NSM, "3.2")),
    NSA_UPGRADING: ((Framework.ISO_27001, "A.8.8"), (Framework.NSM, "3.1")),
}  # fmt: skip


def crosswalk(refs: tuple[ControlRef, ...]) -> tuple[ControlRef, ...]:
    """`refs` plus what their NSA/CISA sections give evidence for elsewhere (not repeated)."""
    out = list(refs)
    seen = {(r.framework, r.control) for r in refs}
    for ref in refs:
        if ref.framework is not Framework.NSA_CISA:
            continue
        for framework, control in CROSSWALK.get(ref.control, ()):
            if (framework, control) in seen:
                continue
            seen.add((framework, control))
            out.append(_ref(framework, control, True, f"through NSA/CISA {ref.control}"))
    return tuple(out)


# Most technical checks: evidence towards 32(1)(b), never proof of it.
GDPR_SECURITY = gdpr("32(1)(b)", note="technical measure towards confidentiality and integrity")
