"""Safe layer reading: decompress, verify, and apply tar layers to a `FileView`.

Nothing is written to the host. Each layer is streamed once: the compressed bytes are hashed
against the blob digest, the uncompressed bytes against the config's diff_id, and both are
checked at the end of the stream before the layer's entries are merged into the view, so a
layer whose digest does not match changes nothing. Hostile content is neutralised and
recorded in `FileView.problems`:

- a member path with `..` is skipped; an absolute path is taken relative to the image root;
- symlinks are kept as data and resolved inside the view only (see `FileView.resolve`);
- a hardlink to a path the image does not contain (or that climbs out) is skipped;
- device files and FIFOs are recorded as such and never read;
- the uncompressed size is capped per image, and so is the expansion ratio (a gzip or zstd
  bomb stops with `LayerError` as soon as it crosses either cap).
"""

from __future__ import annotations

import hashlib
import io
import queue
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from zlib_ng import zlib_ng

from skanse.errors import DigestMismatchError, LayerError
from skanse.oci._forward import ForwardReader
from skanse.oci._pump import ChunkPump
from skanse.oci._regions import (
    CHUNK,
    FileRegion,
    RegionHashes,
    hash_ahead,
    sniff_compression,
)
from skanse.oci._tarheader import FastTarInfo
from skanse.oci._tarwalk import plain_members
from skanse.oci.manifest import digest_algorithm
from skanse.oci.vfs import (
    Captured,
    FileInfo,
    FileView,
    LayerInfo,
    NodeKind,
    ViewLimits,
    Wants,
    normalise_member_path,
    parent_of,
)

__all__ = [
    "FileRegion",
    "LayerStream",
    "RegionHashes",
    "apply_layer",
    "hash_ahead",
    "sniff_compression",
]

_AHEAD = 8  # chunks (up to 4 MB each) decompressed ahead of the tar parser
# A tar ends with two zero blocks; tar writers then pad it with zeros to a whole record
# (10,240 bytes for GNU tar, bsdtar and Python's tarfile; more with a larger blocking factor).
# containers/storage's zstd:chunked writer before v1.52 (podman 4.3 to 4.8, `podman push
# --compression-format zstd:chunked`) stopped after the two blocks and dropped the record's
# padding the diff_id covers (containers/storage#1771, fixed by 6a7ab2bc9): Docker and
# containerd refuse such layers, podman and CRI-O read them. A zstd layer whose tar ends with
# its two zero blocks is taken when it matches its diff_id once followed by this many zeros at
# most: the files are those the diff_id covers, byte for byte, and a tar holds nothing after
# its end. Anything else still refuses the layer.
_TAR_END = b"\0" * 1024
_MAX_DROPPED_PADDING = 1024 * 1024
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
# zlib-ng's error class (its stub declares it as an instance)
_GZIP_ERROR = cast(type[Exception], zlib_ng.error)


class _Budget:
    """Counts expanded bytes across the layers of one image and enforces the caps."""

    def __init__(self, limits: ViewLimits) -> None:
        self.limits = limits
        self.expanded = 0

    def check(self, compressed: int, expanded: int, where: str) -> None:
        limits = self.limits
        if self.expanded + expanded > limits.max_expanded_bytes:
            raise LayerError(
                f"{where}: expands past {limits.max_expanded_bytes} bytes "
                "(decompression bomb or an image too large to read)"
            )
        if expanded > limits.ratio_grace and expanded > limits.max_ratio * max(compressed, 1):
            raise LayerError(
                f"{where}: expands more than {limits.max_ratio}x "
                f"({compressed} -> {expanded}+ bytes; a decompression bomb)"
            )


