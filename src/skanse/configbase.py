"""What every command needs of its settings before any is read: where .skanse.yaml is
(upward to the repository root, only files the caller or root owns), the loaded result, and
severity lists. Kept apart from `skanse.config` so that a run without a config file never
imports pydantic or pathspec (start-up time)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from skanse.model import Severity
from skanse.sources.files import CONFIG_FILE_NAMES

if TYPE_CHECKING:
    from skanse.config import ConfigFile, ConfigSuppression

__all__ = [
    "ConfigDiscovery",
    "LoadedConfig",
    "discover_config",
    "find_config",
    "parse_severities",
]


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    path: Path | None
    file: ConfigFile | None  # None: no file (every setting at its default)
    suppressions: tuple[ConfigSuppression, ...]

    @classmethod
    def empty(cls) -> LoadedConfig:
        return cls(None, None, ())


@dataclass(frozen=True, slots=True)
class ConfigDiscovery:
    path: Path | None  # the config file to use
    ignored: tuple[Path, ...] = ()  # files passed over: owned by another user


def _trusted(path: Path) -> bool:
    """Owned by the user running skanse or by root, as git's safe.directory asks of a
    repository: anyone else could plant suppressions for a tree they do not own."""
    try:
        owner = path.stat().st_uid
    except OSError:
        return False
    return owner in (0, os.geteuid())


def discover_config(start: str | Path) -> ConfigDiscovery:
    """The nearest .skanse.yaml at or above `start`, stopping at the repository root (the
    directory holding .git); files owned by another user than the caller or root are passed
    over and named in `ignored`."""
    here = Path(os.path.abspath(start))
    if not here.is_dir():
        here = here.parent
    ignored: list[Path] = []
    for directory in (here, *here.parents):
        for name in CONFIG_FILE_NAMES:
            candidate = directory / name
            if candidate.is_file():
                if _trusted(candidate):
                    return ConfigDiscovery(candidate, tuple(ignored))
                ignored.append(candidate)
        if (directory / ".git").exists():
            break
    return ConfigDiscovery(None, tuple(ignored))


def find_config(start: str | Path) -> Path | None:
    """The nearest trusted .skanse.yaml at or above `start` (see `discover_config`)."""
    return discover_config(start).path


def parse_severities(value: str | Sequence[str]) -> frozenset[Severity]:
    """`low` means LOW and above; `critical,high` (or a list) means exactly those."""
    names = [value] if isinstance(value, str) else list(value)
    parts = [p.strip() for name in names for p in name.split(",") if p.strip()]
    if not parts:
        raise ValueError("no severity given")
    severities = [Severity.parse(p) for p in parts]
    if len(severities) == 1 and isinstance(value, str) and "," not in value:
        return frozenset(s for s in Severity if s >= severities[0])
    return frozenset(severities)
