"""The shared vocabulary of every layer: severities, checks, findings and scan results.

Everything here is a frozen, slotted dataclass (or an enum) with no behaviour beyond small
derived properties, so that results can be passed between layers, compared in tests and
rendered by any reporter without surprises.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NewType

__all__ = [
    "ANNOTATION_PREFIX",
    "CheckID",
    "CheckMeta",
    "ControlRef",
    "Evaluation",
    "Finding",
    "Framework",
    "InputProblem",
    "Layer",
    "Location",
    "NotApplicable",
    "ProblemKind",
    "ResourceRef",
    "ScanResult",
    "Severity",
    "SkippedDocument",
    "Suppression",
    "SuppressionSource",
    "WorkloadInfo",
]

CheckID = NewType("CheckID", str)


class Severity(enum.StrEnum):
    """How bad a finding is. Ordered: CRITICAL > HIGH > MEDIUM > LOW > INFO."""

    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    INFO = "INFO"

    @property
    def rank(self) -> int:
        """4 for CRITICAL down to 0 for INFO; higher is worse."""
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, name: str) -> Severity:
        """A severity from its name in any case (`high`, `High`, `HIGH`)."""
        try:
            return cls(name.strip().upper())
        except ValueError:
            names = ", ".join(s.value.lower() for s in cls)
            raise ValueError(f"unknown severity {name!r} (expected one of: {names})") from None

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_SEVERITY_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


class Layer(enum.StrEnum):
    """The part of the stack a check looks at; also the prefix of its id."""

    KUBERNETES = "kubernetes"
    DOCKERFILE = "dockerfile"
    NETWORK = "network"
    HOST = "host"
    IMAGE = "image"
    RUNTIME = "runtime"  # Falco-compatible rules over syscall and Kubernetes audit events


class Framework(enum.StrEnum):
    """A catalogue of controls that checks give evidence for (titles in skanse.controls)."""

    CIS_KUBERNETES = "cis-kubernetes"  # CIS Kubernetes Benchmark v1.10.0 ids (5.2.2, 4.2.1)
    PSS = "pss"  # Pod Security Standards controls, by the names of the standard's tables
    NSA_CISA = "nsa-cisa"  # NSA/CISA Kubernetes Hardening Guide v1.2, by section title
    GDPR = "gdpr"  # GDPR Article 32 "security of processing", by paragraph and point
    ISO_27001 = "iso-27001"  # ISO/IEC 27001:2022 Annex A, by control number (A.8.9)
    NSM = "nsm"  # NSM Grunnprinsipper for IKT-sikkerhet, by principle number (2.3)


@dataclass(frozen=True, slots=True)
class ControlRef:
    """One control a check gives evidence for; `approximate` when the check covers only part
    of the control or goes beyond it (`note` says how)."""

    framework: Framework
    control: str
    approximate: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class CheckMeta:
    """What a check is, independent of any input: drives SARIF rules, docs and `checks list`."""

    id: CheckID
    title: str
    severity: Severity
    layer: Layer
    description: str
    remediation: str
    references: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    # Profiles that include this check (PSS controls are selected per level and version).
    profiles: frozenset[str] = frozenset()
    # The Pod Security Admission control this check implements, if any.
    pss_control: str | None = None
    pss_level: str | None = None
    fixable: bool = False
    # Opt-in checks run only when enabled by name (--enable ID or `enable:` in .skanse.yaml).
    opt_in: bool = False
    # A finding about a namespace as a whole: the check reports it on every workload of the
    # namespace, and once suppressions are known one is kept, on the first workload whose
    # finding is not suppressed (skanse.results.apply_suppressions).
    per_namespace: bool = False
    # The compliance controls a pass of this check evidences and a finding contradicts.
    controls: tuple[ControlRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Location:
    """Where a finding points: a file, a document in it, a JSON pointer and its line.

    `pointer` may name a key that does not exist yet (a missing field); `line` and `column`
    are then those of its nearest existing ancestor. Lines and columns are 1-based.
    """

    file: str
    line: int = 1
    column: int = 1
    pointer: str = ""
    document: int = 0
    end_line: int | None = None


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """The thing a finding is about: a Kubernetes object, an image, a stage, a host."""

    kind: str
    name: str
    namespace: str | None = None
    api_version: str | None = None

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


# `ignore.skanse.io/<ID or alias>: "<reason>"` on an object or its pod template suppresses
# that check's findings on it (SuppressionSource.ANNOTATION).
ANNOTATION_PREFIX = "ignore.skanse.io/"


class SuppressionSource(enum.StrEnum):
    CONFIG = "config"  # a .skanse.yaml entry
    ANNOTATION = "annotation"  # ignore.skanse.io/<ID> on the object
    INLINE = "inline"  # a `# skanse:ignore=<ID> reason="..."` comment
    VEX = "vex"  # an OpenVEX or CycloneDX VEX statement (not_affected, fixed...)
    DISTRO = "distro"  # the distribution's own data says the package is not affected


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why a finding is accepted, by whom it was declared, and until when."""

    source: SuppressionSource
    reason: str
    origin: str  # where it was declared: "file:line" or the annotation key
    expires: _dt.date | None = None

    def expired(self, today: _dt.date) -> bool:
        """True after the expiry day has passed (the day itself still counts)."""
        return self.expires is not None and today > self.expires


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation of one check at one place in one resource."""

    check_id: CheckID
    severity: Severity
    title: str
    message: str
    location: Location
    resource: ResourceRef
    suppression: Suppression | None = None
    # Candidate suppressions found next to the finding (annotation, inline); results.py
    # decides which one applies, because only it knows today's date.
    declared_suppressions: tuple[Suppression, ...] = ()
    # Suppressions that matched but had expired (set by results.py), so reports can show them.
    expired_suppressions: tuple[Suppression, ...] = ()

    @property
    def suppressed(self) -> bool:
        return self.suppression is not None

    @property
    def fingerprint(self) -> str:
        """Stable across line shifts: check, file, resource and the pointer, not the line."""
        key = "\x1f".join(
            (
                self.check_id,
                self.location.file,
                str(self.location.document),
                str(self.resource),
                self.location.pointer,
            )
        )
        # a file name that is not UTF-8 holds lone surrogates: encodable, never an error
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class ProblemKind(enum.StrEnum):
    """Why an input could not be (fully) checked."""

    MISSING = "missing"  # path does not exist
    UNREADABLE = "unreadable"  # permission, I/O error, not a regular file
    TOO_LARGE = "too-large"
    BINARY = "binary"
    PARSE = "parse"  # malformed, hostile or over a limit
    UNRENDERED = "unrendered"  # a template (a Helm chart) that must be rendered first
    INTERNAL = "internal"  # a bug in skanse; reported, never silently passed


@dataclass(frozen=True, slots=True)
class InputProblem:
    """An input that could not be checked, with the reason. Never a pass."""

    file: str
    kind: ProblemKind
    message: str
    line: int | None = None
    column: int | None = None
    document: int | None = None
    # The check that could not run because of this problem, when it is one check (host audits).
    check_id: CheckID | None = None


@dataclass(frozen=True, slots=True)
class SkippedDocument:
    """A document that was read but is not something skanse checks (not Kubernetes)."""

    file: str
    document: int
    reason: str
    line: int = 1


@dataclass(frozen=True, slots=True)
class NotApplicable:
    """A check that does not apply here (a sysctl the kernel lacks), with the reason.

    Neither a pass nor a failure: renderers list it so that a missing result is explained.
    """

    check_id: CheckID
    reason: str
    file: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The checks that ran to completion on one resource (passes included, for JUnit)."""

    resource: ResourceRef
    location: Location
    check_ids: tuple[CheckID, ...]


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """What a scanned workload runs and exposes, so that other layers' results join to it
    (images to vulnerabilities and signatures, ports to network reachability)."""

    resource: ResourceRef
    images: tuple[str, ...]  # every container's image, init and ephemeral included
    ports: tuple[tuple[str, int], ...] = ()  # (protocol, containerPort)
    host_network: bool = False
    # short (12 hex) ids of the running containers of a live Pod (status.containerStatuses),
    # the id runtime alerts carry in container.id
    container_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Everything one scan found, before or after suppressions and filters are applied."""

    findings: tuple[Finding, ...]
    checks: tuple[CheckMeta, ...]
    evaluations: tuple[Evaluation, ...] = ()
    problems: tuple[InputProblem, ...] = ()
    skipped: tuple[SkippedDocument, ...] = ()
    targets: tuple[str, ...] = ()
    files_scanned: int = 0
    objects_scanned: int = 0
    unknown_kinds: Mapping[str, int] = field(default_factory=dict)
    profile: str = ""
    pss: str = ""
    warnings: tuple[str, ...] = ()
    # Checks that do not apply to this input (host audits: features the kernel lacks).
    not_applicable: tuple[NotApplicable, ...] = ()
    # What the scan established about its target besides findings, in display order
    # (host audits: virtualization, kernel isolation, the kubelet config in use).
    facts: Mapping[str, str] = field(default_factory=dict)
    started: _dt.datetime | None = None
    finished: _dt.datetime | None = None
    # The workloads of a manifest scan, with their images and ports (posture report joins).
    workloads: tuple[WorkloadInfo, ...] = ()
