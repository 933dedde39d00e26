"""Build small OCI images in memory and write them as a layout or push them to a registry.

    layer = LayerBuilder()
    layer.add_file("/etc/os-release", b"ID=alpine\\nVERSION_ID=3.19.1\\n")
    layer.add_symlink("/bin/sh", "busybox")
    image = build_image([layer.build()], platform=Platform("linux", "amd64"))
    write_layout(image, "out/layout", tag="v1")
    push_image(client, parse_reference("127.0.0.1:5000/demo:v1"), image)

Tars are written deterministically (sorted as added, mtime 0, uid/gid 0), so the same
files give the same digests. `LayerBuilder.add_raw` adds any `tarfile.TarInfo`, hostile
ones included: the tests build their attack layers with it.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from skanse.files import write_atomic
from skanse.oci.manifest import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    compute_digest,
)
from skanse.oci.reference import Reference

__all__ = [
    "BuiltImage",
    "BuiltLayer",
    "LayerBuilder",
    "build_image",
    "push_image",
    "write_docker_archive",
    "write_layout",
]

_GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
_TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True, slots=True)
class BuiltLayer:
    """A layer blob (compressed as its media type says) and its uncompressed digest."""

    blob: bytes
    media_type: str
    diff_id: str

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, compute_digest(self.blob), len(self.blob))


class LayerBuilder:
    """Collects tar entries for one layer; parent directories are added on demand."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)
        self._dirs: set[str] = set()

    def _parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in self._dirs:
                self.add_directory(directory)

    def _info(self, path: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path.strip("/"))
        info.type = kind
        info.mode = mode
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def add_directory(self, path: str, mode: int = 0o755) -> LayerBuilder:
        name = path.strip("/")
        self._dirs.add(name)
        self._parents(name)
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode))
        return self

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> LayerBuilder:
        self._parents(path)
        info = self._info(path, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))
        return self

    def add_symlink(self, path: str, target: str) -> LayerBuilder:
        self._parents(path)
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def add_whiteout(self, path: str) -> LayerBuilder:
        """Hide `path` of a lower layer (`.wh.<name>`)."""
        directory, _, name = path.strip("/").rpartition("/")
        return self.add_file(f"{directory}/.wh.{name}" if directory else f".wh.{name}", b"")

    def add_opaque(self, directory: str) -> LayerBuilder:
        """Hide everything a lower layer has under `directory` (`.wh..wh..opq`)."""
        return self.add_file(f"{directory.strip('/')}/.wh..wh..opq", b"")

    def add_raw(self, info: tarfile.TarInfo, data: bytes | None = None) -> LayerBuilder:
        """Add an entry exactly as given: no normalisation, no parent directories."""
        self._tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return self

    def add_host_directory(self, directory: str | Path) -> LayerBuilder:
        """Add a root file system from the host (a debootstrap tree), owners kept as numbers.

        Symlinks are stored as symlinks and never followed; devices and sockets are skipped.
        """
        root = Path(directory)

        def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if (
                info.ischr()
                or info.isblk()
                or not (info.isfile() or info.isdir() or info.issym() or info.islnk())
            ):
                return None
            info.mtime = 0
            info.uname = info.gname = ""
            return info

        for child in sorted(root.iterdir()):
            self._tar.add(child, arcname=child.name, recursive=True, filter=normalise)
        return self

    def tar_bytes(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()

    def build(self, compression: str = "gzip") -> BuiltLayer:
        """Close the tar and compress it: "gzip" (default), "zstd" or "" (plain)."""
        return compress_layer(self.tar_bytes(), compression)


def compress_layer(tar: bytes, compression: str = "gzip") -> BuiltLayer:
    diff_id = compute_digest(tar)
    if compression == "gzip":
        return BuiltLayer(gzip.compress(tar, compresslevel=6, mtime=0), _GZIP_LAYER, diff_id)
    if compression == "zstd":
        import zstandard

        return BuiltLayer(zstandard.ZstdCompressor().compress(tar), _ZSTD_LAYER, diff_id)
    if compression == "":
        return BuiltLayer(tar, _TAR_LAYER, diff_id)
    raise ValueError(f"unknown compression {compression!r}")


@dataclass(frozen=True)
class BuiltImage:
    """An image held in memory: config, manifest and blobs, with their digests."""

    config: bytes
    manifest: bytes
    manifest_media_type: str
    layers: tuple[BuiltLayer, ...]
    platform: Platform
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return compute_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        return compute_digest(self.config)

    def blobs(self) -> dict[str, bytes]:
        out = {compute_digest(layer.blob): layer.blob for layer in self.layers}
        out[self.config_digest] = self.config
        return out

    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.manifest_media_type, self.digest, len(self.manifest), platform=self.platform
        )


