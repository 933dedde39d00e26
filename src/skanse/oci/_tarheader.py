"""A `tarfile.TarInfo` whose header parsing does the common case in fewer steps.

Parsing the 512-byte headers is most of the time `skanse sbom` spends on an uncompressed layer
(an image of 7,000 files has 7,000 headers; tarfile decodes each field through two helper
calls and sums the block twice for its checksums). `FastTarInfo.frombuf` unpacks the block
with one struct call and parses the usual headers; anything else (base-256 numbers, a signed
or bad checksum, old GNU sparse entries, a field that does not parse) goes to tarfile's own
`frombuf`, so the result, or the error, is always tarfile's.
"""

from __future__ import annotations

import re
import struct
import tarfile
from typing import Self
from zlib import adler32

__all__ = ["FastTarInfo"]

# name mode uid gid size mtime chksum type linkname magic version uname gname devmajor
# devminor prefix (and 12 unused bytes): the POSIX ustar layout, which GNU and V7 share up to
# the prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x")
_BLOCK = tarfile.BLOCKSIZE
_EMPTY = bytes(_BLOCK)
_SPARSE = tarfile.GNUTYPE_SPARSE
_GNU_TYPES = frozenset(tarfile.GNU_TYPES)
_BASE256 = (0o200, 0o377)
# mode, uid, gid, size, mtime and checksum as tarfile, Go's archive/tar and GNU tar write
# them: octal digits filling each field, then a NUL (and a space after the checksum's); then
# device numbers written the same way or left as NULs. Matched in one step, each group is
# the text tarfile would give int().
_NUMBERS = re.compile(
    rb"([0-7]{7})\0([0-7]{7})\0([0-7]{7})\0([0-7]{11})\0([0-7]{11})\0([0-7]{6})\0 "
)
_DEVICES = re.compile(rb"(?:\0{8}|([0-7]{7})\0)(?:\0{8}|([0-7]{7})\0)")
_NUMBERS_AT = (100, 156)
_DEVICES_AT = (329, 345)


class _Unusual(Exception):
    """A header the fast path leaves to tarfile."""


def _number(field: bytes) -> int:
    if field[0] in _BASE256:
        raise _Unusual
    end = field.find(0)
    if end != -1:
        field = field[:end]
    return int(field.strip() or b"0", 8)


def _byte_sum(block: bytes | bytearray) -> int:
    """sum(block) for a 512-byte block, in C: Adler-32's low half is 1 plus the byte sum
    modulo 65521, exact for 256 bytes (at most 65280)."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


class FastTarInfo(tarfile.TarInfo):
    __slots__ = ()

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        usual = cls.usual(buf, encoding, errors)
        return usual if usual is not None else super().frombuf(buf, encoding, errors)

    @classmethod
    def usual(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self | None:
        """The header in `buf`, parsed as tarfile's `frombuf` parses it, when it is a usual
        one; None for anything else (an empty or short block included)."""
        if len(buf) != _BLOCK or buf == _EMPTY:
            return None
        try:
            (
                name,
                mode,
                uid,
                gid,
                size,
                mtime,
                chksum_field,
                kind,
                linkname,
                _magic,
                _version,
                uname,
                gname,
                devmajor,
                devminor,
                prefix_field,
            ) = _HEADER.unpack(buf)
            numbers = _NUMBERS.fullmatch(buf, *_NUMBERS_AT)
            devices = _DEVICES.fullmatch(buf, *_DEVICES_AT)
            obj = cls()
            if numbers is not None and devices is not None:
                obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, chksum = [
                    int(text, 8) for text in numbers.groups()
                ]
                major, minor = devices.groups()
                obj.devmajor = int(major, 8) if major else 0
                obj.devminor = int(minor, 8) if minor else 0
            else:
                chksum = _number(chksum_field)
                obj.mode = _number(mode)
                obj.uid = _number(uid)
                obj.gid = _number(gid)
                obj.size = _number(size)
                obj.mtime = _number(mtime)
                obj.devmajor = _number(devmajor)
                obj.devminor = _number(devminor)
            # the unsigned sum with the checksum field counted as eight spaces (tarfile also
            # accepts a signed sum: that rare case is left to it)
            if chksum != _byte_sum(buf) - sum(chksum_field) + 256 or kind == _SPARSE:
                raise _Unusual
            obj.chksum = chksum
            obj.type = kind
            # as tarfile: each text ends at its first NUL
            obj.name = name.partition(b"\0")[0].decode(encoding, errors)
            obj.linkname = linkname.partition(b"\0")[0].decode(encoding, errors)
            obj.uname = uname.partition(b"\0")[0].decode(encoding, errors)
            obj.gname = gname.partition(b"\0")[0].decode(encoding, errors)
            prefix = prefix_field.partition(b"\0")[0].decode(encoding, errors)
        except (_Unusual, ValueError):
            return None
        # as tarfile: a V7 directory is a regular file whose name ends in "/"; directory names
        # lose trailing slashes; a ustar prefix goes in front of the name
        if obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix and obj.type not in _GNU_TYPES:
            obj.name = prefix + "/" + obj.name
        return obj
