"""Whole-process wall time, CPU time and peak RSS of scanning the manifest corpus, beside peers.

    python -m bench.scan_manifests [--runs 3] [--corpus ../shared/corpora/manifests]
                                   [--baseline HEAD~1]

skanse runs from this checkout's interpreter; checkov and Trivy run from .bench-peers/ when
`bench/install_peers.sh` has installed them there (both offline: `checkov --skip-download`,
`trivy config --skip-check-update`). Every tool writes JSON to a file, as the peers' figures in
the notes were measured, and skanse also writes SARIF. Each run is a fresh process; the
commands run in rounds (each once per round) so outside load falls on all alike; the table
shows the median wall and CPU time (user + system) of the runs and the largest peak RSS.
`--baseline REV` also runs skanse as it was at REV (its src/ from git, with this interpreter)
in the same run: an A/B of a change, quoted as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.measure import interleaved

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".bench-peers" / "bin"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/manifests")
    parser.add_argument("--baseline", metavar="REV", help="also run skanse at this git revision")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"corpus {args.corpus} not found", file=sys.stderr)
        return 2
    out = Path(tempfile.mkdtemp(prefix="skanse-bench-"))
    load = os.getloadavg()
    skanse = [sys.executable, "-m", "skanse"]
    small = ROOT / "examples" / "hardened" / "web.yaml"
    # the corpus holds deliberately malformed files: they are reported, not a failed run
    scan = ["scan", str(args.corpus), "--no-config", "--allow-unchecked"]
    commands = {
        "skanse scan": [*skanse, *scan, "-f", "json", "-o", str(out / "skanse.json")],
        "skanse scan sarif": [*skanse, *scan, "-f", "sarif", "-o", str(out / "skanse.sarif")],
        "skanse one file": [*skanse, "scan", str(small), "--no-config"],
        "skanse --version": [*skanse, "--version"],
    }  # fmt: skip
    if args.baseline:
        old = _checkout_src(args.baseline, out / "baseline")
        # the baseline may predate --allow-unchecked: its exit code is not compared
        before = ["env", f"PYTHONPATH={old}", *skanse, "scan", str(args.corpus), "--no-config"]
        commands[f"{args.baseline} scan"] = [*before, "-f", "json", "-o", str(out / "b.json")]
        commands[f"{args.baseline} sarif"] = [*before, "-f", "sarif", "-o", str(out / "b.sarif")]
        commands[f"{args.baseline} one file"] = [
            "env", f"PYTHONPATH={old}", *skanse, "scan", str(small), "--no-config"
        ]  # fmt: skip
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
    results = interleaved(commands, args.runs)

    findings = json.loads((out / "skanse.json").read_text())["summary"]
    print(f"corpus: {args.corpus.name} ({findings['files']} files, {findings['objects']} objects)")
    print(f"runs per tool: {args.runs} in rounds (median wall and CPU time, largest peak RSS)")
    print(f"load average before / after: {load[0]:.2f} / {os.getloadavg()[0]:.2f}\n")
    print(f"| {'tool':<18} | {'wall time':>10} | {'CPU time':>10} | {'peak RSS':>9} | exit |")
    print(f"|{'-' * 20}|{'-' * 12}|{'-' * 12}|{'-' * 11}|------|")
    for m in results:
        codes = ",".join(str(c) for c in sorted(m.exit_codes))
        print(
            f"| {m.tool:<18} | {statistics.median(m.seconds):>8.2f} s | "
            f"{statistics.median(m.cpu_seconds):>8.2f} s | "
            f"{m.peak_kib / 1024:>6.0f} MB | {codes:>4} |"
        )
    for label, median in (
        ("wall", {m.tool: statistics.median(m.seconds) for m in results}),
        ("CPU", {m.tool: statistics.median(m.cpu_seconds) for m in results}),
    ):
        print(f"\nby {label} time:")
        for peer in ("checkov", "trivy config"):
            for mine in ("skanse scan", "skanse scan sarif"):
                if peer in median:
                    print(f"{mine}: {median[peer] / median[mine]:.1f}x faster than {peer}")
        if args.baseline:
            pairs = {
                "scan": "skanse scan", "sarif": "skanse scan sarif", "one file": "skanse one file"
            }  # fmt: skip
            for what, mine in pairs.items():
                ratio = median[f"{args.baseline} {what}"] / median[mine]
                print(f"{what}: {ratio:.2f}x the speed of {args.baseline}")
    shutil.rmtree(out, ignore_errors=True)
    return 0


def _checkout_src(revision: str, target: Path) -> Path:
    """src/ of `revision`, extracted from git into `target` (nothing in the checkout moves)."""
    import subprocess
    import tarfile

    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / "src"


if __name__ == "__main__":
    sys.exit(main())
