"""Images in a tar file: a `docker save` archive, or an OCI image layout packed as a tar.

    docker-archive:FILE[:TAG]  `docker save`, `podman save`, `skopeo copy docker-archive:`:
                            manifest.json naming a config and the layer tars of each image
                            (TAG, one of its RepoTags, chooses where there are several)
    oci-archive:FILE[:TAG]  `podman save --format oci-archive`, `buildx --output
                            type=oci,dest=FILE`, `skopeo copy oci-archive:`: an OCI layout
A bare file (or `docker-archive:`) that has no manifest.json but an OCI layout's `oci-layout`
and `index.json` is read as an OCI archive; Docker 25 and later write both, and are read as
`docker save` archives.

Nothing is extracted: members are found by name in the tar's index and read in place, layers
through `FileRegion` (pread of the archive's own descriptor, never a map: a file cut by another
process while mapped ends the process with SIGBUS, where a read comes back short). An archive
compressed whole (`docker save app | gzip > app.tar.gz`, or zstd) is first inflated into an
anonymous temporary file, within the caps a layer has (16 GiB, 200 times past 64 MiB). A member
`docker save` stored once and linked to again (a symlink for a repeated diff_id, or a hard
link) is followed to the member it names, never out of the archive.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
import threading
from pathlib import Path
from typing import IO, Any, cast

from zlib_ng import zlib_ng

from skanse.errors import ImageReferenceError, LayerError, LayoutError
from skanse.oci import prefetch
from skanse.oci._regions import FileRegion, RegionHashes, hash_ahead, sniff_compression
from skanse.oci.image import Image, blob_path, open_layout
from skanse.oci.layers import new_budget
from skanse.oci.manifest import (
    MAX_CONFIG_BYTES,
    MAX_DESCRIPTORS,
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageConfig,
    Platform,
    compute_digest,
    digest_algorithm,
    load_json,
    parse_config,
)
from skanse.oci.reference import parse_reference
from skanse.oci.vfs import MAX_SYMLINK_HOPS, ViewLimits

__all__ = ["open_archive", "open_docker_archive", "open_oci_archive"]

_MAX_MEMBERS = 100_000
_INFLATE_CHUNK = 4 * 1024 * 1024
_GZIP_ERROR = cast(type[Exception], zlib_ng.error)


class _TarIndex:
    """The members of an open tar by normalised name (names leaving the archive left out)."""

    def __init__(self, path: Path, name: str) -> None:
        self.name = name
        self.file_object = _plain_tar(path, name)
        try:
            self.archive = tarfile.open(fileobj=self.file_object, mode="r:")
        except (OSError, tarfile.TarError) as exc:
            self.file_object.close()
            raise LayoutError(f"not a readable tar archive: {exc}", reference=name) from None
        self.members: dict[str, tarfile.TarInfo] = {}
        member: tarfile.TarInfo | None = None
        try:
            # every header counts (tarfile keeps each one), not just the names kept: repeated
            # names and names leaving the archive must not get past the cap
            for count, member in enumerate(self.archive, 1):
                if count > _MAX_MEMBERS:
                    raise LayoutError(
                        f"archive has more than {_MAX_MEMBERS} members", reference=name
                    )
                normalised = os.path.normpath(member.name).lstrip("/")
                if normalised.startswith(".."):
                    continue  # never looked up, never followed
                self.members[normalised] = member
        except tarfile.TarError as exc:
            reason = _past_the_end(member, self.file_object) or str(exc)
            self.close()
            raise LayoutError(f"malformed archive: {reason}", reference=name) from None
        except BaseException:
            self.close()
            raise
        self.fd = self.file_object.fileno()

    def has(self, member_name: str) -> bool:
        return os.path.normpath(member_name).lstrip("/") in self.members

    def file(self, member_name: str, what: str = "") -> tarfile.TarInfo:
        """The regular file `member_name` names, through the symlinks and hard links
        `docker save` writes for a layer it already stored (same diff_id). A link is followed
        only to another member: one that leaves the archive, loops or names nothing is
        refused, and nothing outside the archive is ever read."""
        key = os.path.normpath(member_name).lstrip("/")
        for _hop in range(MAX_SYMLINK_HOPS + 1):
            member = self.members.get(key)
            if member is None:
                break
            if member.isreg():
                return member
            if member.issym():
                target = member.linkname
                if target.startswith("/"):
                    raise LayoutError(
                        f"{what}{member_name} is a symlink to {target!r}, outside the archive",
                        reference=self.name,
                    )
                key = os.path.normpath(posixpath.join(posixpath.dirname(key), target))
            elif member.islnk():
                key = os.path.normpath(member.linkname).lstrip("/")
            else:
                break
            if key == ".." or key.startswith("../"):
                raise LayoutError(
                    f"{what}{member_name} is a link to {member.linkname!r}, outside the archive",
                    reference=self.name,
                )
        else:
            raise LayoutError(f"{what}{member_name} is a link that loops", reference=self.name)
        raise LayoutError(f"{what}{member_name} is missing from the archive", reference=self.name)

    def read(self, member_name: str, cap: int, what: str = "") -> bytes:
        member = self.file(member_name, what)
        if member.size > cap:
            raise LayoutError(
                f"{what}{member_name} is over the {cap}-byte cap", reference=self.name
            )
        handle = self.archive.extractfile(member)
        assert handle is not None
        return handle.read()

    def open(self, member: tarfile.TarInfo) -> IO[bytes]:
        """The member's content, read in place: seekable, so that tarfile skips what it does
        not need and a second reader can hash the same bytes alongside."""
        if member.issparse():  # its stored bytes are not its content: tarfile expands them
            handle = self.archive.extractfile(member)
            assert handle is not None
            return handle
        return cast(IO[bytes], FileRegion(self.fd, member.offset_data, member.size))

    def close(self) -> None:
        self.archive.close()
        self.file_object.close()  # tarfile does not close a file object it was given


def _past_the_end(member: tarfile.TarInfo | None, file_object: IO[bytes]) -> str | None:
    """What is wrong when the last member read claims more bytes than the file holds (a cut
    download, or a header that lies), so that the refusal names it; None otherwise."""
    if member is None:
        return None
    held = os.fstat(file_object.fileno()).st_size - member.offset_data
    if held >= member.size:
        return None
    return (
        f"member {member.name!r} claims {member.size} bytes, the file ends "
        f"{max(held, 0)} bytes into it (a truncated archive)"
    )


def _plain_tar(path: Path, name: str) -> IO[bytes]:
    """The archive as an uncompressed tar to read in place: the file itself, or, for a
    gzip- or zstd-compressed one (`docker save | gzip`), its content inflated into an
    anonymous temporary file (gone when closed), within the caps a layer has."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise LayoutError(f"not a readable tar archive: {exc}", reference=name) from None
    try:
        compression = sniff_compression(handle.read(4))
        handle.seek(0)
        if not compression:
            return handle
        with handle:
            return _inflated(handle, compression, name)
    except BaseException:
        handle.close()
        raise


