"""The cataloger interface: which files to read, and packages from what was read.

A cataloger never opens files itself. The image reader asks `wants(info)` for every file of
every layer; for a yes it returns a function that turns the file's bytes into a small value
(parsed records, a few bytes of build information). Values of files that a later layer
deleted or replaced are dropped, so `catalog()` sees only what the final image contains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from packageurl import PackageURL

from skanse.inventory.model import Distro, Package, PackageLocation
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["Cataloger", "Environment", "make_purl", "read_text", "refuse_oversized"]


@dataclass(frozen=True, slots=True)
class Environment:
    """What every cataloger may rely on: the distribution and the layers' digests."""

    distro: Distro | None
    layer_digests: Sequence[str | None] = ()
    directory_scan: bool = False  # lock files count only when scanning a directory
    # follows symlinks inside the image (`FileView.resolve`): a path's real path, or None
    resolve: Callable[[str], str | None] | None = None

    def location(self, info: FileInfo, path: str | None = None) -> PackageLocation:
        if self.directory_scan or not self.layer_digests:
            return PackageLocation(path or info.path)
        digest = self.layer_digests[info.layer] if info.layer < len(self.layer_digests) else None
        return PackageLocation(path or info.path, info.layer, digest)


class Cataloger(Protocol):
    """One kind of package evidence (a database, a metadata file, a binary format)."""

    name: str

    def wants(self, info: FileInfo) -> Capture | None: ...

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]: ...


def refuse_oversized(what: str, cap: int) -> Capture:
    """A capture for a package's evidence file over a cataloger's size cap: it fails, so the
    file is reported as not read (and fails --strict) instead of its package going missing
    from the SBOM without a word (a `package.json` padded past the cap hid the package)."""

    def refuse(data: bytes) -> object:
        raise ValueError(f"{what} is {len(data)} bytes, over the {cap}-byte cap; not read")

    return refuse


def read_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def make_purl(
    type_: str,
    namespace: str | None,
    name: str,
    version: str | None,
    qualifiers: Mapping[str, str] | None = None,
) -> str:
    """A purl as Syft writes it: empty qualifiers dropped, keys sorted, values escaped.

    "" for a name no purl can hold: packageurl refuses an empty name and fails on one it
    empties itself (`/`, blanks), and one such package.json or METADATA in an image had
    ended the whole catalogue with an internal error. The package is still listed.
    """
    kept = {k: v for k, v in (qualifiers or {}).items() if v}
    try:
        return PackageURL(
            type=type_,
            namespace=namespace or None,
            name=name,
            version=version or None,
            qualifiers=kept or None,
        ).to_string()
    except (ValueError, TypeError):
        return ""
