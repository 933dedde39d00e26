"""What the eBPF sensor costs the machine it watches, and whether it keeps up.

    sudo python bench/sensor.py [--rules PATH] [--quick]

Runs `skanse runtime run` with the stable Falco rules as a separate process, exactly as
deployed, and measures against the same workloads without it:

  (a) per-syscall cost: a tight open+close loop and a fork+exec loop (small C programs
      compiled here with clang), microseconds per iteration without the sensor, with it,
      and with it but its consumer paused (the kernel side alone: on a small machine the
      consumer competes with the workload for CPUs); plus each kernel program's own time
      per call from the kernel's BPF statistics (kernel.bpf_stats_enabled)
  (b) a realistic mixed workload: building a generated C project with `make -j2`
  (c) the sensor process's own CPU time per 10,000 events
  (d) 50,000 openat events per second for 60 seconds: dropped events (kernel counter)

Each timed workload runs three times (the build five) with and without the sensor,
alternating, and the median is reported. Needs root, clang, make and the built BPF
object (`make bpf`).
Falco cannot be installed here (not packaged for Debian or PyPI), so there is no peer run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT.parent / "shared" / "corpora" / "falco" / "falco_rules.yaml"

OPEN_LOOP = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) return 1;
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.4f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n);
    return 0;
}
"""

EXEC_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    struct timespec a, b;
    char *child[] = {argv[1], "--an-argument", "another-argument", NULL};
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) { execv(argv[1], child); _exit(127); }
        int status;
        waitpid(pid, &status, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.4f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n);
    return 0;
}
"""

PACED = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* rate openat calls per second for seconds, in batches every millisecond */
int main(int argc, char **argv) {
    long rate = atol(argv[2]), seconds = atol(argv[3]), batch = rate / 1000, done = 0;
    struct timespec start, now, next;
    clock_gettime(CLOCK_MONOTONIC, &start);
    next = start;
    for (long tick = 0; tick < seconds * 1000; tick++) {
        for (long i = 0; i < batch; i++) {
            int fd = open(argv[1], O_RDONLY);
            if (fd >= 0) close(fd);
            done++;
        }
        next.tv_nsec += 1000000;
        if (next.tv_nsec >= 1000000000) { next.tv_nsec -= 1000000000; next.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    printf("%ld %.3f\n", done, (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9);
    return 0;
}
"""


class Sensor:
    """`skanse runtime run` in a child process."""

    def __init__(self, rules: Path, workdir: Path) -> None:
        self.log = workdir / "sensor.log"
        self.workdir = workdir
        command = [
            sys.executable,
            "-m",
            "skanse",
            "runtime",
            "run",
            "--rules",
            str(rules),
            "--no-stdout",
            "-o",
            os.devnull,
            "--state-dir",
            str(workdir / "state"),
        ]
        with self.log.open("w") as err:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 60
        while "sensor started" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the sensor did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        for line in reversed(self.log.read_text().splitlines()):
            record = json.loads(line)
            if record.get("msg") == "sensor stopped":
                return record
        return {}


def _compile(source: str, name: str, workdir: Path) -> Path:
    path = workdir / f"{name}.c"
    path.write_text(source)
    binary = workdir / name
    subprocess.run(["clang", "-O2", "-o", str(binary), str(path)], check=True)
    return binary


def _make_project(workdir: Path, files: int = 48) -> Path:
    project = workdir / "project"
    project.mkdir()
    objects = []
    for i in range(files):
        body = "\n".join(
            f"int f{i}_{j}(int x) {{ int s = 0; "
            f"for (int k = 0; k < x; k++) s += k * {j}; return s; }}"
            for j in range(60)
        )
        (project / f"unit{i}.c").write_text(f"#include <stdio.h>\n#include <string.h>\n{body}\n")
        objects.append(f"unit{i}.o")
    (project / "main.c").write_text("int main(void) { return 0; }\n")
    (project / "Makefile").write_text(
        f"OBJS = main.o {' '.join(objects)}\n"
        "app: $(OBJS)\n\tcc -o $@ $(OBJS)\n"
        "%.o: %.c\n\tcc -O1 -c -o $@ $<\n"
        "clean:\n\trm -f app *.o\n"
    )
    return project


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _alternate(
    measure: Callable[[], float], rules: Path, workdir: Path, runs: int
) -> tuple[float, float, dict]:
    """Median of `runs` measurements without and with the sensor, alternating."""
    without, with_sensor = [], []
    summary: dict = {}
    for _ in range(runs):
        without.append(measure())
        sensor = Sensor(rules, workdir)
        try:
            with_sensor.append(measure())
        finally:
            summary = sensor.stop()
    return _median(without), _median(with_sensor), summary


PROGRAMS = ("skn_sys_exit", "skn_fork", "skn_exit")


def _kernel_only(measure: Callable[[], float], rules: Path, workdir: Path, runs: int) -> float:
    """The workload with the sensor loaded but its consumer stopped (SIGSTOP): the cost of
    the kernel programs alone, without the consumer competing for the CPUs. The runs must
    fit in the ring buffer (they do: a few hundred thousand records)."""
    values = []
    for _ in range(runs):
        sensor = Sensor(rules, workdir)
        try:
            sensor.process.send_signal(signal.SIGSTOP)
            values.append(measure())
        finally:
            sensor.process.send_signal(signal.SIGCONT)
            sensor.stop()
    return _median(values)