def _inflated(source: IO[bytes], compression: str, name: str) -> IO[bytes]:
    import tempfile  # a compressed archive is rare: its modules are imported for it only

    from zlib_ng import gzip_ng

    budget = new_budget(ViewLimits())  # the caps a layer has, and its messages
    out = tempfile.TemporaryFile(prefix="skanse-archive-")
    try:
        if compression == "gzip":
            reader: IO[bytes] = cast(
                IO[bytes],
                gzip_ng.GzipFile(fileobj=source, mode="rb"),  # type: ignore[no-untyped-call]
            )
        else:
            import zstandard

            reader = cast(
                IO[bytes],
                zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True),
            )
        written = 0
        while chunk := reader.read(_INFLATE_CHUNK):
            written += len(chunk)
            try:
                budget.check(source.tell(), written, f"the {compression}-compressed archive")
            except LayerError as exc:
                raise LayoutError(f"{exc}; not read", reference=name) from None
            out.write(chunk)
        out.seek(0)
        return cast(IO[bytes], out)
    except LayoutError:
        out.close()
        raise
    except (OSError, EOFError, ValueError, _GZIP_ERROR) as exc:
        out.close()
        raise LayoutError(
            f"not a readable {compression}-compressed archive: {exc}", reference=name
        ) from None
    except BaseException as exc:
        out.close()
        if type(exc).__name__ == "ZstdError":
            raise LayoutError(
                f"not a readable zstd-compressed archive: {exc}", reference=name
            ) from None
        raise


