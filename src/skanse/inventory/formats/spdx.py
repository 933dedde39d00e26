"""SPDX 2.3 JSON through spdx-tools.

One SPDX package for the subject (the image, its digest as version) that the document
DESCRIBES and that CONTAINS one package per catalogued package, each with its purl as a
PACKAGE-MANAGER external reference, and the distribution as a package whose purpose is
OPERATING-SYSTEM (where Trivy looks for it). A package's declared licences are joined with AND into
one SPDX expression; free text that is no expression becomes a `LicenseRef-` (declared in the
document's extracted licensing information, as SPDX requires) and is quoted in the licence
comment, so the document always validates.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import re
import uuid
from typing import Any

from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.extracted_licensing_info import ExtractedLicensingInfo
from spdx_tools.spdx.model.package import (
    ExternalPackageRef,
    ExternalPackageRefCategory,
    Package,
    PackagePurpose,
)
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from skanse import __version__
from skanse.inventory.formats._common import sorted_packages, subject_version
from skanse.inventory.licenses import as_expression, combine
from skanse.inventory.model import Inventory

__all__ = ["render", "to_document"]

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]+")
_LICENSE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.\-]+")


def _spdx_id(kind: str, text: str) -> str:
    return f"SPDXRef-{kind}-" + _ID_UNSAFE.sub("-", text).strip("-")[:120]


@functools.lru_cache(maxsize=4096)
def _parse(expression: str) -> Any:
    """An expression we built, parsed once (the parsed objects are immutable)."""
    return spdx_licensing.parse(expression)


def _license(texts: tuple[str, ...], refs: dict[str, str]) -> tuple[Any, str | None]:
    """The declared licence (and a comment quoting free text); records `LicenseRef-`s used."""
    if not texts:
        return SpdxNoAssertion(), None
    expressions = [as_expression(text) for text in texts]
    combined = combine(expressions)
    if combined is None:
        return SpdxNoAssertion(), None
    try:
        parsed = _parse(combined)
    except Exception:  # license-expression raises several types; our own text is at fault
        return SpdxNoAssertion(), "declared: " + "; ".join(texts)
    for text, expression in zip(texts, expressions, strict=True):
        for ref in _LICENSE_REF.findall(expression):
            refs.setdefault(ref, text)
    comment = None
    if any(text != expression for text, expression in zip(texts, expressions, strict=True)):
        comment = "declared: " + "; ".join(texts)
    return parsed, comment


def to_document(inventory: Inventory) -> Document:
    subject = inventory.subject
    created = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=subject.name,
        document_namespace=f"urn:uuid:{uuid.uuid4()}",
        creators=[Actor(ActorType.TOOL, f"skanse-{__version__}")],
        created=created,
    )
    root_id = _spdx_id("Subject", subject.name)
    packages = [
        Package(
            spdx_id=root_id,
            name=subject.name,
            download_location=SpdxNoAssertion(),
            version=subject_version(inventory),
            files_analyzed=False,
            primary_package_purpose=(
                PackagePurpose.CONTAINER if subject.kind == "image" else PackagePurpose.FILE
            ),
        )
    ]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, root_id)]
    distro = inventory.distro
    if distro is not None:
        # the distribution as its own package, as Trivy writes it and reads it back: without
        # it Trivy takes the OS for "none" and matches no distribution advisory
        os_id = _spdx_id("OperatingSystem", f"{distro.id}-{distro.version_id}")
        packages.append(
            Package(
                spdx_id=os_id,
                name=distro.id,
                download_location=SpdxNoAssertion(),
                version=distro.version_id or None,
                files_analyzed=False,
                primary_package_purpose=PackagePurpose.OPERATING_SYSTEM,
            )
        )
        relationships.append(Relationship(root_id, RelationshipType.CONTAINS, os_id))
    license_refs: dict[str, str] = {}
    for package in sorted_packages(inventory):
        spdx_id = _spdx_id("Package", f"{package.type}-{package.name}-{package.id}")
        declared, comment = _license(package.licenses, license_refs)
        refs = []
        if package.purl:
            refs.append(
                ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl)
            )
        packages.append(
            Package(
                spdx_id=spdx_id,
                name=package.name,
                download_location=SpdxNoAssertion(),
                version=package.version or None,
                files_analyzed=False,
                license_concluded=SpdxNoAssertion(),
                license_declared=declared,
                license_comment=comment,
                copyright_text=SpdxNoAssertion(),
                source_info=f"found by {package.cataloger} at "
                + ", ".join(loc.path for loc in package.locations),
                external_references=refs,
            )
        )
        relationships.append(Relationship(root_id, RelationshipType.CONTAINS, spdx_id))
    extracted = [
        ExtractedLicensingInfo(
            license_id=ref,
            extracted_text=f"The licence a package names as {text!r}; its text is not included.",
            license_name=text[:200],
        )
        for ref, text in sorted(license_refs.items())
    ]
    return Document(
        info,
        packages=packages,
        relationships=relationships,
        extracted_licensing_info=extracted,
    )


def render(inventory: Inventory) -> str:
    stream = io.StringIO()
    write_document_to_stream(to_document(inventory), stream, validate=False)
    # spdx-tools writes the enum's name; the SPDX 2.3 JSON schema spells it with a hyphen
    text = stream.getvalue().replace(
        '"primaryPackagePurpose": "OPERATING_SYSTEM"', '"primaryPackagePurpose": "OPERATING-SYSTEM"'
    )
    return text + "\n"
