"""Routing parameters per network interface (SKN-HOST-044).

The kernel decides redirects, source routing, router advertisements and martian logging per
interface, from the interface's own value combined with `conf.all` (Documentation/
networking/ip-sysctl.rst; the IN_DEV_*CONF macros of include/linux/inetdevice.h):

    IPv4 send_redirects        on if `all` OR the interface is 1
    IPv4 accept_redirects      with forwarding on the interface: `all` AND the interface;
                               without: `all` OR the interface
    IPv4 accept_source_route   `all` AND the interface
    IPv4 log_martians          `all` OR the interface
    IPv6 accept_redirects      the interface's own value
    IPv6 accept_source_route   the smaller of `all` and the interface
    IPv6 accept_ra             the interface's own value: 1 unless the interface forwards,
                               2 even then

So `net.ipv4.conf.all.send_redirects = 0` alone leaves eth0 sending redirects when
eth0's own value is 1 (its default), and no `all` setting touches IPv6 redirects or router
advertisements. `default` is what a new interface starts with (a pod's veth, a VPN), so it is
checked as an interface too. The SKN-HOST-025..035 checks keep covering `all` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from skanse.checks._registry import CheckSet
from skanse.errors import FactNotApplicable
from skanse.host.checks.base import HostViolation, SysctlFix, host_check
from skanse.host.checks.sysctl import SYSCTL_CONTROLS
from skanse.host.facts import AuditContext, HostFacts
from skanse.host.sysctl import interface_key, key_path
from skanse.model import Severity

__all__ = ["INTERFACE_CHECKS", "INTERFACE_RULES", "InterfaceRule"]

INTERFACE_CHECKS = CheckSet(__name__)

# (all, interface, interface forwards) -> the value in force on the interface
Combine = Callable[[int, int, bool], int]


def _or(all_value: int, own: int, _forwarding: bool) -> int:
    return 1 if all_value > 0 or own > 0 else 0


def _and(all_value: int, own: int, _forwarding: bool) -> int:
    return 1 if all_value > 0 and own > 0 else 0


def _ipv4_accept_redirects(all_value: int, own: int, forwarding: bool) -> int:
    return _and(all_value, own, forwarding) if forwarding else _or(all_value, own, forwarding)


def _own(_all_value: int, own: int, _forwarding: bool) -> int:
    return own


def _smaller(all_value: int, own: int, _forwarding: bool) -> int:
    return min(all_value, own)


def _accept_ra(_all_value: int, own: int, forwarding: bool) -> int:
    return 1 if own >= 2 or (own == 1 and not forwarding) else 0


@dataclass(frozen=True, slots=True)
class InterfaceRule:
    family: int  # 4 or 6
    name: str  # the key under net.ipv{4,6}.conf.<interface>.
    want: int  # the value in force that is safe: 0, or 1 for log_martians
    combine: Combine
    why: str

    def safe(self, value: int) -> bool:
        return value >= 1 if self.want == 1 else value <= 0


INTERFACE_RULES: tuple[InterfaceRule, ...] = (
    InterfaceRule(4, "send_redirects", 0, _or, "sends ICMP redirects"),
    InterfaceRule(4, "accept_redirects", 0, _ipv4_accept_redirects, "accepts ICMP redirects"),
    InterfaceRule(4, "accept_source_route", 0, _and, "accepts source-routed packets"),
    InterfaceRule(4, "log_martians", 1, _or, "does not log packets with impossible addresses"),
    InterfaceRule(6, "accept_redirects", 0, _own, "accepts IPv6 redirects"),
    InterfaceRule(6, "accept_source_route", 0, _smaller, "accepts IPv6 source routing"),
    InterfaceRule(6, "accept_ra", 0, _accept_ra, "accepts router advertisements"),
)

_ETHERNET = "https://docs.kernel.org/networking/ip-sysctl.html"


def _interfaces(facts: HostFacts, family: int) -> list[str]:
    names = facts.root.listdir(f"/proc/sys/net/ipv{family}/conf")
    return [n for n in names if n != "all"]


def _value(facts: HostFacts, key: str) -> int | None:
    try:
        return facts.sysctls.running_int(key)
    except FactNotApplicable:
        return None


@host_check(
    INTERFACE_CHECKS,
    id="SKN-HOST-044",
    title="An interface accepts or sends redirects, source routes or router advertisements",
    severity=Severity.LOW,
    description="Redirects, source routing, router advertisements and martian logging are "
    "decided per interface, from its own value combined with `conf.all` (send_redirects is "
    "on if either is 1; IPv6 redirects and router advertisements look at the interface "
    "only). Every interface and `default` (what new interfaces, such as pod veths, start "
    "with) is checked with the kernel's own rule.",
    remediation="Set the interface's key and the `default` key in /etc/sysctl.d/ (the fix "
    "file lists each: `net.ipv4.conf.default.send_redirects = 0`, "
    "`net.ipv6.conf.eth0.accept_ra = 0`), then `sysctl --system`. Interfaces created later "
    "take `default`.",
    references=(_ETHERNET, "https://kspp.github.io/Recommended_Settings"),
    aliases=("KRNL-6000",),
    fixable=True,
    controls=SYSCTL_CONTROLS,
)
def interface_routing(facts: HostFacts, ctx: AuditContext) -> Iterator[HostViolation]:
    seen_family = False
    for family in (4, 6):
        interfaces = _interfaces(facts, family)
        if not interfaces:
            continue
        seen_family = True
        for rule in INTERFACE_RULES:
            if rule.family != family:
                continue
            all_value = _value(facts, f"net.ipv{family}.conf.all.{rule.name}")
            if all_value is None:
                continue
            for interface in interfaces:
                key = interface_key(family, interface, rule.name)
                own = _value(facts, key)
                if own is None:
                    continue
                forwarding = _value(facts, interface_key(family, interface, "forwarding")) or 0
                in_force = rule.combine(all_value, own, forwarding > 0)
                if rule.safe(in_force):
                    continue
                yield HostViolation(
                    f"{interface} {rule.why}: {key} is {own} and "
                    f"net.ipv{family}.conf.all.{rule.name} is {all_value}"
                    + ("; new interfaces start with this value" if interface == "default" else ""),
                    pointer=key,
                    file=key_path(key),
                    fix=SysctlFix(key, str(rule.want)),
                )
    if not seen_family:
        # no /proc/sys at all is "could not check"; a kernel without the keys is not
        # applicable (running() raises the one that fits)
        facts.sysctls.running("net.ipv4.conf.all.send_redirects")
        raise FactNotApplicable("no interfaces under /proc/sys/net/ipv4/conf")
