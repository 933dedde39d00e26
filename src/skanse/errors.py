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
      + ImageError             images (skanse.oci): the reference and what failed
        - ImageReferenceError    an image reference that the container tools would reject
        - RegistryClientError    a registry answered with an error, or not at all
          · AuthError              401/403: credentials missing, wrong or refused
          · NotFoundError          404: no such repository, tag, manifest or blob
        - DigestMismatchError    content whose sha256 differs from its digest (never cached)
        - ManifestError          a manifest, index or config that is malformed, too large or
                                 of an unknown media type; no matching platform
        - LayoutError            an OCI layout or docker archive that is incomplete or hostile
        - LayerError             a layer that cannot be read safely (bomb, bad compression)
      + InventoryError         skanse.inventory: an SBOM could not be produced or written
      + HostError              a host audit cannot start (the root is not a directory)
      + HostFactError          a fact a host check needs could not be established; the audit
        - FactUnavailable        turns it into "could not check" (unreadable, malformed input)
        - FactNotApplicable      or "not applicable" (the kernel lacks the feature)
      + EditConflict           skanse fix: a planned edit does not fit the document (a
                               scalar where a mapping must be); the finding is declined
      + SigningError           skanse.signing: signing or attaching could not be done
        - KeyFileError           a key file that is unreadable, malformed, of an unsupported
                                 type, or whose password is wrong
        - SignaturePolicyError   an image policy file that is malformed or names unknown keys
      (A signature that does not verify is not an error: it is a result, "not verified",
      with the reason.)
      + AdmissionError         skanse admission could not do what was asked
        - PolicyError            the admission policy file is missing, malformed or invalid
        - CertificateError       TLS material cannot be read, loaded or generated
      + VulnError              skanse.vuln: vulnerability data or matching
        - DatabaseError          the advisory database is missing, unreadable or not SQLite
          · DatabaseSchemaError    built by another skanse schema version: rebuild it
          · TransferError          an exported database whose manifest or digest does not hold
        - SbomError              a file that is not a valid CycloneDX or SPDX JSON SBOM
        - VexError               a VEX document that is not valid OpenVEX or CycloneDX VEX
      + ReportError            skanse report: the posture report could not be made
        - ReportInputError       a results file that is unreadable, not a skanse result, or of
                                 an incompatible schema version
        - PdfError               the PDF could not be rendered (WeasyPrint missing or failing)
      + PolicyLoadError        ValidatingAdmissionPolicy files that cannot be loaded (every
                               problem, located: file:line:column and expression position)
      + PolicyTestError        a `skanse policy test` file is unreadable or malformed
      + SensorError            the runtime sensor failed while loading, running or stopping
        - SensorUnavailableError   this machine cannot run the sensor; names what is missing
      + ResponseError          a response action (kill, freeze, isolate, quarantine,
                               release) could not be carried out
"""

from __future__ import annotations

__all__ = [
    "AdmissionError",
    "AuthError",
    "CertificateError",
    "ConfigError",
    "DatabaseError",
    "DatabaseSchemaError",
    "DigestMismatchError",
    "EditConflict",
    "FactNotApplicable",
    "FactUnavailable",
    "GraphError",
    "HostError",
    "HostFactError",
    "ImageError",
    "ImageReferenceError",
    "InputError",
    "InventoryError",
    "KeyFileError",
    "LayerError",
    "LayoutError",
    "ManifestError",
    "NetpolError",
    "NotFoundError",
    "PdfError",
    "PolicyError",
    "ProofError",
    "RegistryClientError",
    "RegistryError",
    "ReportError",
    "ReportInputError",
    "ResponseError",
    "RuleTestError",
    "RulesError",
    "SbomError",
    "SensorError",
    "SensorUnavailableError",
    "SignaturePolicyError",
    "SigningError",
    "SkanseError",
    "SourceError",
    "TransferError",
    "UsageError",
    "VexError",
    "VulnError",
    "YamlError",
]


class SkanseError(Exception):
    """Base of every error skanse raises on purpose."""

    def diagnostics(self) -> str:
        """What the user should read: the problem and, where known, what to do."""
        return str(self)


class UsageError(SkanseError):
    """A command-line flag, argument or value that cannot be honoured."""


class _FileError(SkanseError):
    """An error about one file: `diagnostics()` names the file first, when it is known."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def diagnostics(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(_FileError):
    """The configuration file or a SKANSE_* environment variable is invalid."""


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


# -- images and SBOMs (skanse.oci, skanse.inventory) ----------------------------------------


