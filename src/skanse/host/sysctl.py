"""Kernel parameters: the running value under /proc/sys and the value set at boot.

The running value is what protects the host now; the boot-time value (systemd-sysctl and
`sysctl --system` read `/etc/sysctl.d`, `/run/sysctl.d`, `/usr/local/lib/sysctl.d`,
`/usr/lib/sysctl.d` and then `/etc/sysctl.conf`) is what it will be after the next reboot.
Both are reported, because "hardened now, reverted at boot" and the reverse are the
confusions users of other tools hit most (CISOfy/lynis#1024).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from skanse.errors import FactNotApplicable, FactUnavailable
from skanse.host.root import HostRoot

__all__ = [
    "SYSCTL_DIRS",
    "SysctlSetting",
    "Sysctls",
    "interface_key",
    "key_path",
    "normalize_key",
    "parse_sysctl_conf",
]

# In precedence order for files of the same name (systemd-sysctl, sysctl.d(5)).
SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"  # read last, so it wins


@dataclass(frozen=True, slots=True)
class SysctlSetting:
    """One `key = value` line of a sysctl configuration file."""

    key: str
    value: str
    file: str
    line: int


def normalize_key(key: str) -> str:
    """`net/ipv4/ip_forward` and `net.ipv4.ip_forward` name the same parameter. A slash
    form with dots (`net/ipv4/conf/eth0.100/rp_filter`: a VLAN interface) stays as it is,
    as sysctl(8) reads it."""
    key = key.strip()
    if "/" in key and "." not in key:
        return key.replace("/", ".")
    return key


def key_path(key: str) -> str:
    """Where a parameter lives: /proc/sys/net/ipv4/ip_forward."""
    key = normalize_key(key)
    if "/" in key:
        return "/proc/sys/" + key.lstrip("/")
    return "/proc/sys/" + key.replace(".", "/")


def interface_key(family: int, interface: str, name: str) -> str:
    """The key of an interface's parameter; the slash form when the name has a dot."""
    if "." in interface:
        return f"net/ipv{family}/conf/{interface}/{name}"
    return f"net.ipv{family}.conf.{interface}.{name}"


def parse_sysctl_conf(text: str, file: str) -> list[SysctlSetting]:
    """`key = value` lines; `#` and `;` comments; a leading `-` (ignore errors) is dropped.

    Lines without `=` are ignored, as sysctl does (it warns and goes on).
    """
    settings = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = normalize_key(key.lstrip("-"))
        if key:
            settings.append(SysctlSetting(key, value.strip(), file, number))
    return settings


class Sysctls:
    """Running and configured kernel parameters of one host root."""

    def __init__(self, root: HostRoot) -> None:
        self.root = root
        self._configured: list[SysctlSetting] | None = None
        self._config_problems: list[FactUnavailable] = []

    def running(self, key: str, absent_reason: str = "") -> str:
        """The value in /proc/sys; FactNotApplicable when this kernel has no such key."""
        path = key_path(key)
        try:
            return self.root.read_text(path, limit=65536).strip()
        except FileNotFoundError:
            pass
        if not self.root.is_dir("/proc/sys/kernel"):
            raise FactUnavailable(
                "no /proc/sys under the root: not a running Linux system (audit the node "
                "itself, or mount its /proc under the root)",
                path=path,
                kind="missing",
            )
        raise FactNotApplicable(absent_reason or self._absent_reason(key), path=path)

    def running_int(self, key: str, absent_reason: str = "") -> int:
        text = self.running(key, absent_reason)
        try:
            return int(text)
        except ValueError:
            raise FactUnavailable(
                f"expected an integer, read {text[:40]!r}", path=key_path(key), kind="parse"
            ) from None

    def _absent_reason(self, key: str) -> str:
        if key.startswith("net.ipv6."):
            cmdline = self.root.read_optional("/proc/cmdline", limit=65536) or ""
            if "ipv6.disable=1" in cmdline.split():
                return "IPv6 is disabled on the kernel command line (ipv6.disable=1)"
            return "the running kernel has no IPv6 support"
        return "the running kernel has no such parameter"

    def configured(self, key: str) -> SysctlSetting | None:
        """The setting that applies at boot (the last one read), if any file sets it."""
        chosen = None
        for setting in self._settings():
            if setting.key == key or ("*" in setting.key and fnmatch.fnmatch(key, setting.key)):
                chosen = setting
        return chosen

    def config_problems(self) -> list[FactUnavailable]:
        """Configuration files that exist but could not be read."""
        self._settings()
        return list(self._config_problems)

    def config_files(self) -> list[str]:
        """The files systemd-sysctl reads, in the order it applies them."""
        by_name: dict[str, str] = {}
        for directory in SYSCTL_DIRS:
            try:
                names = self.root.listdir(directory)
            except FactUnavailable as exc:
                self._config_problems.append(exc)
                continue
            for name in names:
                if name.endswith(".conf") and name not in by_name:
                    by_name[name] = f"{directory}/{name}"
        files = [by_name[name] for name in sorted(by_name)]
        files.append(SYSCTL_CONF)
        return files

    def _settings(self) -> list[SysctlSetting]:
        if self._configured is None:
            settings: list[SysctlSetting] = []
            for file in self.config_files():
                try:
                    text = self.root.read_optional(file, limit=1024 * 1024)
                except FactUnavailable as exc:
                    self._config_problems.append(exc)
                    continue
                if text is not None:
                    settings.extend(parse_sysctl_conf(text, file))
            self._configured = settings
        return self._configured