class _Hasher:
    """Runs `hash.update(data)` in a thread of its own, in the order fed.

    hashlib releases the GIL on large updates, so hashing beside decompression uses the
    second core instead of lengthening the decompressing thread, which the tar parser waits
    for. `close` waits until everything fed is hashed."""

    def __init__(self) -> None:
        self._work: queue.Queue[tuple[Any, bytes] | None] = queue.Queue(maxsize=_AHEAD * 4)
        self._thread: threading.Thread | None = None  # started by the first feed

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            running, data = item
            running.update(data)

    def feed(self, running: Any, data: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="layer-hash", daemon=True)
            self._thread.start()
        self._work.put((running, data))

    def close(self) -> None:
        """Wait until everything fed is hashed (a no-op when nothing was, or after close)."""
        if self._thread is not None and self._thread.is_alive():
            self._work.put(None)
            self._thread.join()


class LayerStream:
    """The tar stream of a (compressed) blob, handed over in chunks (`next_chunk`) by a thread
    that reads, decompresses and, with another, hashes both sides as it goes."""

    def __init__(
        self,
        blob: IO[bytes],
        *,
        budget: _Budget,
        where: str,
        digest: str | None,
        diff_id: str | None,
    ) -> None:
        self._blob = blob
        self._budget = budget
        self._where = where
        self.digest = digest
        self.diff_id = diff_id
        # each side is hashed with its own digest's algorithm (sha256, sha384 or sha512);
        # validate_digest refuses any other, so no digest goes unchecked
        tar_algorithm = digest_algorithm(diff_id) if diff_id else "sha256"
        self._tar_hash = hashlib.new(tar_algorithm)
        # no blob digest to check (a docker-archive layer): the compressed side is not hashed
        self._blob_hash = hashlib.new(digest_algorithm(digest)) if digest else None
        self.compressed = 0
        self.expanded = 0
        head = blob.read(4)
        self._pending_raw = head
        self.compression = sniff_compression(head)
        # an uncompressed layer is its own tar: one hash serves both digests of one algorithm
        self._shared_hash = (
            self.compression == ""
            and self._blob_hash is not None
            and self._blob_hash.name == tar_algorithm
        )
        self._gz = zlib_ng.decompressobj(wbits=47)
        self._zstd: IO[bytes] | None = None
        if self.compression == "zstd":
            import zstandard

            self._zstd = zstandard.ZstdDecompressor().stream_reader(
                cast(IO[bytes], _RawSide(self)), read_size=CHUNK, read_across_frames=True
            )
        self._buffer = b""
        self._eof = False
        self._tail = b""  # the last bytes of the tar, to tell a complete one (see _TAR_END)
        # reading and decompressing (C code that releases the GIL) run in a thread, a few
        # chunks ahead of the tar parser that reads this stream
        self._pump = ChunkPump(self._produce(), ahead=_AHEAD, name="layer-read")
        self._hasher = _Hasher()

    def _produce(self) -> Iterator[bytes]:
        """The decompressed chunks, made in the pump's thread."""
        while True:
            try:
                self._fill()
            except _GZIP_ERROR as exc:
                raise LayerError(f"{self._where}: corrupt gzip data ({exc})") from None
            except Exception as exc:
                if type(exc).__name__ == "ZstdError":
                    raise LayerError(f"{self._where}: corrupt zstd data ({exc})") from None
                raise
            chunk, self._buffer = self._buffer, b""
            if not chunk:
                return
            yield chunk

    def stop(self) -> None:
        """Stop the reading thread (the tar parser gave up, or the layer was read). The blob
        is closed first: a thread waiting on it (a download from a stalled server) then gives
        up at once, instead of the caller waiting out the server's timeouts."""
        self._blob.close()
        self._pump.stop()
        self._hasher.close()

    def _raw_chunk(self) -> bytes:
        if self._pending_raw:
            data, self._pending_raw = self._pending_raw, b""
        else:
            data = self._blob.read(CHUNK)
        if data:
            self.compressed += len(data)
            if self._blob_hash is not None:
                self._hasher.feed(self._blob_hash, data)
        return data

    def _fill(self) -> None:
        while not self._buffer and not self._eof:
            out = self._next_gzip() if self.compression == "gzip" else self._next_other()
            if out:
                self.expanded += len(out)
                self._budget.check(self.compressed, self.expanded, self._where)
                if not self._shared_hash:
                    self._hasher.feed(self._tar_hash, out)
                self._tail = (self._tail + out[-len(_TAR_END) :])[-len(_TAR_END) :]
                self._buffer = out

    def _next_other(self) -> bytes:
        out = self._zstd.read(CHUNK * 4) if self._zstd is not None else self._raw_chunk()
        if not out:
            self._eof = True
        return out

    def _next_gzip(self) -> bytes:
        gz = self._gz
        if gz.unconsumed_tail:  # bounded output per call: feed the rest back first
            return gz.decompress(gz.unconsumed_tail, CHUNK * 4)
        if gz.eof and gz.unused_data.strip(b"\0"):
            rest = gz.unused_data  # a second gzip member follows (legal, if rare)
            self._gz = zlib_ng.decompressobj(wbits=47)
            return self._gz.decompress(rest, CHUNK * 4)
        raw = self._raw_chunk()
        if not raw:
            self._eof = True
            if not gz.eof:
                raise LayerError(f"{self._where}: truncated gzip stream")
            return b""
        if gz.eof:
            if raw.strip(b"\0"):
                self._gz = zlib_ng.decompressobj(wbits=47)
                return self._gz.decompress(gz.unused_data + raw, CHUNK * 4)
            return b""  # zero padding after the member
        return gz.decompress(raw, CHUNK * 4)

    def next_chunk(self) -> bytes:
        """The next decompressed chunk from the reading thread (b"" at the end)."""
        return self._pump.next_chunk()

    def tar_digest(self) -> str:
        """The digest of the uncompressed tar read so far (all of it after `finish`)."""
        return _hex(self._tar_hash)

    def _restore_dropped_padding(self, diff_id: str) -> None:
        """Take the tar as the diff_id's when only zeros after its end are missing (see
        _TAR_END); the tar hash is left as it was otherwise."""
        if self._tail != _TAR_END:
            return  # not a complete tar: what is missing may be content
        padded = self._tar_hash.copy()
        block = bytes(512)
        for _ in range(_MAX_DROPPED_PADDING // len(block)):
            padded.update(block)
            if _hex(padded) == diff_id:
                self._tar_hash = padded
                return

    def finish(self) -> None:
        """Read to the end of the blob and check both digests; raise on a mismatch."""
        while self.next_chunk():
            pass
        self._hasher.close()
        if self._shared_hash:
            assert self._blob_hash is not None
            self._tar_hash = self._blob_hash.copy()
        elif self.compression == "zstd" and self.diff_id and self.tar_digest() != self.diff_id:
            self._restore_dropped_padding(self.diff_id)
        _check_digests(
            self._where,
            self.digest,
            _hex(self._blob_hash) if self._blob_hash is not None else None,
            self.diff_id,
            self.tar_digest(),
        )


def _hex(digest: hashlib._Hash) -> str:
    """`<algorithm>:<hex>` of a running hash."""
    return f"{digest.name}:{digest.hexdigest()}"


def _check_digests(
    where: str, digest: str | None, blob_actual: str | None, diff_id: str | None, tar_actual: str
) -> None:
    """Raise `DigestMismatchError` unless the blob and tar hashes match what was declared."""
    if digest is not None and blob_actual is not None and blob_actual != digest:
        raise DigestMismatchError(
            f"{where}: blob digest is {blob_actual}, expected {digest}; layer refused"
        )
    if diff_id is not None and tar_actual != diff_id:
        raise DigestMismatchError(
            f"{where}: uncompressed digest is {tar_actual}, expected diff_id {diff_id}; "
            "layer refused"
        )


class _RegionDigests:
    """Digests of an uncompressed layer held in a `FileRegion`, computed by a thread while
    the tar is parsed (hashlib and preadv release the GIL), or already under way when the
    region came with `ahead` hashes; checked by `finish` as `LayerStream.finish` does,
    before anything of the layer is merged."""

    def __init__(
        self,
        region: FileRegion,
        *,
        budget: _Budget,
        where: str,
        digest: str | None,
        diff_id: str | None,
    ) -> None:
        self._where = where
        self.digest = digest
        self.diff_id = diff_id
        # nothing is decompressed: both sides are the region's bytes, whose size is known
        budget.check(region.size, region.size, where)
        self.compressed = self.expanded = region.size
        self._tar_algorithm = digest_algorithm(diff_id) if diff_id else "sha256"
        algorithms = {self._tar_algorithm}
        if digest:
            algorithms.add(digest_algorithm(digest))
        ahead = region.ahead
        if ahead is not None and algorithms <= set(ahead.hashes) and ahead.claim():
            self._job = ahead
        else:
            self._job = RegionHashes(region, algorithms)
            threading.Thread(target=self._job.run, name="layer-digest", daemon=True).start()
        self._hashes = self._job.hashes

    def stop(self) -> None:
        self._job.stop()
        self._job.wait()

    def tar_digest(self) -> str:
        return _hex(self._hashes[self._tar_algorithm])

    def finish(self) -> None:
        self._job.wait()
        if self._job.error is not None:
            raise LayerError(f"{self._where}: could not be read ({self._job.error})")
        if self._job.short:
            raise LayerError(f"{self._where}: truncated (unexpected end of data)")
        blob_digest = (
            _hex(self._hashes[digest_algorithm(self.digest)]) if self.digest is not None else None
        )
        _check_digests(self._where, self.digest, blob_digest, self.diff_id, self.tar_digest())


class _RawSide(io.RawIOBase):
    """The compressed side of a `LayerStream`, for decompressors that pull their input."""

    def __init__(self, owner: LayerStream) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._owner._raw_chunk()


@dataclass
class _Pending:
    """One layer's entries, held until the layer verified, then merged in order."""

    info: FileInfo | None  # None: a whiteout
    path: str
    value: object = None
    captured: bool = False
    opaque: bool = False


def apply_layer(
    view: FileView,
    blob: IO[bytes],
    *,
    index: int,
    wants: Wants,
    limits: ViewLimits,
    budget: _Budget | None = None,
    digest: str | None = None,
    diff_id: str | None = None,
    media_type: str = "",
    where: str | None = None,
) -> None:
    """Read one layer blob and merge it into `view` (only if it verifies)."""
    where = where or f"layer {index}" + (f" ({digest})" if digest else "")
    budget = budget or _Budget(limits)
    stream: LayerStream | _RegionDigests
    region = blob if isinstance(blob, FileRegion) and not sniff_compression(_head(blob)) else None
    if region is not None:
        # an uncompressed layer in a file: its headers are read in place (by tarfile, seeking
        # over the content it does not need, where plain_members gives up) while a thread
        # hashes every byte for the digests
        stream = _RegionDigests(region, budget=budget, where=where, digest=digest, diff_id=diff_id)
        reader: IO[bytes] = io.BufferedReader(region, 64 * 1024)
    else:
        stream = LayerStream(blob, budget=budget, where=where, digest=digest, diff_id=diff_id)
        # tarfile's seekable mode over the decompressed chunks: skipped content is never copied
        reader = cast(IO[bytes], ForwardReader(stream.next_chunk))
    try:
        read = None
        if region is not None:
            read = _read_plain(view, region, reader, stream, index, wants, limits, where)
        pending, problems = read or _read_entries(view, reader, stream, index, wants, limits, where)
    finally:
        stream.stop()
    budget.expanded += stream.expanded
    _merge(view, pending)
    view.problems.extend(problems)
    view.layers.append(
        LayerInfo(
            index=index,
            digest=digest,
            diff_id=diff_id or stream.tar_digest(),
            size=stream.compressed,
            expanded=stream.expanded,
            entries=sum(1 for p in pending if p.info is not None),
            media_type=media_type,
        )
    )


def _head(region: FileRegion) -> bytes:
    head = bytearray(4)
    return bytes(head[: region.read_at(head, 0)])


def _read_plain(
    view: FileView,
    region: FileRegion,
    reader: IO[bytes],
    stream: LayerStream | _RegionDigests,
    index: int,
    wants: Wants,
    limits: ViewLimits,
    where: str,
) -> tuple[list[_Pending], list[str]] | None:
    """`_read_entries` for an uncompressed layer in a file whose headers `plain_members`
    reads (most layers); None when tarfile has to read it."""
    members = plain_members(region.read_bytes, region.size, reader, limit=limits.max_entries)
    if members is None:
        reader.seek(0)  # tarfile reads the layer from its start (plain_members moved it)
        return None

    def content(member: tarfile.TarInfo) -> bytes:
        data = region.read_bytes(member.size, member.offset_data)
        if len(data) != member.size:
            raise LayerError(f"{where}: truncated (unexpected end of data)")
        return data

    pending, problems = _collect(view, members, content, index, wants, limits, where)
    stream.finish()
    return pending, problems


def _read_entries(
    view: FileView,
    reader: IO[bytes],
    stream: LayerStream | _RegionDigests,
    index: int,
    wants: Wants,
    limits: ViewLimits,
    where: str,
) -> tuple[list[_Pending], list[str]]:
    """This layer's entries and problems, read by tarfile, returned only once its digests
    verified."""
    try:
        # seekable mode on both readers: tarfile seeks over content it does not read
        archive = tarfile.open(fileobj=reader, mode="r:", tarinfo=FastTarInfo)
    except tarfile.TarError as exc:
        raise LayerError(f"{where}: not a tar archive ({exc})") from None

    def content(member: tarfile.TarInfo) -> bytes:
        handle = archive.extractfile(member)
        return handle.read() if handle is not None else b""

    try:
        pending, problems = _collect(view, archive, content, index, wants, limits, where)
        stream.finish()
    except tarfile.TarError as exc:
        raise LayerError(f"{where}: malformed tar ({exc})") from None
    except EOFError:
        raise LayerError(f"{where}: truncated (unexpected end of data)") from None
    finally:
        archive.close()
    return pending, problems


def _collect(
    view: FileView,
    members: Iterable[tarfile.TarInfo],
    content: Callable[[tarfile.TarInfo], bytes],
    index: int,
    wants: Wants,
    limits: ViewLimits,
    where: str,
) -> tuple[list[_Pending], list[str]]:
    """The entries of one layer's `members` and the problems met; `content` reads a member's
    bytes for the catalogers that want them."""
    pending: list[_Pending] = []
    problems: list[str] = []
    seen: dict[str, FileInfo] = {}
    # the latest entry of this layer at each path whose content was captured, for hard links
    captured_here: dict[str, _Pending] = {}
    for member in members:
        if len(view.nodes) + len(pending) > limits.max_entries:
            raise LayerError(f"{where}: more than {limits.max_entries} entries")
        if len(member.name) > limits.max_path_length:
            problems.append(
                f"{where}: skipped an entry with a path over {limits.max_path_length} bytes"
            )
            continue
        path = normalise_member_path(member.name)
        if path is None:
            problems.append(
                f"{where}: skipped {member.name!r}: its path climbs out of the image (..)"
            )
            continue
        if path == "/":
            continue
        name = path.rsplit("/", 1)[1]
        if name.startswith(_WHITEOUT):
            parent = parent_of(path)
            if name == _OPAQUE:
                pending.append(_Pending(None, parent, opaque=True))
            else:
                pending.append(_Pending(None, parent.rstrip("/") + "/" + name[len(_WHITEOUT) :]))
            continue
        info = _member_info(member, path, index, view, seen, problems, where)
        if info is None:
            continue
        item = _Pending(info, path)
        if member.islnk():
            target = seen.get(info.link or "") or view.get(info.link or "")
            capture = wants(info)
            if capture is not None:
                if (source := captured_here.get(info.link or "")) is not None:
                    item.value, item.captured = source.value, True
                elif (captured := view.captured.get(info.link or "")) is not None:
                    item.value, item.captured = captured.value, True
                elif target is not None:
                    problems.append(
                        f"{where}: {path} is a hardlink to {info.link}, whose content was not kept"
                    )
            info = FileInfo(path, NodeKind.FILE, info.size, info.mode, index)
            item.info = info
        elif info.kind is NodeKind.FILE:
            capture = wants(info)
            if capture is not None:
                if member.size > limits.max_capture_bytes:
                    problems.append(
                        f"{where}: {path} is {member.size} bytes, over the "
                        f"{limits.max_capture_bytes}-byte read cap; not read"
                    )
                else:
                    data = content(member)
                    try:
                        item.value, item.captured = capture(data), True
                    except Exception as exc:  # a cataloger's parser must not stop the scan
                        problems.append(f"{where}: {path}: could not be read: {exc}")
        seen[path] = info
        pending.append(item)
        if item.captured:
            captured_here[path] = item
    return pending, problems


def _member_info(
    member: tarfile.TarInfo,
    path: str,
    index: int,
    view: FileView,
    seen: dict[str, FileInfo],
    problems: list[str],
    where: str,
) -> FileInfo | None:
    mode = member.mode & 0o7777
    if member.isreg():
        return FileInfo(path, NodeKind.FILE, member.size, mode, index)
    if member.isdir():
        return FileInfo(path, NodeKind.DIRECTORY, 0, mode, index)
    if member.issym():
        return FileInfo(path, NodeKind.SYMLINK, 0, mode, index, member.linkname)
    if member.islnk():
        target = normalise_member_path(member.linkname)
        if target is None:
            problems.append(
                f"{where}: skipped hardlink {path} -> {member.linkname!r}: "
                "it climbs out of the image"
            )
            return None
        existing = seen.get(target) or view.get(target)
        if existing is None or existing.kind is not NodeKind.FILE:
            problems.append(
                f"{where}: skipped hardlink {path} -> {member.linkname!r}: "
                "no such file in the image"
            )
            return None
        return FileInfo(path, NodeKind.FILE, existing.size, mode, index, target)
    if member.ischr() or member.isblk():
        # /dev/null and friends are ordinary in images (debootstrap makes them): inventory,
        # recorded with their mode and never read, not a file that "could not be checked"
        return FileInfo(path, NodeKind.DEVICE, 0, mode, index)
    if member.isfifo():
        return FileInfo(path, NodeKind.FIFO, 0, mode, index)
    problems.append(f"{where}: skipped {path}: unsupported tar entry type {member.type!r}")
    return None


def _merge(view: FileView, pending: list[_Pending]) -> None:
    # Whiteouts and opaque markers hide lower layers only, so apply them first (OCI spec,
    # "Whiteouts": entries in the same layer as the whiteout are not hidden by it).
    removed = {item.path for item in pending if item.info is None and not item.opaque}
    opaque = {item.path for item in pending if item.info is None and item.opaque}
    if removed or opaque:
        view.hide(removed, opaque)
    # A non-directory replacing a directory hides everything under it that is there at that
    # moment: lower layers' entries and this layer's earlier ones. Rather than scanning the
    # view at each replacement, remember when each path was replaced and written (position
    # in the layer; -1 for lower layers) and drop what is hidden in one pass at the end.
    replaced: dict[str, int] = {}
    written: dict[str, int] = {}
    for position, item in enumerate(pending):
        info = item.info
        if info is None:
            continue
        previous = view.nodes.get(info.path)
        if (
            previous is not None
            and previous.kind is NodeKind.DIRECTORY
            and info.kind is not NodeKind.DIRECTORY
            and not _replaced_since(info.path, written.get(info.path, -1), replaced)
        ):
            replaced[info.path] = position
        view.nodes[info.path] = info
        written[info.path] = position
        if item.captured:
            view.captured[info.path] = Captured(info, item.value)
        else:
            view.captured.pop(info.path, None)
    if replaced:
        for key in [k for k in view.nodes if _replaced_since(k, written.get(k, -1), replaced)]:
            view.drop(key)


def _replaced_since(path: str, position: int, replaced: dict[str, int]) -> bool:
    """True when a directory above `path` was replaced by a non-directory after `path` was
    written at `position`."""
    parent = path
    while parent != "/":
        parent = parent_of(parent)
        if replaced.get(parent, -1) > position:
            return True
    return False


def new_budget(limits: ViewLimits) -> _Budget:
    """One budget for all layers of one image (the expanded-size cap is per image)."""
    return _Budget(limits)