class ImageError(SkanseError):
    """Something about a container image failed; names the image and the failing step."""

    def __init__(self, message: str, *, reference: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reference = reference

    def diagnostics(self) -> str:
        if self.reference:
            return f"{self.reference}: {self.message}"
        return self.message


class ImageReferenceError(ImageError):
    """An image reference the container tools would reject (bad name, tag or digest)."""


class RegistryClientError(ImageError):
    """A registry answered with an error status or could not be reached."""

    def __init__(
        self, message: str, *, reference: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, reference=reference)
        self.status = status


class AuthError(RegistryClientError):
    """401 or 403: credentials are missing, wrong, or not enough for the scope."""


class NotFoundError(RegistryClientError):
    """404: the repository, tag, manifest or blob does not exist."""


class DigestMismatchError(ImageError):
    """Content whose sha256 is not the digest it was asked for; it is never cached."""


class ManifestError(ImageError):
    """A manifest, index or config that is malformed, too large or of an unknown media type."""


class LayoutError(ImageError):
    """An OCI layout directory or docker archive that is incomplete or hostile."""


class LayerError(ImageError):
    """A layer that cannot be read safely: a decompression bomb, bad compression, a bad tar."""


class InventoryError(SkanseError):
    """An SBOM could not be produced or written."""


# --- host audit (skanse.host) ---------------------------------------------------------------


class HostError(SkanseError):
    """The host audit cannot start at all: the root path is missing or not a directory."""


class HostFactError(SkanseError):
    """A fact a host check needs could not be established; never turned into a pass.

    `path` is the file (as seen inside the audited root, "/proc/sys/...") the fact comes from.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def diagnostics(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FactUnavailable(HostFactError):
    """Unreadable, malformed or missing input: the check reports "could not check"."""

    def __init__(self, message: str, *, path: str = "", kind: str = "unreadable") -> None:
        super().__init__(message, path=path)
        # a skanse.model.ProblemKind value: missing, unreadable, too-large, parse
        self.kind = kind


class FactNotApplicable(HostFactError):
    """The thing a check looks at does not exist here (a sysctl the kernel lacks)."""


# ---------------------------------------------------------------------------------------------
# skanse fix


class EditConflict(SkanseError):
    """A planned edit does not fit the document's shape (a scalar where a mapping must be)."""


# -- signing (skanse.signing) ---------------------------------------------------------------
# Verification never raises for a bad signature: it returns "not verified" with the reason.


class SigningError(SkanseError):
    """Signing, attaching or reading signatures could not be done (not: "did not verify")."""


class KeyFileError(SigningError, _FileError):
    """A key that is unreadable, malformed, of an unsupported type, or whose password is wrong."""


class SignaturePolicyError(SigningError, _FileError):
    """An image policy that is malformed, or names keys it does not define."""


# -- admission webhook (skanse.admission) -----------------------------------------------------
# A bad AdmissionReview is never raised to the caller: the webhook answers it (4xx, or a
# well-formed denial). These are for what the operator sets up: policy files and certificates.


class AdmissionError(SkanseError):
    """skanse admission could not do what was asked."""


class PolicyError(AdmissionError, _FileError):
    """The admission policy file is missing, malformed or invalid."""


class CertificateError(AdmissionError):
    """TLS material (certificate, key, CA) cannot be read, loaded or generated."""


# -- vulnerability scanning (skanse.vuln) -----------------------------------------------------
# A malformed advisory file is not raised: the import skips it and counts it, with its name
# and the reason, in the build summary.


class VulnError(SkanseError):
    """Vulnerability data or matching could not do what was asked."""


class DatabaseError(VulnError, _FileError):
    """The advisory database is missing, unreadable, or not a skanse database."""


class DatabaseSchemaError(DatabaseError):
    """A database written by another skanse schema version; it must be rebuilt."""


class TransferError(DatabaseError):
    """An exported database whose manifest is missing or malformed, or whose digest differs."""


class SbomError(VulnError):
    """A file given as an SBOM that is not valid CycloneDX or SPDX JSON."""


class VexError(VulnError):
    """A VEX document that is not valid OpenVEX or CycloneDX VEX."""


# -- posture report (skanse.report.posture) -----------------------------------------------------
# A layer that was not given is not an error: it is reported as "not assessed".


class ReportError(SkanseError):
    """skanse report could not make the posture report."""


class ReportInputError(ReportError):
    """A results file that cannot be used: unreadable, not a skanse result, or of a schema
    version this skanse does not read."""


class PdfError(ReportError):
    """The PDF could not be rendered from the HTML."""


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


class PolicyLoadError(SkanseError):
    """ValidatingAdmissionPolicy files that cannot be loaded: every problem, located."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if problems else "policies could not be loaded")
        self.problems = tuple(problems)

    def diagnostics(self) -> str:
        return "\n".join(self.problems)


class PolicyTestError(SkanseError):
    """A `skanse policy test` file that cannot be read or names what does not exist."""
