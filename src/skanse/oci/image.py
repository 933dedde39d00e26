"""Images from a registry, an OCI layout, a `docker save` archive, or a root file system.

`open_image(spec)` turns what a user typed into an `Image`: manifest, config and a way to open
each layer. `read_view(image, wants)` streams the layers in order into a `FileView`. A root
file system directory has no layers; `read_directory` walks it without following symlinks.

Spec forms (as Syft and skopeo spell them):
    registry:REF | REF                  a registry reference (`alpine:3.19`, `host:5000/a/b`)
    oci:DIR[:TAG] | oci-dir:DIR[:TAG]   an OCI image layout
    docker-archive:FILE                 a `docker save` (or `skopeo copy docker-archive:`) tar
    dir:DIR                             a plain root file system
A bare path is recognised: a directory with an `oci-layout` file is a layout, another
directory a root file system, a file a docker archive.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from skanse.errors import DigestMismatchError, ImageReferenceError, LayoutError, ManifestError
from skanse.oci.layers import (
    FileRegion,
    RegionHashes,
    apply_layer,
    hash_ahead,
    new_budget,
    sniff_compression,
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
    compute_digest,
    digest_algorithm,
    parse_config,
    parse_manifest_or_index,
    validate_digest,
    verify_digest,
)
from skanse.oci.reference import Reference, parse_reference
from skanse.oci.vfs import (
    MAX_SYMLINK_HOPS,
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

    kind: str  # registry | oci-layout | docker-archive | dir
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
    source: str  # registry | oci-layout | docker-archive
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
    """Split `oci:DIR:TAG`, `docker-archive:FILE`, `dir:DIR`, `registry:REF` or guess.

    An empty target (or prefix with nothing after it) is refused: Path("") is the working
    directory, and `skanse sbom "$IMAGE"` with the variable unset must not report on it."""
    if not text.strip():
        raise ImageReferenceError("empty target: name an image, a layout, an archive or a dir:")
    for prefix, kind in (
        ("oci:", "oci-layout"),
        ("oci-dir:", "oci-layout"),
        ("docker-archive:", "docker-archive"),
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
            if kind == "oci-layout":
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
    if Path(text).exists():
        return text, None
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
    if spec.kind == "docker-archive":
        return open_docker_archive(Path(spec.location))
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


def _layout_blob(root: Path, digest: str, name: str) -> Path:
    algorithm, _, hexpart = validate_digest(digest).partition(":")
    path = root / "blobs" / algorithm / hexpart
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise LayoutError(f"blob {digest} is missing from the layout", reference=name) from None
    if not stat.S_ISREG(info.st_mode):
        raise LayoutError(f"blob {digest} is not a regular file (a symlink?)", reference=name)
    return path


def _read_small(path: Path, cap: int, name: str, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise LayoutError(f"{what} is missing", reference=name) from None
    except OSError as exc:
        raise LayoutError(f"{what}: {exc.strerror}", reference=name) from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise LayoutError(f"{what} is over the {cap}-byte cap", reference=name)
    return data


def open_layout_image(
    root: Path, *, tag: str | None = None, platform: Platform | None = None
) -> Image:
    name = f"oci:{root}" + (f":{tag}" if tag else "")
    layout = _read_small(root / "oci-layout", 4096, name, "oci-layout file")
    try:
        version = json.loads(layout).get("imageLayoutVersion")
    except (ValueError, AttributeError):
        version = None
    if not isinstance(version, str):
        raise LayoutError("oci-layout file has no imageLayoutVersion", reference=name)
    index_bytes = _read_small(root / "index.json", MAX_MANIFEST_BYTES, name, "index.json")
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
                f"the layout holds {len(entries)} images; name one with oci:DIR:TAG "
                f"(tags: {', '.join(tags) or 'none'})",
                reference=name,
            )
        entries = matching
    entry = entries[0]

    def fetch(descriptor: Descriptor) -> bytes:
        data = _read_small(
            _layout_blob(root, descriptor.digest, name),
            MAX_MANIFEST_BYTES,
            name,
            f"blob {descriptor.digest}",
        )
        verify_digest(data, descriptor.digest, what="manifest", reference=name)
        return data

    first = fetch(entry)
    parsed = parse_manifest_or_index(first, entry.media_type, reference=name)
    manifest, chosen, manifest_digest, index_digest = _choose(
        parsed, entry.digest, platform, fetch, name
    )
    _check_config_type(manifest, name)
    config_path = _layout_blob(root, manifest.config.digest, name)
    config_bytes = _read_small(config_path, MAX_CONFIG_BYTES, name, "image config")
    verify_digest(config_bytes, manifest.config.digest, what="config", reference=name)
    config = parse_config(config_bytes, reference=name)
    _check_layers(manifest, config, name)
    for layer in manifest.layers:
        _layout_blob(root, layer.digest, name)  # a missing blob fails now, not mid-read

    def opener(descriptor: Descriptor) -> IO[bytes]:
        path = _layout_blob(root, descriptor.digest, name)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")

    return Image(
        name=name,
        source="oci-layout",
        config=config,
        config_bytes=config_bytes,
        config_digest=manifest.config.digest,
        layers=manifest.layers,
        opener=opener,
        manifest=manifest,
        manifest_bytes=chosen if chosen is not None else first,
        manifest_digest=manifest_digest,
        index_digest=index_digest,
    )


# --- docker save archives -------------------------------------------------------------


def _archive_file(
    members: dict[str, tarfile.TarInfo], member_name: str, name: str, what: str = ""
) -> tarfile.TarInfo:
    """The regular file `member_name` names in the archive, through the symlinks and hard
    links `docker save` writes for a layer it already stored (same diff_id). A link is
    followed only to another member: one that leaves the archive, loops or names nothing
    is refused, and nothing outside the archive is ever read."""
    key = os.path.normpath(member_name).lstrip("/")
    for _hop in range(MAX_SYMLINK_HOPS + 1):
        member = members.get(key)
        if member is None:
            break
        if member.isreg():
            return member
        if member.issym():
            target = member.linkname
            if target.startswith("/"):
                raise LayoutError(
                    f"{what}{member_name} is a symlink to {target!r}, outside the archive",
                    reference=name,
                )
            key = os.path.normpath(posixpath.join(posixpath.dirname(key), target))
        elif member.islnk():
            key = os.path.normpath(member.linkname).lstrip("/")
        else:
            break
        if key == ".." or key.startswith("../"):
            raise LayoutError(
                f"{what}{member_name} is a link to {member.linkname!r}, outside the archive",
                reference=name,
            )
    else:
        raise LayoutError(f"{what}{member_name} is a link that loops", reference=name)
    raise LayoutError(f"{what}{member_name} is missing from the archive", reference=name)


def open_docker_archive(path: Path) -> Image:
    """A `docker save` tar: manifest.json names the config and the layer tars."""
    name = f"docker-archive:{path}"
    try:
        archive = tarfile.open(path, mode="r:")
    except (OSError, tarfile.TarError) as exc:
        raise LayoutError(f"not a readable tar archive: {exc}", reference=name) from None
    try:
        members: dict[str, tarfile.TarInfo] = {}
        for member in archive:
            normalised = os.path.normpath(member.name).lstrip("/")
            if normalised.startswith(".."):
                continue  # never looked up, never followed
            if len(members) > 100_000:
                raise LayoutError("archive has more than 100000 members", reference=name)
            members[normalised] = member

        def read_member(member_name: str, cap: int) -> bytes:
            member = _archive_file(members, member_name, name)
            if member.size > cap:
                raise LayoutError(f"{member_name} is over the {cap}-byte cap", reference=name)
            handle = archive.extractfile(member)
            assert handle is not None
            return handle.read()

        manifest_json = json.loads(read_member("manifest.json", MAX_MANIFEST_BYTES))
        if not isinstance(manifest_json, list) or not manifest_json:
            raise LayoutError("manifest.json lists no images", reference=name)
        if len(manifest_json) > 1:
            raise LayoutError(
                f"the archive holds {len(manifest_json)} images; only one per archive is supported",
                reference=name,
            )
        entry = manifest_json[0]
        config_name, layer_names = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise LayoutError("manifest.json entry has no Config or Layers", reference=name)
        config_bytes = read_member(config_name, MAX_CONFIG_BYTES)
        config = parse_config(config_bytes, reference=name)
        if len(layer_names) != len(config.diff_ids):
            raise LayoutError(
                f"manifest.json lists {len(layer_names)} layers, the config {len(config.diff_ids)}",
                reference=name,
            )
        layers = []
        by_digest: dict[str, tarfile.TarInfo] = {}
        for layer_name, diff_id in zip(layer_names, config.diff_ids, strict=True):
            layer_member = _archive_file(members, str(layer_name), name, what="layer ")
            # a docker archive stores layers uncompressed, so a layer's identity is its diff_id
            layers.append(
                Descriptor(
                    "application/vnd.docker.image.rootfs.diff.tar", diff_id, layer_member.size
                )
            )
            by_digest[diff_id] = layer_member
    except (ValueError, tarfile.TarError) as exc:
        archive.close()
        raise LayoutError(f"malformed archive: {exc}", reference=name) from None
    except BaseException:
        archive.close()
        raise

    fd = cast(IO[bytes], archive.fileobj).fileno()
    ahead: dict[int, RegionHashes] = {}  # by the layer's offset in the archive
    threads: list[threading.Thread] = []

    def opener(descriptor: Descriptor) -> IO[bytes]:
        # read in place with pread: seekable, so tarfile skips what it does not need, and a
        # second reader hashes the layer alongside (the archive keeps the descriptor open)
        member = by_digest[descriptor.digest]
        if member.issparse():  # its stored bytes are not its content: tarfile expands them
            handle = archive.extractfile(member)
            assert handle is not None
            return handle
        region = FileRegion(fd, member.offset_data, member.size)
        region.ahead = ahead.get(member.offset_data)
        return cast(IO[bytes], region)

    def readahead() -> None:
        if threads:
            return
        jobs = []
        for descriptor in layers:
            member = by_digest[descriptor.digest]
            if member.issparse() or member.offset_data in ahead:
                continue
            region = FileRegion(fd, member.offset_data, member.size)
            if sniff_compression(region.read_bytes(4, 0)):
                continue  # hashed as it is decompressed, when it is read
            job = RegionHashes(region, {digest_algorithm(descriptor.digest)})
            ahead[member.offset_data] = job
            jobs.append(job)
        threads.append(hash_ahead(jobs))

    def closer() -> None:
        for job in ahead.values():
            job.stop()
        for thread in threads:
            thread.join()  # before the descriptor it reads is closed
        archive.close()

    return Image(
        name=name,
        source="docker-archive",
        config=config,
        config_bytes=config_bytes,
        config_digest=compute_digest(config_bytes),
        layers=tuple(layers),
        opener=opener,
        closer=closer,
        readahead=readahead,
    )


# --- reading ----------------------------------------------------------------------------


def read_view(image: Image, wants: Wants, limits: ViewLimits | None = None) -> FileView:
    """Apply every layer of `image` in order; the merged `FileView` with captured values."""
    limits = limits or ViewLimits()
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


def read_directory(root: str | Path, wants: Wants, limits: ViewLimits | None = None) -> FileView:
    """A `FileView` of a plain root file system, walked without following any symlink."""
    limits = limits or ViewLimits()
    view = FileView()
    base = Path(root)
    if not base.is_dir():
        raise LayoutError(f"{root} is not a directory", reference=f"dir:{root}")
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
