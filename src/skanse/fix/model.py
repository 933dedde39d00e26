"""What `skanse fix` planned and did: changes attached to checks, per file."""

from __future__ import annotations

from dataclasses import dataclass

from skanse.model import CheckID, InputProblem, ResourceRef

__all__ = ["Change", "Declined", "FileFix", "FixReport"]


@dataclass(frozen=True, slots=True)
class Change:
    """One edit, attached to the check whose finding it resolves."""

    check_id: CheckID
    resource: ResourceRef
    line: int  # the finding's line in the original file
    description: str
    # safe: cannot take away anything the workload may do at run time beyond the finding
    # (no value the author wrote is overturned); unsafe fixes run only with --unsafe-fixes
    safe: bool = True


@dataclass(frozen=True, slots=True)
class Declined:
    """A finding of a check that has a fix, left as it is, and why."""

    check_id: CheckID
    resource: ResourceRef
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class FileFix:
    """The outcome for one file.

    `after` is None when nothing changes. `problem` says why a file that needed fixing was
    left byte-for-byte untouched (it cannot be parsed, it is a symlink out of the tree...).
    `write_path` is the real file to replace (a symlink inside the tree is followed).
    """

    path: str
    write_path: str
    before: bytes | None
    after: bytes | None
    changes: tuple[Change, ...] = ()
    declined: tuple[Declined, ...] = ()
    problem: str | None = None
    created: bool = False  # a new file (the default-deny NetworkPolicies)
    # unsafe fixes that were planned but not applied (no --unsafe-fixes), and the bytes the
    # file would hold with them too (None: there are none)
    pending: tuple[Change, ...] = ()
    pending_after: bytes | None = None

    @property
    def changed(self) -> bool:
        return self.after is not None and self.after != self.before


@dataclass(frozen=True, slots=True)
class FixReport:
    """Every file `fix` looked at, and what the scan could not read."""

    files: tuple[FileFix, ...]
    problems: tuple[InputProblem, ...] = ()
    # unsuppressed findings of checks that have no fix (images, limits, host namespaces...)
    not_fixable: int = 0
    suppressed: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[FileFix, ...]:
        return tuple(f for f in self.files if f.changed)

    @property
    def failed(self) -> tuple[FileFix, ...]:
        return tuple(f for f in self.files if f.problem is not None)

    @property
    def declined(self) -> tuple[Declined, ...]:
        return tuple(d for f in self.files for d in f.declined)
