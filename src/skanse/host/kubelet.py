"""The kubelet's effective configuration: flags over the config file over the defaults.

Where the configuration comes from matters more than any single value, and it is where
kube-bench goes wrong most (aquasecurity/kube-bench#1256, #948, #852, #195): it reads the
first file of a fixed list. skanse reads the running kubelet's command line from
/proc/<pid>/cmdline, follows its `--config` (and `--config-dir` drop-ins), and only when no
kubelet runs falls back to the usual paths.

The defaults depend on whether a config file is used, exactly as in the kubelet
(cmd/kubelet/app/options/options.go, `NewKubeletConfiguration` and `applyLegacyDefaults`):
with a file, the KubeletConfiguration v1beta1 defaults apply (anonymous auth off, Webhook
authorization, read-only port 0); with flags only, the legacy command-line defaults apply
(anonymous auth on, AlwaysAllow, read-only port 10255): the misconfigured kubelet of the
crypto-miner story is simply a kubelet started without a config file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skanse.errors import FactNotApplicable, FactUnavailable, YamlError
from skanse.host.root import HostRoot
from skanse.host.systemd import unit_command
from skanse.sources.yamlpos import YamlDocument, escape_token, load_documents

__all__ = [
    "FIELDS",
    "USUAL_CONFIG_PATHS",
    "Field",
    "KubeletConfig",
    "Setting",
    "find_kubelet",
    "parse_flags",
]

# Where kubelet configs usually are when no kubelet is running to tell us (kubeadm, kops,
# EKS, GKE, AKS, RKE2 layouts).
USUAL_CONFIG_PATHS = (
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/config.yml",
    "/etc/kubernetes/kubelet-config.yaml",
    "/etc/kubernetes/kubelet/kubelet-config.json",
    "/etc/kubernetes/kubelet/config.json",
    "/home/kubernetes/kubelet-config.yaml",
    "/etc/default/kubeletconfig.json",
)


@dataclass(frozen=True, slots=True)
class Field:
    """One KubeletConfiguration field the audit looks at, with its flag and its defaults."""

    path: tuple[str, ...]  # in the config file: ("authentication", "anonymous", "enabled")
    flag: str | None  # on the command line: "--anonymous-auth"
    kind: type  # bool, int, str, list (of str) or dict (of str -> bool)
    file_default: Any  # v1beta1 default, when a config file is used
    flag_default: Any  # legacy default, when the kubelet runs on flags only

    @property
    def pointer(self) -> str:
        return "".join("/" + escape_token(p) for p in self.path)

    @property
    def name(self) -> str:
        return ".".join(self.path)


# Defaults: kubernetes/kubelet config/v1beta1/types.go field comments and the kubelet's
# applyLegacyDefaults (the four fields whose default differs without a config file).
FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field(("authentication", "anonymous", "enabled"), "--anonymous-auth", bool, False, True),
        Field(
            ("authentication", "webhook", "enabled"),
            "--authentication-token-webhook",
            bool,
            True,
            False,
        ),
        Field(("authentication", "x509", "clientCAFile"), "--client-ca-file", str, "", ""),
        Field(("authorization", "mode"), "--authorization-mode", str, "Webhook", "AlwaysAllow"),
        Field(("readOnlyPort",), "--read-only-port", int, 0, 10255),
        Field(("tlsCertFile",), "--tls-cert-file", str, "", ""),
        Field(("tlsPrivateKeyFile",), "--tls-private-key-file", str, "", ""),
        Field(("serverTLSBootstrap",), "--rotate-server-certificates", bool, False, False),
        Field(("rotateCertificates",), "--rotate-certificates", bool, False, False),
        Field(("tlsCipherSuites",), "--tls-cipher-suites", list, [], []),
        Field(("tlsMinVersion",), "--tls-min-version", str, "", ""),
        Field(("podPidsLimit",), "--pod-max-pids", int, -1, -1),
        Field(("seccompDefault",), "--seccomp-default", bool, False, False),
        Field(("protectKernelDefaults",), "--protect-kernel-defaults", bool, False, False),
        Field(("makeIPTablesUtilChains",), "--make-iptables-util-chains", bool, True, True),
        Field(("featureGates",), "--feature-gates", dict, {}, {}),
    )
}
_BOOL_FLAGS = frozenset(f.flag for f in FIELDS.values() if f.kind is bool and f.flag)
_FLAG_FIELDS = {f.flag: f for f in FIELDS.values() if f.flag}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True, slots=True)
class Setting:
    """A field's effective value and where it came from (for the finding's location)."""

    field: Field
    value: Any
    # "flag", "config", "file-default" (a config file is used) or "flag-default" (none is)
    source: str
    file: str  # /proc/<pid>/cmdline, the config file, or where the default applies
    line: int = 1

    @property
    def origin(self) -> str:
        if self.source == "flag":
            where = "the kubelet command line" if self.file.startswith("/proc/") else self.file
            return f"flag {self.field.flag} in {where}"
        if self.source == "config":
            return f"{self.field.name} in {self.file}:{self.line}"
        if self.source == "file-default":
            return f"{self.field.name} not set: the config-file default"
        return (
            f"{self.field.flag or self.field.name} not set and no config file: the "
            "command-line default"
        )


@dataclass(frozen=True, slots=True)
class KubeletConfig:
    """The effective configuration of one kubelet and how it was found."""

    pid: int | None
    flags: Mapping[str, str]
    config_file: str | None
    # a field whose value the kubelet would refuse holds the error, raised by get()
    settings: Mapping[str, Setting | FactUnavailable]
    how_found: str
    drop_ins: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def get(self, name: str) -> Setting:
        setting = self.settings[name]
        if isinstance(setting, FactUnavailable):
            raise setting
        return setting


def parse_flags(argv: Sequence[str]) -> dict[str, str]:
    """pflag's forms: `--f=v`, `--f v` (not for booleans), bare `--f` (true). Last one wins."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-") or token in ("-", "--"):
            continue
        name, eq, value = token.partition("=")
        if not name.startswith("--"):
            name = "-" + name.lstrip("-")
        if eq:
            pass
        elif name.startswith("--") and name not in _BOOL_FLAGS and i < len(argv):
            if not argv[i].startswith("-"):
                value = argv[i]
                i += 1
            else:
                value = "true"
        else:
            value = "true"
        if name == "--feature-gates" and name in flags:
            value = flags[name] + "," + value  # repeated --feature-gates accumulate
        flags[name] = value
    return flags


