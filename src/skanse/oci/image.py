"""Images from a registry, an OCI layout, a `docker save` archive, or a root file system.

`open_image(spec)` turns what a user typed into an `Image`: manifest, config and a way to open
each layer. `read_view(image, wants)` streams the layers in order into a `FileView`. A root
file system directory has no layers; `read_directory` walks it without following symlinks.

Spec forms (as Syft and skopeo spell them):
    registry:REF | REF                  a registry reference (`alpine:3.19`, `host:5000/a/b`)
    oci:DIR[:TAG] | oci-dir:DIR[:TAG]   an OCI image layout
    docker-archive:FILE[:TAG]           a `docker save` (or `skopeo copy docker-archive:`) tar
    oci-archive:FILE[:TAG]              an OCI image layout packed as a tar
    dir:DIR                             a plain root file system
A bare path is recognised: a directory with an `oci-layout` file is a layout, another
directory a root file system, a file a docker archive or, without manifest.json, an OCI
archive (`skanse.oci.archives`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from skanse.errors import DigestMismatchError, ImageReferenceError, LayoutError, ManifestError
from skanse.oci.layers import (
    apply_layer,
    new_budget,
)
from skanse.oci.manifest import (
    CONFIG_TYPES,
    LAYER_TYPES,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    load_json,
    parse_config,
    parse_manifest_or_index,
    validate_digest,
    verify_digest,
)
from skanse.oci.reference import Reference, parse_reference
from skanse.oci.vfs import (
    Captured,
    FileInfo,
    FileView,
    NodeKind,
    ViewLimits,
    Wants,
)

if TYPE_CHECKING:  # imported lazily at run time: urllib3 is not needed for local images
    from skanse.oci.registry import RegistryClient

__all__ = [
    "DEFAULT_PLATFORM",
    "Image",
    "ImageSpec",
    "open_image",
    "parse_spec",
    "read_directory",
    "read_view",
]

DEFAULT_PLATFORM = Platform("linux", "amd64")
_REF_NAME = "org.opencontainers.image.ref.name"

BlobOpener = Callable[[Descriptor], IO[bytes]]


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What the user asked for: a kind of source and its location."""

    kind: str  # registry | oci-layout | docker-archive | oci-archive | dir
    location: str
    tag: str | None = None

    def __str__(self) -> str:
        if self.kind == "registry":
            return self.location
        suffix = f":{self.tag}" if self.tag else ""
        return f"{self.kind}:{self.location}{suffix}"


@dataclass(frozen=True)
class Image:
    """A resolved image: manifest, config and layer descriptors, plus how to open blobs."""

    name: str  # for messages and SBOM metadata
    source: str  # registry | oci-layout | docker-archive | oci-archive
    config: ImageConfig
    config_bytes: bytes
    config_digest: str
    layers: tuple[Descriptor, ...]
    opener: BlobOpener = field(repr=False)
    manifest: Manifest | None = None
    manifest_bytes: bytes | None = None
    manifest_digest: str | None = None
    index_digest: str | None = None  # the multi-arch index the manifest was chosen from
    reference: Reference | None = None
    closer: Callable[[], None] | None = field(default=None, repr=False)
    readahead: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def image_id(self) -> str:
        """Docker's image id: the config digest."""
        return self.config_digest

    def read_ahead(self) -> None:
        """Start, in a thread, what reading the layers will need and can begin now (the
        digests of a docker archive's layers), so that it overlaps what the caller does
        before `read_view`. Optional; nothing for other sources."""
        if self.readahead is not None:
            self.readahead()

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


def parse_spec(text: str) -> ImageSpec:
    """Split `oci:DIR:TAG`, `docker-archive:FILE`, `oci-archive:FILE:TAG`, `dir:DIR`,
    `registry:REF`, or guess.

    An empty target (or prefix with nothing after it) is refused: Path("") is the working
    directory, and `skanse sbom "$IMAGE"` with the variable unset must not report on it."""
    if not text.strip():
        raise ImageReferenceError("empty target: name an image, a layout, an archive or a dir:")
    for prefix, kind in (
        ("oci:", "oci-layout"),
        ("oci-dir:", "oci-layout"),
        ("docker-archive:", "docker-archive"),
        ("oci-archive:", "oci-archive"),
        ("dir:", "dir"),
        ("registry:", "registry"),
        ("docker:", "registry"),
    ):
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if not rest.strip():
                raise ImageReferenceError(f"'{prefix}' names nothing: give a location after it")
            if kind == "registry":
                return ImageSpec(kind, rest.removeprefix("//"))
            if kind in ("oci-layout", "oci-archive", "docker-archive"):
                path, tag = _split_layout_tag(rest)
                return ImageSpec(kind, path, tag)
            return ImageSpec(kind, rest)
    candidate = Path(text)
    if candidate.is_dir():
        if (candidate / "oci-layout").is_file():
            return ImageSpec("oci-layout", text)
        return ImageSpec("dir", text)
    if candidate.is_file():
        return ImageSpec("docker-archive", text)
    return ImageSpec("registry", text)


