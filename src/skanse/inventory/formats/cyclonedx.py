"""CycloneDX 1.6 JSON through cyclonedx-python-lib.

The image is the BOM's metadata component (type container, version = manifest digest);
each package is a library (an OS package: type `operating-system` is for the distro only)
with its purl, licences, and Syft-compatible location properties, and the image depends on
every package. CycloneDX allows either licences (SPDX ids, or names for free text) or one
expression per component, never both: a package whose licences are all single ids or names
gets those; one with any compound expression (`GPL-2.0-or-later OR Artistic-1.0-Perl`) gets
them all joined with AND as its one expression, free text as `LicenseRef-`.
"""

from __future__ import annotations

try:  # the factory moved in cyclonedx-python-lib 11.x; the old path warns
    from cyclonedx.contrib.license.factories import LicenseFactory
except ImportError:  # pragma: no cover - older cyclonedx-python-lib
    from cyclonedx.factory.license import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from skanse import __version__
from skanse.inventory.formats._common import sorted_packages, subject_version
from skanse.inventory.licenses import as_expression, combine
from skanse.inventory.model import Inventory

__all__ = ["build_bom", "render"]


def render(inventory: Inventory) -> str:
    bom, _ = build_bom(inventory)
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _licenses(
    factory: LicenseFactory, texts: tuple[str, ...], made: dict[tuple[str, ...], list[License]]
) -> list[License]:
    """The component's licences; the same declared texts (most of an image's packages
    share a few) are parsed once per document."""
    cached = made.get(texts)
    if cached is not None:
        return list(cached)
    licenses = [factory.make_from_string(text) for text in texts]
    if not all(isinstance(m, DisjunctiveLicense) for m in licenses):
        combined = combine(as_expression(text) for text in texts)
        licenses = [LicenseExpression(combined)] if combined else []
    made[texts] = licenses
    return list(licenses)


def build_bom(inventory: Inventory) -> tuple[Bom, dict[str, Component]]:
    """The BOM and each package's component by `Package.id` (for a vulnerabilities section)."""
    subject = inventory.subject
    licenses = LicenseFactory()
    made: dict[tuple[str, ...], list[License]] = {}
    root = Component(
        name=subject.name,
        version=subject_version(inventory),
        type=ComponentType.CONTAINER if subject.kind == "image" else ComponentType.FILE,
        bom_ref=f"subject:{subject.name}",
    )
    tool = Component(name="skanse", version=__version__, type=ComponentType.APPLICATION)
    bom = Bom(metadata=BomMetaData(component=root))
    bom.metadata.tools.components.add(tool)
    distro = inventory.distro
    components = []
    by_package: dict[str, Component] = {}
    if distro is not None:
        os_component = Component(
            name=distro.id,
            version=distro.version_id or None,
            type=ComponentType.OPERATING_SYSTEM,
            description=distro.pretty_name or None,
            bom_ref=f"os:{distro.id}@{distro.version_id}",
        )
        bom.components.add(os_component)
        components.append(os_component)
    for package in sorted_packages(inventory):
        properties = [
            Property(name="skanse:package:type", value=package.type),
            Property(name="skanse:cataloger", value=package.cataloger),
        ]
        if package.source_name:
            properties.append(Property(name="skanse:package:source", value=package.source_name))
        if package.source_version:
            properties.append(
                Property(name="skanse:package:source-version", value=package.source_version)
            )
        for i, location in enumerate(package.locations):
            properties.append(Property(name=f"syft:location:{i}:path", value=location.path))
            if location.layer_digest:
                properties.append(
                    Property(name=f"syft:location:{i}:layerID", value=location.layer_digest)
                )
        component = Component(
            name=package.name,
            version=package.version or None,
            type=ComponentType.LIBRARY,
            purl=PackageURL.from_string(package.purl) if package.purl else None,
            licenses=_licenses(licenses, package.licenses, made),
            properties=properties,
            bom_ref=f"pkg:{package.id}",
        )
        bom.components.add(component)
        components.append(component)
        by_package[package.id] = component
    bom.register_dependency(root, components)
    return bom, by_package
