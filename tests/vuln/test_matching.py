"""Matching against the vulndb corpus (PyPI and RustSec OSV, Alpine secdb, Grype fixtures)
and small records written here: affected, fixed, withdrawn, not affected, VEX, ignores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from skanse.config import load_config
from skanse.inventory.model import Distro, Inventory, Subject
from skanse.model import CheckID, Severity, SuppressionSource
from skanse.results import apply_suppressions
from skanse.vuln.db import Database
from skanse.vuln.matcher import _merge, lookup_keys, match_inventory
from skanse.vuln.model import FixState, Match, Rating
from skanse.vuln.scan import scan_inventory
from skanse.vuln.vex import VexStatement, apply_vex, read_vex
from tests._counting import count_reads, peak_allocation
from tests.conftest import corpus_path
from tests.vuln.helpers import build, inventory, osv, package, write_json

ALPINE_311 = Distro("alpine", "3.11.6", "Alpine Linux", "Alpine Linux v3.11")
ALPINE_318 = Distro("alpine", "3.18.4")
DEBIAN_12 = Distro("debian", "12", version_codename="bookworm")


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory) -> Iterator[Database]:
    root = corpus_path("vulndb")
    tmp = tmp_path_factory.mktemp("corpus-db")
    db = build(
        tmp,
        root / "osv-pypi",
        root / "osv-rustsec",
        root / "alpine-secdb",
        root / "grype-fixtures",
    )
    yield db
    db.close()


def _ids(db: Database, *packages, distro=None) -> dict[str, set[str]]:
    report = match_inventory(db, inventory(*packages, distro=distro))
    found: dict[str, set[str]] = {}
    for m in report.matches:
        found.setdefault(m.package.name, set()).add(m.advisory_id)
    return found


@pytest.mark.corpus
def test_pypi_affected_version_matches_and_the_fixed_version_does_not(corpus_db) -> None:
    old = package("requests", "2.19.0", "python", "pkg:pypi/requests@2.19.0")
    report = match_inventory(corpus_db, inventory(old))
    by_id = {m.advisory_id: m for m in report.matches}
    assert "PYSEC-2018-28" in by_id  # < 2.20.0
    assert "PYSEC-2023-74" in by_id  # 2.3.0 <= v < 2.31.0
    assert "PYSEC-2014-13" not in by_id  # fixed in 2.3.0
    hit = by_id["PYSEC-2018-28"]
    assert hit.fixed_version == "2.20.0" and hit.fix_state is FixState.FIXED
    assert "CVE-2018-18074" in hit.aliases
    fixed = package("requests", "2.20.0", "python", "pkg:pypi/requests@2.20.0")
    assert "PYSEC-2018-28" not in _ids(corpus_db, fixed).get("requests", set())


@pytest.mark.corpus
def test_pypi_names_are_pep503_normalised(corpus_db) -> None:
    spelled = package("Requests", "2.19.0", "python", "pkg:pypi/Requests@2.19.0")
    assert "PYSEC-2018-28" in _ids(corpus_db, spelled)["Requests"]


@pytest.mark.corpus
def test_rustsec_semver_ranges_and_cvss_severity(corpus_db) -> None:
    vulnerable = package("smallvec", "1.6.0", "rust-crate", "pkg:cargo/smallvec@1.6.0")
    report = match_inventory(corpus_db, inventory(vulnerable))
    [hit] = [m for m in report.matches if m.advisory_id == "RUSTSEC-2021-0003"]
    assert hit.fixed_version == "1.6.1"
    assert hit.rating.severity is Severity.CRITICAL and hit.rating.score == 9.8
    assert hit.rating.vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    for version in ("1.6.1", "0.6.14", "0.6.2"):  # fixed, fixed on the 0.6 line, before
        pkg = package("smallvec", version, "rust-crate", f"pkg:cargo/smallvec@{version}")
        assert "RUSTSEC-2021-0003" not in _ids(corpus_db, pkg).get("smallvec", set()), version
    mid = package("smallvec", "0.6.10", "rust-crate", "pkg:cargo/smallvec@0.6.10")
    assert "RUSTSEC-2021-0003" in _ids(corpus_db, mid)["smallvec"]


@pytest.mark.corpus
def test_a_withdrawn_advisory_does_not_match(corpus_db) -> None:
    # PYSEC-2023-73 (redis, every version) was withdrawn on 2023-06-06
    redis = package("redis", "4.5.0", "python", "pkg:pypi/redis@4.5.0")
    report = match_inventory(corpus_db, inventory(redis))
    assert "PYSEC-2023-73" not in {m.advisory_id for m in report.matches}
    assert report.withdrawn >= 1
    [row] = corpus_db.conn.execute(
        "SELECT withdrawn FROM advisories WHERE name = 'PYSEC-2023-73'"
    ).fetchall()
    assert row[0] == "2023-06-06T10:37:00Z"  # kept in the database, never matched


@pytest.mark.corpus
def test_apk_packages_match_through_their_origin_and_release(corpus_db) -> None:
    libcrypto = package(
        "libcrypto1.1",
        "1.1.1d-r0",
        "apk",
        "pkg:apk/alpine/libcrypto1.1@1.1.1d-r0?arch=x86_64&distro=alpine-3.11.6&upstream=openssl",
        source="openssl",
    )
    found = _ids(corpus_db, libcrypto, distro=ALPINE_311)["libcrypto1.1"]
    assert {"CVE-2019-1547", "CVE-2019-1551"} <= found  # openssl fixed in 1.1.1d-r1 / -r3
    # the same version on 3.10 has its own secdb entries; a release with no data has none
    on_edge = package("libcrypto1.1", "1.1.1d-r0", "apk", source="openssl")
    assert _ids(corpus_db, on_edge, distro=Distro("alpine", "3.21.0")) == {}
    fixed = package("libcrypto1.1", "1.1.1d-r3", "apk", source="openssl")
    assert "CVE-2019-1551" not in _ids(corpus_db, fixed, distro=ALPINE_311).get(
        "libcrypto1.1", set()
    )


def test_an_os_package_of_an_unknown_release_is_not_checked_and_says_why() -> None:
    musl = package("musl", "1.2.3-r0", "apk", "pkg:apk/alpine/musl@1.2.3-r0")
    keys = lookup_keys(musl, None)
    assert isinstance(keys, str) and "release is unknown" in keys


def _nak_sources(tmp: Path, with_nak: bool) -> list[Path]:
    fixture = corpus_path("vulndb", "grype-fixtures", "apk-matcher-alpine318", "alpine")
    # Another source says bind on Alpine 3.18 is affected by CVE-2019-6470, which the Alpine
    # data of Grype's apk matcher fixture marks as not affected (secdb `0`, a NAK).
    record = osv(
        "ALPINE-TEST-6470",
        "Alpine:v3.18",
        "bind",
        [{"introduced": "0"}, {"fixed": "9.99-r0"}],
        aliases=["CVE-2019-6470"],
    )
    sources = [write_json(tmp / "osv" / "ALPINE-TEST-6470.json", record)]
    if with_nak:
        sources.append(fixture)
    return sources


@pytest.mark.corpus
def test_a_distro_not_affected_record_suppresses_the_match(tmp_path: Path) -> None:
    bind = package(
        "bind-libs", "9.18.19-r0", "apk", "pkg:apk/alpine/bind-libs@9.18.19-r0", source="bind"
    )
    with build(tmp_path / "without", *_nak_sources(tmp_path / "a", False)) as db:
        [live] = match_inventory(db, inventory(bind, distro=ALPINE_318)).matches
        assert live.suppression is None  # the control: without the NAK it is reported
    with build(tmp_path / "with", *_nak_sources(tmp_path / "b", True)) as db:
        [match] = match_inventory(db, inventory(bind, distro=ALPINE_318)).matches
    assert match.advisory_id == "ALPINE-TEST-6470"
    assert match.suppression is not None
    assert match.suppression.source is SuppressionSource.DISTRO
    assert "not affected" in match.suppression.reason or "NAK" in match.suppression.reason
    assert "CVE-2019-6470" in match.suppression.reason


@pytest.mark.corpus
def test_vunnel_rhel_not_affected_and_fixed_entries(corpus_db) -> None:
    rhel8 = Distro("rhel", "8.9")
    ghostscript = package("ghostscript", "9.25-5.el8", "rpm")
    firefox_old = package("firefox", "0:68.5.0-2.el8_1", "rpm")
    firefox_new = package("firefox", "0:68.6.1-1.el8_1", "rpm")
    found = _ids(corpus_db, ghostscript, firefox_old, firefox_new, distro=rhel8)
    assert "CVE-2020-99999" in found["firefox"]  # affected in one entry ...
    assert "ghostscript" not in found  # ... and `0` (not affected) in the other
    # the fixed version itself is not reported
    report = match_inventory(corpus_db, inventory(firefox_new, distro=rhel8))
    assert report.matches == ()


def _tracker(tmp: Path) -> Path:
    # The shape of security-tracker.debian.org/tracker/data/json (see importers/debian.py)
    data = {
        "openssl": {
            "CVE-2099-0001": {
                "description": "backported fix",
                "releases": {
                    "bookworm": {
                        "status": "resolved",
                        "fixed_version": "3.0.11-1~deb12u2",
                        "urgency": "medium",
                        "repositories": {"bookworm": "3.0.11-1~deb12u2"},
                    },
                    "sid": {"status": "resolved", "fixed_version": "3.1.4-1", "urgency": "medium"},
                },
            },
            "CVE-2099-0002": {
                "description": "minor issue the Debian security team will not fix",
                "releases": {
                    "bookworm": {
                        "status": "open",
                        "urgency": "low",
                        "nodsa": "Minor issue",
                        "nodsa_reason": "ignored",
                    }
                },
            },
            "CVE-2099-0003": {
                "description": "never affected Debian's build",
                "releases": {
                    "bookworm": {"status": "resolved", "fixed_version": "0", "urgency": "low"}
                },
            },
            "CVE-2099-0004": {
                "releases": {"bookworm": {"status": "undetermined", "urgency": "low"}}
            },
            "TEMP-0000000-000000": {"releases": []},
        }
    }
    return write_json(tmp / "tracker" / "debian.json", data)


def test_debian_tracker_backports_no_dsa_and_not_affected(tmp_path: Path) -> None:
    nak = osv(
        "DEBIAN-TEST-3",
        "Debian:12",
        "openssl",
        [{"introduced": "0"}],
        aliases=["CVE-2099-0003"],
    )
    sources = [_tracker(tmp_path), write_json(tmp_path / "osv" / "nak.json", nak)]
    libssl = "pkg:deb/debian/libssl3@{v}?arch=amd64&distro=debian-12&upstream=openssl"
    with build(tmp_path, *sources) as db:
        backported = package(
            "libssl3",
            "3.0.11-1~deb12u2",
            "deb",
            libssl.format(v="3.0.11-1~deb12u2"),
            source="openssl",
        )
        before = package(
            "libssl3",
            "3.0.11-1~deb12u1",
            "deb",
            libssl.format(v="3.0.11-1~deb12u1"),
            source="openssl",
        )
        report = match_inventory(db, inventory(backported, before, distro=DEBIAN_12))
    by = {(m.package.version, m.advisory_id): m for m in report.matches}
    # the Debian fix is a backport: 3.0.11-1~deb12u2 is fixed although upstream says 3.1.4
    assert ("3.0.11-1~deb12u2", "CVE-2099-0001") not in by
    assert by[("3.0.11-1~deb12u1", "CVE-2099-0001")].fixed_version == "3.0.11-1~deb12u2"
    assert by[("3.0.11-1~deb12u1", "CVE-2099-0001")].rating.severity is Severity.MEDIUM
    nodsa = by[("3.0.11-1~deb12u2", "CVE-2099-0002")]
    assert nodsa.fix_state is FixState.WONT_FIX and nodsa.fixed_version is None
    suppressed = by[("3.0.11-1~deb12u2", "DEBIAN-TEST-3")]
    assert suppressed.suppression is not None
    assert "not affected" in suppressed.suppression.reason
    assert not any(m.advisory_id == "CVE-2099-0004" for m in report.matches)  # undetermined


def _two_cve_dsa(tmp: Path, *, dsa_severity: str | None = None) -> list[Path]:
    """A DSA fixing CVE-1 and CVE-2 in foo; the tracker: CVE-1 never affected bookworm,
    CVE-2 is open and rated high."""
    tracker = {
        "foo": {
            "CVE-2024-1111": {
                "releases": {"bookworm": {"status": "resolved", "fixed_version": "0"}}
            },
            "CVE-2024-2222": {"releases": {"bookworm": {"status": "open", "urgency": "high"}}},
        }
    }
    dsa = osv(
        "DSA-9999-1",
        "Debian:12",
        "foo",
        [{"introduced": "0"}, {"fixed": "1.0-2"}],
        aliases=["CVE-2024-1111", "CVE-2024-2222"],
        severity=dsa_severity,
    )
    return [
        write_json(tmp / "debian.json", tracker),
        write_json(tmp / "osv" / "DSA-9999-1.json", dsa),
    ]


FOO = package("foo", "1.0-1", "deb", "pkg:deb/debian/foo@1.0-1?distro=debian-12")


def test_a_not_affected_record_about_one_cve_does_not_suppress_another(tmp_path: Path) -> None:
    # the DSA folds CVE-1 and CVE-2 together; CVE-1's not-affected record says nothing
    # about CVE-2, which stays reported
    with build(tmp_path, *_two_cve_dsa(tmp_path)) as db:
        [match] = match_inventory(db, inventory(FOO, distro=DEBIAN_12)).matches
    assert {"CVE-2024-1111", "CVE-2024-2222", "DSA-9999-1"} <= match.ids
    assert match.suppression is None
    assert match.rating.severity is Severity.HIGH


def test_a_vex_statement_about_one_cve_does_not_suppress_a_folded_other(tmp_path: Path) -> None:
    with build(tmp_path, *_two_cve_dsa(tmp_path)) as db:
        for named, suppressed in (
            (["CVE-2024-1111"], False),
            (["CVE-2024-1111", "CVE-2024-2222"], True),
            (["DSA-9999-1"], True),  # the DSA names both
        ):
            statements = [
                {
                    "vulnerability": {"name": name},
                    "products": [{"@id": "pkg:deb/debian/foo"}],
                    "status": "not_affected",
                    "justification": "vulnerable_code_not_present",
                }
                for name in named
            ]
            document = {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": "https://example.com/vex/2",
                "author": "a",
                "timestamp": "2026-01-01T00:00:00Z",
                "version": 1,
                "statements": statements,
            }
            vex = read_vex(write_json(tmp_path / "vex.json", document))
            _, _, result = scan_inventory(db, inventory(FOO, distro=DEBIAN_12), target="t", vex=vex)
            [finding] = result.findings
            assert bool(finding.declared_suppressions) is suppressed, named


def test_folding_in_another_source_never_lowers_the_severity(tmp_path: Path) -> None:
    # the DSA (preferred: it has the fixed version) rates it low; the tracker says high
    low = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
    with build(tmp_path, *_two_cve_dsa(tmp_path, dsa_severity=low)) as db:
        [match] = match_inventory(db, inventory(FOO, distro=DEBIAN_12)).matches
    assert match.advisory_id == "DSA-9999-1" and match.fixed_version == "1.0-2"
    assert match.rating.severity is Severity.HIGH


def test_chained_aliases_fold_in_linear_memory() -> None:
    # A-i alone, then Q-i naming A-i and BIG, newest first: every Q joins the chain to an
    # earlier group; copying the grown group each time took 2.8 GB for 16,000 advisories
    n = 3000
    pkg = package("victim", "1.0", "python", "pkg:pypi/victim@1.0")

    def match(advisory: str, aliases: tuple[str, ...]) -> Match:
        return Match(
            pkg,
            advisory,
            aliases,
            "",
            Rating(),
            FixState.NOT_FIXED,
            None,
            "pypi",
            "victim",
            "1.0",
            "osv",
        )

    found = [match(f"A-{i}", ()) for i in range(n)]
    found += [match(f"Q-{i}", (f"A-{i}", "BIG")) for i in reversed(range(n))]
    [merged], peak = peak_allocation(lambda: _merge(found, {}))
    assert len(merged.ids) == 2 * n + 1
    assert peak < 16 * 1024 * 1024, peak


def test_deb_packages_match_by_source_not_binary_name(tmp_path: Path) -> None:
    record = osv("DSA-TEST-1", "Debian:12", "libssl3", [{"introduced": "0"}])
    with build(tmp_path, write_json(tmp_path / "osv" / "a.json", record)) as db:
        pkg = package("libssl3", "3.0.11-1", "deb", source="openssl")
        assert match_inventory(db, inventory(pkg, distro=DEBIAN_12)).matches == ()


def test_overlapping_ids_are_reported_once(tmp_path: Path) -> None:
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"
    pysec = osv(
        "PYSEC-TEST-1",
        "PyPI",
        "demo",
        [{"introduced": "0"}, {"fixed": "2.0"}],
        aliases=["CVE-2099-1"],
    )
    ghsa = osv(
        "GHSA-test-0001",
        "PyPI",
        "demo",
        [{"introduced": "0"}, {"fixed": "2.0"}],
        aliases=["CVE-2099-1"],
        severity=vector,
    )
    sources = [
        write_json(tmp_path / "o" / "p.json", pysec),
        write_json(tmp_path / "o" / "g.json", ghsa),
    ]
    with build(tmp_path, *sources) as db:
        [match] = match_inventory(
            db, inventory(package("demo", "1.0", "python", "pkg:pypi/demo@1.0"))
        ).matches
    assert match.advisory_id == "GHSA-test-0001"  # the one with a severity
    assert match.rating.severity is Severity.HIGH
    assert match.ids == {"GHSA-test-0001", "PYSEC-TEST-1", "CVE-2099-1"}


def _openvex(tmp: Path, status: str, product: str, **extra) -> Path:
    statement = {
        "vulnerability": {"name": "CVE-2018-18074"},
        "products": [{"@id": product}],
        "status": status,
        **extra,
    }
    return write_json(
        tmp / f"{status}.openvex.json",
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/1",
            "author": "platform team",
            "timestamp": "2026-01-01T00:00:00Z",
            "version": 1,
            "statements": [statement],
        },
    )


@pytest.mark.corpus
def test_openvex_not_affected_suppresses_with_its_justification(corpus_db, tmp_path: Path) -> None:
    old = package("requests", "2.19.0", "python", "pkg:pypi/requests@2.19.0")
    vex = read_vex(
        _openvex(
            tmp_path,
            "not_affected",
            "pkg:pypi/requests",
            justification="vulnerable_code_not_in_execute_path",
            impact_statement="we never follow redirects",
        )
    )
    _, _, result = scan_inventory(corpus_db, inventory(old), target="t", vex=vex)
    final = apply_suppressions(result, [], lambda i: [CheckID(i)], dt.date(2026, 1, 1))
    by_id = {str(f.check_id): f for f in final.findings}
    suppression = by_id["PYSEC-2018-28"].suppression  # matched through its alias
    assert suppression is not None and suppression.source is SuppressionSource.VEX
    assert suppression.reason == (
        "not_affected: vulnerable_code_not_in_execute_path (we never follow redirects)"
    )
    assert by_id["PYSEC-2023-74"].suppression is None  # another CVE: still reported


@pytest.mark.corpus
def test_vex_affected_and_other_products_do_not_suppress(corpus_db, tmp_path: Path) -> None:
    old = package("requests", "2.19.0", "python", "pkg:pypi/requests@2.19.0")
    for path in (
        _openvex(tmp_path, "affected", "pkg:pypi/requests", action_statement="upgrade"),
        _openvex(
            tmp_path / "x", "not_affected", "pkg:pypi/httpx", justification="component_not_present"
        ),
        _openvex(
            tmp_path / "y",
            "not_affected",
            "pkg:pypi/requests@2.18.0",
            justification="component_not_present",
        ),
    ):
        _, _, result = scan_inventory(corpus_db, inventory(old), target="t", vex=read_vex(path))
        assert all(not f.declared_suppressions for f in result.findings), path


@pytest.mark.corpus
def test_cyclonedx_vex_not_affected_suppresses(corpus_db, tmp_path: Path) -> None:
    old = package("requests", "2.19.0", "python", "pkg:pypi/requests@2.19.0")
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [
            {
                "type": "library",
                "name": "requests",
                "bom-ref": "req",
                "purl": "pkg:pypi/requests@2.19.0",
            }
        ],
        "vulnerabilities": [
            {
                "id": "CVE-2023-32681",
                "analysis": {
                    "state": "not_affected",
                    "justification": "code_not_reachable",
                    "detail": "no proxies",
                },
                "affects": [{"ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#req"}],
            }
        ],
    }
    vex = read_vex(write_json(tmp_path / "vex.cdx.json", document))
    _, _, result = scan_inventory(corpus_db, inventory(old), target="t", vex=vex)
    [finding] = [f for f in result.findings if f.check_id == "PYSEC-2023-74"]
    [suppression] = finding.declared_suppressions
    assert suppression.reason == "not_affected: code_not_reachable (no proxies)"


@pytest.mark.corpus
def test_config_ignores_by_alias_and_purl_with_reason_and_expiry(corpus_db, tmp_path: Path) -> None:
    config = tmp_path / ".skanse.yaml"
    config.write_text(
        "suppressions:\n"
        "  - id: CVE-2018-18074\n"
        "    purl: pkg:pypi/requests\n"
        "    reason: no credentials are sent across redirects here\n"
        "    expires: 2027-01-31\n"
        "  - id: CVE-2023-32681\n"
        "    reason: was accepted until the upgrade\n"
        "    expires: 2025-01-01\n"
        "  - id: CVE-2018-18074\n"
        "    purl: pkg:pypi/urllib3\n"
        "    reason: another package\n"
    )
    loaded = load_config(config)
    old = package("requests", "2.19.0", "python", "pkg:pypi/requests@2.19.0")
    _, _, result = scan_inventory(corpus_db, inventory(old), target="t")
    final = apply_suppressions(result, loaded.suppressions, corpus_db.resolve, dt.date(2026, 6, 1))
    by_id = {str(f.check_id): f for f in final.findings}
    kept = by_id["PYSEC-2018-28"].suppression
    assert kept is not None and kept.reason == "no credentials are sent across redirects here"
    assert kept.expires == dt.date(2027, 1, 31)
    assert by_id["PYSEC-2023-74"].suppression is None  # expired: reported again ...
    assert any("expired on 2025-01-01" in w for w in final.warnings)  # ... and said so


@pytest.mark.corpus
def test_only_fixed_drops_matches_without_a_fix(tmp_path: Path) -> None:
    unfixed = osv("PYSEC-TEST-9", "PyPI", "demo", [{"introduced": "0"}])
    fixed = osv("PYSEC-TEST-8", "PyPI", "demo", [{"introduced": "0"}, {"fixed": "3"}])
    sources = [
        write_json(tmp_path / "o" / "a.json", unfixed),
        write_json(tmp_path / "o" / "b.json", fixed),
    ]
    pkg = package("demo", "1.0", "python", "pkg:pypi/demo@1.0")
    with build(tmp_path, *sources) as db:
        _, every, _ = scan_inventory(db, inventory(pkg), target="t")
        _, only, _ = scan_inventory(db, inventory(pkg), target="t", only_fixed=True)
    assert {m.advisory_id for m in every} == {"PYSEC-TEST-8", "PYSEC-TEST-9"}
    assert [(m.advisory_id, m.fix_state) for m in only] == [("PYSEC-TEST-8", FixState.FIXED)]


def test_osv_last_affected_limit_and_versions(tmp_path: Path) -> None:
    record = osv(
        "GO-TEST-1", "Go", "example.com/mod", [{"introduced": "1.2.0"}, {"last_affected": "1.4.0"}]
    )
    record["affected"][0]["ranges"][0]["type"] = "SEMVER"
    record["affected"].append(
        {"package": {"ecosystem": "Go", "name": "example.com/other"}, "versions": ["v0.3.1"]}
    )
    with build(tmp_path, write_json(tmp_path / "o" / "go.json", record)) as db:

        def hit(name: str, version: str) -> bool:
            pkg = package(
                name.rsplit("/", 1)[-1], version, "go-module", f"pkg:golang/{name}@{version}"
            )
            return bool(match_inventory(db, inventory(pkg)).matches)

        assert hit("example.com/mod", "v1.4.0")
        assert hit("example.com/mod", "v1.3.0-0.20230101000000-abcdefabcdef")  # pseudo-version
        assert not hit("example.com/mod", "v1.4.1")
        assert not hit("example.com/mod", "v1.1.9")
        assert hit("example.com/other", "v0.3.1")
        assert not hit("example.com/other", "v0.3.2")


def test_an_unparseable_version_is_reported_not_passed(tmp_path: Path) -> None:
    record = osv("PYSEC-TEST-7", "PyPI", "demo", [{"introduced": "0"}, {"fixed": "2.0"}])
    with build(tmp_path, write_json(tmp_path / "o" / "a.json", record)) as db:
        report = match_inventory(
            db,
            inventory(
                package("demo", "not a version!", "python", "pkg:pypi/demo@not%20a%20version%21")
            ),
        )
    assert report.matches == ()
    assert any("could not compare" in p for p in report.problems)


def _image_vex(tmp: Path, product: str) -> list:
    return read_vex(
        write_json(
            tmp / "image.openvex.json",
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": "https://example.com/vex/image",
                "author": "platform team",
                "timestamp": "2026-01-01T00:00:00Z",
                "version": 1,
                "statements": [
                    {
                        "vulnerability": {"name": "PYSEC-T-9"},
                        "products": [{"@id": product}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_present",
                    }
                ],
            },
        )
    )


@pytest.mark.parametrize(
    ("image_name", "source", "product", "suppressed"),
    [
        # the statement names another registry's debian: it says nothing about this one
        (
            "registry.example.com/library/debian:12",
            "registry",
            "pkg:oci/debian?repository_url=other.example.com/library/debian",
            False,
        ),
        (
            "registry.example.com/library/debian:12",
            "registry",
            "pkg:oci/debian?repository_url=registry.example.com/library/debian",
            True,
        ),
        (
            "docker.io/library/debian:12",
            "registry",
            "pkg:oci/debian?repository_url=index.docker.io/library/debian",
            True,
        ),
        # no repository in the statement: the name (and digest, when given) decide
        ("registry.example.com/library/debian:12", "registry", "pkg:oci/debian", True),
        # an image from a layout has no repository: a statement that names one does not apply
        (
            "oci:/srv/layout:12",
            "oci-layout",
            "pkg:oci/layout?repository_url=registry.example.com/library/layout",
            False,
        ),
    ],
)
def test_vex_image_identity_compares_the_repository(
    tmp_path: Path, image_name: str, source: str, product: str, suppressed: bool
) -> None:
    record = osv("PYSEC-T-9", "PyPI", "demo", [{"introduced": "0"}])
    with build(tmp_path, write_json(tmp_path / "osv" / "a.json", record)) as db:
        subject = Subject("image", image_name, source, manifest_digest="sha256:" + "b" * 64)
        scanned = Inventory(subject, (package("demo", "1.0", "python", "pkg:pypi/demo@1.0"),))
        _, _, result = scan_inventory(
            db, scanned, target=image_name, vex=_image_vex(tmp_path, product)
        )
    [finding] = result.findings
    assert bool(finding.declared_suppressions) is suppressed


def _npm_match(name: str, advisory_id: str = "CVE-2024-1") -> Match:
    pkg = package(name, "1.0", "npm", f"pkg:npm/{name}@1.0")
    return Match(pkg, advisory_id, (), "", Rating(), FixState.FIXED, "2", "npm", name, "1.0", "osv")


def _statement(i: int, product: str, status: str = "not_affected", **extra) -> VexStatement:
    return VexStatement(
        vulnerabilities=frozenset({"CVE-2024-1"}),
        products=(product,),
        subcomponents=extra.get("subcomponents", ()),
        status=status,
        justification="",
        statement="",
        origin=f"vex.json: statements[{i}]",
        suppresses=status in ("not_affected", "fixed"),
    )


def test_vex_statements_are_looked_up_per_package_not_tried_per_match(monkeypatch) -> None:
    # 300 copies of a package matched by one CVE, 300 statements about that CVE for other
    # packages and one for p7: each match had tried (and parsed) every statement naming
    # the CVE, matches x statements; now each statement's products are read once
    n = 300
    matches = [_npm_match(f"p{i}") for i in range(n)]
    statements = [_statement(i, f"pkg:npm/q{i}@1.0") for i in range(n)]
    statements.append(_statement(n, "pkg:npm/p7"))
    reads = count_reads(monkeypatch, VexStatement, "products")
    suppressions = apply_vex(matches, statements)
    assert reads.count <= len(statements)  # was 90,300: each match x each statement
    assert [i for i, s in enumerate(suppressions) if s is not None] == [7]
    assert suppressions[7] is not None and suppressions[7].origin == "vex.json: statements[300]"


IMAGE = "pkg:oci/app@sha256:" + "c" * 64


@pytest.mark.parametrize(
    ("statements", "suppressed"),
    [
        # the last word about the id wins, whether it names the image or the package
        ([_statement(0, "pkg:oci/app"), _statement(1, "pkg:npm/lib", "affected")], False),
        ([_statement(0, "pkg:npm/lib", "affected"), _statement(1, "pkg:oci/app")], True),
        ([_statement(0, "pkg:oci/app", "under_investigation"), _statement(1, "pkg:npm/lib")], True),
        # an image statement with subcomponents covers only those packages
        ([_statement(0, "pkg:oci/app", subcomponents=("pkg:npm/other",))], False),
        ([_statement(0, "pkg:oci/app", subcomponents=("pkg:npm/lib@1.0",))], True),
        ([_statement(0, "pkg:oci/app", subcomponents=("pkg:npm/lib@2.0",))], False),
        # another image, or another version of the package, says nothing about this one
        ([_statement(0, "pkg:oci/other")], False),
        ([_statement(0, "pkg:npm/lib@0.9")], False),
        ([_statement(0, "pkg:npm/lib@1.0")], True),
    ],
)
def test_vex_last_word_and_product_scope(statements: list[VexStatement], suppressed: bool) -> None:
    [suppression] = apply_vex([_npm_match("lib")], statements, (IMAGE,))
    assert (suppression is not None) is suppressed


def _cdx_vex(tmp_path: Path, affects: dict[str, object], state: str = "not_affected") -> Path:
    analysis = {"state": state, "justification": "code_not_reachable"}
    vulnerability = {"id": "CVE-2024-1", "analysis": analysis, "affects": [affects]}
    document = {"bomFormat": "CycloneDX", "specVersion": "1.6", "vulnerabilities": [vulnerability]}
    return write_json(tmp_path / "vex.cdx.json", document)


@pytest.mark.parametrize(
    ("versions", "suppressed"),
    [
        # another version than the installed 1.0: it had suppressed every version
        ([{"version": "9.9.9", "status": "unaffected"}], False),
        ([{"range": "vers:npm/>=2.0.0", "status": "unaffected"}], False),
        ([{"version": "1.0", "status": "unaffected"}], True),
        ([{"version": "1.0.0", "status": "unaffected"}], True),  # the same SemVer version
        ([{"range": "vers:npm/>=0.5.0|<2.0.0", "status": "unaffected"}], True),
        ([{"range": "vers:semver/<2.0.0", "status": "unaffected"}], True),
        # the installed version named, but not as unaffected (CycloneDX's default: affected)
        ([{"version": "1.0"}], False),
        ([{"version": "1.0", "status": "unknown"}], False),
        (
            [
                {"range": "vers:npm/*", "status": "unaffected"},
                {"version": "1.0", "status": "affected"},
            ],
            False,
        ),
        # what skanse cannot evaluate is not "every version"
        ([{"range": "vers:generic/>=0.5.0|<2.0.0", "status": "unaffected"}], False),
        ([{"range": "vers:pypi/>=0.5", "status": "unaffected"}], False),
        ([{"range": "vers:npm/<2.0.0|>=0.5.0", "status": "unaffected"}], False),
        ([{"version": "1.0", "range": "vers:npm/*", "status": "unaffected"}], False),
        ({"range": "vers:npm/*", "state": "unaffected"}, False),  # not a list
        ([], False),
    ],
)
def test_cyclonedx_vex_applies_only_to_the_versions_it_lists(
    tmp_path: Path, versions: object, suppressed: bool
) -> None:
    vex = read_vex(_cdx_vex(tmp_path, {"ref": "pkg:npm/lib", "versions": versions}))
    [suppression] = apply_vex([_npm_match("lib")], vex)
    assert (suppression is not None) is suppressed


def test_cyclonedx_vex_versions_keep_the_last_word_rule(tmp_path: Path) -> None:
    not_affected = _statement(0, "pkg:npm/lib")
    # a later statement that names 1.0 affected takes the suppression back ...
    [affected] = read_vex(
        _cdx_vex(
            tmp_path,
            {"ref": "pkg:npm/lib", "versions": [{"range": "vers:npm/>=0.5.0|<2.0.0"}]},
            state="exploitable",
        )
    )
    assert apply_vex([_npm_match("lib")], [not_affected, affected]) == [None]
    # ... one about other versions only says nothing about 1.0
    [other] = read_vex(
        _cdx_vex(
            tmp_path,
            {"ref": "pkg:npm/lib", "versions": [{"version": "2.0", "status": "affected"}]},
            state="exploitable",
        )
    )
    [kept] = apply_vex([_npm_match("lib")], [not_affected, other])
    assert kept is not None and kept.origin == "vex.json: statements[0]"