def _flag_value(fld: Field, text: str, where: str) -> Any:
    try:
        if fld.kind is bool:
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"not a boolean: {text!r}")
        if fld.kind is int:
            return int(text)
        if fld.kind is list:
            return [s.strip() for s in text.split(",") if s.strip()]
        if fld.kind is dict:
            gates: dict[str, bool] = {}
            for item in text.split(","):
                key, _, val = item.partition("=")
                if key.strip():
                    gates[key.strip()] = val.strip() in _TRUE
            return gates
        return text
    except ValueError as exc:
        raise FactUnavailable(f"kubelet flag {fld.flag}: {exc}", path=where, kind="parse") from None


def _config_value(fld: Field, value: Any, where: str) -> Any:
    """A config-file value checked against the field's type, as the kubelet's decoder does."""
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        str: isinstance(value, str),
        list: isinstance(value, list) and all(isinstance(v, str) for v in value),
        dict: isinstance(value, dict) and all(isinstance(v, bool) for v in value.values()),
    }[fld.kind]
    if not ok:
        raise FactUnavailable(
            f"{fld.name} has {type(value).__name__} value {value!r}; the kubelet expects "
            f"{fld.kind.__name__} and would refuse this file",
            path=where,
            kind="parse",
        )
    return value


def _lookup(data: Mapping[str, Any], path: tuple[str, ...], where: str) -> tuple[bool, Any]:
    """(found, value) of a field; a parent that is null or absent leaves it unset, as the
    kubelet's decoder does, but a parent of another type (`authentication: "x"`) is a file
    the kubelet would refuse: could not check, never "not set" and so the default."""
    node: Any = data
    for depth, key in enumerate(path):
        if node is None:
            return False, None
        if not isinstance(node, Mapping):
            parent = ".".join(path[:depth])
            raise FactUnavailable(
                f"{parent} has {type(node).__name__} value {node!r}; the kubelet expects a "
                "mapping and would refuse this file",
                path=where,
                kind="parse",
            )
        if key not in node:
            return False, None
        node = node[key]
    return True, node


