"""CycloneDX 1.6 JSON through cyclonedx-python-lib.

The image is the BOM's metadata component (type container, version = manifest digest);
each package is a library (an OS package: type `operating-system` is for the distro only)
with its purl, licences, and Syft-compatible location properties, and the image depends on
every package. Licences that parse as SPDX ids or expressions are written as such, other
text as a named licence. CycloneDX allows either one expression or a list of licences, not
both: a package with several licences (Debian's copyright files often list an expression
beside plain ids) gets its expressions as named licences, the text unchanged.
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
from skanse.inventory.model import Inventory

__all__ = ["build_bom", "render"]


def render(inventory: Inventory) -> str:
    bom, _ = build_bom(inventory)
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _component_licenses(factory: LicenseFactory, texts: tuple[str, ...]) -> list[License]:
    made = [factory.make_from_string(text) for text in texts]
    if len(made) < 2:
        return made
    return [
        DisjunctiveLicense(name=text) if isinstance(license, LicenseExpression) else license
        for text, license in zip(texts, made, strict=True)
    ]


def build_bom(inventory: Inventory) -> tuple[Bom, dict[str, Component]]:
    """The BOM and each package's component by `Package.id` (for a vulnerabilities section)."""
    subject = inventory.subject
    licenses = LicenseFactory()
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
            licenses=_component_licenses(licenses, package.licenses),
            properties=properties,
            bom_ref=f"pkg:{package.id}",
        )
        bom.components.add(component)
        components.append(component)
        by_package[package.id] = component
    bom.register_dependency(root, components)
    return bom, by_package