def _bpf_stats(program: str) -> tuple[int, int]:
    done = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True
    )
    for item in json.loads(done.stdout or "[]"):
        if item.get("name") == program:
            return int(item.get("run_time_ns", 0)), int(item.get("run_cnt", 0))
    return 0, 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs (a smoke test of the bench)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the sensor bench needs root")
    for tool in ("clang", "make", "cc", "bpftool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    runs = 1 if args.quick else 3
    open_n, exec_n = (100_000, 1_000) if args.quick else (300_000, 5_000)
    paced_seconds = 5 if args.quick else 60
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory(prefix="skanse-bench-") as tmp:
        workdir = Path(tmp)
        open_loop = _compile(OPEN_LOOP, "open_loop", workdir)
        exec_loop = _compile(EXEC_LOOP, "exec_loop", workdir)
        paced = _compile(PACED, "paced", workdir)
        target = workdir / "target"
        target.write_text("x")
        true = shutil.which("true") or "/bin/true"

        def open_us() -> float:
            out = subprocess.run(
                [str(open_loop), str(target), str(open_n)],
                capture_output=True,
                text=True,
                check=True,
            )
            return float(out.stdout)

        def exec_us() -> float:
            out = subprocess.run(
                [str(exec_loop), true, str(exec_n)], capture_output=True, text=True, check=True
            )
            return float(out.stdout)

        for label, measure, unit in (
            ("open+close", open_us, "us"),
            ("fork+exec+exit", exec_us, "us"),
        ):
            base, with_sensor, _ = _alternate(measure, args.rules, workdir, runs)
            paused = _kernel_only(measure, args.rules, workdir, runs)
            rows.append(
                (
                    f"(a) {label}",
                    f"{base:.2f} {unit}",
                    f"{with_sensor:.2f} {unit}",
                    f"+{with_sensor - base:.2f} {unit}/op; kernel side only "
                    f"(consumer paused): {paused:.2f} {unit}, +{paused - base:.2f}",
                )
            )

        # the kernel programs' own time per call, from the kernel's BPF statistics
        stats_file = Path("/proc/sys/kernel/bpf_stats_enabled")
        previous = stats_file.read_text().strip()
        stats_file.write_text("1")
        try:
            sensor = Sensor(args.rules, workdir)
            try:
                before = {p: _bpf_stats(p) for p in PROGRAMS}
                open_us()
                exec_us()
                after = {p: _bpf_stats(p) for p in PROGRAMS}
            finally:
                sensor.stop()
        finally:
            stats_file.write_text(previous)
        for program in PROGRAMS:
            calls = max(after[program][1] - before[program][1], 1)
            spent = after[program][0] - before[program][0]
            rows.append(
                (
                    f"(a) kernel program {program}",
                    "-",
                    f"{spent / calls:.0f} ns/call",
                    f"{calls:,} calls",
                )
            )

        project = _make_project(workdir)

        def build_seconds() -> float:
            subprocess.run(["make", "-s", "clean"], cwd=project, check=True)
            started = time.monotonic()
            subprocess.run(["make", "-s", "-j2"], cwd=project, check=True)
            return time.monotonic() - started

        build_seconds()  # warm the page cache
        base, with_sensor, _build_summary = _alternate(build_seconds, args.rules, workdir, runs)
        rows.append(
            (
                "(b) make -j2 of a 49-file C project",
                f"{base:.2f} s",
                f"{with_sensor:.2f} s",
                f"{(with_sensor / base - 1) * 100:+.1f}%",
            )
        )

        # (c) sensor CPU per 10,000 events, on an open loop the sensor must fully decode
        sensor = Sensor(args.rules, workdir)
        cpu_before = sensor.cpu_seconds()
        open_us()
        time.sleep(1.0)
        cpu_after = sensor.cpu_seconds()
        summary = sensor.stop()
        delivered = max(summary.get("records_delivered", 1), 1)
        rows.append(
            (
                "(c) sensor CPU per 10,000 events",
                "-",
                f"{(cpu_after - cpu_before) / delivered * 10_000 * 1000:.1f} ms",
                f"{delivered:,} records in {cpu_after - cpu_before:.2f} s CPU",
            )
        )

        # (d) 50,000 openat/s sustained
        sensor = Sensor(args.rules, workdir)
        out = subprocess.run(
            [str(paced), str(target), "50000", str(paced_seconds)],
            capture_output=True,
            text=True,
            check=True,
        )
        done, seconds = out.stdout.split()
        time.sleep(1.0)
        summary = sensor.stop()
        rate = int(done) / float(seconds)
        rows.append(
            (
                f"(d) {rate:,.0f} openat/s for {float(seconds):.0f} s",
                f"{int(done):,} opens",
                f"{summary.get('records_dropped', '?')} dropped",
                f"produced {summary.get('records_produced', 0):,} = "
                f"delivered {summary.get('records_delivered', 0):,} + dropped; "
                f"{summary.get('reservations_retried', 0)} reservations retried",
            )
        )

    load = os.getloadavg()
    print(
        f"skanse sensor benchmark ({'quick' if args.quick else 'full'}; median of {runs}; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} CPUs)\n"
    )
    widths = [
        max(len(row[i]) for row in [*rows, ("measure", "without", "with sensor", "cost")])
        for i in range(4)
    ]
    header = ("measure", "without", "with sensor", "cost")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
