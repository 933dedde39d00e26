"""Property tests: on any input, each parser returns or raises its own documented error.

A parser that crashes with an IndexError or a struct.error on hostile bytes is a bug: the
scan would report an internal error instead of "could not read this file".
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skanse.errors import ImageReferenceError, ManifestError, SourceError
from skanse.inventory.catalogers.apk import parse_apk_installed
from skanse.inventory.catalogers.binaries import parse_go_buildinfo
from skanse.inventory.catalogers.dpkg import parse_dpkg_status
from skanse.inventory.catalogers.npm import parse_package_json
from skanse.inventory.catalogers.python import parse_metadata
from skanse.inventory.catalogers.rpm import parse_header_blob, read_bdb_values
from skanse.oci.auth import parse_challenges
from skanse.oci.manifest import parse_config, parse_manifest_or_index
from skanse.oci.reference import parse_reference

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
dpkg_like = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Package: a",
                "Version: 1",
                "Status: install ok installed",
                "",
                " cont",
                "Source: x (1)",
            ]
        ),
        st.text(max_size=40),
    ),
    max_size=30,
).map("\n".join)


@FAST
@given(dpkg_like)
def test_dpkg_status(text: str) -> None:
    try:
        parse_dpkg_status(text)
    except SourceError:
        pass


@FAST
@given(st.text(max_size=2000))
def test_apk_and_python_metadata_never_raise(text: str) -> None:
    parse_apk_installed(text)
    parse_metadata(text)


@FAST
@given(st.binary(max_size=2000))
def test_npm_never_raises(data: bytes) -> None:
    parse_package_json(data)


@FAST
@given(st.binary(max_size=4000))
def test_rpm_header_blob(data: bytes) -> None:
    try:
        parse_header_blob(data)
    except SourceError:
        pass


@FAST
@given(st.binary(min_size=512, max_size=4096), st.sampled_from([512, 1024]), st.integers(0, 8))
def test_rpm_berkeley_db(data: bytes, page_size: int, last_page: int) -> None:
    page = bytearray(data.ljust(page_size * 3, b"\0"))
    struct.pack_into("<I", page, 12, 0x061561)
    struct.pack_into("<I", page, 20, page_size)
    struct.pack_into("<I", page, 32, last_page)
    try:
        list(read_bdb_values(bytes(page)))
    except SourceError:
        pass


@FAST
@given(st.binary(max_size=3000), st.sampled_from([4, 8]), st.integers(0, 3))
def test_go_buildinfo_on_garbage(data: bytes, ptr_size: int, flags: int) -> None:
    blob = b"\x7fELF" + data[:100] + b"\xff Go buildinf:" + bytes([ptr_size, flags]) + data[100:]
    try:
        parse_go_buildinfo(blob)
    except ValueError:
        pass  # a bad varint in the inline format: reported as unreadable


@FAST
@given(st.text(max_size=300))
def test_references(text: str) -> None:
    try:
        parse_reference(text)
    except ImageReferenceError:
        pass


@FAST
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "mediaType",
                        "config",
                        "layers",
                        "manifests",
                        "digest",
                        "size",
                        "platform",
                        "rootfs",
                        "diff_ids",
                        "history",
                        "schemaVersion",
                        "os",
                        "architecture",
                    ]
                ),
                c,
                max_size=5,
            )
        ),
        max_leaves=30,
    )
)
def test_manifests_and_configs(doc: object) -> None:
    import json

    data = json.dumps(doc).encode()
    for parse in (parse_manifest_or_index, parse_config):
        try:
            parse(data)
        except ManifestError:
            pass


@FAST
@given(st.text(max_size=300))
def test_challenges_never_raise(text: str) -> None:
    parse_challenges(text)


@FAST
@given(st.binary(max_size=6000))
def test_rpm_ndb(data: bytes) -> None:
    from skanse.inventory.catalogers.rpm import read_ndb_values

    header = struct.pack("<IIII", int.from_bytes(b"RpmP", "little"), 0, 1, 1)
    try:
        list(read_ndb_values(header + data))
    except SourceError:
        pass
