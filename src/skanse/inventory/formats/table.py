"""A text table: NAME, VERSION, TYPE, and where it was found (as Syft's table, plus path)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from skanse.inventory.formats._common import sorted_packages
from skanse.inventory.model import Inventory
from skanse.printable import printable

__all__ = ["render"]


def render(inventory: Inventory) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=160, highlight=False, color_system=None)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "VERSION", "TYPE", "LOCATION"):
        table.add_column(column, overflow="fold")
    for p in sorted_packages(inventory):
        location = p.locations[0].path if p.locations else ""
        # an image's text, shown: neither Rich markup ("[/x]") nor a control character
        table.add_row(*(Text(printable(v)) for v in (p.name, p.version, p.type, location)))
    console.print(table)
    distro = inventory.distro
    summary = f"{len(inventory.packages)} packages"
    if distro is not None:
        summary += f", {distro.pretty_name or distro.id + ' ' + distro.version_id}"
    console.print(printable(summary), markup=False)
    for problem in inventory.problems:
        console.print(f"warning: {printable(problem)}", markup=False)
    return buffer.getvalue()
