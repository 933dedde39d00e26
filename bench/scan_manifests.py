"""Whole-process wall time and peak RSS of scanning the manifest corpus, next to the peers.

    python -m bench.scan_manifests [--runs 3] [--corpus ../shared/corpora/manifests]

skanse runs from this checkout's interpreter; checkov and Trivy run from .bench-peers/ when
`bench/install_peers.sh` has installed them there (both offline: `checkov --skip-download`,
`trivy config --skip-check-update`). Every tool writes JSON to a file, as the peers' figures in
the notes were measured. Each run is a fresh process; the table shows the median of the runs
and the largest peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.measure import measure

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".bench-peers" / "bin"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/manifests")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found", file=sys.stderr)
        return 2
    out = Path(tempfile.mkdtemp(prefix="skanse-bench-"))
    skanse = [sys.executable, "-m", "skanse"]
    commands = {
        "skanse scan": [*skanse, "scan", str(args.corpus), "--no-config", "-f", "json",
                        "-o", str(out / "skanse.json")],
        "skanse --version": [*skanse, "--version"],
    }  # fmt: skip
    if (PEERS / "checkov").exists():
        commands["checkov"] = [
            str(PEERS / "checkov"), "-d", str(args.corpus), "--framework", "kubernetes",
            "-o", "json", "--quiet", "--skip-download", "--output-file-path", str(out / "checkov"),
        ]  # fmt: skip
    if (PEERS / "trivy").exists() or shutil.which("trivy", path=str(PEERS)):
        commands["trivy config"] = [
            str(PEERS / "trivy"), "config", "--skip-check-update", "--skip-version-check",
            "--quiet", "--format", "json", "--output", str(out / "trivy.json"), str(args.corpus),
        ]  # fmt: skip
    results = [measure(name, command, args.runs) for name, command in commands.items()]

    findings = json.loads((out / "skanse.json").read_text())["summary"]
    print(f"corpus: {args.corpus.name} ({findings['files']} files, {findings['objects']} objects)")
    print(f"runs per tool: {args.runs} (median wall time, largest peak RSS)\n")
    print(f"| {'tool':<18} | {'wall time':>10} | {'peak RSS':>9} | exit |")
    print(f"|{'-' * 20}|{'-' * 12}|{'-' * 11}|------|")
    for m in results:
        codes = ",".join(str(c) for c in sorted(m.exit_codes))
        print(
            f"| {m.tool:<18} | {statistics.median(m.seconds):>8.2f} s | "
            f"{m.peak_kib / 1024:>6.0f} MB | {codes:>4} |"
        )
    base = next(m for m in results if m.tool == "skanse scan")
    for m in results:
        if m.tool not in ("skanse scan", "skanse --version"):
            ratio = statistics.median(m.seconds) / statistics.median(base.seconds)
            print(f"\nskanse is {ratio:.1f}x faster than {m.tool}", end="")
    print()
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