def _load_config(root: HostRoot, path: str) -> YamlDocument:
    """A KubeletConfiguration file (YAML or JSON) with positions; problems raise."""
    raw = root.read_bytes(path)
    try:
        docs = list(load_documents(raw))
    except YamlError as exc:
        raise FactUnavailable(
            f"not valid YAML or JSON: {exc.diagnostics()}", path=path, kind="parse"
        ) from None
    docs_ok = [d for d in docs if isinstance(d, YamlDocument)]
    errors = [d for d in docs if isinstance(d, YamlError)]
    if errors:
        raise FactUnavailable(
            f"not a valid config: {errors[0].diagnostics()}", path=path, kind="parse"
        )
    if len(docs_ok) != 1 or not isinstance(docs_ok[0].data, dict):
        raise FactUnavailable("expected one KubeletConfiguration mapping", path=path, kind="parse")
    kind = docs_ok[0].data.get("kind")
    if kind is not None and kind != "KubeletConfiguration":
        raise FactUnavailable(
            f"kind is {kind!r}, not KubeletConfiguration", path=path, kind="parse"
        )
    return docs_ok[0]


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Drop-ins merge maps key by key; lists and scalars replace (the kubelet's behaviour)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _flag_origins(
    argv: Sequence[str], origins: Sequence[tuple[str, int]]
) -> dict[str, tuple[str, int]]:
    """Where each flag was written (the last occurrence wins, as its value does)."""
    found: dict[str, tuple[str, int]] = {}
    for token, origin in zip(argv, origins, strict=True):
        if token.startswith("-") and token not in ("-", "--"):
            found[token.partition("=")[0]] = origin
    return found


def _kubelet_processes(root: HostRoot) -> list[tuple[int, list[str]]]:
    found = []
    for pid, argv in root.processes():
        program = posixpath.basename(argv[0])
        if program == "kubelet":
            found.append((pid, list(argv[1:])))
        elif program == "hyperkube" and len(argv) > 1 and argv[1] == "kubelet":
            found.append((pid, list(argv[2:])))
    return found


