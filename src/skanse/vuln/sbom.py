"""SBOM documents back into an `Inventory`: skanse JSON, CycloneDX JSON, SPDX 2.x JSON, Syft JSON.

Whatever skanse or Syft wrote, the same facts come back: name, version, purl (its `distro=`
and `upstream=` qualifiers are what distro matching needs), the package type, the source
package, and where the package was found (`syft:location:N:path` / `layerID` properties,
SPDX `evident-by` files or `sourceInfo`). The operating system comes from a CycloneDX
`operating-system` component, Syft's `distro`, or else from each purl's `distro=`.

skanse's own JSON (`skanse sbom -o json`) holds the inventory as it was catalogued and comes
back whole. Only JSON is read. A document that is not valid skanse, CycloneDX, SPDX or Syft
JSON is an
`SbomError` that says which and why; sizes and nesting are bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from packageurl import PackageURL
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skanse.errors import SbomError
from skanse.inventory.model import Distro, Inventory, Package, PackageLocation, Subject

__all__ = ["MAX_SBOM_BYTES", "looks_like_sbom", "read_sbom"]

MAX_SBOM_BYTES = 512 * 1024 * 1024
_MAX_COMPONENTS = 2_000_000
_MAX_NESTING = 32

_PURL_TO_TYPE = {
    "pypi": "python",
    "golang": "go-module",
    "maven": "java-archive",
    "cargo": "rust-crate",
}
_LOCATION = re.compile(r"^syft:location:(\d+):(path|layerID)$")


# -- wire formats (pydantic at the edge: only what is read, extra fields allowed) ----------


class _Property(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    value: str | None = None


class _CdxComponent(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    type: str
    name: str
    version: str | None = None
    purl: str | None = None
    bom_ref: str | None = Field(default=None, alias="bom-ref")
    properties: list[_Property] = Field(default_factory=list)
    components: list[dict[str, Any]] = Field(default_factory=list)


class _CdxMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    component: _CdxComponent | None = None


class _CycloneDX(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    bom_format: str = Field(alias="bomFormat")
    spec_version: str = Field(alias="specVersion")
    metadata: _CdxMetadata | None = None
    components: list[dict[str, Any]] = Field(default_factory=list)


class _SpdxRef(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    category: str = Field(alias="referenceCategory")
    type: str = Field(alias="referenceType")
    locator: str = Field(alias="referenceLocator")


class _SpdxPackage(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    spdx_id: str = Field(alias="SPDXID")
    name: str
    version: str | None = Field(default=None, alias="versionInfo")
    source_info: str | None = Field(default=None, alias="sourceInfo")
    purpose: str | None = Field(default=None, alias="primaryPackagePurpose")
    refs: list[_SpdxRef] = Field(default_factory=list, alias="externalRefs")


class _SpdxFile(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    spdx_id: str = Field(alias="SPDXID")
    name: str = Field(alias="fileName")


class _SpdxRelationship(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    element: str = Field(alias="spdxElementId")
    type: str = Field(alias="relationshipType")
    related: str = Field(alias="relatedSpdxElement")
    comment: str | None = None


class _Spdx(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    spdx_version: str = Field(alias="spdxVersion")
    name: str = ""
    packages: list[_SpdxPackage] = Field(default_factory=list)
    files: list[_SpdxFile] = Field(default_factory=list)
    relationships: list[_SpdxRelationship] = Field(default_factory=list)


class _SyftLocation(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    path: str
    layer_id: str | None = Field(default=None, alias="layerID")


class _SyftArtifact(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    version: str = ""
    type: str = ""
    purl: str = ""
    foundBy: str = ""
    locations: list[_SyftLocation] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None


class _SyftDistro(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    id: str = ""
    version_id: str = Field(default="", alias="versionID")
    pretty_name: str = Field(default="", alias="prettyName")


class _Syft(BaseModel):
    model_config = ConfigDict(extra="allow")
    artifacts: list[_SyftArtifact]
    distro: _SyftDistro | None = None
    source: dict[str, Any] | None = None


class _SkanseLocation(BaseModel):
    model_config = ConfigDict(extra="allow")
    path: str
    layer: int | None = None
    layer_digest: str | None = None


class _SkansePackage(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    version: str = ""
    type: str = ""
    purl: str = ""
    licenses: list[str] = Field(default_factory=list)
    source_name: str | None = None
    source_version: str | None = None
    arch: str | None = None
    found_by: str = ""
    locations: list[_SkanseLocation] = Field(default_factory=list)


class _SkanseSubject(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str = "image"
    name: str = ""
    source: str = ""
    manifest_digest: str | None = None
    config_digest: str | None = None
    index_digest: str | None = None
    platform: str | None = None
    layers: list[str] = Field(default_factory=list)


class _SkanseDistro(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    version_id: str = ""
    name: str = ""
    pretty_name: str = ""
    id_like: list[str] = Field(default_factory=list)
    version_codename: str = ""
    build_id: str = ""


class _SkanseJson(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int
    subject: _SkanseSubject
    distro: _SkanseDistro | None = None
    packages: list[_SkansePackage]
    problems: list[str] = Field(default_factory=list)


# -- reading ----------------------------------------------------------------------------------


def looks_like_sbom(path: Path) -> bool:
    """A regular file whose first non-blank byte opens a JSON object (images are not)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith(b"{")


