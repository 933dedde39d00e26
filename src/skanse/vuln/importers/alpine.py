"""The Alpine security database (secdb): `secfixes` per package, JSON or YAML.

    {"distroversion": "v3.18", "reponame": "main",
     "packages": [{"pkg": {"name": "openssl", "secfixes": {"3.1.4-r5": ["CVE-2024-0727"],
                                                          "0": ["CVE-2022-3358"]}}}]}

`fixed-version: [ids]` means versions before that one are affected; the key `0` is a NAK:
the package was never affected. Names are origin (source) packages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from skanse.vuln.ecosystems import distro_key
from skanse.vuln.importers._common import RecordError, as_list, as_mapping, as_str
from skanse.vuln.model import Advisory, Affected, Event, FixState, Rejected
from skanse.vuln.versions import Scheme

__all__ = ["looks_like_secdb", "secdb_advisories"]

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*$")


def looks_like_secdb(data: object) -> bool:
    return (
        isinstance(data, Mapping)
        and isinstance(data.get("packages"), list)
        and ("distroversion" in data or "reponame" in data)
    )


def secdb_advisories(data: object, origin: str) -> Iterator[Advisory | Rejected]:
    document = as_mapping(data, "secdb")
    release = as_str(document.get("distroversion"), "distroversion")
    ecosystem = distro_key("alpine", release)
    by_id: dict[str, list[Affected]] = {}
    for i, item in enumerate(as_list(document.get("packages"), "packages")):
        try:
            pkg = as_mapping(as_mapping(item, f"packages[{i}]").get("pkg"), f"packages[{i}].pkg")
            name = as_str(pkg.get("name"), f"packages[{i}].pkg.name")
            secfixes = pkg.get("secfixes") or {}
            for version, ids in as_mapping(secfixes, f"{name}: secfixes").items():
                version_text = str(version).strip()
                if not version_text:
                    raise RecordError(f"{name}: empty fixed version")
                for entry in as_list(ids, f"{name}: secfixes[{version_text}]"):
                    if not isinstance(entry, str):
                        raise RecordError(f"{name}: secfixes[{version_text}] has a non-string id")
                    for token in entry.split():
                        if not _ID.match(token):
                            continue  # free text next to an id ("CVE-2019-1 (partial)")
                        by_id.setdefault(token, []).append(_affected(ecosystem, name, version_text))
        except RecordError as exc:
            yield Rejected(f"{origin}: packages[{i}]", str(exc))
    for advisory_id in sorted(by_id):
        yield Advisory(id=advisory_id, source="alpine-secdb", affected=tuple(by_id[advisory_id]))


def _affected(ecosystem: str, name: str, version: str) -> Affected:
    if version == "0":  # NAK: not affected
        return Affected(
            ecosystem, name, Scheme.APK, fix_state=FixState.NOT_AFFECTED, note="secdb NAK"
        )
    return Affected(
        ecosystem,
        name,
        Scheme.APK,
        ranges=((Event("introduced", "0"), Event("fixed", version)),),
    )
