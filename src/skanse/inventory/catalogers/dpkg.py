"""Debian's dpkg database: `var/lib/dpkg/status`, distroless `status.d/<pkg>`, file lists.

A paragraph per package (RFC 822 style, continuation lines indented). Entries whose Status
says `deinstall` are removed-but-not-purged packages and are skipped (Syft >= 1.37). The
`Source:` field (`name` or `name (version)`) is kept: vulnerability data is keyed by source
package. Files come from `info/<pkg>[:<arch>].list` and `status.d/<pkg>.md5sums`, licences
from `/usr/share/doc/<pkg>/copyright` as SPDX expressions (`skanse.inventory.licenses`); a
package whose doc directory is a symlink (`libgcc-s1 -> gcc-12-base`) has the licences of the
directory it points to inside the image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from skanse.errors import SourceError
from skanse.inventory.catalogers._base import Environment, make_purl, read_text
from skanse.inventory.licenses import parse_debian_copyright
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["DpkgCataloger", "DpkgRecord", "parse_dpkg_status"]

_SOURCE = re.compile(r"(?P<name>\S+)( \((?P<version>.*)\))?")
_DOC = "/usr/share/doc/"
_MAX_PARAGRAPHS = 200_000


@dataclass(frozen=True, slots=True)
class DpkgRecord:
    package: str
    version: str
    architecture: str
    source: str
    source_version: str
    status: str


def parse_dpkg_status(text: str) -> list[DpkgRecord]:
    """Every installed package of a status file; raise `SourceError` on a malformed one."""
    records: list[DpkgRecord] = []
    # a field's lines, joined when its paragraph ends: adding each continuation line to
    # the text so far copied the whole field per line (quadratic in a long Description)
    fields: dict[str, list[str]] = {}
    key: str | None = None
    line_no = 0

    def flush() -> None:
        nonlocal key
        if fields:
            record = _record({name: "\n".join(lines) for name, lines in fields.items()})
            if record is not None:
                records.append(record)
            if len(records) > _MAX_PARAGRAPHS:
                raise SourceError(f"more than {_MAX_PARAGRAPHS} packages")
        fields.clear()
        key = None

    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            flush()
            continue
        if line[0] in " \t":
            if key is None:
                raise SourceError(f"no field for continuation line {line.strip()!r}", line=line_no)
            fields[key].append(line)
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise SourceError(f"cannot parse field from line {line!r}", line=line_no)
        key = name.strip()
        if key in fields:
            raise SourceError(f"duplicate field {key!r} in one paragraph", line=line_no)
        fields[key] = [value.strip()]
    flush()
    return records


def _record(fields: dict[str, str]) -> DpkgRecord | None:
    status = fields.get("Status", "")
    if "deinstall" in status:
        return None
    package = fields.get("Package", "")
    if not package:
        return None
    source, source_version = fields.get("Source", ""), ""
    match = _SOURCE.fullmatch(source) if source else None
    if match is not None and match["version"]:
        source, source_version = match["name"], match["version"]
    return DpkgRecord(
        package,
        fields.get("Version", ""),
        fields.get("Architecture", ""),
        source,
        source_version,
        status,
    )


def parse_copyright(text: str) -> tuple[str, ...]:
    """SPDX expressions for the licences a Debian copyright file names."""
    return parse_debian_copyright(text)


def _file_list(data: bytes) -> frozenset[str]:
    paths = set()
    for line in read_text(data).splitlines():
        line = line.strip()
        if not line:
            continue
        if "  " in line and not line.startswith("/"):  # md5sums: "<md5>  <path>"
            line = "/" + line.split("  ", 1)[1].lstrip("/")
        if line.startswith("/") and line != "/.":
            paths.add(line)
    return frozenset(paths)


class DpkgCataloger:
    name = "dpkg-db-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        path = info.path
        if path.endswith("/lib/dpkg/status"):
            return lambda data: parse_dpkg_status(read_text(data))
        directory, _, base = path.rpartition("/")
        if directory.endswith("/lib/dpkg/status.d"):
            if base.endswith(".md5sums"):
                return _file_list
            return lambda data: parse_dpkg_status(read_text(data))
        if directory.endswith("/lib/dpkg/info") and base.endswith(".list"):
            return _file_list
        if path.startswith("/usr/share/doc/") and base == "copyright" and path.count("/") == 5:
            return lambda data: parse_copyright(read_text(data))
        return None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        # one set per package, filled in place: a union per file list copied the package's
        # paths so far each time (quadratic in many `info/<pkg>:<arch>.list` files)
        listed: dict[str, set[str]] = {}
        licenses: dict[str, tuple[str, ...]] = {}
        databases: list[Captured] = []
        for captured in found:
            path = captured.info.path
            directory, _, base = path.rpartition("/")
            if base == "copyright":
                licenses[directory.rsplit("/", 1)[1]] = captured.value  # type: ignore[assignment]
            elif directory.endswith("/lib/dpkg/info") or base.endswith(".md5sums"):
                name = base.rsplit(".", 1)[0].split(":", 1)[0]
                paths = captured.value
                assert isinstance(paths, frozenset)
                listed.setdefault(name, set()).update(paths)
            else:
                databases.append(captured)
        files = {name: frozenset(paths) for name, paths in listed.items()}
        distro = env.distro
        packages = []

        def licenses_of(package: str) -> tuple[str, ...]:
            found = licenses.get(package)
            if found is None and env.resolve is not None:
                target = env.resolve(_DOC + package)
                if target is not None and target.startswith(_DOC):
                    found = licenses.get(target[len(_DOC) :])
            return found or ()

        for captured in databases:
            records = captured.value
            assert isinstance(records, list)
            for record in records:
                purl = ""
                if distro is not None and distro.is_like("debian"):
                    upstream = record.source
                    if upstream and record.source_version:
                        upstream = f"{upstream}@{record.source_version}"
                    purl = make_purl(
                        "deb",
                        distro.id,
                        record.package,
                        record.version,
                        {
                            "arch": record.architecture,
                            "upstream": upstream,
                            "distro": distro.purl_qualifier,
                        },
                    )
                packages.append(
                    Package(
                        name=record.package,
                        version=record.version,
                        type="deb",
                        purl=purl,
                        cataloger=self.name,
                        locations=(env.location(captured.info),),
                        licenses=licenses_of(record.package),
                        source_name=record.source or None,
                        source_version=record.source_version or None,
                        arch=record.architecture or None,
                        files=files.get(record.package, frozenset()),
                    )
                )
        return packages
