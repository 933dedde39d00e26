"""SBOM document writers: one module per format, each `render(inventory) -> str`.

    text = render("cyclonedx-json", inventory)

Names follow Syft's `-o` names so that users can switch without relearning them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from skanse.inventory.model import Inventory

__all__ = ["FORMATS", "render"]

# format name -> module under skanse.inventory.formats
FORMATS: dict[str, str] = {
    "table": "table",
    "json": "skanse_json",
    "cyclonedx-json": "cyclonedx",
    "spdx-json": "spdx",
}


def render(name: str, inventory: Inventory) -> str:
    """The document `name` for `inventory` (KeyError for an unknown format)."""
    module = importlib.import_module(f"skanse.inventory.formats.{FORMATS[name]}")
    return cast(Callable[[Inventory], str], module.render)(inventory)
