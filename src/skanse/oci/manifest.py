"""Manifests, indexes, configs and descriptors: parsed strictly, with size and count caps.

Both the OCI and the Docker schema 2 media types are understood; anything else (schema 1,
an artifact of unknown type) is refused with the media type named. Every parser takes bytes
that were already digest-checked by the caller and caps their size first: a hostile registry
can send a manifest of any size or a `layers` array of any length (cosign CVE-2024-29903).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skanse.errors import DigestMismatchError, ImageError, ManifestError

__all__ = [
    "CONFIG_TYPES",
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_TYPES",
    "MAX_CONFIG_BYTES",
    "MAX_MANIFEST_BYTES",
    "Descriptor",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "compute_digest",
    "load_json",
    "parse_config",
    "parse_index",
    "parse_manifest",
    "parse_manifest_or_index",
    "parse_platform",
    "validate_digest",
    "verify_digest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# layer media type -> compression ("" = none); foreign (non-distributable) layers included
LAYER_TYPES: Mapping[str, str] = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "",
}
# What a registry is asked to return, best first.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution's own limit for a manifest PUT
MAX_CONFIG_BYTES = 8 * 1024 * 1024
MAX_DESCRIPTORS = 10_000  # layers in a manifest or manifests in an index

# every algorithm accepted here is verified wherever a digest is checked; others are refused
DIGEST_ALGORITHMS = ("sha256", "sha384", "sha512")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}")


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """`<algorithm>:<hex>` of `data` (sha256 unless told)."""
    if algorithm not in DIGEST_ALGORITHMS:
        raise ManifestError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()


def digest_algorithm(digest: str) -> str:
    """The algorithm of a well-formed digest; `ManifestError` for any other."""
    return validate_digest(digest).partition(":")[0]


def validate_digest(digest: object) -> str:
    """Return `digest` if it is a well-formed sha256/sha384/sha512 digest; raise otherwise."""
    if isinstance(digest, str) and _DIGEST.fullmatch(digest):
        return digest
    raise ManifestError(f"malformed digest {digest!r}")


def verify_digest(data: bytes, digest: str, *, what: str, reference: str | None = None) -> None:
    """Raise `DigestMismatchError` unless `data` hashes to `digest`."""
    algorithm, _, expected = validate_digest(digest).partition(":")
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != expected:
        raise DigestMismatchError(
            f"{what} {digest} has the wrong content (its {algorithm} is {actual})",
            reference=reference,
        )


@dataclass(frozen=True, slots=True)
class Platform:
    """os/architecture[/variant], as in an index entry or an image config."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def matches(self, wanted: Platform) -> bool:
        """True when this platform satisfies `wanted` (a missing wanted variant matches any)."""
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        return wanted.variant is None or self.variant == wanted.variant


def parse_platform(text: str) -> Platform:
    """`linux/amd64`, `linux/arm64/v8`; `amd64` alone means linux/amd64."""
    parts = text.strip().split("/")
    if len(parts) == 1 and parts[0]:
        return Platform("linux", parts[0])
    if len(parts) in (2, 3) and all(parts):
        return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
    raise ManifestError(f"invalid platform {text!r} (expected os/arch[/variant])")


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to content: media type, digest, size, and optional platform/annotations."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.platform is not None:
            plat: dict[str, str] = {
                "architecture": self.platform.architecture,
                "os": self.platform.os,
            }
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest (OCI or Docker schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str | None = None


@dataclass(frozen=True, slots=True)
class Index:
    """An image index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def select(self, platform: Platform, *, reference: str | None = None) -> Descriptor:
        """The entry for `platform`; raise `ManifestError` listing what the index offers."""
        for entry in self.manifests:
            if entry.platform is not None and entry.platform.matches(platform):
                return entry
        offered = ", ".join(str(e.platform) for e in self.manifests if e.platform) or "none"
        raise ManifestError(
            f"no image for platform {platform} in the index (it has: {offered})",
            reference=reference,
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created: str | None
    created_by: str | None
    empty_layer: bool
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config that skanse reports or relies on."""

    platform: Platform
    diff_ids: tuple[str, ...]
    created: str | None
    history: tuple[HistoryEntry, ...]
    user: str | None
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    labels: Mapping[str, str]


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: Python would make it inf, which no JSON writer can write
        raise _NotJson(f"{text[:40]} is out of range")
    return value


def load_json(
    data: bytes, what: str, *, reference: str | None, error: type[ImageError] = ManifestError
) -> Any:
    """JSON from an image or a registry, refused with `error` (naming `what`) when it is not
    JSON: invalid, NaN/Infinity or out-of-range numbers (a report written from them would not
    be JSON either), or nested too deeply for the parser (RecursionError)."""
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise error(f"{what} is nested too deeply", reference=reference) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid JSON: {exc}", reference=reference) from None


def _load_json(data: bytes, cap: int, what: str, reference: str | None) -> dict[str, Any]:
    if len(data) > cap:
        raise ManifestError(
            f"{what} is {len(data)} bytes, over the {cap}-byte cap", reference=reference
        )
    value = load_json(data, what, reference=reference)
    if not isinstance(value, dict):
        raise ManifestError(f"{what} is not a JSON object", reference=reference)
    return value


def _descriptor(raw: Any, what: str, reference: str | None) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestError(f"{what} is not an object", reference=reference)
    media_type = raw.get("mediaType")
    size = raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestError(f"{what} has no mediaType", reference=reference)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what} has no valid size", reference=reference)
    try:
        digest = validate_digest(raw.get("digest", ""))
    except ManifestError as exc:
        raise ManifestError(f"{what}: {exc.message}", reference=reference) from None
    platform = None
    plat = raw.get("platform")
    if isinstance(plat, dict):
        os_name, arch = plat.get("os"), plat.get("architecture")
        if isinstance(os_name, str) and isinstance(arch, str):
            variant = plat.get("variant")
            platform = Platform(os_name, arch, variant if isinstance(variant, str) else None)
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestError(f"{what} has annotations that are not an object", reference=reference)
    artifact_type = raw.get("artifactType")
    return Descriptor(
        media_type,
        digest,
        size,
        platform,
        {str(k): str(v) for k, v in annotations.items()},
        artifact_type if isinstance(artifact_type, str) else None,
    )