def _split_layout_tag(text: str) -> tuple[str, str | None]:
    """`PATH[:REF]`: the first colon after which what precedes is an existing path splits, so
    that a reference may hold colons and slashes (podman and skopeo name an image in a
    layout `localhost/app:1`); with no such path, a last `:TAG` without a slash is the tag."""
    if Path(text).exists():
        return text, None
    at = text.find(":")
    while at > 0:
        if Path(text[:at]).exists():
            return text[:at], text[at + 1 :] or None
        at = text.find(":", at + 1)
    path, sep, tag = text.rpartition(":")
    if sep and path and "/" not in tag:
        return path, tag
    return text, None


def open_image(
    spec: ImageSpec,
    *,
    platform: Platform | None = None,
    client: RegistryClient | None = None,
) -> Image:
    """Resolve `spec` (not a `dir:`) to an `Image`; the registry client is made if needed."""
    if spec.kind == "registry":
        if client is None:
            from skanse.oci.cache import BlobCache, default_cache_dir
            from skanse.oci.registry import RegistryClient

            client = RegistryClient(cache=BlobCache(default_cache_dir()))
        return open_registry_image(client, parse_reference(spec.location), platform=platform)
    if spec.kind == "oci-layout":
        return open_layout_image(Path(spec.location), tag=spec.tag, platform=platform)
    if spec.kind in ("docker-archive", "oci-archive"):
        from skanse.oci.archives import open_archive, open_oci_archive

        if spec.kind == "oci-archive":
            return open_oci_archive(Path(spec.location), tag=spec.tag, platform=platform)
        return open_archive(Path(spec.location), tag=spec.tag, platform=platform)
    raise ManifestError(f"{spec} is a directory, not an image", reference=str(spec))


def _choose(
    parsed: Manifest | Index,
    digest: str,
    platform: Platform | None,
    fetch: Callable[[Descriptor], bytes],
    name: str,
) -> tuple[Manifest, bytes | None, str, str | None]:
    """Walk an index (possibly nested, at most 4 deep) down to one platform's manifest."""
    index_digest = None
    data: bytes | None = None
    for _depth in range(4):
        if isinstance(parsed, Manifest):
            return parsed, data, digest, index_digest
        if index_digest is None:
            index_digest = digest
        wanted = platform or DEFAULT_PLATFORM
        candidates = [m for m in parsed.manifests if m.platform is not None]
        if not candidates and len(parsed.manifests) == 1:
            entry = parsed.manifests[0]
        else:
            entry = parsed.select(wanted, reference=name)
        data = fetch(entry)
        digest = entry.digest
        parsed = parse_manifest_or_index(data, entry.media_type, reference=name)
    raise ManifestError("index nesting is deeper than 4 levels", reference=name)


def open_registry_image(
    client: RegistryClient, ref: Reference, *, platform: Platform | None = None
) -> Image:
    name = str(ref)
    data, media_type, digest = client.get_manifest(ref)
    parsed = parse_manifest_or_index(data, media_type, reference=name)

    def fetch(entry: Descriptor) -> bytes:
        body, _type, _digest = client.get_manifest(ref, entry.digest)
        return body

    manifest, chosen, manifest_digest, index_digest = _choose(parsed, digest, platform, fetch, name)
    manifest_bytes = chosen if chosen is not None else data
    _check_config_type(manifest, name)
    config_bytes = client.get_blob_bytes(ref, manifest.config, cap=MAX_CONFIG_BYTES)
    config = parse_config(config_bytes, reference=name)
    _check_layers(manifest, config, name)
    return Image(
        name=name,
        source="registry",
        config=config,
        config_bytes=config_bytes,
        config_digest=manifest.config.digest,
        layers=manifest.layers,
        opener=lambda d: client.open_blob(ref, d),
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        manifest_digest=manifest_digest,
        index_digest=index_digest,
        reference=ref.with_digest(manifest_digest),
    )


