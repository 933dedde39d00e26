"""skanse's own SBOM JSON (`schema_version` 1): everything an inventory holds, plainly."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from skanse import __version__
from skanse.inventory.formats._common import sorted_packages
from skanse.inventory.model import Inventory

__all__ = ["SCHEMA_VERSION", "render", "to_dict"]

SCHEMA_VERSION = 1


def to_dict(inventory: Inventory) -> dict[str, Any]:
    packages = [
        {
            "id": p.id,
            "name": p.name,
            "version": p.version,
            "type": p.type,
            "purl": p.purl,
            "licenses": list(p.licenses),
            "source_name": p.source_name,
            "source_version": p.source_version,
            "arch": p.arch,
            "found_by": p.cataloger,
            "locations": [
                {"path": loc.path, "layer": loc.layer, "layer_digest": loc.layer_digest}
                for loc in p.locations
            ],
        }
        for p in sorted_packages(inventory)
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "skanse", "version": __version__},
        "subject": asdict(inventory.subject),
        "distro": asdict(inventory.distro) if inventory.distro else None,
        "packages": packages,
        "problems": list(inventory.problems),
        "catalogers": list(inventory.catalogers),
    }


def render(inventory: Inventory) -> str:
    return json.dumps(to_dict(inventory), indent=2) + "\n"