def read_sbom(path: Path) -> Inventory:
    """The packages an SBOM lists; `SbomError` if it is not one skanse can read."""
    try:
        size = path.stat().st_size
        if size > MAX_SBOM_BYTES:
            raise SbomError(f"{path}: {size:,} bytes is over the {MAX_SBOM_BYTES:,} byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise SbomError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SbomError(
            f"{path}: not JSON ({str(exc)[:120]}); skanse reads CycloneDX, SPDX and Syft "
            "SBOMs as JSON (not XML or tag-value)"
        ) from None
    if not isinstance(document, dict):
        raise SbomError(f"{path}: an SBOM is a JSON object, this is a {type(document).__name__}")
    tool = document.get("tool")
    if isinstance(tool, dict) and tool.get("name") == "skanse" and "packages" in document:
        try:
            return _from_skanse(_SkanseJson.model_validate(document), path)
        except ValidationError as exc:
            raise SbomError(f"{path}: not a valid skanse SBOM:\n  {_explain(exc)}") from None
    try:
        if "bomFormat" in document:
            if document.get("bomFormat") != "CycloneDX":
                raise SbomError(f"{path}: bomFormat is {document.get('bomFormat')!r}")
            return _from_cyclonedx(_CycloneDX.model_validate(document), path)
        if "spdxVersion" in document:
            return _from_spdx(_Spdx.model_validate(document), path)
        if "artifacts" in document and ("schema" in document or "descriptor" in document):
            return _from_syft(_Syft.model_validate(document), path)
    except ValidationError as exc:
        kind = (
            "CycloneDX"
            if "bomFormat" in document
            else "SPDX"
            if "spdxVersion" in document
            else "Syft JSON"
        )
        raise SbomError(f"{path}: not a valid {kind} SBOM:\n  {_explain(exc)}") from None
    raise SbomError(
        f"{path}: not an SBOM: no `bomFormat` (CycloneDX), `spdxVersion` (SPDX) or "
        "`artifacts` (Syft JSON)"
    )


def _from_skanse(document: _SkanseJson, path: Path) -> Inventory:
    if document.schema_version != 1:
        raise SbomError(
            f"{path}: skanse SBOM schema {document.schema_version}; this skanse reads schema 1"
        )
    if len(document.packages) > _MAX_COMPONENTS:
        raise SbomError(f"{path}: more than {_MAX_COMPONENTS} packages")
    subject = document.subject
    distro = document.distro
    return Inventory(
        subject=Subject(
            kind=subject.kind,
            name=subject.name or str(path),
            source=subject.source or "sbom",
            manifest_digest=subject.manifest_digest,
            config_digest=subject.config_digest,
            index_digest=subject.index_digest,
            platform=subject.platform,
            layers=tuple(subject.layers),
        ),
        packages=tuple(
            Package(
                name=p.name,
                version=p.version,
                type=p.type,
                purl=p.purl,
                cataloger=p.found_by or "sbom",
                locations=tuple(
                    PackageLocation(loc.path, loc.layer, loc.layer_digest) for loc in p.locations
                ),
                licenses=tuple(p.licenses),
                source_name=p.source_name,
                source_version=p.source_version,
                arch=p.arch,
            )
            for p in document.packages
        ),
        distro=(
            Distro(
                id=distro.id,
                version_id=distro.version_id,
                name=distro.name,
                pretty_name=distro.pretty_name,
                id_like=tuple(distro.id_like),
                version_codename=distro.version_codename,
                build_id=distro.build_id,
            )
            if distro is not None
            else None
        ),
        problems=tuple(document.problems),
    )


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        lines.append(f"{where}: {error['msg']}")
    return "\n  ".join(lines)


def _parse_purl(text: str | None) -> PackageURL | None:
    if not text:
        return None
    try:
        return PackageURL.from_string(text)
    except ValueError:
        return None