def _check_config_type(manifest: Manifest, name: str) -> None:
    if manifest.config.media_type not in CONFIG_TYPES:
        raise ManifestError(
            f"not a container image: config media type {manifest.config.media_type!r} "
            "(an artifact such as a signature or SBOM?)",
            reference=name,
        )


def _check_layers(manifest: Manifest, config: ImageConfig, name: str) -> None:
    for layer in manifest.layers:
        if layer.media_type not in LAYER_TYPES:
            raise ManifestError(f"unknown layer media type {layer.media_type!r}", reference=name)
    if len(manifest.layers) != len(config.diff_ids):
        raise ManifestError(
            f"manifest has {len(manifest.layers)} layers but the config lists "
            f"{len(config.diff_ids)} diff_ids",
            reference=name,
        )


# --- OCI image layout -----------------------------------------------------------------


class LayoutStore(Protocol):
    """Where an OCI image layout's files are: a directory, or the members of a tar."""

    def read(self, relpath: str, cap: int, what: str) -> bytes:
        """The file at `relpath` (at most `cap` bytes); LayoutError if missing or over."""
        ...

    def open_blob(self, digest: str) -> IO[bytes]:
        """The blob `digest` names, to read; LayoutError if it is missing."""
        ...


def blob_path(digest: str) -> str:
    """`blobs/<algorithm>/<hex>`: where a layout keeps `digest` (validated first)."""
    algorithm, _, hexpart = validate_digest(digest).partition(":")
    return f"blobs/{algorithm}/{hexpart}"


