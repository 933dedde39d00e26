"""The operating system: /etc/os-release, /usr/lib/os-release, then /etc/alpine-release.

Distroless images (Google's, Chainguard's) carry an os-release too; an image with none has
no distribution, and OS package purls are then left empty as Syft does.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from skanse.inventory.catalogers._base import read_text
from skanse.inventory.model import Distro
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["DistroDetector", "parse_os_release"]

_PATHS = ("/etc/os-release", "/usr/lib/os-release", "/etc/alpine-release")


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines, values unquoted the way a shell would (os-release(5))."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw, posix=True)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = " ".join(parts)
    return values


def _from_fields(fields: Mapping[str, str]) -> Distro | None:
    distro_id = fields.get("ID", "").lower()
    if not distro_id:
        return None
    return Distro(
        id=distro_id,
        version_id=fields.get("VERSION_ID", ""),
        name=fields.get("NAME", ""),
        pretty_name=fields.get("PRETTY_NAME", ""),
        id_like=tuple(fields.get("ID_LIKE", "").lower().split()),
        version_codename=fields.get("VERSION_CODENAME", ""),
        build_id=fields.get("BUILD_ID", ""),
    )


class DistroDetector:
    name = "os-release"

    def wants(self, info: FileInfo) -> Capture | None:
        return read_text if info.path in _PATHS and info.size < 64 * 1024 else None

    def detect(self, found: Sequence[Captured]) -> Distro | None:
        by_path = {c.info.path: str(c.value) for c in found}
        for path in _PATHS[:2]:
            if path in by_path:
                distro = _from_fields(parse_os_release(by_path[path]))
                if distro is not None:
                    return distro
        if "/etc/alpine-release" in by_path:
            version = by_path["/etc/alpine-release"].strip()
            return Distro("alpine", version, "Alpine Linux", f"Alpine Linux v{version}")
        return None
