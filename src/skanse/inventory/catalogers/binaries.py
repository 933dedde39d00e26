"""Build information embedded in executables: Go (`.go.buildinfo`) and Rust
(cargo-auditable's `.dep-v0`). Only ELF files with an executable bit are looked at.

Go: the build-info blob starts with `\\xff Go buildinf:`. Since Go 1.18 the version and the
module information follow it inline as length-prefixed strings; older binaries point at Go
strings in memory, which are mapped back to file offsets through the ELF program headers.
The module information lists `path`, `mod` (main module), `dep` and `=>` (replacement)
lines; the Go version becomes the `stdlib` package, as Syft reports it.

Rust: `.dep-v0` is zlib-compressed JSON `{"packages": [{name, version, source, kind, root}]}`
(at most 8 MiB expanded); build-time dependencies are left out, as Syft does.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from skanse.inventory.catalogers._base import Environment, make_purl
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["GoBinaryCataloger", "GoBuildInfo", "RustAuditableCataloger", "parse_go_buildinfo"]

_ELF = b"\x7fELF"
_GO_MAGIC = b"\xff Go buildinf:"
_MIN_EXECUTABLE = 1024
_MAX_DEP_JSON = 8 * 1024 * 1024
_SHF_COMPRESSED = 0x800


@dataclass(frozen=True, slots=True)
class GoModule:
    path: str
    version: str
    checksum: str = ""


@dataclass(frozen=True, slots=True)
class GoBuildInfo:
    go_version: str
    main: GoModule | None
    deps: tuple[GoModule, ...]
    settings: tuple[tuple[str, str], ...] = ()


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint in Go build info")


def _read_pointer_strings(data: bytes, start: int, ptr_size: int, big: bool) -> tuple[str, str]:
    """Pre-1.18 layout: two pointers to Go string headers, resolved via PT_LOAD segments."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    segments = [
        (s["p_vaddr"], s["p_offset"], s["p_filesz"])
        for s in elf.iter_segments()
        if s["p_type"] == "PT_LOAD"
    ]
    order = ">" if big else "<"
    word = "Q" if ptr_size == 8 else "I"

    def offset_of(address: int) -> int:
        for vaddr, offset, size in segments:
            if vaddr <= address < vaddr + size:
                return offset + address - vaddr
        raise ValueError("Go build info points outside the file")

    def go_string(address: int) -> str:
        header = offset_of(address)
        pointer, length = struct.unpack_from(order + word * 2, data, header)
        if length > 1024 * 1024:
            raise ValueError("Go build info string too long")
        at = offset_of(pointer)
        return data[at : at + length].decode("utf-8", errors="replace")

    version_ptr, mod_ptr = struct.unpack_from(order + word * 2, data, start + 16)
    return go_string(version_ptr), go_string(mod_ptr)


def _section_names(data: bytes) -> bytes | None:
    """The section-name string table of an ELF file, None when its headers do not lead to
    one plainly (an extended section count or index included). A section can only be named
    what this table holds, which spares searching the whole file for a name."""
    wide, big = data[4:5] == b"\x02", data[5:6] == b"\x02"
    order = ">" if big else "<"
    try:
        if wide:
            table, entry_size, count, names_index = struct.unpack_from(
                order + "Q10xHHH", data, 0x28
            )
            names_at, names_size = struct.unpack_from(
                order + "QQ", data, table + entry_size * names_index + 0x18
            )
        else:
            table, entry_size, count, names_index = struct.unpack_from(
                order + "I10xHHH", data, 0x20
            )
            names_at, names_size = struct.unpack_from(
                order + "II", data, table + entry_size * names_index + 0x10
            )
    except struct.error:
        return None
    if count == 0 or names_index >= min(count, 0xFF00) or names_at + names_size > len(data):
        return None
    return data[names_at : names_at + names_size]