def build_image(
    layers: Sequence[BuiltLayer],
    *,
    platform: Platform = DEFAULT_PLATFORM,
    cmd: Sequence[str] = (),
    env: Sequence[str] = (),
    user: str | None = None,
    labels: Mapping[str, str] | None = None,
    history: Sequence[str] | None = None,
    docker_media_types: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> BuiltImage:
    """An image manifest and config for `layers` (OCI media types unless docker ones asked)."""
    runtime: dict[str, object] = {}
    if cmd:
        runtime["Cmd"] = list(cmd)
    if env:
        runtime["Env"] = list(env)
    if user:
        runtime["User"] = user
    if labels:
        runtime["Labels"] = dict(labels)
    steps = list(history) if history is not None else [f"layer {i}" for i in range(len(layers))]
    config_doc: dict[str, object] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": "1970-01-01T00:00:00Z",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": step} for step in steps],
    }
    if platform.variant:
        config_doc["variant"] = platform.variant
    config = _canonical(config_doc)
    layer_descriptors = []
    for layer in layers:
        media_type = layer.media_type
        if docker_media_types:
            media_type = {
                _GZIP_LAYER: "application/vnd.docker.image.rootfs.diff.tar.gzip",
                _TAR_LAYER: "application/vnd.docker.image.rootfs.diff.tar",
            }.get(media_type, media_type)
        layer_descriptors.append(
            Descriptor(media_type, compute_digest(layer.blob), len(layer.blob)).to_json()
        )
    manifest_type = DOCKER_MANIFEST if docker_media_types else OCI_MANIFEST
    manifest_doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": Descriptor(
            DOCKER_CONFIG if docker_media_types else OCI_CONFIG,
            compute_digest(config),
            len(config),
        ).to_json(),
        "layers": layer_descriptors,
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    return BuiltImage(
        config, _canonical(manifest_doc), manifest_type, tuple(layers), platform, annotations or {}
    )


def build_index(images: Sequence[BuiltImage]) -> bytes:
    """An OCI image index over `images` (each with its platform)."""
    return _canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [image.descriptor().to_json() for image in images],
        }
    )


def _canonical(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


def write_layout(
    image: BuiltImage | Sequence[BuiltImage], directory: str | Path, *, tag: str | None = None
) -> str:
    """Write an OCI image layout; several images become one multi-arch index. Its digest."""
    images = [image] if isinstance(image, BuiltImage) else list(image)
    root = Path(directory)
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for built in images:
        for digest, data in built.blobs().items():
            _write_blob(blobs, digest, data)
        _write_blob(blobs, built.digest, built.manifest)
    if len(images) == 1:
        top = images[0].descriptor()
        top_digest = images[0].digest
    else:
        index = build_index(images)
        top_digest = compute_digest(index)
        _write_blob(blobs, top_digest, index)
        top = Descriptor(OCI_INDEX, top_digest, len(index))
    entry = top.to_json()
    if tag:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    write_atomic(root / "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}))
    write_atomic(
        root / "index.json",
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}),
    )
    return top_digest


def _write_blob(directory: Path, digest: str, data: bytes) -> None:
    path = directory / digest.split(":", 1)[1]
    if not path.exists():
        write_atomic(path, data)


def write_docker_archive(
    image: BuiltImage, path: str | Path, *, repo_tag: str | None = None
) -> None:
    """Write `image` the way `docker save` does (layers uncompressed, manifest.json)."""
    import zlib

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))

        layer_names = []
        for layer in image.layers:
            if layer.media_type == _GZIP_LAYER:
                raw = zlib.decompress(layer.blob, wbits=47)
            elif layer.media_type == _ZSTD_LAYER:
                import zstandard

                raw = zstandard.ZstdDecompressor().decompressobj().decompress(layer.blob)
            else:
                raw = layer.blob
            name = f"{layer.diff_id.split(':', 1)[1]}/layer.tar"
            add(name, raw)
            layer_names.append(name)
        config_name = f"{image.config_digest.split(':', 1)[1]}.json"
        add(config_name, image.config)
        manifest = [
            {
                "Config": config_name,
                "RepoTags": [repo_tag] if repo_tag else [],
                "Layers": layer_names,
            }
        ]
        add("manifest.json", json.dumps(manifest).encode())
    write_atomic(path, buffer.getvalue())


def push_image(client: object, ref: Reference, image: BuiltImage | Sequence[BuiltImage]) -> str:
    """Push blobs, manifests and (for several images) an index to `ref`; the top digest."""
    from skanse.oci.registry import RegistryClient

    assert isinstance(client, RegistryClient)
    images = [image] if isinstance(image, BuiltImage) else list(image)
    for built in images:
        for digest, data in built.blobs().items():
            client.push_blob(ref, data, digest)
    if len(images) == 1:
        return client.push_manifest(ref, images[0].manifest, images[0].manifest_media_type)
    for built in images:
        client.push_manifest(
            ref.with_digest(built.digest), built.manifest, built.manifest_media_type
        )
    return client.push_manifest(ref, build_index(images), OCI_INDEX)
