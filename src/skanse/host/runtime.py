"""Container runtime facts: Docker's daemon.json and process, containerd's config.toml.

Like the kubelet, each daemon's configuration is found from its running process first
(`dockerd --config-file`, `containerd --config`), then at the usual path. Flags and the file
are combined (dockerd refuses a setting given in both, so there is nothing to rank).
"""

from __future__ import annotations

import json
import posixpath
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skanse.errors import FactNotApplicable, FactUnavailable, YamlError
from skanse.host.root import HostRoot
from skanse.sources.yamlpos import YamlDocument, escape_token, load_documents

__all__ = [
    "CONTAINERD_SOCKETS",
    "DOCKER_SOCKETS",
    "ContainerdFacts",
    "DockerFacts",
    "Process",
    "find_containerd",
    "find_docker",
    "processes_named",
]

DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"
DOCKER_SOCKETS = ("/run/docker.sock", "/var/run/docker.sock")
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CONTAINERD_SOCKETS = ("/run/containerd/containerd.sock",)


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    argv: tuple[str, ...]
    uid: int | None  # real uid from /proc/<pid>/status; None if unreadable
    parent: str  # basename of the parent's program, "" if unknown


def processes_named(root: HostRoot, *names: str) -> list[Process]:
    """Processes whose program (argv[0] basename) is one of `names`."""
    found = []
    table = dict(root.processes())
    for pid, argv in table.items():
        if posixpath.basename(argv[0]) not in names:
            continue
        entry = str(pid)
        uid = None
        ppid = ""
        try:
            status = root.read_text(f"/proc/{entry}/status", limit=65536)
            for line in status.splitlines():
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
                elif line.startswith("PPid:"):
                    ppid = line.split()[1]
        except (FileNotFoundError, FactUnavailable, ValueError, IndexError):
            pass
        parent_argv = table.get(int(ppid)) if ppid.isdigit() else None
        parent = posixpath.basename(parent_argv[0]) if parent_argv else ""
        found.append(Process(pid, argv, uid, parent))
    return found


def _flag_values(argv: Sequence[str], *names: str) -> list[str]:
    """Every value of a repeatable flag: `--host=x`, `--host x`, `-H x`."""
    values = []
    for i, token in enumerate(argv):
        for name in names:
            if token == name and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif token.startswith(name + "="):
                values.append(token[len(name) + 1 :])
    return values


def _has_flag(argv: Sequence[str], name: str) -> bool | None:
    """True/False for a boolean flag given on the command line, None when absent."""
    result = None
    for token in argv:
        if token == name:
            result = True
        elif token.startswith(name + "="):
            result = token.split("=", 1)[1].lower() in ("1", "t", "true")
    return result


# --- Docker --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DockerFacts:
    """What dockerd runs with: its daemon.json (with line numbers) and its flags."""

    daemon_json_path: str
    daemon_json: Mapping[str, Any]  # {} when there is no file
    lines: Mapping[str, int]  # top-level key -> line in daemon.json
    process: Process | None
    sockets: tuple[str, ...]
    rootless: bool | None  # None: no running daemon to tell

    def line(self, key: str) -> int:
        return self.lines.get(key, 1)

    def setting(self, key: str, flag: str) -> tuple[Any, str, int]:
        """(value, file, line) from the command line flag or daemon.json; value None if unset."""
        if self.process is not None:
            given = _flag_values(self.process.argv, flag)
            if given:
                return given[-1], f"/proc/{self.process.pid}/cmdline", 1
            boolean = _has_flag(self.process.argv, flag)
            if boolean is not None:
                return boolean, f"/proc/{self.process.pid}/cmdline", 1
        if key in self.daemon_json:
            return self.daemon_json[key], self.daemon_json_path, self.line(key)
        return None, self.daemon_json_path, 1

    def hosts(self) -> list[tuple[str, str, int]]:
        """Every socket dockerd listens on: (address, file, line)."""
        found: list[tuple[str, str, int]] = []
        if self.process is not None:
            cmdline = f"/proc/{self.process.pid}/cmdline"
            found += [(h, cmdline, 1) for h in _flag_values(self.process.argv, "-H", "--host")]
        hosts = self.daemon_json.get("hosts")
        if isinstance(hosts, list):
            found += [(str(h), self.daemon_json_path, self.line("hosts")) for h in hosts]
        elif isinstance(hosts, str):
            found.append((hosts, self.daemon_json_path, self.line("hosts")))
        return found


