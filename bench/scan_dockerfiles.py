"""Scanning the Dockerfile corpus: wall time, peak RSS and findings per concern, with peers.

    python -m bench.scan_dockerfiles [--runs 3] [--corpus ../shared/corpora/dockerfiles]

skanse runs from this checkout; hadolint, checkov and Trivy from .bench-peers/ when
`bench/install_peers.sh` installed them (all offline). Each tool writes JSON; the concern table
counts files with at least one finding of that concern, from each tool's own ids.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.measure import Measurement, measure
from bench.scan_manifests import PEERS

ROOT = Path(__file__).resolve().parent.parent

# concern -> ids per tool (None: the tool has no check for it)
CONCERNS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "USER missing or root": {
        "skanse": ("SKN-DF-001",), "hadolint": ("DL3002",),
        "checkov": ("CKV_DOCKER_3", "CKV_DOCKER_8"), "trivy": ("DS-0002", "DS002"),
    },
    "ADD instead of COPY": {
        "skanse": ("SKN-DF-004", "SKN-DF-005"), "hadolint": ("DL3020",),
        "checkov": ("CKV_DOCKER_4",), "trivy": ("DS-0005", "DS005"),
    },
    "untagged or latest FROM": {
        "skanse": ("SKN-DF-002",), "hadolint": ("DL3006", "DL3007"),
        "checkov": ("CKV_DOCKER_7",), "trivy": ("DS-0001", "DS001"),
    },
    "FROM not pinned by digest": {
        "skanse": ("SKN-DF-003",), "hadolint": None, "checkov": None, "trivy": None,
    },
    "curl piped into a shell": {
        "skanse": ("SKN-DF-007",), "hadolint": None, "checkov": None, "trivy": None,
    },
    "download without verification": {
        "skanse": ("SKN-DF-008",), "hadolint": None, "checkov": None, "trivy": None,
    },
    "secret in ENV/ARG": {
        "skanse": ("SKN-DF-009",), "hadolint": None, "checkov": None, "trivy": ("DS-0031", "DS031"),
    },
    "sudo": {
        "skanse": ("SKN-DF-010",), "hadolint": ("DL3004",), "checkov": None,
        "trivy": ("DS-0010", "DS010"),
    },
    "SSH port or server": {
        "skanse": ("SKN-DF-016",), "hadolint": None, "checkov": ("CKV_DOCKER_1",),
        "trivy": ("DS-0004", "DS004"),
    },
    "no HEALTHCHECK (opt-in in skanse)": {
        "skanse": ("SKN-DF-015",), "hadolint": None, "checkov": ("CKV_DOCKER_2",),
        "trivy": ("DS-0026", "DS026"),
    },
}  # fmt: skip


def _skanse(path: Path) -> list[tuple[str, str]]:
    doc = json.loads(path.read_text())
    return [(f["location"]["file"], f["check_id"]) for f in doc["findings"]]


def _hadolint(path: Path) -> list[tuple[str, str]]:
    return [(item["file"], item["code"]) for item in json.loads(path.read_text() or "[]")]


def _checkov(path: Path) -> list[tuple[str, str]]:
    doc = json.loads(path.read_text())
    reports = doc if isinstance(doc, list) else [doc]
    return [
        (r["file_abs_path"], r["check_id"])
        for report in reports
        for r in report.get("results", {}).get("failed_checks", [])
    ]


def _trivy(path: Path) -> list[tuple[str, str]]:
    doc = json.loads(path.read_text())
    return [
        (result["Target"], m.get("ID") or m.get("AVDID", ""))
        for result in doc.get("Results", [])
        for m in result.get("Misconfigurations", []) or []
        if m.get("Status", "FAIL") == "FAIL"
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/dockerfiles")
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    files = sorted(
        str(p) for p in corpus.rglob("*") if p.is_file() and p.suffix not in (".tsv", ".md")
    )
    out = Path(tempfile.mkdtemp(prefix="skanse-bench-"))
    skanse_json = out / "skanse.json"
    tools: dict[str, tuple[list[str], Path, Callable[[Path], list[tuple[str, str]]]]] = {
        "skanse": (
            [sys.executable, "-m", "skanse", "scan", str(corpus), "--type", "dockerfile",
             "--no-config", "--enable", "SKN-DF-015", "-f", "json", "-o", str(skanse_json)],
            skanse_json, _skanse,
        ),
    }  # fmt: skip
    if (PEERS / "hadolint").exists():
        # hadolint prints JSON on stdout; a shell-free wrapper redirects it to a file
        wrapper = [
            sys.executable, "-c",
            "import subprocess, sys; "
            "out = open(sys.argv[1], 'wb'); "
            "sys.exit(subprocess.run(sys.argv[2:], stdout=out).returncode)",
            str(out / "hadolint.json"), str(PEERS / "hadolint"), "--no-fail", "-f", "json", *files,
        ]  # fmt: skip
        tools["hadolint"] = (wrapper, out / "hadolint.json", _hadolint)
    if (PEERS / "checkov").exists():
        tools["checkov"] = (
            [str(PEERS / "checkov"), "-d", str(corpus), "--framework", "dockerfile", "-o", "json",
             "--quiet", "--skip-download", "--output-file-path", str(out / "checkov")],
            out / "checkov" / "results_json.json", _checkov,
        )  # fmt: skip
    if (PEERS / "trivy").exists():
        tools["trivy"] = (
            [str(PEERS / "trivy"), "config", "--skip-check-update", "--skip-version-check",
             "--quiet", "--misconfig-scanners", "dockerfile", "--format", "json",
             "--output", str(out / "trivy.json"), str(corpus)],
            out / "trivy.json", _trivy,
        )  # fmt: skip

    timings: list[Measurement] = [
        measure(name, cmd, args.runs) for name, (cmd, _, _) in tools.items()
    ]
    findings = {name: read(path) for name, (_, path, read) in tools.items() if path.exists()}

    print(f"corpus: {corpus.name} ({len(files)} files); runs per tool: {args.runs}\n")
    print("| tool | wall time (median) | peak RSS |")
    print("|---|---|---|")
    for m in timings:
        print(f"| {m.tool} | {statistics.median(m.seconds):.2f} s | {m.peak_kib / 1024:.0f} MB |")
    print("\nfiles with at least one finding, per concern (-: the tool has no check for it)\n")
    names = list(tools)
    print("| concern | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for concern, ids in CONCERNS.items():
        cells = []
        for name in names:
            wanted = ids.get(name)
            if wanted is None:
                cells.append("-")
                continue
            hits = {Path(f).resolve() for f, code in findings.get(name, []) if code in wanted}
            cells.append(str(len(hits)))
        print(f"| {concern} | " + " | ".join(cells) + " |")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
