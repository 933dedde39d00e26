"""The members of an uncompressed tar held in a file, read header by header.

tarfile spends most of its time per member on machinery a layer of a docker archive rarely
needs (a buffered read and a seek per header, the PAX and GNU dispatch, the checks for the
previous member's data). `plain_members` reads the headers in 64 KiB windows (a `pread`
each) and parses them with `FastTarInfo.usual`; a PAX extended header or a GNU long name or
long link is handed to tarfile for that one member. Anything else makes it give up and
return None, and the caller reads the layer with tarfile, whose result, or error, is the
reference: a global PAX header, a sparse file, an unknown entry type, a header that does
not parse (a bad checksum included), content that runs past the end of the layer, a layer
that does not end with a zero block, more members than the caller allows, more than 64
members that need tarfile (a layer with PAX headers throughout reads faster in one tarfile
pass). `tests/oci/test_tarwalk.py` holds it to tarfile's members on written, real and
corrupted archives.

Written by hand because no library reads tar headers faster than tarfile; it parses nothing
itself that tarfile's own parser (through `FastTarInfo`) does not parse the same way.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from typing import IO

from skanse.oci._tarheader import FastTarInfo

__all__ = ["plain_members"]

_BLOCK = tarfile.BLOCKSIZE
_EMPTY = bytes(_BLOCK)
_WITH_DATA = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE})
_PLAIN = _WITH_DATA | {
    tarfile.LNKTYPE,
    tarfile.SYMTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.DIRTYPE,
    tarfile.FIFOTYPE,
}
# headers that describe the next one: read by tarfile, one member at a time
_EXTENDED = frozenset({tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK})
_TYPE = slice(156, 157)
_WINDOW = 64 * 1024
# each member read by tarfile costs a tarfile opened and a buffer refilled: a layer where
# these are common is read by tarfile whole (one pass, its buffer reused)
_MOST_EXTENDED = 64


def plain_members(
    read: Callable[[int, int], bytes],
    size: int,
    reader: IO[bytes],
    *,
    limit: int,
    encoding: str = tarfile.ENCODING,
    errors: str = "surrogateescape",
) -> list[tarfile.TarInfo] | None:
    """The members of the `size`-byte tar that `read(count, position)` reads, with
    `offset` and `offset_data` as tarfile sets them; None when tarfile should read it.

    `reader` is a seekable file over the same bytes (positions from 0), for the members
    tarfile reads; `limit` is the most members accepted (more: None)."""
    members: list[tarfile.TarInfo] = []
    # headers are read in windows: the headers of small files share one read
    window, window_at = b"", 0
    position = 0
    extended = 0
    while len(members) <= limit:
        if position + _BLOCK > size:
            # the end without a zero block, or content running past the end (tarfile raises
            # "unexpected end of data"): tarfile decides
            return None
        start = position - window_at
        if start < 0 or start + _BLOCK > len(window):
            window, window_at, start = read(_WINDOW, position), position, 0
            if len(window) < _BLOCK:
                return None  # the file is shorter than the layer
        header = window[start : start + _BLOCK]
        if header[_TYPE] in _EXTENDED:
            extended += 1
            if extended > _MOST_EXTENDED:
                return None
            through = _through_tarfile(reader, position, encoding, errors)
            if through is None:
                return None
            member, following = through
        else:
            if header == _EMPTY:
                return members  # tarfile stops at the first zero block
            usual = FastTarInfo.usual(header, encoding, errors)
            if usual is None or usual.type not in _PLAIN:
                return None
            member = usual
            member.offset, member.offset_data = position, position + _BLOCK
            following = member.offset_data
            if member.type in _WITH_DATA:
                following += -(-member.size // _BLOCK) * _BLOCK
        members.append(member)
        position = following
    return None


def _through_tarfile(
    reader: IO[bytes], position: int, encoding: str, errors: str
) -> tuple[tarfile.TarInfo, int] | None:
    """The member whose headers start at `position`, read by tarfile, and where the next
    header is; None unless it is a plain member."""
    reader.seek(position)
    try:
        archive = tarfile.open(
            fileobj=reader, mode="r:", tarinfo=FastTarInfo, encoding=encoding, errors=errors
        )
    except (tarfile.TarError, EOFError, ValueError):
        return None
    member = archive.next()  # the member read on opening
    if (
        member is None
        or member.type not in _PLAIN
        or member.sparse is not None
        or archive.pax_headers  # a global header applies to every later member
    ):
        return None
    return member, archive.offset
