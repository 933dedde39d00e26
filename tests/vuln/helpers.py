"""Small builders shared by the vulnerability tests."""

from __future__ import annotations

import json
from pathlib import Path

from skanse.inventory.model import Distro, Inventory, Package, PackageLocation, Subject
from skanse.vuln.db import Database, Source, build_database


def package(
    name: str,
    version: str,
    type_: str,
    purl: str = "",
    *,
    source: str | None = None,
    source_version: str | None = None,
    path: str = "/evidence",
) -> Package:
    return Package(
        name=name,
        version=version,
        type=type_,
        purl=purl,
        cataloger="test",
        locations=(PackageLocation(path, 0, "sha256:" + "a" * 64),),
        source_name=source,
        source_version=source_version,
    )


def inventory(*packages: Package, distro: Distro | None = None) -> Inventory:
    return Inventory(Subject("image", "test/image", "oci-layout"), tuple(packages), distro=distro)


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def build(tmp: Path, *sources: Path, name: str = "vuln.db") -> Database:
    dest = tmp / name
    build_database(dest, [Source(s) for s in sources])
    return Database.open(dest)


def osv(
    advisory_id: str,
    ecosystem: str,
    name: str,
    events: list[dict[str, str]],
    *,
    aliases: list[str] | None = None,
    withdrawn: str | None = None,
    severity: str | None = None,
) -> dict:
    record: dict = {
        "schema_version": "1.6.0",
        "id": advisory_id,
        "modified": "2024-01-01T00:00:00Z",
        "aliases": aliases or [],
        "summary": f"{name} test advisory",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
    }
    if withdrawn:
        record["withdrawn"] = withdrawn
    if severity:
        record["severity"] = [{"type": "CVSS_V3", "score": severity}]
    return record