class _LayoutDirectory:
    """A layout in a directory: regular files only, read without following symlinks."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name

    def _file(self, relpath: str, what: str) -> Path:
        path = self.root / relpath
        try:
            info = path.lstat()
        except FileNotFoundError:
            where = " from the layout" if relpath.startswith("blobs/") else ""
            raise LayoutError(f"{what} is missing{where}", reference=self.name) from None
        except OSError as exc:
            raise LayoutError(f"{what}: {exc.strerror}", reference=self.name) from None
        if not stat.S_ISREG(info.st_mode):
            raise LayoutError(f"{what} is not a regular file (a symlink?)", reference=self.name)
        return path

    def _open(self, relpath: str, what: str) -> IO[bytes]:
        try:
            fd = os.open(self._file(relpath, what), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise LayoutError(f"{what}: {exc.strerror}", reference=self.name) from None
        return os.fdopen(fd, "rb")

    def read(self, relpath: str, cap: int, what: str) -> bytes:
        with self._open(relpath, what) as handle:
            data = handle.read(cap + 1)
        if len(data) > cap:
            raise LayoutError(f"{what} is over the {cap}-byte cap", reference=self.name)
        return data

    def open_blob(self, digest: str) -> IO[bytes]:
        return self._open(blob_path(digest), f"blob {digest}")


def open_layout_image(
    root: Path, *, tag: str | None = None, platform: Platform | None = None
) -> Image:
    name = f"oci:{root}" + (f":{tag}" if tag else "")
    return open_layout(_LayoutDirectory(root, name), name, tag=tag, platform=platform)


def open_layout(
    store: LayoutStore,
    name: str,
    *,
    tag: str | None = None,
    platform: Platform | None = None,
    source: str = "oci-layout",
    closer: Callable[[], None] | None = None,
) -> Image:
    """The image of an OCI image layout held by `store`: the one tagged `tag`, or the only
    one (or the one for `platform` when the index lists several)."""
    layout = store.read("oci-layout", 4096, "oci-layout file")
    try:
        doc = load_json(layout, "oci-layout file", reference=name, error=LayoutError)
    except LayoutError:
        doc = None  # said below, as for a file that is JSON but not a layout's
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if not isinstance(version, str):
        raise LayoutError("oci-layout file has no imageLayoutVersion", reference=name)
    index_bytes = store.read("index.json", MAX_MANIFEST_BYTES, "index.json")
    top = parse_manifest_or_index(
        index_bytes, "application/vnd.oci.image.index.v1+json", reference=name
    )
    if not isinstance(top, Index):
        raise LayoutError("index.json is not an image index", reference=name)
    entries = list(top.manifests)
    if tag is not None:
        entries = [e for e in entries if e.annotations.get(_REF_NAME) == tag]
        if not entries:
            tags = sorted({e.annotations.get(_REF_NAME, "") for e in top.manifests} - {""})
            raise LayoutError(
                f"no image tagged {tag!r} in the layout (tags: {', '.join(tags) or 'none'})",
                reference=name,
            )
    if not entries:
        raise LayoutError("index.json lists no images", reference=name)
    if len(entries) > 1:
        wanted = platform or DEFAULT_PLATFORM
        matching = [e for e in entries if e.platform is not None and e.platform.matches(wanted)]
        if len(matching) != 1:
            tags = sorted({e.annotations.get(_REF_NAME, "") for e in entries} - {""})
            raise LayoutError(
                f"the layout holds {len(entries)} images; name one with {source}:PATH:TAG "
                f"(tags: {', '.join(tags) or 'none'})",
                reference=name,
            )
        entries = matching
    entry = entries[0]

    def fetch(descriptor: Descriptor) -> bytes:
        data = store.read(
            blob_path(descriptor.digest), MAX_MANIFEST_BYTES, f"blob {descriptor.digest}"
        )
        verify_digest(data, descriptor.digest, what="manifest", reference=name)
        return data

    first = fetch(entry)
    parsed = parse_manifest_or_index(first, entry.media_type, reference=name)
    manifest, chosen, manifest_digest, index_digest = _choose(
        parsed, entry.digest, platform, fetch, name
    )
    _check_config_type(manifest, name)
    config_bytes = store.read(blob_path(manifest.config.digest), MAX_CONFIG_BYTES, "image config")
    verify_digest(config_bytes, manifest.config.digest, what="config", reference=name)
    config = parse_config(config_bytes, reference=name)
    _check_layers(manifest, config, name)
    for layer in manifest.layers:
        store.open_blob(layer.digest).close()  # a missing blob fails now, not mid-read

    return Image(
        name=name,
        source=source,
        config=config,
        config_bytes=config_bytes,
        config_digest=manifest.config.digest,
        layers=manifest.layers,
        opener=lambda descriptor: store.open_blob(descriptor.digest),
        manifest=manifest,
        manifest_bytes=chosen if chosen is not None else first,
        manifest_digest=manifest_digest,
        index_digest=index_digest,
        closer=closer,
    )


# --- reading ----------------------------------------------------------------------------


def read_view(image: Image, wants: Wants, limits: ViewLimits | None = None) -> FileView:
    """Apply every layer of `image` in order; the merged `FileView` with captured values."""
    limits = limits or ViewLimits()
    _refuse_repeated_layers(image, limits)
    view = FileView()
    budget = new_budget(limits)
    for index, (layer, diff_id) in enumerate(zip(image.layers, image.config.diff_ids, strict=True)):
        where = f"{image.name}: layer {index} ({layer.digest[:19]})"
        with contextlib.closing(image.opener(layer)) as blob:
            # a registry download verifies its own digest as it ends (`verified` says it did)
            self_verifying = getattr(blob, "verifies_digest", False) is True
            apply_layer(
                view,
                blob,
                index=index,
                wants=wants,
                limits=limits,
                budget=budget,
                # a docker archive's layer identity is its diff_id: verify it once, uncompressed
                digest=(
                    None if image.source == "docker-archive" or self_verifying else layer.digest
                ),
                diff_id=diff_id,
                media_type=layer.media_type,
                where=where,
            )
            if self_verifying and getattr(blob, "verified", False) is not True:
                # the blob digest was left to the download, which checks it only once read to
                # its end: a layer read otherwise is refused, never taken as verified
                raise DigestMismatchError(
                    f"{where}: the download was not read to its end, so its digest was not "
                    "checked; layer refused"
                )
    return view


def _refuse_repeated_layers(image: Image, limits: ViewLimits) -> None:
    """A layer listed again is read again (its place in the order matters), so a small image
    that lists one layer a thousand times costs a thousand reads: the ratio cap, which ties
    the work to the input's size, sees each read on its own. Repeats may re-read as many
    bytes as the distinct layers hold, or the ratio cap's grace, not more."""
    seen: set[str] = set()
    distinct = repeated = 0
    for layer in image.layers:
        if layer.digest in seen:
            repeated += layer.size
        else:
            seen.add(layer.digest)
            distinct += layer.size
    allowed = max(distinct, limits.ratio_grace)
    if repeated > allowed:
        raise ManifestError(
            f"the image lists {len(image.layers)} layers, {len(seen)} of them distinct: "
            f"reading the repeats would take {repeated:,} bytes, over the {allowed:,} allowed",
            reference=image.name,
        )


