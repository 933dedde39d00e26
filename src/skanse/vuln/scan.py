"""One vulnerability scan: inventory + database + VEX -> matches and a `ScanResult`.

    matches, result = scan_inventory(db, inventory, target="alpine:3.19", vex=statements)

Each match becomes a `Finding` whose check id is the advisory id (aliases resolve to it, so
`.skanse.yaml` suppressions may name a CVE), whose resource is the package's purl and whose
location is the file that is evidence for the package. Distro "not affected" records and
VEX statements are *declared* suppressions: `skanse.results.apply_suppressions` chooses
among them and `.skanse.yaml` entries, as for every other layer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from packageurl import PackageURL

from skanse.controls import GDPR_SECURITY, NSA_IMAGES, NSA_UPGRADING, nsa
from skanse.inventory.model import Inventory, Package, Subject
from skanse.model import (
    CheckID,
    CheckMeta,
    Evaluation,
    Finding,
    InputProblem,
    Layer,
    Location,
    ProblemKind,
    ResourceRef,
    ScanResult,
    Severity,
)
from skanse.vuln.db import Database
from skanse.vuln.matcher import MatchReport, match_inventory
from skanse.vuln.model import FixState, Match
from skanse.vuln.vex import VexStatement, apply_vex, normalise_repository

__all__ = [
    "VULN_CONTROLS",
    "VulnScan",
    "database_age",
    "image_purls",
    "package_ref",
    "scan_inventory",
    "with_final_suppressions",
]


@dataclass(frozen=True, slots=True)
class VulnScan:
    """What renderers need: the target, what was found, and how the database was built."""

    target: str
    inventory: Inventory
    report: MatchReport
    matches: tuple[Match, ...]  # after --only-fixed, suppressions final
    result: ScanResult
    database: dict[str, str]  # path, built, schema_version, skanse_version


def package_ref(package: Package) -> str:
    """The purl without qualifiers (`pkg:pypi/requests@2.19.0`), else `name@version`."""
    return _short_purl(package.purl) or f"{package.name}@{package.version}"


@functools.lru_cache(maxsize=8192)
def _short_purl(text: str) -> str | None:
    if not text:
        return None
    try:
        purl = PackageURL.from_string(text)
    except ValueError:
        return None
    return PackageURL(
        type=purl.type, namespace=purl.namespace, name=purl.name, version=purl.version
    ).to_string()


def _where(package: Package) -> Location:
    path = package.locations[0].path if package.locations else "(no location)"
    return Location(file=path, line=1)


def _message(match: Match) -> str:
    package = match.package
    ids = ", ".join((*match.aliases, *match.related))
    text = f"{package.name} {package.version} is affected by {match.advisory_id}"
    if ids:
        text += f" ({ids})"
    if match.fix_state is FixState.FIXED and match.fixed_version:
        text += f"; fixed in {match.fixed_version}"
    elif match.fix_state is FixState.WONT_FIX:
        text += "; the distribution will not fix it"
    else:
        text += "; no fix yet"
    if match.matched_name != package.name:
        text += f" (source package {match.matched_name} {match.matched_version})"
    return text


# A known vulnerability in an image: the guide asks to scan images and to patch promptly.
VULN_CONTROLS = (
    nsa(NSA_IMAGES, note="scan images for vulnerabilities"),
    nsa(NSA_UPGRADING),
    GDPR_SECURITY,
)


def _meta(advisory_id: str, group: Sequence[Match], details: str) -> CheckMeta:
    first = group[0]
    severities = [m.gate_severity or Severity.INFO for m in group]
    fixes = sorted({f"{m.package.name} {m.fixed_version}" for m in group if m.fixed_version})
    remediation = (
        "Upgrade to a fixed version: " + ", ".join(fixes)
        if fixes
        else "No fixed version is known; remove the package, or record why it is acceptable "
        "(VEX or a .skanse.yaml suppression with a reason)."
    )
    return CheckMeta(
        id=CheckID(advisory_id),
        title=first.summary or advisory_id,
        severity=max(severities),
        layer=Layer.IMAGE,
        description=details or first.summary or advisory_id,
        remediation=remediation,
        references=first.references,
        aliases=tuple(dict.fromkeys((*first.aliases, *first.related))),
        controls=VULN_CONTROLS,
    )


def image_purls(subject: Subject) -> tuple[str, ...]:
    """The scanned image as a purl: `pkg:oci/<name>@<digest>`, with `repository_url` when
    the image came from a registry (a layout or an archive has no repository)."""
    if not subject.manifest_digest:
        return ()
    reference = subject.name.split("@", 1)[0]
    rest = reference.partition("/")[2]
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:  # drop the tag; a port is in the host part, not the last segment
        reference = reference[: len(reference) - len(last)] + last.split(":", 1)[0]
    name = reference.rsplit("/", 1)[-1] or "image"
    qualifiers = {}
    if subject.source == "registry" and rest:
        qualifiers["repository_url"] = normalise_repository(reference)
    purl = PackageURL(
        type="oci", name=name.lower(), version=subject.manifest_digest, qualifiers=qualifiers
    )
    return (purl.to_string(),)


def scan_inventory(
    db: Database,
    inventory: Inventory,
    *,
    target: str,
    vex: Sequence[VexStatement] = (),
    only_fixed: bool = False,
    started: dt.datetime | None = None,
    max_db_age: dt.timedelta | None = None,
) -> tuple[MatchReport, list[Match], ScanResult]:
    """Match, apply --only-fixed, attach VEX and distro suppressions; findings in match order.

    A database with no data for an ecosystem the packages need, or older than `max_db_age`,
    is an input that could not (fully) be checked: a problem, so `--strict` fails on it.
    """
    report = match_inventory(db, inventory)
    matches = list(report.matches)
    if only_fixed:
        matches = [m for m in matches if m.fix_state is FixState.FIXED]
    vex_suppressions = apply_vex(matches, list(vex), image_purls(inventory.subject))
    findings = []
    for match, vex_suppression in zip(matches, vex_suppressions, strict=True):
        declared = tuple(s for s in (match.suppression, vex_suppression) if s is not None)
        findings.append(
            Finding(
                check_id=CheckID(match.advisory_id),
                severity=match.gate_severity or Severity.INFO,
                title=match.summary or match.advisory_id,
                message=_message(match),
                location=_where(match.package),
                resource=ResourceRef("package", package_ref(match.package)),
                declared_suppressions=declared,
            )
        )
    groups: dict[str, list[Match]] = {}
    for match in matches:
        groups.setdefault(match.advisory_id, []).append(match)
    checks = tuple(_meta(i, g, db.details(i)) for i, g in sorted(groups.items()))
    by_package: dict[tuple[str, str], list[CheckID]] = {}
    for finding in findings:
        by_package.setdefault((finding.resource.name, finding.location.file), []).append(
            finding.check_id
        )
    evaluations = tuple(
        Evaluation(ResourceRef("package", ref), Location(file=path), tuple(ids))
        for (ref, path), ids in by_package.items()
    )
    problems = [InputProblem(target, ProblemKind.UNREADABLE, p) for p in inventory.problems]
    problems += [
        InputProblem(
            _where(n.package).file, ProblemKind.PARSE, f"{package_ref(n.package)}: {n.reason}"
        )
        for n in report.not_checked
        if n.problem
    ]
    problems += [InputProblem(target, ProblemKind.PARSE, p) for p in report.problems]
    database = str(db.path)
    problems += [
        InputProblem(
            database,
            ProblemKind.MISSING,
            f"no advisory data for {ecosystem} ({count} package{'s' if count != 1 else ''} "
            "not checked); add a source for it to `skanse db build`",
        )
        for ecosystem, count in report.uncovered
    ]
    age = database_age(db, started or dt.datetime.now(dt.UTC))
    if max_db_age is not None and (age is None or age > max_db_age):
        built = db.meta().get("built", "?")
        problems.append(
            InputProblem(
                database,
                ProblemKind.MISSING,
                f"the database was built {built}, more than {_days(max_db_age)} ago "
                "(--max-db-age); rebuild or import a newer one",
            )
        )
    result = ScanResult(
        findings=tuple(findings),
        checks=checks,
        evaluations=evaluations,
        problems=tuple(problems),
        targets=(target,),
        objects_scanned=report.packages,
        profile="vuln",
        started=started,
        finished=dt.datetime.now(dt.UTC),
    )
    return report, matches, result


def database_age(db: Database, now: dt.datetime) -> dt.timedelta | None:
    """How old the database is, by its recorded build time; None if that is unreadable."""
    try:
        built = dt.datetime.fromisoformat(db.meta().get("built", ""))
    except ValueError:
        return None
    if built.tzinfo is None:
        built = built.replace(tzinfo=dt.UTC)
    return now - built


def _days(age: dt.timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 24 else f"{hours:g} hours"


def with_final_suppressions(
    matches: Sequence[Match], result: ScanResult, severities: frozenset[Severity]
) -> tuple[tuple[Match, ...], ScanResult]:
    """Copy the chosen suppressions back onto the matches, then keep the reported severities
    (findings and matches stay aligned; checks are those of the findings kept)."""
    assert len(matches) == len(result.findings)
    kept_matches = []
    kept_findings = []
    for match, finding in zip(matches, result.findings, strict=True):
        if finding.severity not in severities:
            continue
        kept_matches.append(dataclasses.replace(match, suppression=finding.suppression))
        kept_findings.append(finding)
    ids = {f.check_id for f in kept_findings}
    filtered = dataclasses.replace(
        result,
        findings=tuple(kept_findings),
        checks=tuple(c for c in result.checks if c.id in ids),
        evaluations=tuple(
            dataclasses.replace(e, check_ids=tuple(i for i in e.check_ids if i in ids))
            for e in result.evaluations
            if any(i in ids for i in e.check_ids)
        ),
    )
    return tuple(kept_matches), filtered
