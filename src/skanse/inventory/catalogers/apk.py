"""Alpine's installed database, `lib/apk/db/installed` (apk-tools' text format).

One record per package, separated by blank lines; `P:` name, `V:` version, `A:` arch,
`o:` origin (the source package), `L:` licence, `F:`/`R:` directory and file. Purls as Syft:
`pkg:apk/<distro id>/<name>@<version>?arch=..&distro=..&upstream=<origin if different>`,
and no purl when no distribution is known.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from skanse.errors import SourceError
from skanse.inventory.catalogers._base import Environment, make_purl, read_text
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["ApkCataloger", "ApkRecord", "parse_apk_installed"]

_SPDX_OPERATOR = re.compile(r"\b(AND|OR|WITH)\b|[()]")
# Each `R:` file is joined to the `F:` directory before it, so a long directory repeated over
# many short lines multiplies the input (92 KB made 250 MiB of paths). Databases apk-tools
# writes make a fraction of their own size of paths (0.1-0.3x in Syft's test data: every
# file also has its checksum line); past this many characters the database is refused.
_PATH_BUDGET_PER_BYTE = 8
_PATH_BUDGET_FLOOR = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ApkRecord:
    name: str
    version: str
    arch: str
    origin: str
    license: str
    files: frozenset[str]


def parse_apk_installed(text: str) -> list[ApkRecord]:
    """Every package of an installed database; raise `SourceError` when its file lists would
    name far more path text than the database holds (see _PATH_BUDGET_PER_BYTE)."""
    records: list[ApkRecord] = []
    fields: dict[str, str] = {}
    files: list[str] = []
    directory = ""
    budget = _PATH_BUDGET_FLOOR + _PATH_BUDGET_PER_BYTE * len(text)

    def flush() -> None:
        if fields.get("P"):
            records.append(
                ApkRecord(
                    fields["P"],
                    fields.get("V", ""),
                    fields.get("A", ""),
                    fields.get("o", ""),
                    fields.get("L", ""),
                    frozenset(files),
                )
            )
        fields.clear()
        files.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
            directory = ""
            continue
        key, sep, value = line.partition(":")
        if not sep or len(key) != 1:
            continue
        if key == "F":
            directory = value.strip("/")
        elif key == "R":
            budget -= len(directory) + len(value) + 2
            if budget < 0:
                raise SourceError(
                    f"its file lists name more than {_PATH_BUDGET_PER_BYTE} times its size "
                    "in paths (a long F: directory repeated over many R: lines): not read"
                )
            files.append(f"/{directory}/{value}" if directory else f"/{value}")
        elif key not in fields:
            fields[key] = value
    flush()
    return records


def split_licenses(value: str) -> tuple[str, ...]:
    """Keep an SPDX expression whole; split a plain space-separated list (as Syft)."""
    value = value.strip()
    if not value:
        return ()
    if _SPDX_OPERATOR.search(value):
        return (value,)
    return tuple(value.split())


class ApkCataloger:
    name = "apk-db-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        if info.path.endswith("/lib/apk/db/installed"):
            return lambda data: parse_apk_installed(read_text(data))
        return None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        packages = []
        distro = env.distro
        for captured in found:
            records = captured.value
            assert isinstance(records, list)
            for record in records:
                purl = ""
                if distro is not None:
                    purl = make_purl(
                        "apk",
                        distro.id,
                        record.name,
                        record.version,
                        {
                            "arch": record.arch,
                            "upstream": record.origin if record.origin != record.name else "",
                            "distro": distro.purl_qualifier,
                        },
                    )
                packages.append(
                    Package(
                        name=record.name,
                        version=record.version,
                        type="apk",
                        purl=purl,
                        cataloger=self.name,
                        locations=(env.location(captured.info),),
                        licenses=split_licenses(record.license),
                        source_name=record.origin or None,
                        source_version=record.version if record.origin else None,
                        arch=record.arch or None,
                        files=record.files,
                    )
                )
        return packages
