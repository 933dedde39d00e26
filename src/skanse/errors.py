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
      + NetpolError            skanse netpol could not do what was asked
        - GraphError             a declared service graph is invalid or names unknown workloads
        - ProofError             generated policies do not allow exactly what was declared
      + RulesError             runtime rules: a rules-test file or rule set cannot be used
        - RuleTestError          a `skanse rules test` file is unreadable or malformed
      + SensorError            the runtime sensor failed while loading, running or stopping
        - SensorUnavailableError   this machine cannot run the sensor; names what is missing
      + ResponseError          a response action (kill, freeze, isolate, quarantine,
                               release) could not be carried out
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "GraphError",
    "InputError",
    "NetpolError",
    "ProofError",
    "RegistryError",
    "ResponseError",
    "RuleTestError",
    "RulesError",
    "SensorError",
    "SensorUnavailableError",
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


# -- network policies (skanse.netpol) ---------------------------------------------------------


class NetpolError(SkanseError):
    """skanse netpol could not do what was asked."""


class GraphError(NetpolError):
    """A declared service graph is invalid, or names workloads the manifests do not have."""


class ProofError(NetpolError):
    """Generated policies do not allow exactly the declared connections; nothing is written."""

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message)
        self.differences = differences

    def diagnostics(self) -> str:
        shown = "\n  ".join(self.differences[:20])
        more = (
            f"\n  ... and {len(self.differences) - 20} more" if len(self.differences) > 20 else ""
        )
        return f"{self}\n  {shown}{more}"


# -- runtime rules (skanse.rules) ------------------------------------------------------------
# A rules file with errors is not raised: its diagnostics are a LoadResult, listed in full.


class RulesError(SkanseError):
    """The runtime rules layer could not do what was asked."""


class RuleTestError(RulesError):
    """A `skanse rules test` file that cannot be read or is not in the expected shape."""


# -- runtime sensor (skanse.runtime) ---------------------------------------------------------


class SensorError(SkanseError):
    """The runtime sensor failed while loading, running or stopping."""


class SensorUnavailableError(SensorError):
    """This machine cannot run the requested sensor; `requirement` names what is missing."""

    def __init__(self, message: str, *, requirement: str, alternative: str | None = None):
        super().__init__(message)
        self.requirement = requirement
        self.alternative = alternative

    def diagnostics(self) -> str:
        text = f"{self}\n  missing requirement: {self.requirement}"
        if self.alternative:
            text += f"\n  alternative: {self.alternative}"
        return text


class ResponseError(SkanseError):
    """A response action (kill, freeze, isolate, quarantine, release) could not be done."""
