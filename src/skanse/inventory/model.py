"""What an SBOM is made of: packages, where they were found, the distribution, the subject."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Distro", "Inventory", "Package", "PackageLocation", "Subject"]


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