def _package_type(purl: PackageURL | None, declared: str | None) -> str:
    if declared:
        return declared
    if purl is None:
        return "unknown"
    return _PURL_TO_TYPE.get(purl.type, purl.type)


def _source_from_purl(purl: PackageURL | None) -> tuple[str | None, str | None]:
    if purl is None or purl.type not in ("deb", "apk"):
        return None, None
    upstream = str((purl.qualifiers or {}).get("upstream", ""))
    if not upstream:
        return None, None
    name, _, version = upstream.partition("@")
    return name or None, version or None


def _walk_components(
    raw: list[dict[str, Any]], depth: int = 0, where: str = "components"
) -> Iterator[_CdxComponent]:
    if depth > _MAX_NESTING:
        raise SbomError(f"components nested deeper than {_MAX_NESTING} levels")
    for i, item in enumerate(raw):
        try:
            component = _CdxComponent.model_validate(item)
        except ValidationError as exc:
            details = "\n  ".join(
                f"{where}[{i}].{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors()[:10]
            )
            raise SbomError(f"not a valid CycloneDX SBOM:\n  {details}") from None
        yield component
        if component.components:
            yield from _walk_components(component.components, depth + 1, f"{where}[{i}].components")


def _from_cyclonedx(bom: _CycloneDX, path: Path) -> Inventory:
    packages = []
    distro = None
    count = 0
    try:
        components = list(_walk_components(bom.components))
    except SbomError as exc:
        raise SbomError(f"{path}: {exc}") from None
    for component in components:
        count += 1
        if count > _MAX_COMPONENTS:
            raise SbomError(f"{path}: more than {_MAX_COMPONENTS:,} components")
        props: dict[str, str] = {}
        locations: dict[int, dict[str, str]] = {}
        for prop in component.properties:
            value = prop.value or ""
            located = _LOCATION.match(prop.name)
            if located:
                locations.setdefault(int(located.group(1)), {})[located.group(2)] = value
            else:
                props.setdefault(prop.name, value)
        if component.type == "operating-system":
            distro = Distro(
                id=props.get("syft:distro:id", component.name),
                version_id=props.get("syft:distro:versionID", component.version or ""),
                pretty_name=props.get("syft:distro:prettyName", ""),
            )
            continue
        if component.type in ("file", "container", "data", "device", "firmware"):
            continue
        purl = _parse_purl(component.purl)
        source_name, source_version = _source_from_purl(purl)
        packages.append(
            Package(
                name=component.name,
                version=component.version or "",
                type=_package_type(
                    purl, props.get("skanse:package:type") or props.get("syft:package:type")
                ),
                purl=component.purl or "",
                cataloger=props.get("skanse:cataloger") or props.get("syft:package:foundBy", ""),
                locations=tuple(
                    PackageLocation(loc["path"], None, loc.get("layerID") or None)
                    for _, loc in sorted(locations.items())
                    if loc.get("path")
                ),
                source_name=(
                    props.get("skanse:package:source")
                    or props.get("aquasecurity:trivy:SrcName")
                    or source_name
                    or props.get("syft:metadata:source")  # Syft, where it made no purl
                    or None
                ),
                source_version=(
                    props.get("skanse:package:source-version")
                    or _trivy_source_version(props)
                    or source_version
                    or props.get("syft:metadata:sourceVersion")
                    or None
                ),
            )
        )
    root = bom.metadata.component if bom.metadata else None
    digest = root.version if root and root.version and root.version.startswith("sha256:") else None
    subject = Subject(
        kind="image" if root and root.type == "container" else "sbom",
        name=root.name if root else str(path),
        source="cyclonedx",
        manifest_digest=digest,
    )
    return Inventory(subject, tuple(packages), distro=distro, catalogers=("cyclonedx",))


_SYFT_SOURCE_INFO = re.compile(r":\s*(/\S.*)$")
_SKANSE_SOURCE_INFO = re.compile(r"^found by \S+ at (.+)$")


def _spdx_locations(package: _SpdxPackage, evident: Mapping[str, list[str]]) -> list[str]:
    if package.spdx_id in evident:
        return evident[package.spdx_id]
    info = package.source_info or ""
    skanse = _SKANSE_SOURCE_INFO.match(info)
    if skanse:
        return [p.strip() for p in skanse.group(1).split(", ") if p.strip()]
    syft = _SYFT_SOURCE_INFO.search(info)
    if syft:
        return [p.strip() for p in syft.group(1).split(", ") if p.strip()]
    return []


