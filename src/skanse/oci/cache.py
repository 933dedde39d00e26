"""A content-addressed blob cache: `<root>/blobs/sha256/<hex>`, written only after verifying.

Downloads land in `<root>/partial/<hex>` (kept between runs so a later run resumes them) and
are renamed into `blobs/` only once their sha256 matches the digest, so the cache never holds
content that failed its check. Readers still re-verify layers while streaming them.
"""

from __future__ import annotations

import os
from pathlib import Path

from skanse.oci.manifest import validate_digest

__all__ = ["BlobCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """`$SKANSE_CACHE_DIR`, else `$XDG_CACHE_HOME/skanse`, else `~/.cache/skanse`."""
    explicit = os.environ.get("SKANSE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "skanse"


class BlobCache:
    """Blobs by digest under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _split(self, digest: str) -> tuple[str, str]:
        algorithm, _, hexpart = validate_digest(digest).partition(":")
        return algorithm, hexpart

    def path(self, digest: str) -> Path:
        algorithm, hexpart = self._split(digest)
        return self.root / "blobs" / algorithm / hexpart

    def get(self, digest: str) -> Path | None:
        """The cached blob's path, or None."""
        path = self.path(digest)
        return path if path.is_file() else None

    def partial(self, digest: str) -> Path:
        """Where an unfinished download of `digest` is kept (directories created)."""
        algorithm, hexpart = self._split(digest)
        directory = self.root / "partial"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return directory / f"{algorithm}-{hexpart}"

    def commit(self, digest: str, verified: Path) -> Path:
        """Move a verified download into place; atomic (same file system)."""
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(verified, target)
        return target
