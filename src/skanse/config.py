"""`.skanse.yaml`: settings that mirror the long flags, and suppressions with a reason.

Precedence is flags > `SKANSE_*` environment variables > the file > defaults, per setting.
The file is found by walking up from the first target to the repository root (the first
directory holding `.git`) or the filesystem root; `--config` or `SKANSE_CONFIG` name it
explicitly and `--no-config` ignores it.

    # .skanse.yaml
    profile: zero-trust            # pss-baseline | pss-restricted | zero-trust
    pss: restricted@v1.30          # level and policy version of the Pod Security part
    severity: low                  # report findings at or above (or a list: [critical, high])
    fail-on: high                  # exit 1 only for findings at or above
    suppressions:
      - id: SKN-K8S-027            # a check id or a peer's alias (CKV_K8S_43), or a list
        paths: ["legacy/**"]        # gitignore-style patterns relative to this file
        resource: {kind: Deployment, namespace: web, name: api}
        reason: "pinned by the deploy pipeline, not in the manifest"
      - id: CVE-2023-32681          # vulnerabilities: an advisory id or any of its aliases
        purl: pkg:pypi/requests     # only this package (any version unless one is given)
        reason: "we never send Proxy-Authorization"
        expires: 2027-03-31         # stops applying after that day, with a warning
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pathspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skanse.configbase import (
    ConfigDiscovery,
    LoadedConfig,
    discover_config,
    find_config,
    parse_severities,
)
from skanse.errors import ConfigError, SkanseError, YamlError
from skanse.model import CheckID, Finding, Suppression, SuppressionSource
from skanse.sources.yamlpos import Limits, YamlDocument, join_pointer, load_documents

__all__ = [
    "ConfigDiscovery",
    "ConfigFile",
    "ConfigSuppression",
    "LoadedConfig",
    "discover_config",
    "find_config",
    "load_config",
    "parse_severities",
    "read_settings_file",
]

_MAX_SETTINGS_BYTES = 1024 * 1024
_SETTINGS_LIMITS = Limits(max_depth=20, max_nodes=100_000)
_Settings = TypeVar("_Settings", bound=BaseModel)


def read_settings_file(
    path: Path,
    model: type[_Settings],
    *,
    what: str,
    error: Callable[..., SkanseError] = ConfigError,
) -> tuple[_Settings, YamlDocument | None]:
    """One small YAML settings file (`what`: "config file", "policy file"...) validated by
    `model`, with the document for line numbers. Size (1 MiB), depth and node count are
    bounded; an empty file is an empty mapping. Every problem raises `error(message,
    path=...)`, a bad value with its line."""
    try:
        size = path.stat().st_size
        if size > _MAX_SETTINGS_BYTES:
            raise error(f"{what} is {size} bytes; the limit is 1 MiB", path=str(path))
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", path=str(path)) from None
    try:
        documents = list(load_documents(data, limits=_SETTINGS_LIMITS))
    except YamlError as exc:
        raise error(f"invalid YAML: {exc.diagnostics()}", path=str(path)) from None
    for item in documents:
        if isinstance(item, YamlError):
            raise error(f"invalid YAML: {item.diagnostics()}", path=str(path))
    docs = [d for d in documents if isinstance(d, YamlDocument)]
    if len(docs) > 1:
        raise error("expected one YAML document", path=str(path))
    doc = docs[0] if docs else None
    raw: object = doc.data if doc is not None and doc.data is not None else {}
    if not isinstance(raw, dict):
        raise error("the top level must be a mapping of settings", path=str(path))
    try:
        return model.model_validate(raw), doc
    except ValidationError as exc:
        raise error(_explain(exc, doc), path=str(path)) from None


class ResourceSelector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str | None = None
    namespace: str | None = None
    name: str | None = None


class SuppressionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | list[str] = Field(description="Check id(s) or peer aliases; '*' for every check")
    paths: list[str] = Field(default_factory=list, description="gitignore-style patterns")
    resource: ResourceSelector | None = None
    purl: str | None = Field(
        default=None,
        description="vulnerabilities: only this package (a purl; without a version, any version)",
    )
    reason: str = Field(min_length=1, description="Why this is accepted; required")
    expires: dt.date | None = Field(default=None, description="Last day it applies")

    @field_validator("reason")
    @classmethod
    def _reason_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason must say why the finding is accepted")
        return value.strip()


class ConfigFile(BaseModel):
    """The schema of `.skanse.yaml` (`skanse config schema` prints it as JSON Schema)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    profile: str | None = None
    pss: str | None = None
    severity: str | list[str] | None = None
    fail_on: str | None = Field(default=None, alias="fail-on")
    format: str | None = None
    output: str | None = None
    exit_zero: bool | None = Field(default=None, alias="exit-zero")
    strict: bool | None = None
    allow_unchecked: bool | None = Field(default=None, alias="allow-unchecked")
    render: bool | None = None
    namespace: str | None = None
    type: str | None = None
    enable: list[str] | str | None = None
    disable: list[str] | str | None = None
    max_file_size: int | None = Field(default=None, alias="max-file-size", gt=0)
    suppressions: list[SuppressionEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConfigSuppression:
    """A suppression entry, ready to match findings."""

    ids: tuple[str, ...]
    reason: str
    origin: str
    expires: dt.date | None
    base_dir: Path
    paths: pathspec.PathSpec[Any] | None
    kind: str | None
    namespace: str | None
    name: str | None
    purl: str | None = None

    def suppression(self) -> Suppression:
        return Suppression(SuppressionSource.CONFIG, self.reason, self.origin, self.expires)

    def matches(self, finding: Finding, resolve: Callable[[str], list[CheckID]]) -> bool:
        if "*" not in self.ids and not any(finding.check_id in resolve(i) for i in self.ids):
            return False
        resource = finding.resource
        for wanted, actual in (
            (self.kind, resource.kind),
            (self.namespace, resource.namespace),
            (self.name, resource.name),
        ):
            if wanted is not None and wanted != actual:
                return False
        if self.purl is not None and not (
            resource.kind == "package" and _purl_covers(self.purl, resource.name)
        ):
            return False
        if self.paths is None:
            return True
        if finding.location.file.startswith("<"):  # standard input has no path
            return False
        try:
            relative = Path(os.path.abspath(finding.location.file)).relative_to(self.base_dir)
        except ValueError:
            return False
        return self.paths.match_file(relative.as_posix())


def load_config(path: Path) -> LoadedConfig:
    """Read and validate a config file; any problem is a ConfigError naming file and line."""
    parsed, doc = read_settings_file(path, ConfigFile, what="config file")
    base = path.parent.resolve()
    suppressions = []
    for index, entry in enumerate(parsed.suppressions):
        line = doc.position(join_pointer("/suppressions", index))[0] if doc is not None else 1
        ids = (entry.id,) if isinstance(entry.id, str) else tuple(entry.id)
        suppressions.append(
            ConfigSuppression(
                ids=tuple(i.strip() for i in ids),
                reason=entry.reason,
                origin=f"{path}:{line}",
                expires=entry.expires,
                base_dir=base,
                paths=pathspec.GitIgnoreSpec.from_lines(entry.paths) if entry.paths else None,
                kind=entry.resource.kind if entry.resource else None,
                namespace=entry.resource.namespace if entry.resource else None,
                name=entry.resource.name if entry.resource else None,
                purl=entry.purl,
            )
        )
    return LoadedConfig(path, parsed, tuple(suppressions))


def _purl_covers(pattern: str, purl: str) -> bool:
    """`pkg:pypi/requests` covers every version of it; qualifiers never count; names are
    compared as their ecosystem compares them, as VEX products are (PEP 503 for PyPI, `-`
    and `_` alike for crates.io, case for npm and Maven): folding `.`, `_` and `-` in every
    ecosystem let a suppression of `pkg:npm/lodash.merge` cover `pkg:npm/lodash-merge`,
    another package."""
    from packageurl import PackageURL

    from skanse.vuln.ecosystems import ecosystem_of_purl_type, normalise_name

    try:
        want, have = PackageURL.from_string(pattern), PackageURL.from_string(purl)
    except ValueError:
        return False

    def name(p: PackageURL) -> tuple[str, str, str]:
        ecosystem = ecosystem_of_purl_type(p.type) or p.type
        return (p.type.lower(), (p.namespace or "").lower(), normalise_name(ecosystem, p.name))

    return name(want) == name(have) and want.version in (None, have.version)


def _explain(exc: ValidationError, doc: YamlDocument | None) -> str:
    lines = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        pointer = join_pointer("", *[str(p) if not isinstance(p, int) else p for p in loc])
        where = ".".join(str(p) for p in loc) or "(top level)"
        line = f"line {doc.position(pointer)[0]}: " if doc is not None else ""
        lines.append(f"{line}{where}: {error['msg']}")
    return "invalid settings\n  " + "\n  ".join(lines)
