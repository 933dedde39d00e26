"""Catalogers against an image built to make them slow, swell or stay silent.

Each test gives an input that the code before its fix needed minutes (or gigabytes) for, or
that it left out of the SBOM without a word; none asserts on elapsed time.
"""

from __future__ import annotations

from skanse.inventory.catalogers.dpkg import parse_dpkg_status
from skanse.inventory.catalogers.java import _manifest
from skanse.inventory.catalogers.python import parse_metadata

# --- folded (continuation) lines ------------------------------------------------------------

# 1,400,000 continuation lines, about 4 MiB (the METADATA cap): each was added to the field
# by copying the field so far, about 3.5 minutes per file before the fix
_FOLDED_LINES = 1_400_000


def test_dpkg_field_of_many_continuation_lines_is_read_whole() -> None:
    text = "Package: a\nVersion: 1\nDescription: d\n" + " x\n" * _FOLDED_LINES + "\n"
    text += "Package: b\nVersion: 2\n\n"
    records = parse_dpkg_status(text)
    assert [(r.package, r.version) for r in records] == [("a", "1"), ("b", "2")]


def test_python_metadata_header_of_many_continuation_lines_is_read_whole() -> None:
    text = "Name: a\nVersion: 1\nLicense: MIT\n" + " x\n" * _FOLDED_LINES + "Classifier: c\n"
    fields = parse_metadata(text)
    assert fields["name"] == ["a"] and fields["classifier"] == ["c"]
    assert fields["license"] == ["MIT" + "\nx" * _FOLDED_LINES]


def test_python_metadata_continuation_goes_to_the_last_of_repeated_headers() -> None:
    fields = parse_metadata("Classifier: a\nClassifier: b\n  more\nName: n\n\nbody: x\n")
    assert fields == {"classifier": ["a", "b\nmore"], "name": ["n"]}


def test_jar_manifest_attribute_of_many_continuation_lines_is_read_whole() -> None:
    text = "Manifest-Version: 1.0\nImplementation-Title: t\n" + " x\n" * _FOLDED_LINES
    text += "Implementation-Version: 1.2\n"
    fields = _manifest(text)
    assert fields["Implementation-Title"] == "t" + "x" * _FOLDED_LINES
    assert fields["Implementation-Version"] == "1.2"