def parse_go_buildinfo(data: bytes) -> GoBuildInfo | None:
    """The build info of a Go ELF binary, or None if it is not one."""
    if not data.startswith(_ELF):
        return None
    names = _section_names(data)
    if names is not None and b".go.buildinfo" not in names:
        # Go (1.13 on) writes its build info in that section, and Go's own reader looks
        # there: an executable with a section table but without it is not searched
        return None
    start = data.find(_GO_MAGIC)
    if start < 0 or start + 32 > len(data):
        return None
    ptr_size, flags = data[start + 14], data[start + 15]
    if flags & 0x2:
        length, pos = _uvarint(data, start + 32)
        version = data[pos : pos + length].decode("utf-8", errors="replace")
        pos += length
        length, pos = _uvarint(data, pos)
        modinfo = data[pos : pos + length].decode("utf-8", errors="replace")
    else:
        if ptr_size not in (4, 8):
            return None
        from elftools.common.exceptions import ELFError

        try:
            version, modinfo = _read_pointer_strings(data, start, ptr_size, bool(flags & 0x1))
        except (ELFError, struct.error, ValueError):
            return None  # the magic string without a usable build-info blob: not a Go binary
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        modinfo = modinfo[16:-16]  # sentinels around the module information
    main: GoModule | None = None
    deps: list[GoModule] = []
    settings: list[tuple[str, str]] = []
    for line in modinfo.splitlines():
        fields = line.split("\t")
        kind = fields[0]
        if kind == "mod" and len(fields) >= 3:
            main = GoModule(fields[1], fields[2], fields[3] if len(fields) > 3 else "")
        elif kind == "dep" and len(fields) >= 3:
            deps.append(GoModule(fields[1], fields[2], fields[3] if len(fields) > 3 else ""))
        elif kind == "=>" and len(fields) >= 3 and deps:
            deps[-1] = GoModule(fields[1], fields[2], fields[3] if len(fields) > 3 else "")
        elif kind == "build" and len(fields) >= 2 and "=" in fields[1]:
            key, _, value = fields[1].partition("=")
            settings.append((key, value))
    if not version.startswith("go") and main is None:
        return None
    return GoBuildInfo(version, main, tuple(deps), tuple(settings))


def _go_purl(module: str, version: str) -> str:
    namespace, _, name = module.rpartition("/")
    return make_purl("golang", namespace or None, name, version)


def _executable(info: FileInfo) -> bool:
    return info.executable and info.size >= _MIN_EXECUTABLE


class GoBinaryCataloger:
    name = "go-module-binary-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        return parse_go_buildinfo if _executable(info) else None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        packages: list[Package] = []
        for captured in found:
            info = captured.value
            if not isinstance(info, GoBuildInfo):
                continue
            location = (env.location(captured.info),)
            modules = ([info.main] if info.main else []) + list(info.deps)
            packages.extend(
                Package(
                    name=module.path,
                    version=module.version,
                    type="go-module",
                    purl=_go_purl(module.path, module.version),
                    cataloger=self.name,
                    locations=location,
                    metadata={"goVersion": info.go_version, "h1Digest": module.checksum},
                )
                for module in modules
            )
            if info.go_version.startswith("go"):
                packages.append(
                    Package(
                        name="stdlib",
                        version=info.go_version,
                        type="go-module",
                        purl=make_purl(
                            "golang", None, "stdlib", info.go_version.removeprefix("go")
                        ),
                        cataloger=self.name,
                        locations=location,
                    )
                )
        return packages


def parse_dep_v0(data: bytes) -> list[dict[str, object]] | None:
    """cargo-auditable dependency list of an ELF binary, or None if it has none."""
    if not data.startswith(_ELF):
        return None
    names = _section_names(data)
    if b".dep-v0" not in (data if names is None else names):
        return None
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        section = ELFFile(io.BytesIO(data)).get_section_by_name(".dep-v0")
    except ELFError:
        return None
    if section is None:
        return None
    # the section's bytes are taken from the file here, not through pyelftools' data(): for
    # SHT_NOBITS that is sh_size zero bytes and for SHF_COMPRESSED an inflation to the size
    # the section claims, both allocated whole (a 35 KB file made it 1 GiB, and more on ask)
    if section["sh_type"] == "SHT_NOBITS":
        raise ValueError(".dep-v0 is a section without contents (SHT_NOBITS)")
    if section["sh_flags"] & _SHF_COMPRESSED:
        raise ValueError(".dep-v0 is an ELF-compressed section, which cargo auditable never writes")
    start, size = section["sh_offset"], section["sh_size"]
    if start + size > len(data):
        raise ValueError(".dep-v0 runs past the end of the file")
    inflater = zlib.decompressobj()
    raw = inflater.decompress(data[start : start + size], _MAX_DEP_JSON + 1)
    if len(raw) > _MAX_DEP_JSON:
        raise ValueError(".dep-v0 expands past 8 MiB")
    doc = json.loads(raw)
    packages = doc.get("packages") if isinstance(doc, dict) else None
    return [p for p in packages if isinstance(p, dict)] if isinstance(packages, list) else None


class RustAuditableCataloger:
    name = "cargo-auditable-binary-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        return parse_dep_v0 if _executable(info) else None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        packages = []
        for captured in found:
            entries = captured.value
            if not isinstance(entries, list):
                continue
            for entry in entries:
                name, version = entry.get("name"), entry.get("version")
                if not isinstance(name, str) or not isinstance(version, str):
                    continue
                if entry.get("kind", "runtime") == "build":
                    continue
                packages.append(
                    Package(
                        name=name,
                        version=version,
                        type="rust-crate",
                        purl=make_purl("cargo", None, name, version),
                        cataloger=self.name,
                        locations=(env.location(captured.info),),
                        metadata={"source": str(entry.get("source", ""))},
                    )
                )
        return packages
