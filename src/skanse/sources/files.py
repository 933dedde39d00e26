"""Finding inputs on disk and reading them within limits; shared by every kind of source."""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from skanse.model import InputProblem, ProblemKind

__all__ = [
    "CONFIG_FILE_NAMES",
    "MANIFEST_SUFFIXES",
    "STDIN",
    "Input",
    "InputType",
    "discover",
    "is_dockerfile_name",
    "looks_binary",
    "read_file",
    "too_large",
]

STDIN = "-"
HELM_CHART_FILE = "Chart.yaml"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
CONFIG_FILE_NAMES = (".skanse.yaml", ".skanse.yml")
_BINARY_SNIFF = 8192
# Directories that hold tools' state, never the project's manifests or Dockerfiles.
_SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "node_modules", ".tox", "__pycache__",
     ".mypy_cache", ".ruff_cache", ".pytest_cache", ".terraform"}
)  # fmt: skip


class InputType(enum.StrEnum):
    """What an input holds; `auto` decides by file name (and, for stdin, by content)."""

    AUTO = "auto"
    KUBERNETES = "kubernetes"
    DOCKERFILE = "dockerfile"


@dataclass(frozen=True, slots=True)
class Input:
    path: str  # as given or found; "-" for standard input
    type: InputType  # never AUTO once discovered, except for standard input


# Extensions that say a file named Dockerfile.<ext> is something else: documentation,
# source code, data, BuildKit's per-Dockerfile ignore file (Dockerfile.dockerignore), backups.
_NOT_DOCKERFILE_EXTENSIONS = frozenset(
    {"md", "markdown", "rst", "txt", "adoc", "html", "htm", "pdf", "py", "pyc", "pyi", "sh",
     "bash", "zsh", "fish", "ps1", "bat", "cmd", "js", "mjs", "cjs", "ts", "go", "rs", "java",
     "kt", "rb", "php", "pl", "c", "h", "cc", "cpp", "hpp", "cs", "json", "yaml", "yml", "toml",
     "ini", "xml", "lock", "dockerignore", "orig", "rej", "bak", "swp", "patch", "diff",
     "sig", "asc", "sha256", "gz", "tgz", "zip", "tar", "png", "jpg", "svg"}
)  # fmt: skip


def is_dockerfile_name(name: str) -> bool:
    """Dockerfile and Containerfile (any case) as BuildKit and Trivy name them: the bare
    names, `Dockerfile.<variant>` (Dockerfile.prod) and `<name>.Dockerfile`; not a file whose
    last extension says it is something else (Dockerfile.md, dockerfile.py,
    Dockerfile.dockerignore)."""
    lower = name.lower()
    if lower in ("dockerfile", "containerfile"):
        return True
    if lower.rsplit(".", 1)[-1] in _NOT_DOCKERFILE_EXTENSIONS:
        return False
    return lower.startswith(("dockerfile.", "containerfile.")) or lower.endswith(
        (".dockerfile", ".containerfile")
    )


def _name_type(name: str) -> InputType | None:
    if is_dockerfile_name(name):
        return InputType.DOCKERFILE
    if name.endswith(MANIFEST_SUFFIXES) and name not in CONFIG_FILE_NAMES:
        return InputType.KUBERNETES
    return None


def discover(
    targets: Sequence[str], forced: InputType = InputType.AUTO
) -> Iterator[Input | InputProblem]:
    """The inputs to read, in a stable order.

    Directories are walked (version control, virtualenv and tool caches skipped, symlinked
    directories not followed) for manifests (*.yaml, *.yml, *.json) and Dockerfiles
    (Dockerfile, Dockerfile.*, *.Dockerfile, Containerfile); `forced` keeps only that type.
    A file named explicitly is read whatever its name: as `forced`, or by its name, or as a
    manifest.
    """
    for target in targets:
        if target == STDIN:
            yield Input(STDIN, forced)
            continue
        try:
            info = os.stat(target)
        except FileNotFoundError:
            yield InputProblem(target, ProblemKind.MISSING, "no such file or directory")
            continue
        except OSError as exc:
            yield InputProblem(target, ProblemKind.UNREADABLE, exc.strerror or str(exc))
            continue
        if not stat.S_ISDIR(info.st_mode):
            if forced is not InputType.AUTO:
                yield Input(target, forced)
            else:
                yield Input(target, _name_type(os.path.basename(target)) or InputType.KUBERNETES)
            continue
        for root, dirs, files in os.walk(target):
            if HELM_CHART_FILE in files:
                dirs[:] = []  # templates/ and charts/ are not YAML until rendered
                yield InputProblem(
                    root,
                    ProblemKind.UNRENDERED,
                    f"an unrendered Helm chart ({HELM_CHART_FILE}); render it and scan the "
                    f"output: helm template {root} | skanse scan -",
                )
                continue
            dirs[:] = sorted(
                d
                for d in dirs
                if d not in _SKIPPED_DIRS
                and not os.path.exists(os.path.join(root, d, "pyvenv.cfg"))
            )
            for name in sorted(files):
                kind = _name_type(name)
                if kind is not None and forced in (InputType.AUTO, kind):
                    yield Input(os.path.join(root, name), kind)


def too_large(path: str, size: int, limit: int) -> InputProblem:
    return InputProblem(
        path,
        ProblemKind.TOO_LARGE,
        f"file is {size / 1048576:.1f} MiB, over the {limit / 1048576:.0f} MiB limit "
        "(raise it with --max-file-size)",
    )


def read_file(path: str, limit: int) -> bytes | InputProblem:
    """The bytes of a regular file of at most `limit` bytes, or the problem that stopped it."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return InputProblem(path, ProblemKind.MISSING, "no such file")
    except OSError as exc:
        return InputProblem(path, ProblemKind.UNREADABLE, exc.strerror or str(exc))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return InputProblem(path, ProblemKind.UNREADABLE, "not a regular file")
        if info.st_size > limit:
            return too_large(path, info.st_size, limit)
        # Ask for the size fstat gave, not the limit: a read of `limit + 1` bytes allocates
        # a buffer of that size (32 MiB) for every file, small or not.
        want = info.st_size + 1
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(want)
            if len(data) == want and want <= limit:  # it grew since fstat: on to the limit
                data += handle.read(limit + 1 - want)
    except OSError as exc:
        return InputProblem(path, ProblemKind.UNREADABLE, exc.strerror or str(exc))
    finally:
        os.close(fd)
    if len(data) > limit:
        return too_large(path, len(data), limit)
    return data


def looks_binary(data: bytes) -> bool:
    head = data[:_BINARY_SNIFF]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte order mark
        return False
    return b"\x00" in head
