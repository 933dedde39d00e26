"""Image or directory -> `Inventory`: run every cataloger over one read of the layers.

    inventory = catalog_image(open_image(parse_spec("alpine:3.19")))

One pass over the layers feeds every cataloger (`Cataloger.wants` decides what is read).
Then the distribution is detected, each cataloger turns its files into packages, and two
rules keep the list honest: a language package whose evidence file an OS package installed
(a Debian `python3-idna` and the `idna` dist-info inside it) is reported once, as the OS
package; and the same package found twice at the same place is reported once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from skanse.inventory.catalogers._base import Cataloger, Environment
from skanse.inventory.catalogers.apk import ApkCataloger
from skanse.inventory.catalogers.binaries import GoBinaryCataloger, RustAuditableCataloger
from skanse.inventory.catalogers.cargo import CargoLockCataloger
from skanse.inventory.catalogers.distro import DistroDetector
from skanse.inventory.catalogers.dpkg import DpkgCataloger
from skanse.inventory.catalogers.java import JavaCataloger
from skanse.inventory.catalogers.npm import NpmCataloger
from skanse.inventory.catalogers.python import PythonCataloger
from skanse.inventory.catalogers.rpm import RpmCataloger
from skanse.inventory.model import Inventory, Package, Subject
from skanse.oci.image import Image, read_directory, read_view
from skanse.oci.vfs import Capture, Captured, FileInfo, FileView, ViewLimits
from skanse.printable import valid_texts

__all__ = ["catalog_directory", "catalog_image", "catalog_view", "default_catalogers"]

# language packages that are the same software as the OS package owning their evidence file
_DEDUP_TYPES = frozenset({"python", "npm", "java-archive"})


def default_catalogers() -> list[Cataloger]:
    """Every cataloger, in report order: OS databases first, then languages, binaries."""
    return [
        ApkCataloger(),
        DpkgCataloger(),
        RpmCataloger(),
        PythonCataloger(),
        NpmCataloger(),
        JavaCataloger(),
        GoBinaryCataloger(),
        RustAuditableCataloger(),
        CargoLockCataloger(),
    ]


class _Combined:
    """One `wants` for the reader: asks every cataloger, keeps each one's value apart."""

    def __init__(self, catalogers: Sequence[Cataloger], detector: DistroDetector) -> None:
        parties: list[Cataloger | DistroDetector] = [detector, *catalogers]
        # asked about every file of an image: the bound methods are looked up once
        self._asks = [(party.name, party.wants) for party in parties]

    def __call__(self, info: FileInfo) -> Capture | None:
        captures = []
        for name, wants in self._asks:
            capture = wants(info)
            if capture is not None:
                captures.append((name, capture))
        if not captures:
            return None

        def capture_all(data: bytes) -> dict[str, object]:
            values: dict[str, object] = {}
            errors = []
            for name, capture in captures:
                try:
                    values[name] = capture(data)
                except Exception as exc:  # one cataloger's failure must not hide the others
                    errors.append(f"{name}: {exc}")
            if errors:
                values["__errors__"] = errors
            return values

        return capture_all


def catalog_view(
    view: FileView,
    subject: Subject,
    catalogers: Sequence[Cataloger] | None = None,
    *,
    directory_scan: bool = False,
) -> Inventory:
    catalogers = list(catalogers) if catalogers is not None else default_catalogers()
    detector = DistroDetector()
    per_party: dict[str, list[Captured]] = {}
    problems = list(view.problems)
    for captured in view.values():
        values = captured.value
        assert isinstance(values, dict)
        for name, value in values.items():
            if name == "__errors__":
                problems.extend(f"{captured.info.path}: could not be read: {e}" for e in value)
                continue
            per_party.setdefault(name, []).append(Captured(captured.info, value))
    distro = detector.detect(per_party.get(detector.name, []))
    env = Environment(
        distro, [layer.diff_id for layer in view.layers], directory_scan, view.resolve
    )
    packages: list[Package] = []
    for cataloger in catalogers:
        found = sorted(per_party.get(cataloger.name, []), key=lambda c: c.info.path)
        packages.extend(cataloger.catalog(found, env))
    # names and contents that are not UTF-8 are kept as lone surrogates while read; no
    # document can hold one, so every text leaves here valid (stray bytes as U+FFFD)
    return valid_texts(
        Inventory(
            subject=subject,
            packages=tuple(_deduplicate(packages)),
            distro=distro,
            problems=tuple(problems),
            catalogers=tuple(c.name for c in catalogers),
        )
    )


def _deduplicate(packages: list[Package]) -> list[Package]:
    owned: set[str] = set()
    for package in packages:
        if package.is_os_package:
            owned.update(package.files)
    kept: list[Package] = []
    seen: set[tuple[str, str, str, str, str]] = set()
    for package in packages:
        if (
            package.type in _DEDUP_TYPES
            and package.locations
            and all(location.path.split(":", 1)[0] in owned for location in package.locations)
        ):
            continue
        key = (
            package.type,
            package.name,
            package.version,
            package.purl,
            package.locations[0].path if package.locations else "",
        )
        if key in seen:
            continue
        seen.add(key)
        kept.append(package)
    return kept


def catalog_image(
    image: Image,
    catalogers: Sequence[Cataloger] | None = None,
    *,
    limits: ViewLimits | None = None,
) -> Inventory:
    catalogers = list(catalogers) if catalogers is not None else default_catalogers()
    view = read_view(image, _Combined(catalogers, DistroDetector()), limits)
    subject = Subject(
        kind="image",
        name=image.name,
        source=image.source,
        manifest_digest=image.manifest_digest,
        config_digest=image.config_digest,
        index_digest=image.index_digest,
        platform=str(image.config.platform),
        layers=image.config.diff_ids,
    )
    return catalog_view(view, subject, catalogers)


def catalog_directory(
    root: str | Path,
    catalogers: Sequence[Cataloger] | None = None,
    *,
    limits: ViewLimits | None = None,
) -> Inventory:
    catalogers = list(catalogers) if catalogers is not None else default_catalogers()
    view = read_directory(root, _Combined(catalogers, DistroDetector()), limits)
    subject = Subject(kind="directory", name=str(root), source="dir")
    return catalog_view(view, subject, catalogers, directory_scan=True)
