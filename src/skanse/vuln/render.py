"""Vulnerability reports: a table for people, skanse JSON, and CycloneDX 1.6 with a
`vulnerabilities` section. SARIF and JUnit come from `skanse.report` over the same result.

Unknown severities (the data has no score and no vendor rating) are shown as UNKNOWN; for
`--severity` and `--fail-on` they count as INFO, the lowest level, as Grype and Trivy rank
"Unknown" lowest.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from decimal import Decimal
from typing import Any

from skanse.model import Severity
from skanse.printable import json_escaped, printable
from skanse.report.text import print_could_not_check, print_suppressed
from skanse.vuln.model import Match, Rating
from skanse.vuln.scan import VulnScan, package_ref

__all__ = ["JSON_SCHEMA_VERSION", "render_cyclonedx", "render_json", "render_text"]

JSON_SCHEMA_VERSION = 1

_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _severity_name(match: Match) -> str:
    return match.rating.severity.value if match.rating.severity else "UNKNOWN"


def _cvss_version(rating: Rating) -> str:
    """`3.1` from `CVSS:3.1/...`; `2.0` for a v2 vector (which has no prefix)."""
    vector = rating.vector or ""
    if vector.startswith("CVSS:"):
        return vector[5:].split("/", 1)[0]
    return "2.0" if rating.method == "CVSSv2" else rating.method


def _order(matches: tuple[Match, ...]) -> list[Match]:
    return sorted(
        matches,
        key=lambda m: (
            -(m.gate_severity.rank if m.gate_severity else -1),
            m.package.name,
            m.package.version,
            m.advisory_id,
        ),
    )


def _location(match: Match) -> str:
    if not match.package.locations:
        return ""
    first = match.package.locations[0]
    if first.layer is not None:
        return f"{first.path} (layer {first.layer})"
    if first.layer_digest:
        return f"{first.path} ({first.layer_digest[:19]})"
    return first.path


def render_text(scan: VulnScan, *, color: bool = False, width: int = 160) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )
    ordered = _order(scan.matches)
    live = [m for m in ordered if m.suppression is None]
    suppressed = [m for m in ordered if m.suppression is not None]
    if live:
        table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
        for column in ("SEVERITY", "ID", "PACKAGE", "INSTALLED", "FIXED IN", "STATE"):
            table.add_column(column, no_wrap=True)
        table.add_column("ALIASES", overflow="fold", max_width=30)
        table.add_column("LOCATION", overflow="fold", ratio=1)
        for m in live:
            label = _severity_name(m) + (" KEV" if m.kev else "")
            cells = (
                m.advisory_id,
                m.package.name,
                m.package.version,
                m.fixed_version or "",
                m.fix_state.value,
                ", ".join((*m.aliases, *m.related)),
                _location(m),
            )
            table.add_row(
                Text(label, style=_STYLE[m.gate_severity] if m.gate_severity else "dim"),
                # an image's and a database's text: no Rich markup ("[/x]"), no control bytes
                *(Text(printable(cell)) for cell in cells),
            )
        console.print(table)
        console.print()
    print_suppressed(
        console,
        [
            (f"{m.advisory_id} {m.package.name} {m.package.version}", m.suppression)
            for m in suppressed
        ],
    )
    report = scan.report
    print_could_not_check(
        console, [f"{p.file}: {p.message}" for p in scan.result.problems], most=30
    )
    quiet = [n for n in report.not_checked if not n.problem]
    if quiet:
        reasons = Counter(n.reason for n in quiet)
        console.print(Text(f"No advisory data ({len(quiet)} packages):", style="bold"))
        for reason, count in reasons.most_common():
            # the reason names the package type the SBOM gave (Syft's `type`, a purl type)
            console.print(f"  {count:>5}  {printable(reason)}", markup=False, soft_wrap=True)
        console.print()
    counts = Counter(_severity_name(m).lower() for m in live)
    order = [s.value.lower() for s in Severity] + ["unknown"]
    by_severity = ", ".join(f"{counts[s]} {s}" for s in order if counts[s])
    parts = [
        f"{len(live)} vulnerabilit{'ies' if len(live) != 1 else 'y'}"
        + (f" ({by_severity})" if by_severity else ""),
        f"{report.checked} of {report.packages} packages checked",
    ]
    if suppressed:
        parts.append(f"{len(suppressed)} suppressed")
    console.print(Text(" · ".join(parts), style="bold"), markup=False)
    distro = scan.inventory.distro
    where = f"{distro.pretty_name or distro.id + ' ' + distro.version_id}, " if distro else ""
    console.print(
        printable(f"{scan.target}: {where}database built {scan.database.get('built', '?')}"),
        markup=False,
        style="dim",
    )
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def _match_document(m: Match) -> dict[str, Any]:
    suppression = None
    if m.suppression is not None:
        s = m.suppression
        suppression = {
            "source": s.source.value,
            "reason": s.reason,
            "origin": s.origin,
            "expires": s.expires.isoformat() if s.expires else None,
        }
    return {
        "id": m.advisory_id,
        "aliases": list(m.aliases),
        "related": list(m.related),
        "summary": m.summary,
        "severity": _severity_name(m),
        "cvss": (
            {"score": m.cvss.score, "vector": m.cvss.vector, "version": _cvss_version(m.cvss)}
            if m.cvss is not None
            else None
        ),
        "severity_source": m.severity_source or None,
        "epss": {"score": m.epss[0], "percentile": m.epss[1]} if m.epss else None,
        "kev": m.kev,
        "fix_state": m.fix_state.value,
        "fixed_version": m.fixed_version,
        "package": {
            "name": m.package.name,
            "version": m.package.version,
            "type": m.package.type,
            "purl": m.package.purl or None,
            "locations": [
                {"path": loc.path, "layer": loc.layer, "layer_digest": loc.layer_digest}
                for loc in m.package.locations
            ],
        },
        "matched": {
            "ecosystem": m.ecosystem,
            "name": m.matched_name,
            "version": m.matched_version,
            "source": m.source,
        },
        "references": list(m.references),
        "suppressed": m.suppression is not None,
        "suppression": suppression,
    }


def render_json(scan: VulnScan, *, tool_version: str, exit_code: int | None) -> str:
    live = [m for m in scan.matches if m.suppression is None]
    counts = Counter(_severity_name(m) for m in live)
    subject = scan.inventory.subject
    distro = scan.inventory.distro
    by_type = Counter(p.type for p in scan.inventory.packages)
    started, finished = scan.result.started, scan.result.finished
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "kind": "skanse.vuln",
        "tool": {"name": "skanse", "version": tool_version},
        "scan": {
            "started": started.isoformat() if started else None,
            "finished": finished.isoformat() if finished else None,
        },
        "target": scan.target,
        "subject": {
            "kind": subject.kind,
            "name": subject.name,
            "source": subject.source,
            "manifest_digest": subject.manifest_digest,
        },
        "distro": {"id": distro.id, "version_id": distro.version_id} if distro else None,
        "database": scan.database,
        "summary": {
            "packages": scan.report.packages,
            "checked": scan.report.checked,
            "not_checked": len(scan.report.not_checked),
            "vulnerabilities": len(live),
            "suppressed": len(scan.matches) - len(live),
            "by_severity": {s: counts.get(s, 0) for s in [*(v.value for v in Severity), "UNKNOWN"]},
            "fixable": sum(1 for m in live if m.fixed_version),
            "packages_by_type": dict(sorted(by_type.items())),
            "exit_code": exit_code,
        },
        "matches": [_match_document(m) for m in _order(scan.matches)],
        "not_checked": [
            {"package": package_ref(n.package), "reason": n.reason, "problem": n.problem}
            for n in scan.report.not_checked
        ],
        "problems": [
            {"file": p.file, "kind": p.kind.value, "message": p.message}
            for p in scan.result.problems
        ],
        "warnings": list(scan.result.warnings),
    }
    return json_escaped(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _exploitation_properties(m: Match) -> list[Any]:
    """KEV and EPSS, which CycloneDX has no field for, as `skanse:` properties."""
    from cyclonedx.model import Property

    properties = [Property(name="skanse:kev", value="true" if m.kev else "false")]
    if m.epss is not None:
        properties.append(Property(name="skanse:epss:score", value=f"{m.epss[0]:g}"))
        properties.append(Property(name="skanse:epss:percentile", value=f"{m.epss[1]:g}"))
    return properties


def render_cyclonedx(scan: VulnScan) -> str:
    """The inventory as CycloneDX 1.6 (as `skanse sbom` writes it) plus `vulnerabilities`:
    ratings with CVSS vectors, the fix as a recommendation, aliases as references, the
    affected component by bom-ref, and suppressed matches as an `analysis` with the reason."""
    from cyclonedx.model.impact_analysis import ImpactAnalysisAffectedStatus, ImpactAnalysisState
    from cyclonedx.model.vulnerability import (
        BomTarget,
        BomTargetVersionRange,
        Vulnerability,
        VulnerabilityAnalysis,
        VulnerabilityRating,
        VulnerabilityReference,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )
    from cyclonedx.output.json import JsonV1Dot6

    from skanse.inventory.formats.cyclonedx import build_bom
    from skanse.model import SuppressionSource

    bom, components = build_bom(scan.inventory)
    severity_map = {
        Severity.CRITICAL: VulnerabilitySeverity.CRITICAL,
        Severity.HIGH: VulnerabilitySeverity.HIGH,
        Severity.MEDIUM: VulnerabilitySeverity.MEDIUM,
        Severity.LOW: VulnerabilitySeverity.LOW,
        Severity.INFO: VulnerabilitySeverity.INFO,
    }
    methods = {
        "CVSSv2": VulnerabilityScoreSource.CVSS_V2,
        "CVSSv3": VulnerabilityScoreSource.CVSS_V3_1,
        "CVSSv4": VulnerabilityScoreSource.CVSS_V4,
    }
    for index, m in enumerate(_order(scan.matches)):
        component = components.get(m.package.id)
        rating = VulnerabilityRating(
            severity=severity_map[m.rating.severity]
            if m.rating.severity
            else VulnerabilitySeverity.UNKNOWN,
            score=Decimal(str(m.rating.score)) if m.rating.score is not None else None,
            method=methods.get(m.rating.method, VulnerabilityScoreSource.OTHER),
            vector=m.rating.vector,
            source=VulnerabilitySource(name=m.severity_source) if m.severity_source else None,
        )
        analysis = None
        if m.suppression is not None:
            state = (
                ImpactAnalysisState.NOT_AFFECTED
                if m.suppression.source in (SuppressionSource.VEX, SuppressionSource.DISTRO)
                else ImpactAnalysisState.EXPLOITABLE
            )
            detail = f"{m.suppression.source.value}: {m.suppression.reason}"
            if m.suppression.expires:
                detail += f" (expires {m.suppression.expires.isoformat()})"
            if state is ImpactAnalysisState.EXPLOITABLE:
                detail = "accepted risk: " + detail
            analysis = VulnerabilityAnalysis(state=state, detail=detail)
        affects = []
        if component is not None:
            affects.append(
                BomTarget(
                    ref=component.bom_ref.value or "",
                    versions=[
                        BomTargetVersionRange(
                            version=m.package.version, status=ImpactAnalysisAffectedStatus.AFFECTED
                        )
                    ],
                )
            )
        recommendation = (
            f"Upgrade {m.package.name} to {m.fixed_version} or later"
            if m.fixed_version
            else f"No fixed version ({m.fix_state.value})"
        )
        bom.vulnerabilities.add(
            Vulnerability(
                bom_ref=f"vuln:{index}:{m.advisory_id}:{m.package.id}",
                id=m.advisory_id,
                source=VulnerabilitySource(name=m.source),
                references=[
                    VulnerabilityReference(id=alias, source=VulnerabilitySource(name="alias"))
                    for alias in dict.fromkeys((*m.aliases, *m.related))
                ],
                ratings=[rating],
                properties=_exploitation_properties(m),
                description=m.summary or None,
                recommendation=recommendation,
                analysis=analysis,
                affects=affects,
            )
        )
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"
