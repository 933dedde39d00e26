"""Kernel parameter checks, one per sysctl, SKN-HOST-001 to SKN-HOST-043.

The table follows the host-hardening baseline the product was specified with (KSPP and CIS
through kernel-hardening-checker, Lynis' default.prf, the kubelet's protectKernelDefaults
values); tests/host/test_sysctl_baseline.py checks it row by row against that baseline, so a
drift in keys, order, recommended or accepted values fails the suite.

Profiles: `generic` is a plain hardened host. `k8s-node` accepts what a Kubernetes node needs
(forwarding, loose or no reverse-path filtering, unprivileged user namespaces), requires the
bridge netfilter hook, and checks the six values the kubelet insists on when
`protectKernelDefaults` is true (it refuses to start otherwise). `container-node` is the
generic profile less what container runtimes need: unprivileged user namespaces (rootless
Docker and Podman, `hostUsers: false`, user-namespaced builds) and IP forwarding (bridge
networking); the fix file of the generic profile warns before it turns them off.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from skanse.checks._registry import CheckSet
from skanse.controls import GDPR_SECURITY, NSA_HARDENING, nsa
from skanse.errors import FactNotApplicable, HostFactError
from skanse.host.checks.base import HostViolation, SysctlFix, host_check
from skanse.host.facts import AuditContext, HostFacts, HostProfile
from skanse.host.sysctl import key_path
from skanse.model import Severity

# Kernel hardening of the node that runs the containers: the guide's "hardening container
# environments" is about isolating containers from the host kernel, hence approximate.
SYSCTL_CONTROLS = (
    nsa(NSA_HARDENING, approximate=True, note="kernel parameters of the node"),
    GDPR_SECURITY,
)

__all__ = ["SYSCTL_CHECKS", "SYSCTL_CONTROLS", "SYSCTL_RULES", "Expect", "SysctlRule"]

SYSCTL_CHECKS = CheckSet(__name__)

_KSPP = "https://kspp.github.io/Recommended_Settings"
_KHC = "https://github.com/a13xp0p0v/kernel-hardening-checker"
_LYNIS = "https://cisofy.com/lynis/controls/KRNL-6000/"
_KERNEL_DOC = "https://docs.kernel.org/admin-guide/sysctl/"
_KUBELET = "https://kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1/"


@dataclass(frozen=True, slots=True)
class Expect:
    """The values accepted in one profile: one of `values`, or 1..`at_most`; `any` accepts all."""

    recommended: int
    values: frozenset[int] = frozenset()
    at_most: int | None = None
    any: bool = False
    severity: Severity | None = None  # overrides the rule's severity in this profile

    def accepts(self, value: int) -> bool:
        if self.any:
            return True
        if self.at_most is not None:
            return 0 < value <= self.at_most
        return value in self.values

    def describe(self) -> str:
        if self.any:
            return "any value"
        if self.at_most is not None:
            return f"1 to {self.at_most}"
        return " or ".join(str(v) for v in sorted(self.values))


def _one_of(recommended: int, *others: int, severity: Severity | None = None) -> Expect:
    return Expect(recommended, frozenset((recommended, *others)), severity=severity)


@dataclass(frozen=True, slots=True)
class SysctlRule:
    id: str
    key: str
    why: str
    severity: Severity
    generic: Expect | None  # None: not checked in this profile
    k8s: Expect | None
    lynis: bool = False  # part of Lynis' KRNL-6000 sysctl set
    kubelet: bool = False  # a value the kubelet requires with protectKernelDefaults
    absent: str = ""  # why the key may be missing (the feature is compiled out)
    container: Expect | None = None  # container-node; None: as generic
    # what the generic value breaks on a container host (said in the fix file)
    breaks: str = ""

    def expect(self, profile: HostProfile) -> Expect | None:
        if profile is HostProfile.K8S_NODE:
            return self.k8s
        if profile is HostProfile.CONTAINER_NODE and self.container is not None:
            return self.container
        return self.generic


def _rule(
    number: int,
    key: str,
    why: str,
    severity: Severity,
    generic: Expect | None,
    k8s: Expect | str | None = "same",
    *,
    lynis: bool = False,
    kubelet: bool = False,
    absent: str = "",
    container: Expect | None = None,
    breaks: str = "",
) -> SysctlRule:
    return SysctlRule(
        id=f"SKN-HOST-{number:03d}",
        key=key,
        why=why,
        severity=severity,
        generic=generic,
        k8s=generic if k8s == "same" else k8s,  # type: ignore[arg-type]
        lynis=lynis,
        kubelet=kubelet,
        absent=absent,
        container=container,
        breaks=breaks,
    )


_H, _M, _L, _I = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO
_KUBELET_ONLY = "the kubelet requires this value when protectKernelDefaults is on"

SYSCTL_RULES: tuple[SysctlRule, ...] = (
    _rule(1, "kernel.kptr_restrict", "kernel pointers in /proc are hidden, even from CAP_SYSLOG,"
          " so KASLR cannot be read off /proc/kallsyms", _M, _one_of(2, 1), lynis=True),
    _rule(2, "kernel.dmesg_restrict", "only CAP_SYSLOG may read the kernel log, which leaks "
          "addresses", _M, _one_of(1), lynis=True),
    _rule(3, "net.core.bpf_jit_harden", "the BPF JIT blinds constants for every user, against "
          "JIT spraying", _M, _one_of(2), lynis=True,
          absent="the kernel is built without the BPF JIT (CONFIG_BPF_JIT)"),
    _rule(4, "net.ipv4.tcp_syncookies", "SYN cookies keep the host reachable during a SYN "
          "flood", _M, _one_of(1), lynis=True),
    _rule(5, "kernel.unprivileged_bpf_disabled", "unprivileged users cannot call bpf(), whose "
          "verifier bugs are a recurring privilege escalation", _H, _one_of(1, 2), lynis=True),
    _rule(6, "kernel.perf_event_paranoid", "perf_event_open is restricted for unprivileged "
          "users", _L, _one_of(3, 2, 4), lynis=True),
    _rule(7, "kernel.yama.ptrace_scope", "processes cannot ptrace arbitrary processes of the "
          "same user", _L, _one_of(3, 1, 2), lynis=True,
          absent="the kernel is built without Yama (CONFIG_SECURITY_YAMA)"),
    _rule(8, "kernel.randomize_va_space", "full address space layout randomisation", _H,
          _one_of(2), lynis=True),
    _rule(9, "kernel.kexec_load_disabled", "the running kernel cannot be replaced with "
          "kexec_load", _M, _one_of(1),
          absent="the kernel is built without kexec (CONFIG_KEXEC_CORE)"),
    _rule(10, "kernel.modules_disabled", "no kernel modules can be loaded after boot", _L,
          _one_of(1), _one_of(1, severity=_I), lynis=True,
          absent="the kernel has no loadable modules (CONFIG_MODULES)"),
    _rule(11, "kernel.sysrq", "the magic SysRq key is disabled", _L, _one_of(0), lynis=True,
          absent="the kernel is built without magic SysRq (CONFIG_MAGIC_SYSRQ)"),
    _rule(12, "kernel.io_uring_disabled", "io_uring, a large source of privilege escalations, "
          "is disabled or limited to a group", _M, _one_of(2, 1),
          absent="the kernel has no io_uring switch (built without io_uring, or before 6.6)"),
    _rule(13, "kernel.oops_limit", "the kernel panics after a bounded number of oopses, "
          "against exploit brute force", _L, Expect(100, at_most=100)),
    _rule(14, "kernel.warn_limit", "the kernel panics after a bounded number of WARNs (0 is "
          "unlimited)", _L, Expect(100, at_most=100)),
    _rule(15, "vm.mmap_min_addr", "the low 64 KiB cannot be mapped, against NULL-pointer "
          "exploitation", _M, _one_of(65536)),
    _rule(16, "vm.unprivileged_userfaultfd", "unprivileged users cannot use userfaultfd to "
          "widen race windows", _M, _one_of(0)),
    _rule(17, "user.max_user_namespaces", "unprivileged user namespaces expose much kernel "
          "attack surface; container nodes need them (rootless runtimes, hostUsers: false)",
          _L, _one_of(0), Expect(0, any=True), container=Expect(0, any=True),
          breaks="0 breaks rootless Docker and Podman, user-namespaced pods (hostUsers: "
          "false) and unprivileged builds (buildah, BuildKit rootless)"),
    _rule(18, "dev.tty.ldisc_autoload", "TTY line disciplines are not autoloaded for "
          "unprivileged users", _L, _one_of(0), lynis=True),
    _rule(19, "dev.tty.legacy_tiocsti", "TIOCSTI cannot inject input into another terminal",
          _L, _one_of(0)),
    _rule(20, "fs.protected_symlinks", "symlinks in sticky world-writable directories are "
          "followed only by their owner", _M, _one_of(1), lynis=True),
    _rule(21, "fs.protected_hardlinks", "users cannot hard-link files they do not own", _M,
          _one_of(1), lynis=True),
    _rule(22, "fs.protected_fifos", "FIFOs in sticky directories cannot be spoofed", _L,
          _one_of(2), lynis=True),
    _rule(23, "fs.protected_regular", "O_CREAT cannot open others' files in sticky "
          "directories", _L, _one_of(2), lynis=True),
    _rule(24, "fs.suid_dumpable", "setuid programs do not dump core", _M, _one_of(0),
          lynis=True),
    _rule(25, "net.ipv4.conf.all.accept_redirects", "ICMP redirects are ignored (a route "
          "injection)", _L, _one_of(0), lynis=True),
    _rule(26, "net.ipv4.conf.default.accept_redirects", "ICMP redirects are ignored on new "
          "interfaces", _L, _one_of(0), lynis=True),
    _rule(27, "net.ipv6.conf.all.accept_redirects", "IPv6 redirects are ignored", _L,
          _one_of(0), lynis=True),
    _rule(28, "net.ipv4.conf.all.accept_source_route", "source-routed packets are dropped",
          _L, _one_of(0), lynis=True),
    _rule(29, "net.ipv6.conf.all.accept_source_route", "IPv6 source-routed packets are "
          "dropped", _L, _one_of(0), lynis=True),
    _rule(30, "net.ipv4.icmp_echo_ignore_broadcasts", "broadcast pings are ignored (smurf "
          "amplification)", _L, _one_of(1), lynis=True),
    _rule(31, "net.ipv4.icmp_ignore_bogus_error_responses", "bogus ICMP error responses are "
          "not logged", _I, _one_of(1), lynis=True),
    _rule(32, "net.ipv6.conf.all.accept_ra", "router advertisements are ignored (rogue "
          "routers); some clouds configure IPv6 through them", _L, _one_of(0)),
    _rule(33, "net.ipv4.conf.all.send_redirects", "the host sends no ICMP redirects; a node "
          "routes pod traffic but has no reason to redirect", _L, _one_of(0), lynis=True),
    _rule(34, "net.ipv4.conf.all.rp_filter", "reverse-path filtering drops spoofed source "
          "addresses; CNIs need it loose or off on their interfaces", _L, _one_of(1, 2),
          _one_of(1, 0, 2), lynis=True),
    _rule(35, "net.ipv4.conf.all.log_martians", "packets with impossible addresses are "
          "logged", _I, _one_of(1), lynis=True),
    _rule(36, "net.ipv4.ip_forward", "a plain host does not route; a Kubernetes node must "
          "(pod and bridge networking)", _L, _one_of(0), _one_of(1, severity=_M),
          container=_one_of(1, 0),
          breaks="0 cuts bridge-networked containers (docker0, podman, CNI bridges) off "
          "from everything outside the host"),
    _rule(37, "net.bridge.bridge-nf-call-iptables", "bridged pod traffic passes iptables, "
          "where kube-proxy and NetworkPolicy rules are", _M, None, _one_of(1),
          absent="br_netfilter is not loaded, so bridged traffic bypasses iptables "
          "(load it if the CNI uses a Linux bridge)"),
    _rule(38, "vm.overcommit_memory", _KUBELET_ONLY, _L, None, _one_of(1), kubelet=True),
    _rule(39, "vm.panic_on_oom", _KUBELET_ONLY, _L, None, _one_of(0), kubelet=True),
    _rule(40, "kernel.panic", _KUBELET_ONLY, _L, None, _one_of(10), kubelet=True),
    _rule(41, "kernel.panic_on_oops", _KUBELET_ONLY, _L, None, _one_of(1), kubelet=True),
    _rule(42, "kernel.keys.root_maxkeys", _KUBELET_ONLY, _L, None, _one_of(1000000),
          kubelet=True),
    _rule(43, "kernel.keys.root_maxbytes", _KUBELET_ONLY, _L, None, _one_of(25000000),
          kubelet=True),
)  # fmt: skip


def _make_check(rule: SysctlRule) -> None:
    references = [_KERNEL_DOC]
    if rule.kubelet:
        references.insert(0, _KUBELET)
    else:
        references += [_KSPP, _KHC]
    if rule.lynis:
        references.append(_LYNIS)
    if rule.generic is not None:
        value = rule.generic.recommended
    else:
        assert rule.k8s is not None
        value = rule.k8s.recommended

    @host_check(
        SYSCTL_CHECKS,
        id=rule.id,
        title=f"{rule.key} is not hardened",
        severity=rule.severity,
        description=f"{rule.key}: {rule.why}.",
        remediation=f"Set `{rule.key} = {value}` in /etc/sysctl.d/ and apply it with "
        "`sysctl --system` (or `skanse host audit --fix-file ... --apply`).",
        references=tuple(references),
        aliases=("KRNL-6000",) if rule.lynis else (),
        fixable=True,
        controls=SYSCTL_CONTROLS,
    )
    def check(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
        expect = rule.expect(ctx.profile)
        if expect is None:
            raise FactNotApplicable(
                f"{rule.key} is checked in the "
                f"{'k8s-node' if rule.generic is None else 'generic'} profile only",
                path=key_path(rule.key),
            )
        running = facts.sysctls.running_int(rule.key, rule.absent)
        severity = expect.severity or rule.severity
        if rule.kubelet:
            severity = _kubelet_severity(facts)
        fix = SysctlFix(
            rule.key,
            str(expect.recommended),
            rule.breaks if ctx.profile is HostProfile.GENERIC else "",
        )
        configured = facts.sysctls.configured(rule.key)
        at_boot = ""
        if configured is not None:
            at_boot = f"; set to {configured.value} at boot by {configured.file}:{configured.line}"
        expected = expect.describe()
        if expected != str(expect.recommended):
            expected += f" (recommended {expect.recommended})"
        why = ("because " if rule.kubelet else "so that ") + rule.why
        if not expect.accepts(running):
            hint = "" if configured is not None else "; no sysctl.d file sets it"
            yield HostViolation(
                f"{rule.key} is {running}, expected {expected} {why}{at_boot}{hint}",
                pointer=rule.key,
                severity=severity,
                file=key_path(rule.key),
                fix=fix,
            )
            return
        if configured is None:
            return
        try:
            boot_value = int(configured.value)
        except ValueError:
            boot_value = None
        if boot_value is None or not expect.accepts(boot_value):
            yield HostViolation(
                f"{rule.key} is {running} now but {configured.file}:{configured.line} sets "
                f"{configured.value} at boot, expected {expected} {why}",
                pointer=rule.key,
                severity=severity,
                file=configured.file,
                line=configured.line,
                fix=fix,
            )

    del check


def _kubelet_severity(facts: HostFacts) -> Severity:
    """MEDIUM when protectKernelDefaults is on (the kubelet will not start), else LOW."""
    try:
        protect = facts.kubelet().get("protectKernelDefaults").value
    except HostFactError:
        return Severity.LOW
    return Severity.MEDIUM if protect is True else Severity.LOW


for _r in SYSCTL_RULES:
    _make_check(_r)
