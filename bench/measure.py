"""Wall time, peak RSS and exit code of one command, measured from a fresh parent process.

The command runs under a small `python -c` parent, so that parent's RUSAGE_CHILDREN covers
exactly that one command and not this script's own memory or earlier runs.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Measurement", "measure", "measure_once"]

_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL).returncode\n"
    "elapsed = time.perf_counter() - start\n"
    "print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n"
)


@dataclass
class Measurement:
    tool: str
    seconds: list[float]
    peak_kib: int
    exit_codes: set[int]


def measure_once(command: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit code) of one run of `command`."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def measure(tool: str, command: list[str], runs: int) -> Measurement:
    """`runs` fresh runs of `command`: every wall time, the largest peak RSS, the exit codes."""
    seconds, peaks, codes = [], [], set()
    for _ in range(runs):
        elapsed, peak, code = measure_once(command)
        seconds.append(elapsed)
        peaks.append(peak)
        codes.add(code)
    return Measurement(tool, seconds, max(peaks), codes)
