"""Verification outcomes as skanse reports: a ScanResult for text/sarif/junit, and JSON.

A failed verification is a finding (SKN-SIG-001 for signatures, SKN-SIG-002 for
attestations) on the image; a passed one is an evaluation, so JUnit lists it as a pass.
The JSON document keeps every signature looked at and which key verified it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skanse.model import (
    CheckID,
    CheckMeta,
    Evaluation,
    Finding,
    Layer,
    Location,
    ResourceRef,
    ScanResult,
    Severity,
)
from skanse.signing.verify import Verification

__all__ = ["ATTESTATION_CHECK", "SIGNATURE_CHECK", "to_document", "to_scan_result"]

SCHEMA_VERSION = 1
SIGNATURE_CHECK = CheckMeta(
    id=CheckID("SKN-SIG-001"),
    title="Image signature is not verified",
    severity=Severity.HIGH,
    layer=Layer.IMAGE,
    description="The image has no signature that the required keys verify for its digest.",
    remediation="Sign the image by digest with the required key(s) (skanse sign --key ...), "
    "or deploy the image that was signed.",
    references=("https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md",),
)
ATTESTATION_CHECK = CheckMeta(
    id=CheckID("SKN-SIG-002"),
    title="Image attestation is not verified",
    severity=Severity.HIGH,
    layer=Layer.IMAGE,
    description="The image has no attestation of the required predicate type that the "
    "required keys verify for its digest.",
    remediation="Attest the image (skanse attest --key ... --predicate ... --type ...).",
    references=("https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md",),
)


def _meta(result: Verification) -> CheckMeta:
    return SIGNATURE_CHECK if result.what == "signature" else ATTESTATION_CHECK


def to_scan_result(results: Sequence[Verification]) -> ScanResult:
    findings = []
    evaluations = []
    for result in results:
        meta = _meta(result)
        resource = ResourceRef("Image", f"{result.image.split('@')[0]}@{result.digest}")
        location = Location(file=f"<{result.image}>")
        evaluations.append(Evaluation(resource, location, (meta.id,)))
        if not result.verified:
            findings.append(
                Finding(meta.id, meta.severity, meta.title, result.reason, location, resource)
            )
    used = {e.check_ids[0] for e in evaluations}
    checks = tuple(m for m in (SIGNATURE_CHECK, ATTESTATION_CHECK) if m.id in used)
    return ScanResult(
        findings=tuple(findings),
        checks=checks,
        evaluations=tuple(evaluations),
        targets=tuple(r.image for r in results),
        objects_scanned=len(results),
        profile="signatures",
        pss="-",
    )


def to_document(results: Sequence[Verification]) -> dict[str, Any]:
    """`skanse verify -f json`: one entry per image, every signature with its outcome."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "skanse.verification",
        "verified": all(r.verified for r in results),
        "images": [
            {
                "image": r.image,
                "digest": r.digest,
                "what": r.what,
                "verified": r.verified,
                "reason": r.reason,
                "threshold": r.threshold,
                "keys": list(r.keys),
                "verified_keys": list(r.verified_keys),
                "signatures": [
                    {
                        "where": c.where,
                        "format": c.format,
                        "verified": c.verified,
                        "key": c.key,
                        "reason": c.reason,
                        "predicate_type": c.predicate_type,
                        "docker_reference": c.docker_reference,
                    }
                    for c in r.checks
                ],
                "problems": list(r.problems),
            }
            for r in results
        ],
    }
