"""Installed Python distributions (`*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, a bare
`*.egg-info` file) and, for directory scans only, `Pipfile.lock` (as Syft's image and
directory defaults differ). Purls `pkg:pypi/<name>@<version>`, the name normalised the way
the purl spec (and Syft) writes it. Licences: License-Expression, else a one-line License,
else the licence classifiers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from skanse.errors import SourceError
from skanse.inventory.catalogers._base import (
    Environment,
    make_purl,
    read_text,
    refuse_oversized,
)
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["PythonCataloger", "parse_metadata", "parse_pipfile_lock"]

_MAX_METADATA = 4 * 1024 * 1024


def parse_metadata(text: str) -> dict[str, list[str]]:
    """The header block of a core-metadata file (RFC 822 style); keys lower-cased."""
    # each value's lines, joined at the end: adding each continuation line to the value so
    # far copied the whole value per line (quadratic in a long folded header)
    values: dict[str, list[list[str]]] = {}
    last: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            break  # the body (long description) follows the first blank line
        if line[0] in " \t" and last is not None:
            last.append(line.strip())
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        last = [value.strip()]
        values.setdefault(key.strip().lower(), []).append(last)
    return {key: ["\n".join(lines) for lines in found] for key, found in values.items()}


def _licenses(fields: dict[str, list[str]]) -> tuple[str, ...]:
    expression = fields.get("license-expression", [""])[0]
    if expression:
        return (expression,)
    declared = fields.get("license", [""])[0]
    if declared and "\n" not in declared and len(declared) < 200 and declared.upper() != "UNKNOWN":
        return (declared,)
    classifiers = [
        c.rsplit("::", 1)[1].strip()
        for c in fields.get("classifier", [])
        if c.startswith("License ::") and c.count("::") >= 2
    ]
    return tuple(dict.fromkeys(classifiers))


def parse_pipfile_lock(data: bytes) -> list[tuple[str, str]]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise SourceError(f"Pipfile.lock is not valid JSON: {exc}") from None
    found = []
    # "default" only: "develop" packages are not installed in production (as Syft). pipenv
    # always writes it, empty or not: a file without it (or not an object) had given no
    # packages and no word, an SBOM that looked complete
    entries = doc.get("default") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise SourceError('Pipfile.lock has no "default" object: not a Pipfile.lock pipenv wrote')
    for name, entry in entries.items():
        version = entry.get("version", "") if isinstance(entry, dict) else ""
        found.append((str(name), str(version).removeprefix("==")))
    return sorted(set(found))


class PythonCataloger:
    name = "python-installed-package-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        path = info.path
        if path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO", ".egg-info")):
            if info.size > _MAX_METADATA:
                return refuse_oversized("package metadata", _MAX_METADATA)
            return lambda data: parse_metadata(read_text(data))
        if path.endswith("/Pipfile.lock"):
            # read in directory scans only (`catalog`); one over the cap had been passed over
            # without a word, its packages missing from an SBOM that looked complete
            if info.size > _MAX_METADATA:
                return refuse_oversized("Pipfile.lock", _MAX_METADATA)
            return parse_pipfile_lock
        return None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        packages = []
        for captured in found:
            if captured.info.path.endswith("/Pipfile.lock"):
                if not env.directory_scan:
                    continue  # lock files describe a build, not what is installed
                for name, version in captured.value:  # type: ignore[attr-defined]
                    packages.append(
                        Package(
                            name=name,
                            version=version,
                            type="python",
                            purl=make_purl("pypi", None, name, version),
                            cataloger="python-package-cataloger",
                            locations=(env.location(captured.info),),
                        )
                    )
                continue
            fields = captured.value
            assert isinstance(fields, dict)
            name = fields.get("name", [""])[0]
            version = fields.get("version", [""])[0]
            if not name:
                continue
            packages.append(
                Package(
                    name=name,
                    version=version,
                    type="python",
                    purl=make_purl("pypi", None, name, version),
                    cataloger=self.name,
                    locations=(env.location(captured.info),),
                    licenses=_licenses(fields),
                )
            )
        return packages
