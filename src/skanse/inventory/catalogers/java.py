"""Java archives (jar, war, ear and friends), nested ones included.

Every `META-INF/maven/<group>/<artifact>/pom.properties` is a package
(`pkg:maven/<group>/<artifact>@<version>`). An archive without one is named from its
manifest (Implementation-Title/Version, Bundle-SymbolicName/Version) or, failing that, its
file name (`name-1.2.3.jar`). Archives are read in memory with caps on entries, nesting
depth and expanded size, so a zip bomb costs at most the cap.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skanse.inventory.catalogers._base import Environment, make_purl
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

if TYPE_CHECKING:
    import zipfile

__all__ = ["JavaArchive", "JavaCataloger", "parse_java_archive"]

_EXTENSIONS = (
    ".jar",
    ".war",
    ".ear",
    ".par",
    ".sar",
    ".nar",
    ".jpi",
    ".hpi",
    ".kar",
    ".far",
    ".lpkg",
)
_MAX_DEPTH = 4
_MAX_ENTRIES = 100_000
_MAX_MEMBER = 64 * 1024 * 1024
_MAX_TOTAL = 512 * 1024 * 1024
_FILENAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.\-+]*)$")


@dataclass(frozen=True, slots=True)
class JavaArchive:
    """One package found in an archive; `inner` names the nested path, if any."""

    group: str
    artifact: str
    version: str
    inner: str
    licenses: tuple[str, ...] = ()


def _manifest(text: str) -> dict[str, str]:
    # each value's pieces, joined at the end: adding each continuation line to the value so
    # far copied the whole value per line (quadratic in a long wrapped attribute)
    pieces: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(" ") and last is not None:
            last.append(line[1:])
            continue
        if not line.strip():
            break  # main section only
        key, sep, value = line.partition(":")
        if sep:
            parts = pieces[key.strip()] = [value.strip()]
            last = parts if key.strip() else None  # an unnamed attribute takes no continuation
    return {key: "".join(parts) for key, parts in pieces.items()}


def _properties(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


class _Budget:
    def __init__(self) -> None:
        self.total = 0

    def take(self, size: int) -> None:
        self.total += size
        if size > _MAX_MEMBER or self.total > _MAX_TOTAL:
            raise ValueError("java archive expands past the read cap (zip bomb?)")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    """A member's bytes, at most the size its entry declares (which the budget has taken).

    `ZipFile.read` inflates a deflated member in one call whose output is capped at 2 GiB,
    not at the declared size, and cuts it to that size only afterwards: a member declaring
    100 bytes made 1 GiB from 0.5 MB. Reading the declared size caps each inflation at it.
    bzip2 and LZMA members inflate without any cap, and the JVM reads neither.
    """
    import zipfile

    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(
            f"java archive member {info.filename!r} uses compression method "
            f"{info.compress_type}, which Java does not read"
        )
    budget.take(info.file_size)
    with archive.open(info) as member:
        return member.read(info.file_size)


def parse_java_archive(
    data: bytes, name: str = "", depth: int = 0, budget: _Budget | None = None
) -> list[JavaArchive]:
    budget = budget or _Budget()
    import zipfile  # here: most images hold no Java archive, and the import costs 3 ms

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        return []
    found: list[JavaArchive] = []
    with archive:
        infos = archive.infolist()
        if len(infos) > _MAX_ENTRIES:
            raise ValueError("java archive has too many entries")
        manifest: dict[str, str] = {}
        for info in infos:
            member = info.filename
            if member.startswith("META-INF/maven/") and member.endswith("/pom.properties"):
                props = _properties(
                    _read_member(archive, info, budget).decode("utf-8", errors="replace")
                )
                if props.get("artifactId") and props.get("version"):
                    found.append(
                        JavaArchive(
                            props.get("groupId", ""), props["artifactId"], props["version"], name
                        )
                    )
            elif member.upper() == "META-INF/MANIFEST.MF":
                manifest = _manifest(
                    _read_member(archive, info, budget).decode("utf-8", errors="replace")
                )
            elif depth < _MAX_DEPTH and member.lower().endswith(_EXTENSIONS):
                inner = f"{name}:{member}" if name else member
                data = _read_member(archive, info, budget)
                found.extend(parse_java_archive(data, inner, depth + 1, budget))
        if not any(f.inner == name for f in found):
            artifact = (
                manifest.get("Implementation-Title")
                or manifest.get("Bundle-SymbolicName", "").split(";")[0]
            )
            version = manifest.get("Implementation-Version") or manifest.get("Bundle-Version", "")
            if not (artifact and version):
                stem = (name.rsplit(":", 1)[-1] or "").rsplit("/", 1)[-1].rsplit(".", 1)[0]
                match = _FILENAME_VERSION.match(stem)
                if match:
                    artifact, version = artifact or match["name"], version or match["version"]
            if artifact and version:
                group = manifest.get("Implementation-Vendor-Id", "")
                found.append(JavaArchive(group, artifact, version, name))
    return found


class JavaCataloger:
    name = "java-archive-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        if info.path.lower().endswith(_EXTENSIONS):
            file_name = info.path.rsplit("/", 1)[1]
            return lambda data: _tag_outer(parse_java_archive(data, ""), file_name)
        return None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        packages = []
        for captured in found:
            for archive in captured.value:  # type: ignore[attr-defined]
                path = captured.info.path + (f":{archive.inner}" if archive.inner else "")
                packages.append(
                    Package(
                        name=archive.artifact,
                        version=archive.version,
                        type="java-archive",
                        purl=make_purl(
                            "maven",
                            archive.group or archive.artifact,
                            archive.artifact,
                            archive.version,
                        ),
                        cataloger=self.name,
                        locations=(env.location(captured.info, path),),
                        licenses=archive.licenses,
                    )
                )
        return packages


def _tag_outer(found: list[JavaArchive], file_name: str) -> list[JavaArchive]:
    if any(f.inner == "" for f in found):
        return found
    match = _FILENAME_VERSION.match(file_name.rsplit(".", 1)[0])
    if match:
        found.append(JavaArchive("", match["name"], match["version"], ""))
    return found
