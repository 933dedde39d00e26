"""A virtual view of an image's file system: layers applied in memory, nothing on the host.

The view keeps one `Node` per path (metadata only) and, for the few files a caller asked
for, a small value computed from their content while the layer streamed past (the whole
content for a package database, a few bytes of build information for a binary). Paths are
normalised, relative to the image root and never contain `..`; symlinks are resolved inside
the view with chroot semantics (`/` and `..` at the top stay at the top), so no link can
lead a reader out of the image.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_SYMLINK_HOPS",
    "Capture",
    "Captured",
    "FileInfo",
    "FileView",
    "LayerInfo",
    "NodeKind",
    "ViewLimits",
    "Wants",
    "normalise_member_path",
]

MAX_SYMLINK_HOPS = 40  # Linux's ELOOP limit


class NodeKind(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "dir"
    SYMLINK = "symlink"
    DEVICE = "device"  # character or block device: recorded, never read
    FIFO = "fifo"


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What is known about a path before its content is read."""

    path: str  # normalised, absolute inside the image: "/var/lib/dpkg/status"
    kind: NodeKind
    size: int
    mode: int
    layer: int  # index of the layer that put it there (0 for a directory source)
    link: str | None = None  # symlink target as written in the image

    @property
    def executable(self) -> bool:
        return self.kind is NodeKind.FILE and bool(self.mode & 0o111)


# Given a path about to be read, a caller returns a function that turns the content into
# the (small) value it wants to keep, or None to leave the content unread.
Capture = Callable[[bytes], object]
Wants = Callable[[FileInfo], Capture | None]


@dataclass(frozen=True, slots=True)
class Captured:
    """A value computed from one file's content, with where that content came from."""

    info: FileInfo
    value: object


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """One applied layer: its digests, sizes and how many entries it carried."""

    index: int
    digest: str | None  # blob digest (compressed), when the source has one
    diff_id: str | None  # digest of the uncompressed tar
    size: int  # bytes read from the blob
    expanded: int  # bytes of tar after decompression
    entries: int
    media_type: str = ""


@dataclass(frozen=True, slots=True)
class ViewLimits:
    """Caps that keep a hostile image from exhausting memory, disk or time."""

    max_expanded_bytes: int = 16 * 1024**3  # all layers of one image, uncompressed
    max_ratio: int = 200  # uncompressed/compressed, enforced past `ratio_grace` bytes
    ratio_grace: int = 64 * 1024**2
    max_entries: int = 2_000_000
    max_path_length: int = 4096
    max_capture_bytes: int = 512 * 1024**2  # one file read for a cataloger


@dataclass
class FileView:
    """The merged file system of an image: every path's node plus the captured values."""

    nodes: dict[str, FileInfo] = field(default_factory=dict)
    captured: dict[str, Captured] = field(default_factory=dict)
    layers: list[LayerInfo] = field(default_factory=list)
    # hostile or unreadable entries that were neutralised, in reading order
    problems: list[str] = field(default_factory=list)

    def get(self, path: str) -> FileInfo | None:
        return self.nodes.get(path)

    def resolve(self, path: str) -> str | None:
        """Follow symlinks in every component of `path` inside the view.

        Absolute targets start again at the image root, `..` never climbs above it; None
        when a component is missing or the chain is longer than `MAX_SYMLINK_HOPS`.
        """
        pending = [c for c in path.split("/") if c not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/" + "/".join([*resolved, part])
            node = self.nodes.get(candidate)
            if node is None:
                return None
            if node.kind is NodeKind.SYMLINK and node.link is not None:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    return None
                target = [c for c in node.link.split("/") if c not in ("", ".")]
                if node.link.startswith("/"):
                    resolved = []
                pending = target + pending
                continue
            resolved.append(part)
        return "/" + "/".join(resolved)

    def values(self) -> Iterator[Captured]:
        return iter(self.captured.values())

    def hide(self, removed: set[str], opaque: set[str]) -> None:
        """Apply one layer's whiteouts in a single pass: `removed` paths and everything
        under them, and everything under the `opaque` directories (which stay)."""
        doomed = []
        for key in self.nodes:
            if key in removed:
                doomed.append(key)
                continue
            parent = key.rsplit("/", 1)[0] or "/"
            while True:
                if parent in removed or parent in opaque:
                    doomed.append(key)
                    break
                if parent == "/":
                    break
                parent = parent.rsplit("/", 1)[0] or "/"
        for key in doomed:
            self.drop(key)

    def drop(self, path: str) -> None:
        """Delete `path` alone (its node and captured value), not what is under it."""
        self.nodes.pop(path, None)
        self.captured.pop(path, None)


def normalise_member_path(name: str) -> str | None:
    """`./usr/bin/x`, `/usr/bin/x`, `usr//bin/./x` -> `/usr/bin/x`; None if it climbs (`..`)."""
    if "//" not in name and "/." not in name and not name.startswith(".") and name[-1:] != "/":
        # no empty, `.` or `..` component (nor any starting with a dot): already normal
        return "/" + name.lstrip("/")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/" + "/".join(parts)


def parent_of(path: str) -> str:
    return posixpath.dirname(path) or "/"