def open_archive(path: Path, *, tag: str | None = None, platform: Platform | None = None) -> Image:
    """The image in a tar file, whichever of the two kinds it is (see the module docstring)."""
    index = _TarIndex(path, f"docker-archive:{path}")
    try:
        if not index.has("manifest.json") and index.has("oci-layout") and index.has("index.json"):
            index.name = f"oci-archive:{path}" + (f":{tag}" if tag else "")
            return _oci_archive(index, tag, platform)
        index.name += f":{tag}" if tag else ""
        return _docker_archive(index, tag)
    except BaseException:
        index.close()
        raise


def open_docker_archive(path: Path, *, tag: str | None = None) -> Image:
    """A `docker save` tar: manifest.json names the config and the layer tars of each image;
    `tag` (one of an image's RepoTags) chooses one where the archive holds several."""
    index = _TarIndex(path, f"docker-archive:{path}" + (f":{tag}" if tag else ""))
    try:
        return _docker_archive(index, tag)
    except BaseException:
        index.close()
        raise


def open_oci_archive(
    path: Path, *, tag: str | None = None, platform: Platform | None = None
) -> Image:
    """An OCI image layout packed as a tar: the image tagged `tag`, or the only one."""
    index = _TarIndex(path, f"oci-archive:{path}" + (f":{tag}" if tag else ""))
    try:
        return _oci_archive(index, tag, platform)
    except BaseException:
        index.close()
        raise


class _ArchiveLayout:
    """An OCI layout's files as members of a tar (a `LayoutStore`)."""

    def __init__(self, index: _TarIndex) -> None:
        self.index = index

    def read(self, relpath: str, cap: int, what: str) -> bytes:
        return self.index.read(relpath, cap)

    def open_blob(self, digest: str) -> IO[bytes]:
        return self.index.open(self.index.file(blob_path(digest)))


def _oci_archive(index: _TarIndex, tag: str | None, platform: Platform | None) -> Image:
    return open_layout(
        _ArchiveLayout(index),
        index.name,
        tag=tag,
        platform=platform,
        source="oci-archive",
        closer=index.close,
    )


