"""SPDX 2.3 JSON through spdx-tools.

One SPDX package for the subject (the image, its digest as version) that the document
DESCRIBES and that CONTAINS one package per catalogued package, each with its purl as a
PACKAGE-MANAGER external reference. Declared licences that are valid SPDX expressions are
written as such; anything else becomes NOASSERTION with the text kept in the licence comment
(so the document always validates).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from typing import Any

from license_expression import ExpressionError
from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.document import CreationInfo, Document
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
from skanse.inventory.model import Inventory

__all__ = ["render", "to_document"]

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]+")


def _spdx_id(kind: str, text: str) -> str:
    return f"SPDXRef-{kind}-" + _ID_UNSAFE.sub("-", text).strip("-")[:120]


def _license(texts: tuple[str, ...]) -> tuple[Any, str | None]:
    if not texts:
        return SpdxNoAssertion(), None
    licensing = spdx_licensing  # get_spdx_licensing() would rebuild it: 16 ms a call
    joined = " AND ".join(f"({t})" if " " in t else t for t in texts)
    try:
        if not licensing.validate(joined).errors:
            return licensing.parse(joined), None
    except (ExpressionError, AttributeError):
        # license_expression's validate() fails with AttributeError on some text Debian's
        # copyright files hold (`MIT/X11`): not an expression either way
        pass
    return SpdxNoAssertion(), "declared: " + "; ".join(texts)


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
    for package in sorted_packages(inventory):
        spdx_id = _spdx_id("Package", f"{package.type}-{package.name}-{package.id}")
        declared, comment = _license(package.licenses)
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
    return Document(info, packages=packages, relationships=relationships)


def render(inventory: Inventory) -> str:
    stream = io.StringIO()
    write_document_to_stream(to_document(inventory), stream, validate=False)
    return stream.getvalue() + "\n"
