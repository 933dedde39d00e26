"""Grype's vunnel "OS" records (the input of Grype's database builder).

    {"Vulnerability": {"Name": "CVE-2020-6819", "NamespaceName": "rhel:8",
      "Severity": "Critical", "CVSS": [{"vector_string": "CVSS:3.1/..."}],
      "FixedIn": [{"Name": "firefox", "Version": "0:68.6.1-1.el8_1", "VersionFormat": "rpm",
                   "Module": "", "VulnerableRange": null, "VendorAdvisory": {...}}]}}

Also as result envelopes (`{"identifier", "item": {...}}`) and lists of records. A version
`0` means not affected, an empty or `None` version not fixed, `NoAdvisory` won't fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from skanse.vuln import severity as sev
from skanse.vuln.ecosystems import vunnel_namespace
from skanse.vuln.importers._common import RecordError, as_list, as_mapping, as_str
from skanse.vuln.model import Advisory, Affected, Event, FixState, Rating, Rejected
from skanse.vuln.versions import Scheme

__all__ = ["looks_like_vunnel", "vunnel_advisories"]

_FORMATS = {"dpkg": Scheme.DEB, "deb": Scheme.DEB, "apk": Scheme.APK, "rpm": Scheme.RPM}


def _record(item: object) -> Mapping[str, Any] | None:
    if not isinstance(item, Mapping):
        return None
    body: Mapping[str, Any] = item["item"] if isinstance(item.get("item"), Mapping) else item
    vulnerability = body.get("Vulnerability")
    return vulnerability if isinstance(vulnerability, Mapping) else None


def looks_like_vunnel(data: object) -> bool:
    if isinstance(data, list):
        return bool(data) and _record(data[0]) is not None
    return _record(data) is not None


def vunnel_advisories(data: object, origin: str) -> Iterator[Advisory | Rejected]:
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        try:
            record = _record(item)
            if record is None:
                raise RecordError("not a vunnel OS record (no Vulnerability)")
            yield _advisory(record)
        except RecordError as exc:
            yield Rejected(f"{origin}[{i}]", str(exc))


def _advisory(record: Mapping[str, Any]) -> Advisory:
    name = as_str(record.get("Name"), "Name")
    ratings: list[Rating] = []
    for i, cvss in enumerate(as_list(record.get("CVSS"), "CVSS")):
        vector = as_mapping(cvss, f"CVSS[{i}]").get("vector_string")
        if isinstance(vector, str):
            rating = sev.rate_vector(vector)
            if rating is not None:
                ratings.append(rating)
    metadata = record.get("Metadata")
    aliases: list[str] = []
    if isinstance(metadata, Mapping):
        nvd = metadata.get("NVD")
        if isinstance(nvd, Mapping) and isinstance(nvd.get("CVSSv2"), Mapping):
            vector = nvd["CVSSv2"].get("Vectors")
            if isinstance(vector, str):
                rating = sev.rate_vector(vector)
                if rating is not None:
                    ratings.append(rating)
        aliases.extend(
            cve["Name"]
            for cve in as_list(metadata.get("CVE"), "Metadata.CVE")
            if isinstance(cve, Mapping) and isinstance(cve.get("Name"), str)
        )
    word = record.get("Severity")
    if isinstance(word, str) and sev.from_word(word) is not None:
        ratings.append(Rating(sev.from_word(word), None, None, "vendor"))
    namespace = as_str(record.get("NamespaceName"), "NamespaceName")
    affected = []
    for i, raw in enumerate(as_list(record.get("FixedIn"), "FixedIn")):
        affected.append(_affected(as_mapping(raw, f"FixedIn[{i}]"), namespace, i))
    link = record.get("Link")
    description = record.get("Description")
    text = description if isinstance(description, str) else ""
    return Advisory(
        id=name,
        source="vunnel",
        aliases=tuple(a for a in aliases if a != name),
        summary=text.split("\n", 1)[0][:200],
        details=text,
        rating=sev.best_rating(ratings),
        references=(link,) if isinstance(link, str) and link else (),
        affected=tuple(affected),
    )


def _affected(entry: Mapping[str, Any], namespace: str, index: int) -> Affected:
    what = f"FixedIn[{index}]"
    name = as_str(entry.get("Name"), f"{what}.Name")
    fmt = str(entry.get("VersionFormat", "")).lower()
    scheme = _FORMATS.get(fmt)
    if scheme is None:
        raise RecordError(f"{what}: version format {fmt!r} is not supported")
    ecosystem = vunnel_namespace(str(entry.get("NamespaceName") or namespace))
    version = entry.get("Version")
    version = version.strip() if isinstance(version, str) else ""
    module = entry.get("Module")
    module = module if isinstance(module, str) else ""
    vendor = entry.get("VendorAdvisory")
    no_advisory = isinstance(vendor, Mapping) and vendor.get("NoAdvisory") is True
    constraint = entry.get("VulnerableRange")
    if version == "0":
        return Affected(
            ecosystem, name, scheme, fix_state=FixState.NOT_AFFECTED, note="not affected"
        )
    if isinstance(constraint, str) and constraint.strip():
        state = FixState.FIXED if version and version != "None" else FixState.NOT_FIXED
        return Affected(
            ecosystem,
            name,
            scheme,
            constraints=(constraint.strip(),),
            fix_state=state,
            module=module,
            fixed=version if state is FixState.FIXED else "",
        )
    if not version or version == "None":
        state = FixState.WONT_FIX if no_advisory else FixState.NOT_FIXED
        return Affected(
            ecosystem,
            name,
            scheme,
            ranges=((Event("introduced", "0"),),),
            fix_state=state,
            module=module,
            note="no advisory" if no_advisory else "",
        )
    return Affected(
        ecosystem,
        name,
        scheme,
        ranges=((Event("introduced", "0"), Event("fixed", version)),),
        module=module,
    )