def _media_type(doc: dict[str, Any], declared: str | None) -> str:
    media_type = doc.get("mediaType") or declared
    if not media_type:
        # OCI allows omitting mediaType; the shape tells which document it is
        if "manifests" in doc:
            return OCI_INDEX
        if "config" in doc:
            return OCI_MANIFEST
    return str(media_type or "")


def parse_manifest_or_index(
    data: bytes, declared: str | None = None, *, reference: str | None = None
) -> Manifest | Index:
    """Parse a manifest or an index; `declared` is the Content-Type or descriptor media type."""
    doc = _load_json(data, MAX_MANIFEST_BYTES, "manifest", reference)
    media_type = _media_type(doc, declared)
    if media_type in INDEX_TYPES:
        return _index(doc, media_type, reference)
    if media_type in MANIFEST_TYPES:
        return _manifest(doc, media_type, reference)
    if doc.get("schemaVersion") == 1:
        raise ManifestError(
            "Docker schema 1 manifests are not supported (deprecated since 2017)",
            reference=reference,
        )
    raise ManifestError(f"unknown manifest media type {media_type!r}", reference=reference)


def parse_manifest(
    data: bytes, declared: str | None = None, *, reference: str | None = None
) -> Manifest:
    parsed = parse_manifest_or_index(data, declared, reference=reference)
    if not isinstance(parsed, Manifest):
        raise ManifestError("expected an image manifest, got an index", reference=reference)
    return parsed


def parse_index(data: bytes, declared: str | None = None, *, reference: str | None = None) -> Index:
    parsed = parse_manifest_or_index(data, declared, reference=reference)
    if not isinstance(parsed, Index):
        raise ManifestError("expected an image index, got a manifest", reference=reference)
    return parsed


def _list(doc: dict[str, Any], key: str, reference: str | None) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise ManifestError(f"manifest has no {key!r} list", reference=reference)
    if len(value) > MAX_DESCRIPTORS:
        raise ManifestError(
            f"manifest lists {len(value)} {key}, over the cap of {MAX_DESCRIPTORS}",
            reference=reference,
        )
    return value


def _manifest(doc: dict[str, Any], media_type: str, reference: str | None) -> Manifest:
    config = _descriptor(doc.get("config"), "manifest config", reference)
    layers = tuple(
        _descriptor(raw, f"layer {i}", reference)
        for i, raw in enumerate(_list(doc, "layers", reference))
    )
    subject = doc.get("subject")
    annotations = doc.get("annotations") or {}
    return Manifest(
        media_type,
        config,
        layers,
        {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
        _descriptor(subject, "subject", reference) if subject is not None else None,
        doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None,
    )


def _index(doc: dict[str, Any], media_type: str, reference: str | None) -> Index:
    manifests = tuple(
        _descriptor(raw, f"index entry {i}", reference)
        for i, raw in enumerate(_list(doc, "manifests", reference))
    )
    annotations = doc.get("annotations") or {}
    return Index(
        media_type,
        manifests,
        {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
    )


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def parse_config(data: bytes, *, reference: str | None = None) -> ImageConfig:
    """Parse an image config (OCI or Docker; both share these fields)."""
    doc = _load_json(data, MAX_CONFIG_BYTES, "image config", reference)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ManifestError("image config has no rootfs.diff_ids", reference=reference)
    diff_ids = tuple(validate_digest(d) for d in rootfs["diff_ids"])
    runtime = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    assert isinstance(runtime, dict)
    history = [
        HistoryEntry(
            item.get("created"),
            item.get("created_by"),
            bool(item.get("empty_layer", False)),
            item.get("comment"),
        )
        for item in doc.get("history") or []
        if isinstance(item, dict)
    ]
    labels = runtime.get("Labels") or {}
    return ImageConfig(
        platform=Platform(
            str(doc.get("os") or ""),
            str(doc.get("architecture") or ""),
            doc.get("variant") if isinstance(doc.get("variant"), str) else None,
        ),
        diff_ids=diff_ids,
        created=doc.get("created") if isinstance(doc.get("created"), str) else None,
        history=tuple(history),
        user=runtime.get("User") or None,
        entrypoint=_strings(runtime.get("Entrypoint")),
        cmd=_strings(runtime.get("Cmd")),
        env=_strings(runtime.get("Env")),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )
