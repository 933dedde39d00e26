"""podman's and CRI-O's shared configuration (containers-common): containers.conf,
storage.conf and registries.conf, as the engines read them for root.

- containers.conf: /usr/share/containers/containers.conf (the distribution's defaults), then
  /etc/containers/containers.conf, then /etc/containers/containers.conf.d/*.conf in name
  order; a key set in a later file replaces the earlier value (containers.conf(5)).
- storage.conf: /etc/containers/storage.conf if it exists, else
  /usr/share/containers/storage.conf; one file, no merging (containers-storage.conf(5)).
- registries.conf: /etc/containers/registries.conf and registries.conf.d/*.conf; each
  `[[registry]]` table (version 2) or the `[registries.insecure]` list (version 1).
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from skanse.errors import FactNotApplicable, FactUnavailable
from skanse.host.root import HostRoot

__all__ = ["ContainersConf", "Setting", "find_containers_conf"]

CONTAINERS_CONF = (
    "/usr/share/containers/containers.conf",
    "/etc/containers/containers.conf",
)
CONTAINERS_CONF_D = "/etc/containers/containers.conf.d"
STORAGE_CONF = ("/etc/containers/storage.conf", "/usr/share/containers/storage.conf")
REGISTRIES_CONF = "/etc/containers/registries.conf"
REGISTRIES_CONF_D = "/etc/containers/registries.conf.d"
ENGINES = ("/usr/bin/podman", "/usr/local/bin/podman", "/usr/bin/crio", "/usr/local/bin/crio")
_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Setting:
    """A value and where it was set (the file and line; 0 when a built-in default)."""

    value: Any
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class _Toml:
    path: str
    text: str
    data: Mapping[str, Any]

    def line_of(self, key: str) -> int:
        match = re.search(rf"^\s*{re.escape(key)}\s*=", self.text, re.MULTILINE)
        return self.text.count("\n", 0, match.start()) + 1 if match else 1


@dataclass(frozen=True, slots=True)
class ContainersConf:
    containers_files: tuple[_Toml, ...]  # in the order they are read
    storage: _Toml | None
    registries: tuple[_Toml, ...]

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.containers_files)

    def containers(self, key: str) -> Setting | None:
        """`[containers] key` as the engine sees it: the last file that sets it wins."""
        found = None
        for conf in self.containers_files:
            table = conf.data.get("containers")
            if isinstance(table, Mapping) and key in table:
                found = Setting(table[key], conf.path, conf.line_of(key))
        return found

    def storage_option(self, key: str) -> Setting | None:
        """`[storage.options] key` of storage.conf (None when not set)."""
        if self.storage is None:
            return None
        storage = self.storage.data.get("storage")
        options = storage.get("options") if isinstance(storage, Mapping) else None
        if isinstance(options, Mapping) and key in options:
            return Setting(options[key], self.storage.path, self.storage.line_of(key))
        return None

    def insecure_registries(self) -> Iterator[tuple[str, str, int]]:
        """(registry, file, line) for each registry pulled from without TLS verification."""
        for conf in self.registries:
            for entry in conf.data.get("registry", []) or []:
                if isinstance(entry, Mapping) and entry.get("insecure") is True:
                    name = entry.get("location") or entry.get("prefix") or "?"
                    yield str(name), conf.path, conf.line_of("insecure")
            v1 = conf.data.get("registries")
            insecure = v1.get("insecure") if isinstance(v1, Mapping) else None
            names = insecure.get("registries") if isinstance(insecure, Mapping) else None
            for name in names if isinstance(names, list) else []:
                yield str(name), conf.path, conf.line_of("registries")


def _read(root: HostRoot, path: str) -> _Toml | None:
    text = root.read_optional(path, limit=_LIMIT)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FactUnavailable(f"not valid TOML: {exc}", path=path, kind="parse") from None
    return _Toml(path, text, data)


def _drop_ins(root: HostRoot, directory: str) -> list[str]:
    names = sorted(n for n in root.listdir(directory) if n.endswith(".conf"))
    return [posixpath.join(directory, n) for n in names]


def find_containers_conf(root: HostRoot) -> ContainersConf:
    """The merged configuration; FactNotApplicable when neither podman nor CRI-O (nor their
    configuration) is on this host."""
    containers = [
        conf
        for path in (*CONTAINERS_CONF, *_drop_ins(root, CONTAINERS_CONF_D))
        if (conf := _read(root, path)) is not None
    ]
    registries = [
        conf
        for path in (REGISTRIES_CONF, *_drop_ins(root, REGISTRIES_CONF_D))
        if (conf := _read(root, path)) is not None
    ]
    storage = next((s for p in STORAGE_CONF if (s := _read(root, p)) is not None), None)
    if not containers and not any(root.exists(p) for p in ENGINES):
        raise FactNotApplicable(
            "podman and CRI-O are not installed here (no binary, no containers.conf)",
            path=CONTAINERS_CONF[-1],
        )
    return ContainersConf(tuple(containers), storage, tuple(registries))
