"""Paths as libsinsp shows them: one lexical normaliser for every path field.

libsinsp builds `fd.name`, `fs.path.*`, `proc.exepath` and `proc.cwd` by concatenating the
raw path to its directory (the cwd or the dirfd's file) and normalising the result
lexically: repeated slashes collapse (`//etc/shadow` and `///etc/shadow` are
`/etc/shadow`), `.` components go, `..` removes the component before it and stops at the
root, and a trailing slash is dropped. POSIX lets an implementation keep exactly two
leading slashes (`posixpath.normpath` does); neither libsinsp nor the kernel does, and a
path field that keeps them lets `cat //etc/shadow` evade every `fd.name` rule.

For a path without symbolic links this is the path the kernel resolves (what
`/proc/self/fd/N` shows), which the tests check against the kernel itself.
"""

from __future__ import annotations

__all__ = ["concatenate_paths", "normalize_path"]


def normalize_path(path: str) -> str:
    """An absolute path in its one normal form (a relative path stays relative)."""
    if not path:
        return path
    absolute = path[0] == "/"
    if absolute and "//" not in path and "/." not in path and path[-1] != "/":
        return path  # already normal: the common case, without the split
    parts: list[str] = []
    for part in path.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not absolute:
                parts.append(part)  # a relative path cannot know what it climbs out of
            continue
        parts.append(part)
    if absolute:
        return "/" + "/".join(parts)
    return "/".join(parts) or "."


def concatenate_paths(base: str | None, raw: str) -> str:
    """`raw` resolved against the directory `base` (ignored when `raw` is absolute).

    Without a known absolute base a relative path is returned as it was recorded: a
    guess would be a path the process never opened.
    """
    if not raw:
        return raw
    if raw[0] == "/":
        return normalize_path(raw)
    if not base or base[0] != "/":
        return raw
    return normalize_path(base + "/" + raw)
