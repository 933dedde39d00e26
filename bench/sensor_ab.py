"""The sensor of this commit against another commit's (default: main), in one run.

    sudo python -m bench.sensor_ab [--base main] [--rounds 5] [--opens 200000] [--procs 2000]

Builds the base commit's tree (`git archive`, its own `sensor.bpf.o` compiled against the
same vmlinux.h) and runs, interleaved round by round on the same machine:

    none        no sensor
    base        `skanse runtime run` of the base commit, stable Falco rules
    this        the same of this tree
    this+kill   this tree with kill-marked rules the kernel decides (/etc/shadow,
                /etc/gshadow; upper-layer exec): the cost of enforcement in the kernel

For two workloads (C programs compiled here): an open+close loop and fork+exec+exit of
/bin/true. The order of the variants rotates from round to round. Reported per
iteration: wall time (median over rounds), the kernel programs' own time
(kernel.bpf_stats_enabled), and the sensor process's CPU (its consumer; from each thread's
schedstat, in ns), also less what it spends on the rest of the host's events at the rate
measured over a second with no workload just before. The machine's
absolute speed varies, so compare the columns of one run, as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sensor import OPEN_LOOP, Sensor, _compile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT.parent / "shared" / "corpora" / "falco" / "falco_rules.yaml"
PROGRAMS = ("skn_sys_exit", "skn_exec", "skn_fork", "skn_exit")

FORK_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    struct timespec a, b;
    char *child[] = {"/bin/true", NULL};
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) { execv("/bin/true", child); _exit(127); }
        int status;
        waitpid(pid, &status, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.4f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n);
    return 0;
}
"""

KILL_RULES = """\
- rule: Kill shadow readers (bench)
  desc: kernel-decided kill, never triggered by the bench
  condition: evt.type in (open, openat, openat2) and fd.name in (/etc/shadow, /etc/gshadow)
  output: "shadow opened (pid=%proc.pid)"
  priority: CRITICAL
- rule: Kill upper-layer exec (bench)
  desc: kernel-decided kill, never triggered by the bench
  condition: >-
    evt.type in (execve, execveat) and container.id != host
    and proc.is_exe_upper_layer=true
  output: "dropped binary executed (pid=%proc.pid)"
  priority: CRITICAL
"""


def _base_tree(commit: str, workdir: Path) -> Path:
    """The base commit's source, with its kernel object built like `make bpf` does."""
    tree = workdir / "base"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    vmlinux = ROOT / "build" / "bpf"
    bpf = tree / "src" / "skanse" / "runtime" / "bpf"
    subprocess.run(
        [
            "clang",
            "-g",
            "-O2",
            "-Wall",
            "-target",
            "bpf",
            "-D__TARGET_ARCH_x86",
            f"-I{vmlinux}",
            "-c",
            str(bpf / "sensor.bpf.c"),
            "-o",
            str(bpf / "sensor.bpf.o"),
        ],
        check=True,
    )
    return tree


def _programs(pid_filter: set[int] | None = None) -> dict[int, tuple[int, int]]:
    done = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True
    )
    return {
        int(p["id"]): (int(p.get("run_time_ns", 0)), int(p.get("run_cnt", 0)))
        for p in json.loads(done.stdout or "[]")
        if p.get("name") in PROGRAMS and (pid_filter is None or int(p["id"]) in pid_filter)
    }


def _settle(run: Sensor | None) -> None:
    """Wait until the sensor's CPU almost stops moving: its consumer caught up (on a shared
    host it never stops: other jobs' events keep it busy at a few percent)."""
    if run is None:
        return
    last = run.cpu_seconds()
    for _ in range(100):
        time.sleep(0.2)
        now = run.cpu_seconds()
        if now - last < 0.01:
            return
        last = now


