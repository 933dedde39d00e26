"""Benchmark: building the advisory database and matching an SBOM against it.

    python -m bench.vuln                    # corpus build + 200,000 synthetic advisories
    python -m bench.vuln --advisories 50000 --runs 1

Three measurements, each in a fresh `skanse` process (wall time, peak RSS from the child's
own rusage):
1. `skanse db build` over the real corpus data in ../shared/corpora/vulndb (PyPI and RustSec
   OSV, the Alpine secdb sample, Grype's fixtures): ~7,900 records;
2. `skanse db build` over N synthetic OSV records (default 200,000) in one `all.zip`, the
   way osv.dev publishes them: PyPI, npm, Go, Maven, crates.io, Debian 12 and Alpine 3.19
   in proportions like OSV's, 1-4 ranges, CVE/GHSA aliases, CVSS v3 vectors on 60 %,
   `versions` lists on PyPI records, ~400 characters of details;
3. `skanse vuln SBOM` for a 500-package CycloneDX SBOM (written by skanse's own writer)
   whose packages are drawn from the same names, so that many of them match, against that
   database, with `-f json` to a file. The match phase alone is also timed in-process.

Grype cannot be installed here (no binary on PyPI, npm or Debian); published figures for it
are quoted in docs/vuln.md, not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "vulndb"
SKANSE = [sys.executable, "-m", "skanse"]

# (OSV ecosystem, purl type, share of records); roughly OSV's mix of 2026
ECOSYSTEMS = [
    ("PyPI", "pypi", 0.30),
    ("npm", "npm", 0.25),
    ("Go", "golang", 0.12),
    ("Maven", "maven", 0.12),
    ("crates.io", "cargo", 0.06),
    ("Debian:12", "deb", 0.10),
    ("Alpine:v3.19", "apk", 0.05),
]
NAMES_PER_ECOSYSTEM = 6_000
VECTOR = "CVSS:3.1/AV:N/AC:{ac}/PR:{pr}/UI:N/S:U/C:{c}/I:{i}/A:{a}"


def measure(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: vulnerabilities found
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise RuntimeError(f"{argv} failed ({status}): {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def name(ecosystem: str, index: int) -> str:
    if ecosystem == "Maven":
        return f"org.example{index % 97}:artifact-{index}"
    if ecosystem == "Go":
        return f"github.com/example{index % 211}/module-{index}"
    if ecosystem == "npm" and index % 5 == 0:
        return f"@scope{index % 37}/package-{index}"
    return f"package-{index}"


def version(rng: random.Random, debian: bool = False, alpine: bool = False) -> str:
    text = f"{rng.randint(0, 12)}.{rng.randint(0, 30)}.{rng.randint(0, 40)}"
    if debian:
        return f"{text}-{rng.randint(1, 5)}+deb12u{rng.randint(1, 4)}"
    if alpine:
        return f"{text}-r{rng.randint(0, 6)}"
    return text


def record(rng: random.Random, index: int) -> dict:
    weights = [share for _, _, share in ECOSYSTEMS]
    ecosystem, _, _ = rng.choices(ECOSYSTEMS, weights)[0]
    debian, alpine = ecosystem.startswith("Debian"), ecosystem.startswith("Alpine")
    package = name(ecosystem, rng.randrange(NAMES_PER_ECOSYSTEM))
    bounds = sorted(
        {version(rng, debian, alpine) for _ in range(rng.randint(1, 4) * 2)},
        key=lambda v: [
            int(x) if x.isdigit() else 0
            for x in v.replace("-", ".").replace("+deb12u", ".").replace("r", "").split(".")
        ],
    )
    events = [{"introduced": "0"}]
    for i, bound in enumerate(bounds):
        events.append({"fixed": bound} if i % 2 == 0 else {"introduced": bound})
    if "introduced" in events[-1] and rng.random() < 0.5:
        events.append({"last_affected": bounds[-1] + ".9"})
    prefix = {"PyPI": "PYSEC", "Go": "GO", "crates.io": "RUSTSEC", "Debian:12": "DEBIAN-CVE"}
    advisory_id = f"{prefix.get(ecosystem, 'GHSA')}-SYN-{index:07d}"
    cve = f"CVE-20{rng.randint(10, 26)}-{index:07d}"
    entry: dict = {
        "package": {"ecosystem": ecosystem, "name": package},
        "ranges": [
            {
                "type": "SEMVER" if ecosystem in ("npm", "Go", "crates.io") else "ECOSYSTEM",
                "events": events,
            }
        ],
    }
    if ecosystem == "PyPI":
        entry["versions"] = [f"0.{n}.0" for n in range(rng.randint(5, 40))]
    data: dict = {
        "schema_version": "1.6.0",
        "id": advisory_id,
        "modified": "2026-01-01T00:00:00Z",
        "published": "2025-06-01T00:00:00Z",
        "aliases": [cve, f"GHSA-syn{index % 10000:04d}-{index:07d}"],
        "summary": f"{package}: synthetic issue {index}",
        "details": ("A synthetic advisory used to benchmark skanse. " * 9)[:400],
        "affected": [entry],
        "references": [{"type": "ADVISORY", "url": f"https://example.com/advisory/{index}"}],
    }
    if rng.random() < 0.6:
        pick = rng.choice
        vector = VECTOR.format(
            ac=pick("LH"), pr=pick("NLH"), c=pick("NLH"), i=pick("NLH"), a=pick("NLH")
        )
        data["severity"] = [{"type": "CVSS_V3", "score": vector}]
    if rng.random() < 0.001:
        data["withdrawn"] = "2026-01-02T00:00:00Z"
    return data


def write_zip(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for index in range(count):
            data = record(rng, index)
            archive.writestr(f"{data['id']}.json", json.dumps(data))


def write_sbom(path: Path, count: int, seed: int = 11) -> None:
    from skanse.inventory.formats import render
    from skanse.inventory.model import Distro, Inventory, Package, PackageLocation, Subject

    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    packages = []
    for index in range(count):
        ecosystem, purl_type, _ = rng.choices(ECOSYSTEMS, [s for *_, s in ECOSYSTEMS])[0]
        raw = name(ecosystem, rng.randrange(NAMES_PER_ECOSYSTEM))
        debian, alpine = purl_type == "deb", purl_type == "apk"
        ver = version(rng, debian, alpine)
        if purl_type == "maven":
            group, artifact = raw.split(":")
            purl, pname = f"pkg:maven/{group}/{artifact}@{ver}", artifact
        elif purl_type == "golang":
            purl, pname = f"pkg:golang/{raw}@v{ver}", raw
        elif purl_type == "npm" and raw.startswith("@"):
            scope, base = raw.split("/")
            purl, pname = f"pkg:npm/%40{scope[1:]}/{base}@{ver}", raw
        elif debian:
            purl, pname = f"pkg:deb/debian/{raw}@{ver}?arch=amd64&distro=debian-12", raw
        elif alpine:
            purl, pname = f"pkg:apk/alpine/{raw}@{ver}?arch=x86_64&distro=alpine-3.19.1", raw
        else:
            purl, pname = f"pkg:{purl_type}/{raw}@{ver}", raw
        kind = {
            "pypi": "python",
            "golang": "go-module",
            "maven": "java-archive",
            "cargo": "rust-crate",
        }
        packages.append(
            Package(
                name=pname,
                version=ver,
                type=kind.get(purl_type, purl_type),
                purl=purl,
                cataloger="bench",
                locations=(PackageLocation(f"/app/{index}/{pname}", 0, "sha256:" + "b" * 64),),
            )
        )
    inventory = Inventory(
        Subject("image", "bench/app", "oci-layout", manifest_digest="sha256:" + "c" * 64),
        tuple(packages),
        distro=Distro("debian", "12"),
    )
    path.write_text(render("cyclonedx-json", inventory))


def time_match_in_process(db_path: Path, sbom: Path) -> tuple[float, int, int]:
    from skanse.vuln.db import Database
    from skanse.vuln.matcher import match_inventory
    from skanse.vuln.sbom import read_sbom

    inventory = read_sbom(sbom)
    with Database.open(db_path) as db:
        start = time.perf_counter()
        report = match_inventory(db, inventory)
        elapsed = time.perf_counter() - start
    hit = len({m.package.id for m in report.matches})
    return elapsed, len(report.matches), hit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--advisories", type=int, default=200_000)
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--make-zip", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--make-sbom", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Inputs are written by child processes: a measured child forked from a big parent
    # would count the parent's pages in its ru_maxrss.
    if args.make_zip:
        write_zip(Path(args.make_zip), args.advisories)
        return 0
    if args.make_sbom:
        write_sbom(Path(args.make_sbom), args.packages)
        return 0
    this = [sys.executable, "-m", "bench.vuln", "--advisories", str(args.advisories)]
    rows: list[tuple[str, str, float, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="skanse-bench-vuln-") as tmp:
        work = Path(tmp)
        if CORPUS.exists():
            db = work / "corpus.db"
            runs = [
                measure([*SKANSE, "db", "build", str(CORPUS), "--db", str(db)])
                for _ in range(args.runs)
            ]
            size = db.stat().st_size / 1e6
            rows.append(
                ("db build", f"corpus vulndb ({size:.0f} MB db)", *_stats(runs), "~7,900 records")
            )
        archive = work / "all.zip"
        start = time.perf_counter()
        subprocess.run([*this, "--make-zip", str(archive)], check=True)
        print(
            f"wrote {args.advisories:,} synthetic records in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        db = work / "synthetic.db"
        runs = [
            measure([*SKANSE, "db", "build", str(archive), "--db", str(db)])
            for _ in range(args.runs)
        ]
        size = db.stat().st_size / 1e6
        rows.append(
            (
                "db build",
                f"{args.advisories:,} synthetic OSV (all.zip, {size:.0f} MB db)",
                *_stats(runs),
                "",
            )
        )
        sbom = work / "sbom.cdx.json"
        subprocess.run(
            [*this, "--packages", str(args.packages), "--make-sbom", str(sbom)], check=True
        )
        out = work / "out.json"
        argv = [
            *SKANSE,
            "vuln",
            str(sbom),
            "--db",
            str(db),
            "--no-config",
            "-f",
            "json",
            "-o",
            str(out),
        ]
        runs = [measure(argv) for _ in range(args.runs)]
        result = json.loads(out.read_text())
        found = f"{result['summary']['vulnerabilities']} matches"
        rows.append(("vuln (CLI)", f"{args.packages}-package CycloneDX SBOM", *_stats(runs), found))
        phase, matches, packages_hit = time_match_in_process(db, sbom)
        rows.append(
            (
                "match phase",
                "in-process, same inputs",
                phase,
                phase,
                float("nan"),
                f"{matches} matches in {packages_hit} packages",
            )
        )
    print("| step | input | wall median (s) | wall min (s) | peak RSS (MB) | notes |")
    print("|---|---|---|---|---|---|")
    for step, what, median, low, rss, note in rows:
        rss_text = "-" if rss != rss else f"{rss:.0f}"
        print(f"| {step} | {what} | {median:.2f} | {low:.2f} | {rss_text} | {note} |")
    return 0


def _stats(runs: list[tuple[float, float]]) -> tuple[float, float, float]:
    walls = [w for w, _ in runs]
    return statistics.median(walls), min(walls), max(r for _, r in runs)


if __name__ == "__main__":
    sys.exit(main())