def find_kubelet(root: HostRoot) -> KubeletConfig:
    """The running kubelet's effective configuration, else the one at a usual path.

    FactNotApplicable when there is no kubelet at all; FactUnavailable when its
    configuration cannot be read or parsed.
    """
    processes = _kubelet_processes(root)
    warnings: list[str] = []
    pid: int | None = None
    flags: dict[str, str] = {}
    flag_origins: dict[str, tuple[str, int]] = {}
    source_file = "<flags>"  # where the command line comes from
    config_path: str | None = None
    drop_in_dir: str | None = None
    if processes:
        pid, argv = processes[0]
        if len(processes) > 1:
            others = ", ".join(str(p) for p, _ in processes[1:])
            warnings.append(f"several kubelet processes; audited PID {pid} (also: {others})")
        flags = parse_flags(argv)
        source_file = f"/proc/{pid}/cmdline"
        config_path = flags.get("--config")
        drop_in_dir = flags.get("--config-dir")
        how = f"running kubelet, PID {pid}"
        for name in ("config_path", "drop_in_dir"):
            value = config_path if name == "config_path" else drop_in_dir
            if value and not value.startswith("/"):
                # the kubelet resolves relative paths against its working directory
                cwd = root.readlink(f"/proc/{pid}/cwd")
                value = posixpath.normpath(posixpath.join(cwd, value))
                if name == "config_path":
                    config_path = value
                else:
                    drop_in_dir = value
    else:
        unit = unit_command(root, "kubelet.service")
        if unit is not None and unit.argv and posixpath.basename(unit.argv[0]) == "kubelet":
            # not running (stopped, or a mounted image): what systemd would start
            flags = parse_flags(unit.argv[1:])
            flag_origins = _flag_origins(unit.argv[1:], unit.origins[1:])
            source_file = unit.unit_file
            config_path = flags.get("--config")
            drop_in_dir = flags.get("--config-dir")
            how = f"no kubelet running; command line from {unit.unit_file}"
        else:
            config_path = next((p for p in USUAL_CONFIG_PATHS if root.exists(p)), None)
            if config_path is None:
                raise FactNotApplicable(
                    "no kubelet runs here (none in /proc/*/cmdline), no kubelet.service unit "
                    "and no kubelet config at the usual paths",
                    path="/proc",
                )
            how = f"no kubelet running and no unit; config found at {config_path}"

    data: dict[str, Any] = {}
    positions: dict[str, tuple[str, int]] = {}  # pointer -> (file, line)
    if config_path:
        try:
            doc = _load_config(root, config_path)
        except FileNotFoundError:
            raise FactUnavailable(
                f"the kubelet's --config file {config_path} does not exist",
                path=config_path,
                kind="missing",
            ) from None
        assert isinstance(doc.data, dict)
        data = doc.data
        for pointer, (line, _col) in doc.positions.items():
            positions[pointer] = (config_path, line)
    drop_ins: list[str] = []
    if drop_in_dir:
        for name in root.listdir(drop_in_dir):
            if not name.endswith(".conf"):
                continue
            path = f"{drop_in_dir}/{name}"
            doc = _load_config(root, path)
            assert isinstance(doc.data, dict)
            data = _merge(data, doc.data)
            for pointer, (line, _col) in doc.positions.items():
                positions[pointer] = (path, line)
            drop_ins.append(path)

    uses_file = bool(config_path or drop_ins)
    settings: dict[str, Setting | FactUnavailable] = {}
    for name, fld in FIELDS.items():
        origin = flag_origins.get(fld.flag or "", (source_file, 1))
        try:
            settings[name] = _effective(fld, flags, data, positions, config_path, origin, uses_file)
        except FactUnavailable as exc:
            settings[name] = exc
    return KubeletConfig(
        pid=pid,
        flags=flags,
        config_file=config_path,
        settings=settings,
        how_found=how,
        drop_ins=tuple(drop_ins),
        warnings=tuple(warnings),
    )


def _effective(
    fld: Field,
    flags: Mapping[str, str],
    data: Mapping[str, Any],
    positions: Mapping[str, tuple[str, int]],
    config_path: str | None,
    origin: tuple[str, int],
    uses_file: bool,
) -> Setting:
    """One field's value: the flag, else the config file, else the applicable default."""
    if fld.flag and fld.flag in flags:
        value = _flag_value(fld, flags[fld.flag], origin[0])
        if fld.kind is dict:  # feature gates: flags are merged over the file's map
            found, file_value = _lookup(data, fld.path, config_path or "")
            if found:
                value = {**_config_value(fld, file_value, config_path or ""), **value}
        return Setting(fld, value, "flag", origin[0], origin[1])
    found, value = _lookup(data, fld.path, config_path or "")
    if found and value is not None:
        file, line = positions.get(fld.pointer, (config_path or "", 1))
        return Setting(fld, _config_value(fld, value, file), "config", file, line)
    if uses_file:
        return Setting(fld, fld.file_default, "file-default", config_path or "")
    return Setting(fld, fld.flag_default, "flag-default", origin[0], origin[1])
