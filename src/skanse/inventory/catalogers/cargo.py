"""`Cargo.lock` for directory scans (a build description, so not read in images)."""

from __future__ import annotations

from collections.abc import Sequence

from skanse.errors import SourceError
from skanse.inventory.catalogers._base import Environment, make_purl, refuse_oversized
from skanse.inventory.model import Package
from skanse.oci.vfs import Capture, Captured, FileInfo

__all__ = ["CargoLockCataloger", "parse_cargo_lock"]

_MAX_CARGO_LOCK = 16 * 1024 * 1024


def parse_cargo_lock(data: bytes) -> list[tuple[str, str]]:
    import tomllib  # here: most images hold no Cargo.lock, and the import costs 4 ms

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"Cargo.lock is not valid TOML: {exc}") from None
    entries = doc.get("package") or []
    return [
        (str(p["name"]), str(p["version"]))
        for p in entries
        if isinstance(p, dict) and "name" in p and "version" in p
    ]


class CargoLockCataloger:
    name = "rust-cargo-lock-cataloger"

    def wants(self, info: FileInfo) -> Capture | None:
        if info.path.endswith("/Cargo.lock"):
            # one over the cap had been passed over without a word, as a Pipfile.lock was
            if info.size > _MAX_CARGO_LOCK:
                return refuse_oversized("Cargo.lock", _MAX_CARGO_LOCK)
            return parse_cargo_lock
        return None

    def catalog(self, found: Sequence[Captured], env: Environment) -> list[Package]:
        if not env.directory_scan:
            return []
        return [
            Package(
                name=name,
                version=version,
                type="rust-crate",
                purl=make_purl("cargo", None, name, version),
                cataloger=self.name,
                locations=(env.location(captured.info),),
            )
            for captured in found
            for name, version in captured.value  # type: ignore[attr-defined]
        ]