def _trivy_source_version(props: Mapping[str, str]) -> str | None:
    """Trivy's source package version from its CycloneDX properties: [epoch:]version[-release]
    (a Debian or RPM version, as the distribution's advisories name it)."""
    version = props.get("aquasecurity:trivy:SrcVersion")
    if not version:
        return None
    epoch = props.get("aquasecurity:trivy:SrcEpoch")
    release = props.get("aquasecurity:trivy:SrcRelease")
    if epoch and epoch != "0":
        version = f"{epoch}:{version}"
    return f"{version}-{release}" if release else version


# Trivy's SPDX: `sourceInfo: built package from: glibc 2.36-9+deb12u14`
_TRIVY_SOURCE_INFO = re.compile(r"^built package from: (\S+) (\S+)$")


def _from_spdx(document: _Spdx, path: Path) -> Inventory:
    if not document.spdx_version.startswith("SPDX-2."):
        raise SbomError(f"{path}: spdxVersion {document.spdx_version!r} is not SPDX 2.x")
    if len(document.packages) > _MAX_COMPONENTS:
        raise SbomError(f"{path}: more than {_MAX_COMPONENTS:,} packages")
    # SPDX file names are relative (`./bin/busybox`, Syft writes `bin/busybox`): root them
    files = {f.spdx_id: "/" + f.name.removeprefix("./").lstrip("/") for f in document.files}
    evident: dict[str, list[str]] = {}
    described = set()
    for rel in document.relationships:
        if rel.type == "DESCRIBES":
            described.add(rel.related)
        elif (
            rel.type == "OTHER"
            and (rel.comment or "").startswith("evident-by")
            and (rel.related in files)
        ):
            evident.setdefault(rel.element, []).append(files[rel.related])
    packages = []
    distro: Distro | None = None
    subject_name, digest = document.name or str(path), None
    for package in document.packages:
        purl_text = next(
            (
                r.locator
                for r in package.refs
                if r.type == "purl" and r.category.replace("_", "-") == "PACKAGE-MANAGER"
            ),
            "",
        )
        purl = _parse_purl(purl_text)
        # a described package is the image itself only when nothing says it is a library:
        # an SBOM of one application describes that application, which is checked too
        is_subject = package.purpose == "CONTAINER" or (
            package.spdx_id in described
            and (purl is None or not package.version or package.version.startswith("sha256:"))
        )
        if is_subject or (purl is not None and purl.type in ("oci", "docker")):
            subject_name = package.name
            if package.version and package.version.startswith("sha256:"):
                digest = package.version
            continue
        if (package.purpose or "").replace("_", "-") == "OPERATING-SYSTEM":  # either spelling
            if package.name and distro is None:  # Trivy names the distribution here
                distro = Distro(id=package.name.lower(), version_id=package.version or "")
            continue
        source_name, source_version = _source_from_purl(purl)
        built = _TRIVY_SOURCE_INFO.match(package.source_info or "")
        if built and not source_name:
            source_name, source_version = built.group(1), built.group(2)
        packages.append(
            Package(
                name=package.name,
                version=package.version or "",
                type=_package_type(purl, None),
                purl=purl_text,
                cataloger="spdx",
                locations=tuple(
                    PackageLocation(p) for p in sorted(set(_spdx_locations(package, evident)))
                ),
                source_name=source_name,
                source_version=source_version,
            )
        )
    subject = Subject(kind="sbom", name=subject_name, source="spdx", manifest_digest=digest)
    return Inventory(subject, tuple(packages), distro=distro, catalogers=("spdx",))


def _from_syft(document: _Syft, path: Path) -> Inventory:
    if len(document.artifacts) > _MAX_COMPONENTS:
        raise SbomError(f"{path}: more than {_MAX_COMPONENTS:,} artifacts")
    packages = []
    for artifact in document.artifacts:
        meta = artifact.metadata or {}
        source = meta.get("source") or meta.get("originPackage") or None
        source_version = meta.get("sourceVersion") or None
        packages.append(
            Package(
                name=artifact.name,
                version=artifact.version,
                type=artifact.type or _package_type(_parse_purl(artifact.purl), None),
                purl=artifact.purl,
                cataloger=artifact.foundBy,
                locations=tuple(
                    PackageLocation(loc.path, None, loc.layer_id) for loc in artifact.locations
                ),
                source_name=source if isinstance(source, str) else None,
                source_version=source_version if isinstance(source_version, str) else None,
            )
        )
    distro = None
    if document.distro and document.distro.id:
        distro = Distro(
            id=document.distro.id,
            version_id=document.distro.version_id,
            pretty_name=document.distro.pretty_name,
        )
    name = str((document.source or {}).get("name") or path)
    subject = Subject(kind="sbom", name=name, source="syft-json")
    return Inventory(subject, tuple(packages), distro=distro, catalogers=("syft-json",))
