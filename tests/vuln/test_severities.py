"""Severities users can gate on: NVD CVSS, GHSA, EPSS and KEV from the files users download.

The samples in tests/vuln/data/scores are in the published formats (see SOURCES.md there). A
Debian match whose tracker entry has no urgency takes NVD's severity; a publisher's own rating
(GHSA, a Debian urgency) comes first; a KEV-listed match is CRITICAL for --fail-on.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from skanse.errors import DatabaseError
from skanse.inventory.model import Distro
from skanse.model import Severity
from skanse.vuln.db import Database, Source, build_database
from skanse.vuln.importers import CveRating, EpssScore, KevEntry, read_source
from skanse.vuln.matcher import match_inventory
from skanse.vuln.model import Rejected
from tests._counting import peak_allocation
from tests.vuln.helpers import inventory, package, write_json

SCORES = Path(__file__).parent / "data" / "scores"
DEBIAN_12 = Distro("debian", "12", version_codename="bookworm")


def _tracker(tmp: Path) -> Path:
    # security-tracker.debian.org/tracker/data/json: glibc and curl entries of bookworm whose
    # urgency is "not yet assigned" (no severity from Debian), and one Debian rated low
    data = {
        "glibc": {
            "CVE-2023-4911": {
                "description": "buffer overflow in ld.so",
                "releases": {
                    "bookworm": {
                        "status": "resolved",
                        "fixed_version": "2.36-9+deb12u3",
                        "urgency": "not yet assigned",
                        "repositories": {"bookworm": "2.36-9+deb12u3"},
                    }
                },
            }
        },
        "curl": {
            "CVE-2023-38545": {
                "releases": {
                    "bookworm": {
                        "status": "resolved",
                        "fixed_version": "7.88.1-10+deb12u4",
                        "urgency": "not yet assigned",
                    }
                },
            }
        },
        "expat": {
            "CVE-2024-45490": {
                "releases": {
                    "bookworm": {
                        "status": "resolved",
                        "fixed_version": "2.5.0-1+deb12u1",
                        "urgency": "low",
                    }
                },
            }
        },
    }
    return write_json(tmp / "tracker" / "debian.json", data)


@pytest.fixture
def scored_db(tmp_path: Path) -> Path:
    dest = tmp_path / "vuln.db"
    build_database(
        dest,
        [
            Source(_tracker(tmp_path)),
            Source(SCORES / "ghsa", "ghsa"),
            Source(SCORES / "nvd", "nvd"),
            Source(SCORES / "epss_scores-2026-12-01.csv", "epss"),
            Source(SCORES / "known_exploited_vulnerabilities.json", "kev"),
        ],
    )
    return dest


def test_the_published_formats_import() -> None:
    nvd = list(read_source(SCORES / "nvd"))
    ratings = {i.cve: i.rating for i in nvd if isinstance(i, CveRating)}
    # NVD's own Primary v3.1 metric; the CNA's v4.0 one is kept only when NVD has none newer
    assert ratings["CVE-2023-4911"].score == 7.8
    assert ratings["CVE-2023-4911"].severity is Severity.HIGH
    assert ratings["CVE-2023-38545"].severity is Severity.CRITICAL
    assert ratings["CVE-2024-45490"].method == "CVSSv4"
    assert ratings["CVE-2024-45490"].score == 8.7
    assert "CVE-2023-99999" not in ratings  # a rejected CVE record
    epss = [
        i for i in read_source(SCORES / "epss_scores-2026-12-01.csv") if isinstance(i, EpssScore)
    ]
    assert {e.cve: (e.score, e.percentile) for e in epss}["CVE-2023-4911"] == (0.75012, 0.98847)
    kev = list(read_source(SCORES / "known_exploited_vulnerabilities.json"))
    assert kev == [KevEntry("CVE-2023-4911", "2023-11-21", "Unknown")]


def test_epss_gzipped_as_published(tmp_path: Path) -> None:
    packed = tmp_path / "epss_scores-2026-12-01.csv.gz"
    packed.write_bytes(gzip.compress((SCORES / "epss_scores-2026-12-01.csv").read_bytes()))
    assert sum(isinstance(i, EpssScore) for i in read_source(packed)) == 3
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(b"cve,epss,percentile\n" + b"CVE-2023-1,0.5,x\n" * 10))
    items = list(read_source(broken))
    assert items and all(isinstance(i, Rejected) for i in items)


def test_a_gzipped_epss_bomb_is_read_line_by_line(tmp_path: Path) -> None:
    # 16 KB of gzip that expands to 16 Mi blank lines: it had been expanded whole and split
    # into a list of every line (~160 MB here, 5 GB from 522 KB); rows are now read as they
    # come and the row cap stops the file
    bomb = tmp_path / "epss_scores-2026-12-01.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as handle:
        handle.write(b"cve,epss,percentile\n")
        for _ in range(16):
            handle.write(b"\n" * (1 << 20))
    items, peak = peak_allocation(lambda: list(read_source(bomb)))
    assert items == [Rejected(str(bomb), "more than 2000000 rows")]
    assert peak < 16 * 1024 * 1024


def test_a_gzipped_nvd_feed_is_read_as_json(tmp_path: Path) -> None:
    # the format was chosen from the name ending in `.gz`: a `.json.gz` went to the YAML
    # reader, which refuses JSON that repeats a key ("not valid YAML: duplicate key")
    text = (SCORES / "nvd" / "nvdcve-2.0-sample.json").read_text()
    assert text.count('"timestamp"') == 1
    packed = tmp_path / "nvdcve-2.0-sample.json.gz"
    repeated = text.replace('"format"', '"timestamp": "", "format"')
    packed.write_bytes(gzip.compress(repeated.encode()))
    items = list(read_source(packed, "nvd"))
    assert [i.cve for i in items if isinstance(i, CveRating)] == [
        "CVE-2023-4911",
        "CVE-2023-38545",
        "CVE-2024-45490",
    ]
    assert not [i for i in items if isinstance(i, Rejected)]
    # and a directory of gzipped pages is read, not passed over
    assert sum(isinstance(i, CveRating) for i in read_source(tmp_path, "nvd")) == 3


def _read_bomb(bomb: Path) -> tuple[list[object], int]:
    """Write 8 MiB of one byte in a string of an NVD document as ~8 KB of gzip at `bomb`;
    what read_source makes of it, and the peak memory it took."""
    with gzip.open(bomb, "wb", compresslevel=9) as handle:
        handle.write(b'{"format": "NVD_CVE", "vulnerabilities": [], "x": "')
        for _ in range(8):
            handle.write(b"a" * (1 << 20))
        handle.write(b'"}')
    return peak_allocation(lambda: list[object](read_source(bomb, "nvd")))


def test_a_gzipped_json_bomb_is_expanded_only_up_to_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 MiB of JSON in ~8 KB of gzip against a 1 MiB cap: the file had been expanded whole
    # (up to 1 GiB: 256 KB of gzip cost 1 GB of memory); it is rejected by name at the cap
    from skanse.vuln import importers

    monkeypatch.setattr(importers, "MAX_EXPANDED_BYTES", 1024 * 1024, raising=False)
    bomb = tmp_path / "nvdcve-2.0-2024.json.gz"
    items, peak = _read_bomb(bomb)
    limit = "1,048,576 byte limit of a compressed file"
    assert items == [Rejected(str(bomb), f"expands to over the {limit}")]
    assert peak < 6 * 1024 * 1024  # the cap, a chunk being read and gzip's buffers


def _yearly_feed(path: Path, expanded: int) -> int:
    """A gzipped NVD 2.0 feed of pretty-printed CVEs (as NVD writes its yearly feeds) of a
    little over `expanded` bytes, its descriptions drawn from a few thousand made-up words so
    that gzip packs it about as tightly as the real feeds (5-20x); the number of CVEs."""
    import random

    rng = random.Random(7)  # noqa: S311 (reproducible test data, not secrecy)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(4000)]
    texts = [" ".join(rng.choices(words, k=60)) for _ in range(2000)]
    record = json.dumps(
        {
            "cve": {
                "id": "CVE-2024-@",
                "published": "2024-01-01T00:00:00.000",
                "descriptions": [{"lang": "en", "value": "#"}],
                "metrics": {
                    "cvssMetricV31": [
                        {
                            "source": "nvd@nist.gov",
                            "type": "Primary",
                            "cvssData": {
                                "version": "3.1",
                                "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                                "baseScore": 9.8,
                                "baseSeverity": "CRITICAL",
                            },
                        }
                    ]
                },
            }
        },
        indent=2,
    )
    count = expanded // (len(record) + 400) + 1
    head = json.dumps(
        {"resultsPerPage": count, "startIndex": 0, "totalResults": count, "format": "NVD_CVE"}
    )
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(head[:-1].encode() + b', "version": "2.0", "vulnerabilities": [\n')
        for number in range(count):
            text = record.replace("@", f"{number:07d}").replace("#", texts[number % len(texts)])
            handle.write((",\n" if number else "").encode() + text.encode())
        handle.write(b"]}")
    return count


def test_a_gzipped_nvd_yearly_feed_past_128_mib_is_read(tmp_path: Path) -> None:
    # NVD's yearly 2.0 feeds expand to 200-400 MiB: every one was rejected by name at a flat
    # 128 MiB cap ("expands to over the 134,217,728 byte limit of a compressed file")
    feed = tmp_path / "nvdcve-2.0-2024.json.gz"
    count = _yearly_feed(feed, 136 * 1024 * 1024)
    with gzip.open(feed, "rb") as handle:
        expanded = sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 22), b""))
    assert expanded > 128 * 1024 * 1024
    assert expanded / feed.stat().st_size < 20
    ratings = 0
    for item in read_source(feed, "nvd"):
        assert not isinstance(item, Rejected), item
        ratings += isinstance(item, CveRating)
    assert ratings == count


def test_a_gzipped_bomb_past_the_grace_stops_at_the_ratio_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # past the grace (lowered here to 1 MiB) the expansion is held to 100x the gzip read: 8 MiB
    # of one byte repeated (~1,000x) stops there, never expanded whole; a feed at a real
    # feed's ratio expands on past the grace and is read
    from skanse.vuln import importers

    monkeypatch.setattr(importers, "EXPANSION_GRACE", 1024 * 1024)
    bomb = tmp_path / "nvdcve-2.0-2024.json.gz"
    items, peak = _read_bomb(bomb)
    assert len(items) == 1 and isinstance(items[0], Rejected)
    assert "expands more than 100x" in items[0].reason and "decompression bomb" in items[0].reason
    assert peak < 6 * 1024 * 1024
    feed = tmp_path / "feed" / "nvdcve-2.0-2023.json.gz"
    feed.parent.mkdir()
    count = _yearly_feed(feed, 3 * 1024 * 1024)
    assert sum(isinstance(i, CveRating) for i in read_source(feed, "nvd")) == count


def test_an_epss_file_of_something_else_is_rejected_not_listed_row_by_row(tmp_path: Path) -> None:
    # each malformed row was kept as a rejection: two million of them from a small file
    junk = tmp_path / "epss.csv.gz"
    junk.write_bytes(gzip.compress(b"cve,epss,percentile\n" + b"CVE-2023-1,x,y\n" * 50_000))
    items = list(read_source(junk))
    assert len(items) == 1002 and all(isinstance(i, Rejected) for i in items)
    assert items[-1] == Rejected(str(junk), "more than 1000 malformed rows; the rest is not read")
    # and a line no EPSS row comes near is the end of the file, not a gigabyte of text
    long_line = tmp_path / "long.csv"
    rows = b"".join(b"CVE-2023-%d,0.1,0.2\n" % (1000 + i) for i in range(5))
    long_line.write_bytes(b"cve,epss,percentile\n" + rows + b"9" * 100_000)
    items = list(read_source(long_line))
    assert items[:5] == [EpssScore(f"CVE-2023-{1000 + i}", 0.1, 0.2) for i in range(5)]
    assert items[5:] == [
        Rejected(str(long_line), "a line longer than 4,096 bytes: not a CSV of scores")
    ]


def test_malformed_score_files_are_rejected_by_name(tmp_path: Path) -> None:
    bad_csv = tmp_path / "epss.csv"
    bad_csv.write_text("cve,epss,percentile\nCVE-2023-1,2.5,0.1\nnot-a-cve,0.1,0.1\n")
    reasons = [i.reason for i in read_source(bad_csv, "epss") if isinstance(i, Rejected)]
    assert len(reasons) == 2
    kev = write_json(tmp_path / "kev.json", {"catalogVersion": "x", "vulnerabilities": [{}]})
    assert isinstance(next(iter(read_source(kev))), Rejected)
    nvd = write_json(tmp_path / "n.json", {"format": "NVD_CVE", "vulnerabilities": [{"cve": 1}]})
    assert isinstance(next(iter(read_source(nvd))), Rejected)
    with pytest.raises(Exception, match="not nvd data"):
        build_database(tmp_path / "v.db", [Source(kev, "nvd")])


def _nvd_pages(directory: Path, pages: list[tuple[int, int, int]]) -> Path:
    """NVD API 2.0 responses cut from the sample: (startIndex, CVEs held, totalResults)."""
    sample = json.loads((SCORES / "nvd" / "nvdcve-2.0-sample.json").read_text())
    for start, count, total in pages:
        page = dict(sample, startIndex=start, resultsPerPage=count, totalResults=total)
        page["vulnerabilities"] = sample["vulnerabilities"][:count]
        write_json(directory / f"page-{start:06d}.json", page)
    return directory


@pytest.mark.parametrize(
    ("pages", "missing"),
    [
        ([(0, 2, 6), (2, 2, 6), (4, 2, 6)], None),  # every page
        ([(0, 4, 4)], None),  # the sample: all results in one response
        ([(0, 4, 4), (0, 2, 2)], None),  # two yearly feeds, each whole
        ([(0, 2, 6), (4, 2, 6)], "results 2 to 3 of 6"),  # the middle page is missing
        ([(0, 2, 6), (2, 1, 6), (4, 2, 6)], "results 3 to 3 of 6"),  # one cut short
        ([(2, 2, 6), (4, 2, 6)], "results 0 to 1 of 6"),
        ([(0, 2, 6), (2, 2, 6)], "results 4 to 5 of 6"),  # the last one
        ([(0, 2, 2000)], "results 2 to 1,999 of 2,000"),  # one page of many
    ],
)
def test_nvd_pages_that_leave_results_out_make_the_source_incomplete(
    tmp_path: Path, pages: list[tuple[int, int, int]], missing: str | None
) -> None:
    directory = _nvd_pages(tmp_path / "nvd", pages)
    rejected = [i for i in read_source(directory, "nvd") if isinstance(i, Rejected)]
    if missing is None:
        assert rejected == []
    else:
        reason = f"NVD pages leave {missing} out (by their startIndex and totalResults)"
        assert rejected == [
            Rejected(str(directory), f"{reason}: a page is missing or cut short", partial=True)
        ]


def test_a_kev_catalogue_short_of_its_count_makes_the_source_incomplete(tmp_path: Path) -> None:
    catalogue = json.loads((SCORES / "known_exploited_vulnerabilities.json").read_text())
    assert catalogue["count"] == len(catalogue["vulnerabilities"]) == 1
    whole = list(read_source(SCORES / "known_exploited_vulnerabilities.json", "kev"))
    assert whole == [KevEntry("CVE-2023-4911", "2023-11-21", "Unknown")]
    catalogue["count"] = 1480  # a download cut short, re-closed as JSON
    short = write_json(tmp_path / "known_exploited_vulnerabilities.json", catalogue)
    reason = "count says 1,480 entries, the catalogue lists 1: cut short or altered"
    assert list(read_source(short, "kev")) == [
        Rejected(str(short), reason, partial=True),
        KevEntry("CVE-2023-4911", "2023-11-21", "Unknown"),
    ]


@pytest.mark.parametrize("allow_partial", [False, True])
def test_an_incomplete_score_source_fails_the_build_unless_allowed(
    tmp_path: Path, allow_partial: bool
) -> None:
    dest = tmp_path / "vuln.db"
    build_database(dest, [Source(_tracker(tmp_path))])
    before = dest.read_bytes()
    pages = _nvd_pages(tmp_path / "nvd", [(0, 2, 6), (4, 2, 6)])
    sources = [Source(_tracker(tmp_path)), Source(pages, "nvd")]
    if allow_partial:
        result = build_database(dest, sources, allow_partial=True)
        assert result.sources[1].enrichments > 0  # what was read is kept
    else:
        with pytest.raises(DatabaseError, match=r"nvd: incomplete; rejected .*results 2 to 3"):
            build_database(dest, sources)
        assert dest.read_bytes() == before


def test_debian_matches_without_urgency_take_nvd_severity_epss_and_kev(scored_db: Path) -> None:
    libc6 = package(
        "libc6",
        "2.36-9+deb12u1",
        "deb",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12&upstream=glibc",
        source="glibc",
    )
    libcurl = package("libcurl4", "7.88.1-10+deb12u1", "deb", source="curl")
    libexpat = package("libexpat1", "2.5.0-1", "deb", source="expat")
    with Database.open(scored_db) as db:
        report = match_inventory(db, inventory(libc6, libcurl, libexpat, distro=DEBIAN_12))
    by = {m.advisory_id: m for m in report.matches}
    glibc = by["CVE-2023-4911"]
    assert (glibc.rating.severity, glibc.severity_source) == (Severity.HIGH, "nvd")
    assert (
        glibc.cvss is not None
        and glibc.cvss.vector == "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"
    )
    assert glibc.epss == (0.75012, 0.98847)
    assert glibc.kev is True and glibc.gate_severity is Severity.CRITICAL
    curl = by["CVE-2023-38545"]
    assert (curl.rating.severity, curl.severity_source, curl.kev) == (
        Severity.CRITICAL,
        "nvd",
        False,
    )
    # Debian rated it low: the distribution comes first, NVD's 9.8 is still shown as CVSS
    expat = by["CVE-2024-45490"]
    assert (expat.rating.severity, expat.severity_source) == (Severity.LOW, "debian")
    assert expat.cvss is not None and expat.cvss.score == 8.7


def test_ghsa_rating_comes_before_nvd(scored_db: Path) -> None:
    demo = package("demo-socks", "8.3.0", "python", "pkg:pypi/demo-socks@8.3.0")
    with Database.open(scored_db) as db:
        [match] = match_inventory(db, inventory(demo)).matches
    assert (match.rating.severity, match.severity_source) == (Severity.HIGH, "ghsa")
    assert match.cvss is not None and match.cvss.score == 9.8  # NVD's vector, shown as CVSS
    assert match.epss == (0.23921, 0.95837) and match.kev is False


def _debian_rootfs(tmp: Path) -> Path:
    root = tmp / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9+deb12u1\n"
        "Architecture: amd64\n"
    )
    return root


def test_cli_json_contract_and_kev_fails_critical_gate(
    cli, scored_db: Path, tmp_path: Path
) -> None:
    root = _debian_rootfs(tmp_path)
    result = cli(
        "vuln", f"dir:{root}", "--db", str(scored_db), "-f", "json", "--fail-on", "critical"
    )
    assert result.code == 1, result.stderr  # HIGH by NVD, but known exploited
    [match] = json.loads(result.stdout)["matches"]
    assert match["severity"] == "HIGH"
    assert match["severity_source"] == "nvd"
    assert match["cvss"] == {
        "score": 7.8,
        "vector": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
        "version": "3.1",
    }
    assert match["epss"] == {"score": 0.75012, "percentile": 0.98847}
    assert match["kev"] is True
    text = cli("vuln", f"dir:{root}", "--db", str(scored_db), "--fail-on", "critical")
    assert text.code == 1 and "HIGH KEV" in text.stdout


def test_cli_db_build_with_kinds(cli, tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    result = cli(
        "db",
        "build",
        "--db",
        db,
        str(_tracker(tmp_path)),
        f"nvd:{SCORES / 'nvd'}",
        f"epss:{SCORES / 'epss_scores-2026-12-01.csv'}",
        f"kev:{SCORES / 'known_exploited_vulnerabilities.json'}",
        f"ghsa:{SCORES / 'ghsa'}",
    )
    assert result.code == 0, result.stderr
    assert "3 nvd" in result.stdout and "3 epss" in result.stdout and "1 kev" in result.stdout


def test_no_data_for_the_distribution_warns_and_fails_strict(cli, tmp_path: Path) -> None:
    # a database with PyPI advisories only says nothing about Debian: not "0 vulnerabilities"
    db = tmp_path / "pypi-only.db"
    build_database(db, [Source(SCORES / "ghsa", "ghsa")])
    root = _debian_rootfs(tmp_path)
    plain = cli("vuln", f"dir:{root}", "--db", str(db))
    assert plain.code == 0
    assert "no advisory data for debian:12" in plain.stdout + plain.stderr
    strict = cli("vuln", f"dir:{root}", "--db", str(db), "--strict")
    assert strict.code == 2


def test_an_old_database_warns_and_fails_strict(cli, scored_db: Path, tmp_path: Path) -> None:
    import sqlite3

    root = _debian_rootfs(tmp_path)
    fresh = cli("vuln", f"dir:{root}", "--db", str(scored_db), "--strict")
    assert fresh.code == 1, fresh.stderr  # the KEV match; the database is new
    conn = sqlite3.connect(scored_db)
    conn.execute("UPDATE meta SET value = '2026-01-01T00:00:00+00:00' WHERE key = 'built'")
    conn.commit()
    conn.close()
    old = cli("vuln", f"dir:{root}", "--db", str(scored_db), "-f", "json")
    problems = json.loads(old.stdout)["problems"]
    assert any("--max-db-age" in p["message"] for p in problems)
    assert cli("vuln", f"dir:{root}", "--db", str(scored_db), "--strict").code == 2
    unlimited = cli("vuln", f"dir:{root}", "--db", str(scored_db), "--strict", "--max-db-age", "0")
    assert unlimited.code == 1  # the KEV match, no longer an input error
    with pytest.raises(SystemExit) as usage:
        cli("vuln", f"dir:{root}", "--db", str(scored_db), "--max-db-age", "soon")
    assert usage.value.code == 2


def test_cyclonedx_vulnerabilities_carry_kev_epss_and_the_rating_source(
    cli, scored_db: Path, tmp_path: Path
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    root = _debian_rootfs(tmp_path)
    run = cli("vuln", f"dir:{root}", "--db", str(scored_db), "-f", "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(run.stdout) is None
    [vulnerability] = json.loads(run.stdout)["vulnerabilities"]
    properties = {p["name"]: p["value"] for p in vulnerability["properties"]}
    assert properties == {
        "skanse:kev": "true",
        "skanse:epss:score": "0.75012",
        "skanse:epss:percentile": "0.98847",
    }
    [rating] = vulnerability["ratings"]
    assert rating["source"]["name"] == "nvd" and rating["score"] == 7.8
