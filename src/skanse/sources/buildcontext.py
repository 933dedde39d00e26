"""What an `ADD` source in the build context is, by its content: an archive ADD extracts, a
plain file or directory it copies as COPY would, or something that cannot be told.

Docker (moby `archive.IsArchivePath`, BuildKit's `isArchivePath`) extracts a local source
that is a regular file whose content, after gzip, bzip2, xz or zstd decompression, starts
with a valid tar header, whatever its name. So `ADD archive /opt/` extracts a tar named
`archive`, and `COPY` would not. A directory is copied, its archives unextracted.

Sources are read the way the builder sees them: relative to the context root (a leading `/`
and `..` stay inside it), symlinks followed only while they stay in the context, and only the
first 512 bytes of a regular file are read.
"""

from __future__ import annotations

import enum
import os
import posixpath
import re
import stat
from dataclasses import dataclass

from skanse.sources.dockerfile import Dockerfile

__all__ = ["SourceKind", "SourceSeen", "archive_sources", "examine_source", "looks_like_archive"]

_TAR_BLOCK = 512
# Compression formats moby's DecompressStream detects before it reads the tar header. zstd is
# in moby's list although the ADD documentation names only gzip, bzip2 and xz: an image
# extracted by one builder and copied by another is not a COPY either.
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
_REMOTE = re.compile(r"^(https?|ftp)://|^git@|\.git(#.*)?$", re.IGNORECASE)
_WILDCARD = re.compile(r"[*?\[]")


class SourceKind(enum.StrEnum):
    PLAIN = "plain"  # a regular file that is not an archive, or a directory: COPY does the same
    ARCHIVE = "archive"  # ADD extracts it
    UNKNOWN = "unknown"  # not examined: see the reason


@dataclass(frozen=True, slots=True)
class SourceSeen:
    kind: SourceKind
    reason: str = ""  # why it is an archive or could not be examined


def looks_like_archive(head: bytes) -> bool:
    """Whether a file starting with `head` (its first 512 bytes, or all of a shorter file)
    may be extracted by ADD: compressed (then it may hold a tar), or a tar header."""
    if head.startswith(_COMPRESSED):
        return True
    if len(head) < _TAR_BLOCK:
        return False  # Go's tar reader needs a whole header block
    return head[257:262] == b"ustar" or _tar_checksum_matches(head[:_TAR_BLOCK])


def _tar_checksum_matches(block: bytes) -> bool:
    """The header checksum test of Go's archive/tar (which also accepts v7 headers without
    the `ustar` magic): the octal field equals the unsigned or signed byte sum of the block
    with the field itself counted as spaces."""
    field = block[148:156].strip(b" \x00")
    if not field or not all(48 <= b <= 55 for b in field):
        return False
    wanted = int(field, 8)
    rest = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(rest)
    signed = unsigned - 256 * sum(1 for b in rest if b >= 128)
    return wanted in (unsigned, signed)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def examine_source(context: str, source: str) -> SourceSeen:
    """What the ADD source `source` is in the build context directory `context`."""
    if _REMOTE.search(source):
        return SourceSeen(SourceKind.UNKNOWN, f"{source} is fetched, not read from the context")
    if "$" in source:
        return SourceSeen(SourceKind.UNKNOWN, f"{source} holds a build variable")
    if _WILDCARD.search(source):
        return SourceSeen(SourceKind.UNKNOWN, f"{source} is a wildcard")
    root = os.path.realpath(context)
    relative = posixpath.normpath("/" + source).lstrip("/")
    real = os.path.realpath(os.path.join(root, *relative.split("/")) if relative else root)
    if not _inside(real, root):
        return SourceSeen(SourceKind.UNKNOWN, f"{source} leads out of the build context {root}")
    try:
        info = os.lstat(real)
    except OSError as exc:
        why = "is not in" if isinstance(exc, FileNotFoundError) else "cannot be read from"
        return SourceSeen(SourceKind.UNKNOWN, f"{source} {why} the build context {root}")
    if stat.S_ISDIR(info.st_mode):
        return SourceSeen(SourceKind.PLAIN)
    if not stat.S_ISREG(info.st_mode):
        return SourceSeen(SourceKind.UNKNOWN, f"{source} is not a regular file or directory")
    try:
        head = _head(real)
    except OSError:
        return SourceSeen(SourceKind.UNKNOWN, f"{source} cannot be read")
    if looks_like_archive(head):
        return SourceSeen(SourceKind.ARCHIVE, f"{source} is a tar archive by its content")
    return SourceSeen(SourceKind.PLAIN)


def _head(path: str) -> bytes:
    """The first block of a regular file, never through a symlink or a FIFO swapped in."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        head = b""
        while len(head) < _TAR_BLOCK:
            chunk = os.read(fd, _TAR_BLOCK - len(head))
            if not chunk:
                break
            head += chunk
        return head
    finally:
        os.close(fd)


def archive_sources(df: Dockerfile, context: str) -> frozenset[str]:
    """The local ADD sources of `df` that are archives by their content in `context`."""
    found = set()
    for ins in df.instructions:
        if ins.keyword != "ADD" or ins.heredocs:
            continue
        for source in ins.words[:-1]:
            if examine_source(context, source).kind is SourceKind.ARCHIVE:
                found.add(source)
    return frozenset(found)
