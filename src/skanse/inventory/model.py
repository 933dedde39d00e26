"""What an SBOM is made of: packages, where they were found, the distribution, the subject."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from skanse.printable import valid_text

__all__ = ["Distro", "Inventory", "Package", "PackageLocation", "Subject"]


def _valid(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(valid_text(v) for v in values)


@dataclass(frozen=True, slots=True)
class Distro:
    """The operating system, from /etc/os-release (or its fallbacks)."""

    id: str
    version_id: str = ""
    name: str = ""
    pretty_name: str = ""
    id_like: tuple[str, ...] = ()
    version_codename: str = ""
    build_id: str = ""

    def valid(self) -> Distro:
        """This distribution with every text valid Unicode (`valid_text`)."""
        return Distro(
            id=valid_text(self.id),
            version_id=valid_text(self.version_id),
            name=valid_text(self.name),
            pretty_name=valid_text(self.pretty_name),
            id_like=_valid(self.id_like),
            version_codename=valid_text(self.version_codename),
            build_id=valid_text(self.build_id),
        )

    def is_like(self, family: str) -> bool:
        return self.id == family or family in self.id_like

    @property
    def purl_qualifier(self) -> str:
        """`debian-12`, `alpine-3.19.1`: Syft's `distro=` qualifier value."""
        version = self.version_id or self.build_id
        return f"{self.id}-{version}" if version else self.id


@dataclass(frozen=True, slots=True, order=True)
class PackageLocation:
    """A file that is evidence for a package, and the layer that file came from."""

    path: str
    layer: int | None = None  # index in the image; None for a directory source
    layer_digest: str | None = None  # diff_id of that layer


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package, as a cataloger found it."""

    name: str
    version: str
    type: str  # apk, deb, rpm, python, npm, go-module, java-archive, rust-crate
    purl: str
    cataloger: str
    locations: tuple[PackageLocation, ...]
    licenses: tuple[str, ...] = ()
    # the source package (deb Source:, apk origin, rpm SRPM) that vulnerability data names
    source_name: str | None = None
    source_version: str | None = None
    arch: str | None = None
    # files this package installed (OS packages), for the ownership check
    files: frozenset[str] = field(default_factory=frozenset, compare=False, repr=False)
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False)

    def valid(self) -> Package:
        """This package with every text valid Unicode (`valid_text`); itself when it is."""
        texts = (
            self.name, self.version, self.type, self.purl, self.cataloger,
            self.source_name or "", self.source_version or "", self.arch or "",
            *self.licenses, *(loc.path for loc in self.locations),
            *self.metadata.keys(), *self.metadata.values(),
        )  # fmt: skip
        if all(valid_text(t) is t for t in texts):
            return self
        return Package(
            name=valid_text(self.name),
            version=valid_text(self.version),
            type=valid_text(self.type),
            purl=valid_text(self.purl),
            cataloger=valid_text(self.cataloger),
            locations=tuple(
                PackageLocation(valid_text(loc.path), loc.layer, loc.layer_digest)
                for loc in self.locations
            ),
            licenses=_valid(self.licenses),
            source_name=None if self.source_name is None else valid_text(self.source_name),
            source_version=(
                None if self.source_version is None else valid_text(self.source_version)
            ),
            arch=None if self.arch is None else valid_text(self.arch),
            files=frozenset(valid_text(f) for f in self.files),
            metadata={valid_text(k): valid_text(v) for k, v in self.metadata.items()},
        )

    @property
    def id(self) -> str:
        """Stable within a document: type, name, version, purl and first location."""
        first = self.locations[0].path if self.locations else ""
        key = "\x1f".join((self.type, self.name, self.version, self.purl, first))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def is_os_package(self) -> bool:
        return self.type in ("apk", "deb", "rpm")


@dataclass(frozen=True, slots=True)
class Subject:
    """What was catalogued: an image (with digests) or a directory."""

    kind: str  # image | directory
    name: str
    source: str  # registry | oci-layout | docker-archive | dir
    manifest_digest: str | None = None
    config_digest: str | None = None
    index_digest: str | None = None
    platform: str | None = None
    layers: tuple[str, ...] = ()  # diff_ids, bottom first


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything catalogued from one subject."""

    subject: Subject
    packages: tuple[Package, ...]
    distro: Distro | None = None
    # files that could not be read or were neutralised (hostile layers), never silent
    problems: tuple[str, ...] = ()
    catalogers: tuple[str, ...] = ()
