"""Every finding of the posture report with where it is and how to fix it."""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from skanse.report.posture.names import LAYERS, image_key
from skanse.report.posture.risk import severity_of, vulnerability_rating

__all__ = ["all_findings"]


def _check_metas() -> dict[str, Any]:
    from skanse.checks._all import REGISTRY
    from skanse.host.checks._all import HOST_REGISTRY

    return {str(c.meta.id): c.meta for c in (*REGISTRY.all(), *HOST_REGISTRY.all())}


def _fix_command(finding: Mapping[str, Any], fixable: bool) -> str | None:
    """The command that fixes a finding, when skanse has one (its remediation says the rest)."""
    if not fixable:
        return None
    file = str((finding.get("location") or {}).get("file") or "")
    quoted = shlex.quote(file) if file else "."
    if finding["layer"] == "host":
        return "skanse host audit --fix-file /etc/sysctl.d/99-skanse.conf --apply"
    if finding["check_id"] == "SKN-K8S-030":
        return f"skanse fix --network-policies -- {quoted}"
    if finding["layer"] in ("kubernetes", "dockerfile"):
        return f"skanse fix -- {quoted}"
    return None


def _vulnerability_findings(vulns: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each vulnerability match as a finding of the images layer: the image is where it is,
    the fix is the package version that has none of it."""
    out = []
    for v in vulns:
        image = str(v.get("target"))
        for m in v.get("matches", []):
            package = m.get("package") or {}
            rated, notes = vulnerability_rating(m)
            fixed = m.get("fixed_version")
            name = f"{package.get('name')} {package.get('version')}"
            out.append(
                {
                    "layer": "images",
                    "check_id": str(m.get("id")),
                    "severity": rated.value,
                    "title": "known vulnerability",
                    "message": f"{m.get('id')} in {name}"
                    + (f" ({'; '.join(notes)})" if notes else ""),
                    "file": image,
                    "line": None,
                    "pointer": None,
                    "resource": {"kind": "Image", "namespace": None, "name": image},
                    "fix": None,
                    "remediation": (
                        f"upgrade {package.get('name')} to {fixed} or later"
                        if fixed
                        else "no fixed version yet: remove the package, or accept the risk "
                        "with a suppression that says why"
                    ),
                    "suppressed": bool(m.get("suppressed")),
                    "origin": None,
                    # the same advisory in the same package of the same repository, whatever
                    # the tag: fixed when an upgrade removes it
                    "fingerprint": hashlib.sha256(
                        "\x1f".join(
                            (image_key(image)[0], str(m.get("id")), str(package.get("name")))
                        ).encode()
                    ).hexdigest()[:32],
                }
            )
    return out


def all_findings(
    findings: Iterable[Mapping[str, Any]], vulns: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Every finding of every layer with where it is and how to fix it (suppressed ones too,
    marked): the list an engineer works through, file by file."""
    metas = _check_metas()
    out = []
    for f in findings:
        meta = metas.get(str(f["check_id"]))
        location = f.get("location") or {}
        out.append(
            {
                "layer": f["layer"],
                "check_id": f["check_id"],
                "severity": severity_of(f["severity"]).value,
                "title": f.get("title") or (meta.title if meta is not None else ""),
                "message": f.get("message"),
                "file": location.get("file"),
                "line": location.get("line"),
                "pointer": location.get("pointer"),
                "resource": f.get("resource"),
                "fix": _fix_command(f, bool(meta is not None and meta.fixable)),
                "remediation": meta.remediation if meta is not None else None,
                "suppressed": bool(f.get("suppressed")),
                "origin": f.get("origin"),
                "fingerprint": f.get("fingerprint"),
            }
        )
    out.extend(_vulnerability_findings(vulns))
    layer_order = list(LAYERS)
    out.sort(
        key=lambda f: (
            f["suppressed"],
            layer_order.index(f["layer"]) if f["layer"] in layer_order else 99,
            -severity_of(f["severity"]).rank,
            str(f["file"] or ""),
            int(f["line"] or 0),
            f["check_id"],
        )
    )
    return out