def _docker_manifest(
    index: _TarIndex, tag: str | None
) -> tuple[bytes, ImageConfig, list[Descriptor], dict[str, tarfile.TarInfo]]:
    """The image of manifest.json tagged `tag` (or its only one): its config and a
    descriptor and member for each layer."""
    name = index.name
    manifest_json = load_json(
        index.read("manifest.json", MAX_MANIFEST_BYTES),
        "manifest.json",
        reference=name,
        error=LayoutError,
    )
    if not isinstance(manifest_json, list) or not manifest_json:
        raise LayoutError("manifest.json lists no images", reference=name)
    if not all(isinstance(entry, dict) for entry in manifest_json):
        raise LayoutError("manifest.json entry has no Config or Layers", reference=name)
    entry = _chosen_entry(manifest_json, tag, name)
    config_name, layer_names = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list):
        raise LayoutError("manifest.json entry has no Config or Layers", reference=name)
    if len(layer_names) > MAX_DESCRIPTORS:  # the cap a registry's or a layout's manifest has
        raise LayoutError(
            f"manifest.json lists {len(layer_names)} layers, over the cap of {MAX_DESCRIPTORS}",
            reference=name,
        )
    config_bytes = index.read(config_name, MAX_CONFIG_BYTES)
    config = parse_config(config_bytes, reference=name)
    if len(layer_names) != len(config.diff_ids):
        raise LayoutError(
            f"manifest.json lists {len(layer_names)} layers, the config {len(config.diff_ids)}",
            reference=name,
        )
    layers = []
    by_digest: dict[str, tarfile.TarInfo] = {}
    for layer_name, diff_id in zip(layer_names, config.diff_ids, strict=True):
        member = index.file(str(layer_name), what="layer ")
        # a docker archive stores layers uncompressed, so a layer's identity is its diff_id
        layers.append(
            Descriptor("application/vnd.docker.image.rootfs.diff.tar", diff_id, member.size)
        )
        by_digest[diff_id] = member
    return config_bytes, config, layers, by_digest


def _repo_tags(entry: dict[str, Any]) -> list[str]:
    tags = entry.get("RepoTags")
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _same_name(given: str, listed: str) -> bool:
    """`alpine:3.19` names `docker.io/library/alpine:3.19` too, as docker reads it."""
    if given == listed:
        return True
    try:
        return str(parse_reference(given)) == str(parse_reference(listed))
    except ImageReferenceError:
        return False


def _chosen_entry(entries: list[dict[str, Any]], tag: str | None, name: str) -> dict[str, Any]:
    listed = sorted({t for entry in entries for t in _repo_tags(entry)})
    known = ", ".join(listed) or "none"
    if tag is not None:
        chosen = [e for e in entries if any(_same_name(tag, t) for t in _repo_tags(e))]
        if not chosen:
            raise LayoutError(
                f"no image tagged {tag!r} in the archive (tags: {known})", reference=name
            )
        return chosen[0]
    if len(entries) > 1:
        raise LayoutError(
            f"the archive holds {len(entries)} images; name one with docker-archive:FILE:TAG "
            f"(tags: {known})",
            reference=name,
        )
    return entries[0]


def _docker_archive(index: _TarIndex, tag: str | None) -> Image:
    name = index.name
    try:
        config_bytes, config, layers, by_digest = _docker_manifest(index, tag)
    except (ValueError, tarfile.TarError) as exc:
        raise LayoutError(f"malformed archive: {exc}", reference=name) from None

    ahead: dict[int, RegionHashes] = {}  # by the layer's offset in the archive
    threads: list[threading.Thread] = []

    def opener(descriptor: Descriptor) -> IO[bytes]:
        member = by_digest[descriptor.digest]
        blob = index.open(member)
        if isinstance(blob, FileRegion):
            blob.ahead = ahead.get(member.offset_data)
        return blob

    def readahead() -> None:
        if threads:
            return
        jobs = []
        regions = [
            (by_digest[d.digest].offset_data, by_digest[d.digest].size, digest_algorithm(d.digest))
            for d in layers
        ]
        early = prefetch.claim(index.fd, regions)  # hashed since the process started
        for descriptor, (offset, size, algorithm) in zip(layers, regions, strict=True):
            member = by_digest[descriptor.digest]
            if member.issparse() or offset in ahead:
                continue
            if (offset, size) in early:
                ahead[offset] = early[(offset, size)]
                continue
            region = FileRegion(index.fd, member.offset_data, member.size)
            if sniff_compression(region.read_bytes(4, 0)):
                continue  # hashed as it is decompressed, when it is read
            job = RegionHashes(region, {algorithm})
            ahead[member.offset_data] = job
            jobs.append(job)
        threads.append(hash_ahead(jobs))

    def closer() -> None:
        for job in ahead.values():
            job.stop()
        for thread in threads:
            thread.join()  # before the descriptor it reads is closed
        index.close()

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