def _background(run: Sensor | None, seconds: float = 1.0) -> float:
    """The sensor's CPU per second with no workload: the other jobs' events it handles."""
    if run is None:
        return 0.0
    cpu, started = run.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (run.cpu_seconds() - cpu) / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--opens", type=int, default=200_000)
    parser.add_argument("--procs", type=int, default=2_000)
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("bpftool") is None:
        print("needs root and bpftool", file=sys.stderr)
        return 2
    stats = Path("/proc/sys/kernel/bpf_stats_enabled")
    previous = stats.read_text().strip()
    with tempfile.TemporaryDirectory(prefix="skanse-ab-") as tmp:
        work = Path(tmp)
        base = _base_tree(args.base, work)
        kill_rules = work / "kill.yaml"
        kill_rules.write_text(KILL_RULES)
        open_loop = _compile(OPEN_LOOP, "open_loop", work)
        fork_loop = _compile(FORK_LOOP, "fork_loop", work)
        target = work / "target"
        target.write_text("x")
        workloads = {
            "open+close": ([str(open_loop), str(target), str(args.opens)], args.opens),
            "fork+exec+exit /bin/true": ([str(fork_loop), str(args.procs)], args.procs),
        }
        variants = {
            "none": None,
            "base": (base / "src", ()),
            "this": (ROOT / "src", ()),
            "this+kill": (
                ROOT / "src",
                (  # the last --rules wins: the stable rules plus the kill rules
                    "--rules",
                    str(args.rules),
                    str(kill_rules),
                    "--respond-rule",
                    "Kill shadow readers (bench)=kill",
                    "--respond-rule",
                    "Kill upper-layer exec (bench)=kill",
                ),
            ),
        }
        wall: dict[tuple[str, str], list[float]] = {}
        kernel: dict[tuple[str, str], list[float]] = {}
        consumer: dict[tuple[str, str], list[float]] = {}
        net: dict[tuple[str, str], list[float]] = {}  # less the idle rate of the other jobs
        stats.write_text("1")
        try:
            names = list(variants)
            for round_number in range(args.rounds):
                # each round starts with another variant: no variant always follows another
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    spec = variants[name]
                    run: Sensor | None = None
                    ours: set[int] | None = None
                    if spec is not None:
                        before = set(_programs())
                        run = Sensor(args.rules, work, *spec[1], src=spec[0])
                        ours = set(_programs()) - before
                    try:
                        for label, (argv, n) in workloads.items():
                            _settle(run)
                            idle = _background(run)
                            k0 = _programs(ours) if ours else {}
                            c0 = run.cpu_seconds() if run else 0.0
                            t0 = time.monotonic()
                            out = subprocess.run(argv, capture_output=True, text=True, check=True)
                            _settle(run)
                            wall.setdefault((name, label), []).append(float(out.stdout))
                            if run is not None and ours:
                                k1 = _programs(ours)
                                ns = sum(k1[i][0] - k0[i][0] for i in ours)
                                kernel.setdefault((name, label), []).append(ns / n / 1000)
                                used = run.cpu_seconds() - c0
                                consumer.setdefault((name, label), []).append(used / n * 1e6)
                                others = idle * (time.monotonic() - t0)
                                net.setdefault((name, label), []).append((used - others) / n * 1e6)
                    finally:
                        if run is not None:
                            run.stop()
        finally:
            stats.write_text(previous)
    print(
        f"base = {args.base}; {args.rounds} interleaved rounds; medians; us per iteration;"
        f" {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        "| workload | variant | wall | added vs none | kernel programs | sensor CPU"
        " | less others' events |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for label in workloads:
        none = statistics.median(wall[("none", label)])
        for name in variants:
            w = statistics.median(wall[(name, label)])
            k = kernel.get((name, label))
            c = consumer.get((name, label))
            d = net.get((name, label))
            print(
                f"| {label} | {name} | {w:.2f} | {w - none:+.2f} | "
                f"{statistics.median(k) if k else 0:.2f} | "
                f"{statistics.median(c) if c else 0:.2f} | "
                f"{statistics.median(d) if d else 0:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