def read_directory(root: str | Path, wants: Wants, limits: ViewLimits | None = None) -> FileView:
    """A `FileView` of a plain root file system, walked without following any symlink."""
    limits = limits or ViewLimits()
    view = FileView()
    base = Path(root)
    if not base.is_dir():
        raise LayoutError(f"{root} is not a directory", reference=f"dir:{root}")
    image = _image_directory(base)
    if image is not None:
        # its files are an image's blobs, not a root file system: walking them would find
        # no package and report an empty, clean result
        kind, advice = image
        raise LayoutError(
            f"{root} holds a container image ({kind}), not a root file system; {advice}",
            reference=f"dir:{root}",
        )
    for rel, entry in _walk(base, view, limits):
        info = _dir_info(rel, entry)
        if info is None:
            continue
        view.nodes[rel] = info
        if info.kind is NodeKind.FILE:
            capture = wants(info)
            if capture is None:
                continue
            if info.size > limits.max_capture_bytes:
                view.problems.append(f"{rel} is over the read cap; not read")
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                with os.fdopen(fd, "rb") as handle:
                    data = handle.read(limits.max_capture_bytes + 1)
                view.captured[rel] = Captured(info, capture(data))
            except OSError as exc:
                view.problems.append(f"{rel}: {exc.strerror}")
            except Exception as exc:  # a cataloger's parser must not stop the scan
                view.problems.append(f"{rel}: could not be read: {exc}")
    return view


def _image_directory(base: Path) -> tuple[str, str] | None:
    """The image format `base` holds at its top, and how to read it, if it is one rather
    than a root file system: skopeo's `dir:` transport (a `version` file naming it) or an
    unpacked docker save (manifest.json listing Config and Layers)."""
    try:
        version = (base / "version").read_bytes()[:64] if (base / "version").is_file() else b""
        if version.startswith(b"Directory Transport Version"):
            return "skopeo's dir format", "`skopeo copy dir:DIR oci:LAYOUT`, then read oci:LAYOUT"
        manifest = base / "manifest.json"
        if manifest.is_file() and manifest.stat().st_size <= MAX_MANIFEST_BYTES:
            entries = load_json(
                manifest.read_bytes(), "manifest.json", reference=None, error=LayoutError
            )
            if (
                isinstance(entries, list)
                and entries
                and all(isinstance(e, dict) and "Config" in e and "Layers" in e for e in entries)
            ):
                return (
                    "an unpacked docker save archive",
                    "`tar -cf image.tar -C DIR .`, then read docker-archive:image.tar",
                )
    except (OSError, LayoutError):
        return None
    return None


def _walk(base: Path, view: FileView, limits: ViewLimits) -> Iterator[tuple[str, os.DirEntry[str]]]:
    stack = [(base, "")]
    count = 0
    while stack:
        directory, rel = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            view.problems.append(f"{rel or '/'}: {exc.strerror}")
            continue
        for entry in entries:
            count += 1
            if count > limits.max_entries:
                raise LayoutError(f"more than {limits.max_entries} entries", reference=str(base))
            path = f"{rel}/{entry.name}"
            yield path, entry
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), path))


def _dir_info(rel: str, entry: os.DirEntry[str]) -> FileInfo | None:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    mode = st.st_mode & 0o7777
    if stat.S_ISREG(st.st_mode):
        return FileInfo(rel, NodeKind.FILE, st.st_size, mode, 0)
    if stat.S_ISDIR(st.st_mode):
        return FileInfo(rel, NodeKind.DIRECTORY, 0, mode, 0)
    if stat.S_ISLNK(st.st_mode):
        return FileInfo(rel, NodeKind.SYMLINK, 0, mode, 0, os.readlink(entry.path))
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return FileInfo(rel, NodeKind.DEVICE, 0, mode, 0)
    if stat.S_ISFIFO(st.st_mode):
        return FileInfo(rel, NodeKind.FIFO, 0, mode, 0)
    return None
