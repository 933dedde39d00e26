"""Debian copyright files -> SPDX expressions, and SBOMs of a real Debian image that validate.

The minimal case that crashed both formats: one dpkg package whose DEP-5 copyright names a
bare `GPL` next to `MIT`. The real case: the debootstrap bookworm minbase tree (cached by
tests/_debian.py) packed as an image, written as CycloneDX 1.6 and SPDX 2.3, and checked with
each format's own validator (cyclonedx-python-lib's JSON schema validator, spdx-tools'
document validator, which `pyspdxtools` runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skanse.inventory.catalog import catalog_directory, catalog_image
from skanse.inventory.catalogers.dpkg import parse_copyright
from skanse.inventory.formats import render
from skanse.inventory.licenses import as_expression, to_spdx
from skanse.inventory.model import Inventory
from skanse.oci.image import open_image, parse_spec
from skanse.oci.writer import LayerBuilder, build_image, write_layout
from tests._debian import debian_rootfs

DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"


def minimal_debian_tree(root: Path, copyright_text: str) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: demo\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n\n"
        "Package: demo-lib\nStatus: install ok installed\nSource: demo\nVersion: 1.0-1\n"
        "Architecture: amd64\n"
    )
    (root / "usr/share/doc/demo").mkdir(parents=True)
    (root / "usr/share/doc/demo/copyright").write_text(copyright_text)
    # Debian links the doc directory of a binary package to its sibling's
    (root / "usr/share/doc/demo-lib").symlink_to("demo")
    return root


def validate_cyclonedx(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, str(error)[:2000]


def validate_spdx(text: str, tmp_path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = tmp_path / "doc.spdx.json"
    path.write_text(text)
    messages = validate_full_spdx_document(parse_file(str(path)))
    assert messages == [], [m.validation_message for m in messages[:20]]


def test_bare_gpl_next_to_mit_writes_valid_cyclonedx_and_spdx(tmp_path: Path) -> None:
    root = minimal_debian_tree(
        tmp_path / "root", DEP5 + "Files: *\nLicense: GPL\n\nFiles: x\nLicense: MIT\n"
    )
    inventory = catalog_directory(root)
    demo = next(p for p in inventory.packages if p.name == "demo")
    assert demo.licenses == ("GPL-1.0-or-later", "MIT")
    cdx = render("cyclonedx-json", inventory)
    validate_cyclonedx(cdx)
    spdx = render("spdx-json", inventory)
    validate_spdx(spdx, tmp_path)
    declared = {p["name"]: p.get("licenseDeclared") for p in json.loads(spdx)["packages"]}
    assert declared["demo"] == "GPL-1.0-or-later AND MIT"


def test_symlinked_doc_directory_is_followed_inside_the_image(tmp_path: Path) -> None:
    root = minimal_debian_tree(tmp_path / "root", DEP5 + "Files: *\nLicense: GPL-2+\n")
    for inventory in (
        catalog_directory(root),
        _as_image(root, tmp_path / "layout"),
    ):
        lib = next(p for p in inventory.packages if p.name == "demo-lib")
        assert lib.licenses == ("GPL-2.0-or-later",)


def _as_image(root: Path, layout: Path) -> Inventory:
    image = build_image([LayerBuilder().add_host_directory(root).build()])
    write_layout(image, layout, tag="t")
    return catalog_image(open_image(parse_spec(f"oci:{layout}:t")))


def test_a_symlinked_doc_directory_cannot_lead_out_of_the_image(tmp_path: Path) -> None:
    root = minimal_debian_tree(tmp_path / "root", DEP5 + "Files: *\nLicense: MIT\n")
    (root / "usr/share/doc/demo-lib").unlink()
    (root / "usr/share/doc/demo-lib").symlink_to("/etc")
    lib = next(p for p in catalog_directory(root).packages if p.name == "demo-lib")
    assert lib.licenses == ()


@pytest.mark.parametrize(
    ("synopsis", "expected"),
    [
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("Expat", "MIT"),
        ("MIT/X11", "MIT"),
        ("GPL-2+ or Artistic", "GPL-2.0-or-later OR Artistic-1.0-Perl"),
        ("LGPL-2.1+ and GPL-3+", "LGPL-2.1-or-later AND GPL-3.0-or-later"),
        ("GPL-3+ with Autoconf-exception-2.0", "GPL-3.0-or-later WITH Autoconf-exception-2.0"),
        ("GPL-2+ with OpenSSL exception", "LicenseRef-GPL-2-with-OpenSSL-exception"),
        ("public-domain", "LicenseRef-public-domain"),
        ("The", None),
        ("based", None),
        ("none", None),
        ("*", None),
        ("", None),
    ],
)
def test_debian_short_names_become_spdx_expressions(synopsis: str, expected: str | None) -> None:
    assert to_spdx(synopsis) == expected


def test_junk_words_are_dropped_from_copyright_files() -> None:
    free_text = (
        "This package was debianized by someone.\nLicense: The same as Perl itself.\n"
        "License: based on BSD\n"
        "On Debian systems see /usr/share/common-licenses/GPL-2.\n"
    )
    assert parse_copyright(free_text) == ("GPL-2.0-only",)
    dep5 = DEP5 + "Files: *\nLicense: *\n\nFiles: a\nLicense: none\n\nFiles: b\nLicense: Zlib\n"
    assert parse_copyright(dep5) == ("Zlib",)


def test_free_text_licences_become_license_refs() -> None:
    assert as_expression("Apache 2.0") == "LicenseRef-Apache-2.0"
    assert as_expression("mit") == "MIT"
    assert as_expression("GPL-2.0-only OR MIT") == "GPL-2.0-only OR MIT"
    assert as_expression("LicenseRef-foo AND MIT") == "LicenseRef-foo AND MIT"
    assert as_expression("MIT AND (").startswith("LicenseRef-")


def test_hostile_copyright_file_costs_linear_time() -> None:
    text = DEP5 + "Files: *\nLicense: " + " or ".join(["GPL-2+"] * 50_000) + "\n"
    text += "License: x\n" * 100_000
    found = parse_copyright(text)
    assert len(found) <= 2_000


@pytest.fixture(scope="module")
def debian_inventory() -> Inventory:
    root = debian_rootfs()
    return catalog_directory(root)


def test_debian_minbase_sboms_validate_and_name_licences(
    debian_inventory: Inventory, tmp_path: Path
) -> None:
    debs = [p for p in debian_inventory.packages if p.type == "deb"]
    assert len(debs) > 80
    # every package has licences (symlinked doc directories followed: libgcc-s1, libstdc++6)
    by_name = {p.name: p for p in debs}
    assert by_name["libgcc-s1"].licenses == by_name["gcc-12-base"].licenses != ()
    assert sum(1 for p in debs if not p.licenses) <= 2
    junk = {"The", "based", "none", "*"}
    for package in debs:
        assert not junk & set(package.licenses), package
    assert "GPL-3.0-or-later" in by_name["bash"].licenses
    validate_cyclonedx(render("cyclonedx-json", debian_inventory))
    validate_spdx(render("spdx-json", debian_inventory), tmp_path)


def test_commas_set_precedence_as_dep5_says() -> None:
    assert (
        to_spdx("GPL-1+ or Artistic, and MIT") == "(GPL-1.0-or-later OR Artistic-1.0-Perl) AND MIT"
    )
    assert to_spdx("MIT, or GPL-2 and BSD-3-clause") == "MIT OR (GPL-2.0-only AND BSD-3-Clause)"


def test_licence_list_is_the_one_spdx_tools_parses_with() -> None:
    # ids are read from license-expression's index without building spdx-tools' Licensing;
    # they must be exactly the symbols that Licensing knows (licences and exceptions)
    from spdx_tools.common.spdx_licensing import spdx_licensing

    from skanse.inventory.licenses import _known

    licences, exceptions = _known()
    symbols = spdx_licensing.known_symbols
    assert exceptions == {key for key, s in symbols.items() if s.is_exception}
    assert licences == {key.lower(): key for key, s in symbols.items() if not s.is_exception}
