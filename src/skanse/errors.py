"""The errors skanse raises, one tree with one base class.

Every error a user can cause or meet derives from `SkanseError`; its `diagnostics()` is the
text the command line shows. The command line maps the tree to exit codes in exactly one
place (`skanse._cli`): every `SkanseError` exits 2, anything else is an internal error and
exits 2 with a traceback under `--debug`.

Problems with one input file are *not* raised: they become `InputProblem` records in the
scan result, so the other files are still scanned (see `skanse.model`).

    * SkanseError
      + UsageError             a flag or argument that cannot be honoured
      + ConfigError            .skanse.yaml or SKANSE_* environment is invalid
      + InputError             nothing could be read, or --strict and something could not
      + RegistryError          the check catalogue is inconsistent (duplicate id, no examples)
      + SourceError            an input could not be parsed (raised inside sources/, turned
        - YamlError              into an InputProblem before it reaches a caller)
      + EditConflict           skanse fix: a planned edit does not fit the document (a
                               scalar where a mapping must be); the finding is declined
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EditConflict",
    "InputError",
    "RegistryError",
    "SkanseError",
    "SourceError",
    "UsageError",
    "YamlError",
]


class SkanseError(Exception):
    """Base of every error skanse raises on purpose."""

    def diagnostics(self) -> str:
        """What the user should read: the problem and, where known, what to do."""
        return str(self)


class UsageError(SkanseError):
    """A command-line flag, argument or value that cannot be honoured."""


class ConfigError(SkanseError):
    """The configuration file or a SKANSE_* environment variable is invalid."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def diagnostics(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self}"


class InputError(SkanseError):
    """No input could be scanned, or --strict was given and some input could not."""


class RegistryError(SkanseError):
    """The check catalogue is inconsistent; a programming error caught at import time."""


class SourceError(SkanseError):
    """An input could not be parsed; carries the position where that was noticed."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.document: int | None = None  # index in a multi-document stream, when known

    def diagnostics(self) -> str:
        if self.line is None:
            return self.message
        if self.column is None:
            return f"line {self.line}: {self.message}"
        return f"line {self.line}, column {self.column}: {self.message}"


class YamlError(SourceError):
    """YAML that is malformed, hostile (alias bomb, too deep, too large) or not JSON-like."""


# ---------------------------------------------------------------------------------------------
# skanse fix


class EditConflict(SkanseError):
    """A planned edit does not fit the document's shape (a scalar where a mapping must be)."""
