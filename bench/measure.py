"""Wall time, CPU time, peak RSS and exit code of one command, from a fresh parent process.

The command runs under a small `python -c` parent, so that parent's RUSAGE_CHILDREN covers
exactly that one command and not this script's own memory or earlier runs. CPU time (user +
system, children included) moves far less than wall time on a shared machine; `interleaved`
runs the commands in rounds, so that outside load falls on all of them alike.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

__all__ = ["Measurement", "interleaved", "measure", "measure_once"]

_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL).returncode\n"
    "elapsed = time.perf_counter() - start\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(elapsed, usage.ru_maxrss, code, usage.ru_utime + usage.ru_stime)\n"
)


@dataclass
class Measurement:
    tool: str
    seconds: list[float]
    peak_kib: int
    exit_codes: set[int]
    cpu_seconds: list[float] = field(default_factory=list)


def _run(command: list[str]) -> tuple[float, int, int, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2]), float(out[3])


def measure_once(command: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit code) of one run of `command`."""
    return _run(command)[:3]


def _add(into: Measurement, run: tuple[float, int, int, float]) -> None:
    elapsed, peak, code, cpu = run
    into.seconds.append(elapsed)
    into.peak_kib = max(into.peak_kib, peak)
    into.exit_codes.add(code)
    into.cpu_seconds.append(cpu)


def measure(tool: str, command: list[str], runs: int) -> Measurement:
    """`runs` fresh runs of `command`: every wall and CPU time, the largest peak RSS, the exit
    codes."""
    result = Measurement(tool, [], 0, set())
    for _ in range(runs):
        _add(result, _run(command))
    return result


def interleaved(commands: dict[str, list[str]], runs: int) -> list[Measurement]:
    """Every command once per round, `runs` rounds, so each sees the same outside load."""
    results = {tool: Measurement(tool, [], 0, set()) for tool in commands}
    for _ in range(runs):
        for tool, command in commands.items():
            _add(results[tool], _run(command))
    return list(results.values())
