"""The command line a systemd unit would run, for daemons that are not running right now.

On a mounted node image (`--root /mnt/node`) or a node whose kubelet is stopped there is no
/proc/<pid>/cmdline to read; the unit says what it would be. kubeadm's drop-in is the usual
case:

    Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
    EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
    ExecStart=
    ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS

Units are read as systemd reads them (systemd.unit(5), systemd.service(5)): the unit file
from /etc, /run or /usr/lib (first found), then `<unit>.d/*.conf` drop-ins in name order; an
empty `ExecStart=` resets the command; `$VAR` expands to words, `${VAR}` to one word. Every
word of the result remembers the file and line it came from, so a finding can point there.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from skanse.errors import FactUnavailable
from skanse.host.root import HostRoot

__all__ = ["UnitCommand", "unit_command"]

_UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True, slots=True)
class UnitCommand:
    unit_file: str
    argv: tuple[str, ...]
    origins: tuple[tuple[str, int], ...]  # (file, line) of each word of argv


def _lines(text: str) -> list[tuple[int, str]]:
    """Logical lines with their first physical line number (backslash continuations)."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def _split(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError:  # an unbalanced quote: systemd would refuse the line; take words
        return value.split()


def _env_file(root: HostRoot, path: str, env: dict[str, tuple[str, str, int]]) -> None:
    text = root.read_optional(path, limit=1024 * 1024)
    if text is None:
        return
    for number, line in _lines(text):
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        words = _split(value)
        env[key.strip()] = (" ".join(words), path, number)


def unit_command(root: HostRoot, unit: str) -> UnitCommand | None:
    """The command `unit` would run, or None when there is no such unit or no ExecStart."""
    unit_file = next((f"{d}/{unit}" for d in _UNIT_DIRS if root.exists(f"{d}/{unit}")), None)
    drop_ins: dict[str, str] = {}
    for directory in reversed(_UNIT_DIRS):  # the same name in /etc masks /usr/lib
        for name in root.listdir(f"{directory}/{unit}.d"):
            if name.endswith(".conf"):
                drop_ins[name] = f"{directory}/{unit}.d/{name}"
    files = ([unit_file] if unit_file else []) + [drop_ins[n] for n in sorted(drop_ins)]
    env: dict[str, tuple[str, str, int]] = {}
    exec_start: tuple[str, str, int] | None = None
    for path in files:
        text = root.read_optional(path, limit=1024 * 1024)
        if text is None:
            continue
        for number, text_line in _lines(text):
            key, sep, value = text_line.strip().partition("=")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            if key == "Environment":
                for item in _split(value):
                    name, _, val = item.partition("=")
                    env[name] = (val, path, number)
            elif key == "EnvironmentFile":
                try:
                    _env_file(root, value.lstrip("-"), env)
                except FactUnavailable:
                    if not value.startswith("-"):
                        raise
            elif key == "ExecStart":
                exec_start = (value, path, number) if value else None
    if exec_start is None:
        return None
    command, file, line_no = exec_start
    argv: list[str] = []
    origins: list[tuple[str, int]] = []
    for word in _split(command.lstrip("-@:+!")):
        match = _VAR.fullmatch(word)
        if match:
            name = match.group(1) or match.group(2)
            value, vfile, vline = env.get(name, ("", file, line_no))
            words = [value] if match.group(1) and value else value.split()
            argv += words
            origins += [(vfile, vline)] * len(words)
            continue
        argv.append(_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ("", "", 0))[0], word))
        origins.append((file, line_no))
    return UnitCommand(unit_file or files[0], tuple(argv), tuple(origins))
