"""Helpers shared by the writers: ordering, the subject's display version."""

from __future__ import annotations

from skanse.inventory.model import Inventory, Package

__all__ = ["sorted_packages", "subject_version"]


def sorted_packages(inventory: Inventory) -> list[Package]:
    """Packages in a stable order: name, version, type, first location."""
    return sorted(
        inventory.packages,
        key=lambda p: (p.name, p.version, p.type, p.locations[0].path if p.locations else ""),
    )


def subject_version(inventory: Inventory) -> str | None:
    subject = inventory.subject
    return subject.manifest_digest or subject.config_digest
