"""npm packages installed under node_modules: every `package.json` with a name and version.

Licences from `license` (a string or `{type}`) or the old `licenses` list. Purls
`pkg:npm/[%40scope/]name@version`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from skanse.inventory.catalogers._base import Environment, make_purl, refuse_oversized
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["NpmCataloger", "parse_package_json"]

_MAX_PACKAGE_JSON = 4 * 1024 * 1024


def _license_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, dict):
        kind = value.get("type")
        return [kind] if isinstance(kind, str) and kind else []
    if isinstance(value, list):
        return [name for item in value for name in _license_names(item)]
    return []


def parse_package_json(data: bytes) -> tuple[str, str, tuple[str, ...]] | None:
    """(name, version, licences) or None when the file is not a package manifest."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    licenses = _license_names(doc.get("license")) or _license_names(doc.get("licenses"))
    return name, version, tuple(dict.fromkeys(licenses))


class NpmCataloger:
    name = "javascript-package-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        if info.path.endswith("/package.json"):
            if info.size > _MAX_PACKAGE_JSON:
                return refuse_oversized("package.json", _MAX_PACKAGE_JSON)
            return parse_package_json
        return None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        packages = []
        for captured in found:
            parsed = captured.value
            if parsed is None:
                continue
            assert isinstance(parsed, tuple)
            name, version, licenses = parsed
            namespace, _, short = name.rpartition("/")
            packages.append(
                Package(
                    name=name,
                    version=version,
                    type="npm",
                    purl=make_purl("npm", namespace or None, short, version),
                    cataloger=self.name,
                    locations=(env.location(captured.info),),
                    licenses=licenses,
                )
            )
        return packages
