"""Wall time and peak RSS of `skanse fix` on copies of the manifest and Dockerfile corpora.

    python -m bench.fix_corpus [--runs 3] [--corpora ../shared/corpora]

Each run copies a corpus to a temporary directory and runs `skanse fix DIR` there as a fresh
process (the first run writes the fixes, then `skanse fix --check` on the fixed copy shows the
cost of a run with nothing left to do). No peer rewrites manifests or Dockerfiles offline, so
the table has skanse only. The median of the runs and the largest peak RSS are shown.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.measure import measure_once

ROOT = Path(__file__).resolve().parent.parent
SKANSE = [sys.executable, "-m", "skanse"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    args = parser.parse_args()
    rows = []
    for kind in ("manifests", "dockerfiles"):
        source = args.corpora / kind
        if not source.is_dir():
            print(f"{source} is missing", file=sys.stderr)
            return 2
        first, again, rss = [], [], 0
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / kind
                shutil.copytree(source, copy, symlinks=True)
                elapsed, peak, _ = measure_once([*SKANSE, "fix", str(copy), "--no-config"])
                first.append(elapsed)
                rss = max(rss, peak)
                elapsed, peak, code = measure_once(
                    [*SKANSE, "fix", str(copy), "--check", "--no-config"]
                )
                assert code in (0, 2), code  # 2: the corpus keeps unparseable files
                again.append(elapsed)
                rss = max(rss, peak)
        files = sum(1 for p in source.rglob("*") if p.is_file())
        rows.append((kind, files, statistics.median(first), statistics.median(again), rss))
    header = ("corpus", "files", "fix (writes)", "fix --check after", "peak RSS")
    print(f"{header[0]:<12} {header[1]:>6} {header[2]:>13} {header[3]:>18} {header[4]:>9}")
    for kind, files, fix_time, check_time, rss in rows:
        print(f"{kind:<12} {files:>6} {fix_time:>12.2f}s {check_time:>17.2f}s {rss / 1024:>7.0f}MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
