"""Run the layers for `skanse report` through their library APIs, as their commands do,
and keep each result as the JSON document that command's `-f json` writes.

Every layer's own suppressions (`.skanse.yaml`, annotations, inline comments, VEX, distro
data) are applied exactly as the layer's command applies them, with today's date.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from skanse import __version__
from skanse.config import LoadedConfig
from skanse.errors import InputError, ReportInputError
from skanse.model import CheckID, ScanResult, Severity
from skanse.report._info import ReportInfo
from skanse.report.posture.documents import ResultDocument, alerts_document

if TYPE_CHECKING:
    from skanse.policy.load import PolicySet

__all__ = [
    "ImageOptions",
    "run_host",
    "run_images",
    "run_netpol",
    "run_replay",
    "run_scan",
]


def _document(
    kind: str,
    result: ScanResult,
    origin: str,
    config: LoadedConfig,
    resolve: Callable[[str], list[CheckID]],
) -> ResultDocument:
    from skanse.report import displayable, json_report
    from skanse.results import apply_suppressions

    suppressed = apply_suppressions(result, config.suppressions, resolve, dt.date.today())
    info = ReportInfo(tool_version=__version__, kind=kind)
    return ResultDocument(kind, origin, json_report.to_document(displayable(suppressed), info))


def run_scan(
    paths: Sequence[str], config: LoadedConfig, policies: PolicySet | None = None
) -> ResultDocument:
    """`skanse scan -f json` on manifests and Dockerfiles (zero-trust profile), with the
    ValidatingAdmissionPolicies of `policies` as checks among the built-in ones."""
    from skanse.checks._all import REGISTRY
    from skanse.policy.checks import with_policies
    from skanse.scan import scan

    registry = with_policies(REGISTRY, policies)
    result = scan(list(paths), registry=registry)
    command = "run: skanse scan " + " ".join(paths)
    if policies is not None:
        command += " --policy " + " ".join(sorted({p.obj.file for p in policies.policies}))
    return _document("skanse.scan", result, command, config, registry.resolve)


def run_host(root: str, config: LoadedConfig, *, profile: str = "generic") -> ResultDocument:
    """`skanse host audit -f json --root ROOT`."""
    from skanse.host.audit import audit_host
    from skanse.host.checks._all import HOST_REGISTRY
    from skanse.host.facts import AuditContext, HostProfile
    from skanse.host.root import HostRoot

    report = audit_host(HostRoot(root), AuditContext(profile=HostProfile(profile)))
    return _document(
        "skanse.host-audit",
        report.result,
        f"run: skanse host audit --root {root}",
        config,
        HOST_REGISTRY.resolve,
    )


def run_netpol(paths: Sequence[str]) -> ResultDocument:
    """`skanse netpol list -f json` (every allowed connection)."""
    from skanse.netpol.engine import analyse
    from skanse.netpol.load import load_model
    from skanse.netpol.render import ListFormat, render_connections

    model = load_model(list(paths))
    if not model.workloads and not model.policies and model.input_problems:
        raise InputError("netpol: no input could be read from " + ", ".join(paths))
    provenance = {
        "tool": {"name": "skanse", "version": __version__},
        "targets": list(paths),
        "generated": dt.datetime.now(dt.UTC).isoformat(),
    }
    text = render_connections(
        ListFormat.JSON, analyse(model).connections(), model, provenance=provenance
    )
    return ResultDocument(
        "skanse.netpol-list", "run: skanse netpol list " + " ".join(paths), json.loads(text)
    )


@dataclass(frozen=True, slots=True)
class ImageOptions:
    database: Path | None = None  # None: no vulnerability matching (the SBOM is still made)
    keys: tuple[str, ...] = ()  # public keys for signature verification; none: not checked
    plain_http: frozenset[str] = frozenset()
    ca_certs: str | None = None
    docker_config: str | None = None
    cache_dir: str | None = None


def run_images(
    references: Sequence[str], options: ImageOptions, config: LoadedConfig
) -> list[ResultDocument]:
    """Per image: `skanse vuln -f json` (the SBOM and its matches) and `skanse verify -f json`."""
    from skanse.inventory.catalog import catalog_image
    from skanse.oci.cache import BlobCache, default_cache_dir
    from skanse.oci.image import open_image, parse_spec
    from skanse.oci.reference import parse_reference
    from skanse.oci.registry import RegistryClient, RegistryOptions
    from skanse.results import apply_suppressions
    from skanse.signing.keys import read_public_key
    from skanse.signing.report import to_document
    from skanse.signing.sign import predicate_type_for
    from skanse.signing.verify import verify_attestations, verify_signatures
    from skanse.vuln.db import Database
    from skanse.vuln.render import render_json
    from skanse.vuln.scan import VulnScan, scan_inventory, with_final_suppressions

    if not references:
        return []
    client = RegistryClient(
        RegistryOptions(
            plain_http=options.plain_http,
            ca_certs=options.ca_certs,
            docker_config=options.docker_config,
        ),
        cache=BlobCache(options.cache_dir or str(default_cache_dir())),
    )
    keys = [read_public_key(k) for k in options.keys]
    documents: list[ResultDocument] = []
    verifications = []
    db = Database.open(options.database) if options.database is not None else None
    try:
        for reference in references:
            started = dt.datetime.now(dt.UTC)
            spec = parse_spec(reference)
            if spec.kind == "dir":
                raise ReportInputError(f"--image {reference}: a directory is not an image")
            image = open_image(spec, client=client)
            try:
                inventory = catalog_image(image)
            finally:
                image.close()
            if db is not None:
                report, matches, raw = scan_inventory(
                    db, inventory, target=reference, started=started
                )
                resolve: Callable[[str], list[CheckID]] = db.resolve  # type: ignore[assignment]
                suppressed = apply_suppressions(raw, config.suppressions, resolve, dt.date.today())
                final, reported = with_final_suppressions(matches, suppressed, frozenset(Severity))
                meta = db.meta()
                database = {
                    "path": str(options.database),
                    "built": meta.get("built", "?"),
                    "schema_version": meta.get("schema_version", "?"),
                    "skanse_version": meta.get("skanse_version", "?"),
                }
                scan = VulnScan(reference, inventory, report, final, reported, database)
                text = render_json(scan, tool_version=__version__, exit_code=None)
                documents.append(
                    ResultDocument("skanse.vuln", f"run: skanse vuln {reference}", json.loads(text))
                )
            if keys and spec.kind == "registry":
                ref = parse_reference(reference)
                verifications.append(verify_signatures(client, ref, keys))
                # the SBOM attestation (skanse attest --type cyclonedx), if the image has one
                sbom_type = predicate_type_for("cyclonedx")
                verifications.append(verify_attestations(client, ref, keys, sbom_type))
    finally:
        if db is not None:
            db.close()
        client.close()
    if verifications:
        data = to_document(verifications, tool_version=__version__, checked=dt.datetime.now(dt.UTC))
        documents.append(
            ResultDocument(
                "skanse.verification", "run: skanse verify " + " ".join(references), data
            )
        )
    return documents


def run_replay(events: str, rules: Sequence[str]) -> ResultDocument:
    """`skanse runtime replay EVENTS --rules FILE... -f jsonl`: recorded events to alerts."""
    from skanse.rules.engine import Engine
    from skanse.rules.loader import load_rules, read_rules_files
    from skanse.rules.replay import replay

    loaded = load_rules(read_rules_files(rules))
    if loaded.ruleset is None:
        first = loaded.errors[0] if loaded.errors else "unknown error"
        raise InputError(f"the rules did not load: {len(loaded.errors)} error(s), first: {first}")
    engine = Engine(loaded.ruleset)
    try:
        with open(events, "rb") as stream:
            alerts, summary = replay(engine, stream)
    except OSError as exc:
        raise InputError(f"{events}: {exc.strerror or exc}") from None
    lines = [json.dumps(a.alert.to_json(), ensure_ascii=False) for a in alerts]
    origin = f"run: skanse runtime replay {events} --rules {' '.join(rules)}"
    doc = alerts_document(lines, origin)  # no lines: an empty alert list, no problems
    problems = tuple(f"{events}:{p.line}: {p.message}" for p in summary.problems)
    return ResultDocument(doc.kind, doc.origin, doc.data, doc.problems + problems)