def _json_with_lines(root: HostRoot, path: str) -> tuple[dict[str, Any], dict[str, int]]:
    raw = root.read_bytes(path, limit=1024 * 1024)
    if not raw.strip():
        return {}, {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise FactUnavailable(f"not valid JSON: {exc}", path=path, kind="parse") from None
    if not isinstance(data, dict):
        raise FactUnavailable("must be a JSON object", path=path, kind="parse")
    lines: dict[str, int] = {}
    try:  # JSON is YAML: the positions table gives each top-level key its line
        for doc in load_documents(raw):
            if isinstance(doc, YamlDocument):
                for key in data:
                    lines[key] = doc.positions.get("/" + escape_token(key), (1, 1))[0]
    except YamlError:
        pass  # json accepted what YAML did not (tabs): lines stay unknown, values are fine
    return data, lines


def find_docker(root: HostRoot) -> DockerFacts:
    """Docker's configuration; FactNotApplicable when Docker is not on this host."""
    daemons = processes_named(root, "dockerd")
    process = daemons[0] if daemons else None
    sockets = tuple(s for s in DOCKER_SOCKETS if root.exists(s))
    path = DOCKER_DAEMON_JSON
    if process is not None:
        explicit = _flag_values(process.argv, "--config-file")
        if explicit:
            path = explicit[-1]
        elif process.uid not in (None, 0):
            home = _home_of(root, process.uid)
            if home:
                path = f"{home}/.config/docker/daemon.json"
    installed = (
        process is not None
        or sockets
        or root.exists(path)
        or root.exists("/usr/bin/dockerd")
        or root.exists("/usr/local/bin/dockerd")
    )
    if not installed:
        raise FactNotApplicable(
            "Docker is not installed here (no dockerd process, binary, socket or daemon.json)",
            path=path,
        )
    try:
        data, lines = _json_with_lines(root, path)
    except FileNotFoundError:
        data, lines = {}, {}
    rootless = None
    if process is not None:
        rootless = (process.uid is not None and process.uid != 0) or process.parent == (
            "rootlesskit"
        )
    return DockerFacts(path, data, lines, process, sockets, rootless)


def _home_of(root: HostRoot, uid: int) -> str | None:
    try:
        passwd = root.read_text("/etc/passwd", limit=4 * 1024 * 1024)
    except (FileNotFoundError, FactUnavailable):
        return None
    for line in passwd.splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[2] == str(uid):
            return parts[5]
    return None


# --- containerd ----------------------------------------------------------------------------

# Where the CRI settings live in each config version (containerd/containerd docs/cri/config.md).
_CRI_TABLES = {
    1: {"runtime": ("plugins", "cri"), "images": ("plugins", "cri"), "grpc": ("plugins", "cri")},
    2: {
        "runtime": ("plugins", "io.containerd.grpc.v1.cri"),
        "images": ("plugins", "io.containerd.grpc.v1.cri"),
        "grpc": ("plugins", "io.containerd.grpc.v1.cri"),
    },
    3: {
        "runtime": ("plugins", "io.containerd.cri.v1.runtime"),
        "images": ("plugins", "io.containerd.cri.v1.images"),
        "grpc": ("plugins", "io.containerd.grpc.v1.cri"),
    },
}


@dataclass(frozen=True, slots=True)
class ContainerdFacts:
    config_path: str
    config: Mapping[str, Any]  # {} when there is no file (containerd's defaults apply)
    text: str
    version: int
    process: Process | None
    sockets: tuple[str, ...]
    hosts_files: Mapping[str, str] = field(default_factory=dict)  # path -> text

    def table(self, which: str) -> Mapping[str, Any]:
        node: Any = self.config
        for key in _CRI_TABLES[self.version][which]:
            node = node.get(key, {}) if isinstance(node, Mapping) else {}
        return node if isinstance(node, Mapping) else {}

    def line_of(self, key: str) -> int:
        """The line that sets `key` (first `key =` in the file); 1 when it is not set."""
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.MULTILINE)
        match = pattern.search(self.text)
        return self.text.count("\n", 0, match.start()) + 1 if match else 1


def find_containerd(root: HostRoot) -> ContainerdFacts:
    """containerd's configuration; FactNotApplicable when containerd is not on this host."""
    daemons = processes_named(root, "containerd")
    process = daemons[0] if daemons else None
    path = CONTAINERD_CONFIG
    if process is not None:
        explicit = _flag_values(process.argv, "--config", "-c")
        if explicit:
            path = explicit[-1]
    sockets = tuple(s for s in CONTAINERD_SOCKETS if root.exists(s))
    text = root.read_optional(path, limit=1024 * 1024)
    installed = (
        process is not None
        or sockets
        or text is not None
        or root.exists("/usr/bin/containerd")
        or root.exists("/usr/local/bin/containerd")
    )
    if not installed:
        raise FactNotApplicable(
            "containerd is not installed here (no process, binary, socket or config.toml)",
            path=path,
        )
    config: dict[str, Any] = {}
    if text is not None:
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FactUnavailable(f"not valid TOML: {exc}", path=path, kind="parse") from None
    version = config.get("version", 1 if config else 3)
    if version not in _CRI_TABLES:
        raise FactUnavailable(
            f"unknown config version {version!r} (expected 1, 2 or 3)", path=path, kind="parse"
        )
    facts = ContainerdFacts(path, config, text or "", version, process, sockets)
    hosts: dict[str, str] = {}
    config_path = facts.table("images").get("registry", {})
    directory = config_path.get("config_path") if isinstance(config_path, Mapping) else None
    if isinstance(directory, str) and directory:
        for part in directory.split(":"):
            for name in root.listdir(part):
                hosts_toml = f"{part}/{name}/hosts.toml"
                content = root.read_optional(hosts_toml, limit=1024 * 1024)
                if content is not None:
                    hosts[hosts_toml] = content
    return ContainerdFacts(path, config, text or "", version, process, sockets, hosts)
