"""What the eBPF sensor costs the machine it watches, and whether it keeps up.

    sudo python bench/sensor.py [--rules PATH] [--quick]

Runs `skanse runtime run` with the stable Falco rules as a separate process, exactly as
deployed, and measures against the same workloads without it:

  (a) per-syscall cost, from small C programs compiled here with clang, in microseconds
      per iteration, three ways:
        - without and with the sensor process: the deployment as is, but a few pairs
          of whole runs, and runs minutes apart vary by more than the effect here;
        - the whole sensor, finely interleaved: the same service (rules, process table,
          outputs, consumer loop) in a thread of the bench, its programs detached and
          attached in turn; with the consumer's own CPU per iteration;
        - the kernel side alone: the same, with no consumer running (on a small machine
          the consumer competes with the workload for CPUs);
      for these workloads:
        - a tight open+close loop
        - exec: a static binary that execs itself with its arguments, again and again (no
          fork, no exit, no dynamic loader): the cost of one exec and its record
        - fork+exec+exit of /bin/true: a whole short-lived process, with the loader's
          own opens and every syscall exit of the new process
        - a syscall no rule needs (getppid): what the sys_exit tracepoint costs every
          syscall once the sensor is attached
      plus each kernel program's own time per call and calls per iteration, from the
      kernel's BPF statistics (kernel.bpf_stats_enabled; they count every process)
  (b) a realistic mixed workload: building a generated C project with `make -j2`
  (c) the sensor process's own CPU time per 10,000 events
  (d) 50,000 openat events per second for 60 seconds: dropped events (kernel counter)

Without and with the sensor process alternate, five times for (a) and nine for the
build, and medians are reported ((a): the median of the paired differences); the
interleaved measures are medians of 20 pairs of shorter runs. Needs root, clang
(and a static libc, Debian's libc6-dev), make and the built BPF object (`make bpf`).
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

EXEC_CHAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* argv: left, start ns, total, then two arguments carried along; execs itself until left
 * is 0, then prints microseconds per exec */
int main(int argc, char **argv) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long now = t.tv_sec * 1000000000L + t.tv_nsec;
    long left = atol(argv[1]);
    long start = argc > 2 ? atol(argv[2]) : now;
    long total = argc > 3 ? atol(argv[3]) : left;
    if (left <= 0) { printf("%.4f\n", (now - start) / 1e3 / total); return 0; }
    char l[24], s[24], n[24];
    snprintf(l, sizeof l, "%ld", left - 1);
    snprintf(s, sizeof s, "%ld", start);
    snprintf(n, sizeof n, "%ld", total);
    char *next[] = {argv[0], l, s, n, "--an-argument", "another-argument", NULL};
    execv("/proc/self/exe", next);
    return 127;
}
"""

SYSCALL_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
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

    def __init__(self, rules: Path, workdir: Path, *extra: str, src: Path | None = None) -> None:
        """`extra`: more `runtime run` arguments; `src`: another tree's skanse to run."""
        self.log = workdir / f"sensor-{time.monotonic_ns()}.log"
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
            *extra,
        ]
        env = dict(os.environ, PYTHONPATH=str(src)) if src is not None else None
        with self.log.open("w") as err:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=workdir
            )
        deadline = time.monotonic() + 60
        while "sensor started" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the sensor did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """The sensor's CPU time, in nanoseconds from each thread's schedstat (clock ticks of
        10 ms are too coarse for a few thousand processes). A thread that exits while the
        threads are listed is skipped, not a reason to switch units: two samples of one
        measurement must be in the same unit."""
        total_ns = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # the thread ended between listing and reading
        return total_ns / 1e9

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        for line in reversed(self.log.read_text().splitlines()):
            record = json.loads(line)
            if record.get("msg") == "sensor stopped":
                return record
        return {}


def _compile(source: str, name: str, workdir: Path, *flags: str) -> Path:
    path = workdir / f"{name}.c"
    path.write_text(source)
    binary = workdir / name
    subprocess.run(["clang", "-O2", *flags, "-o", str(binary), str(path)], check=True)
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
) -> tuple[float, float, float]:
    """Medians of `runs` measurements without and with the sensor process, alternating,
    and the median of the paired differences (with - without)."""
    without, with_sensor = [], []
    for _ in range(runs):
        without.append(measure())
        sensor = Sensor(rules, workdir)
        try:
            with_sensor.append(measure())
        finally:
            sensor.stop()
    diffs = [w - b for b, w in zip(without, with_sensor, strict=True)]
    return _median(without), _median(with_sensor), _median(diffs)


def _event_types(rules: Path) -> frozenset[str]:
    """The event types the sensor process filters on for these rules (as it logs them)."""
    from skanse.rules.engine import Engine
    from skanse.rules.loader import RulesFile, load_rules

    result = load_rules([RulesFile(str(rules), rules.read_bytes())])
    assert result.ruleset is not None, result.errors
    types = Engine(result.ruleset).event_types()
    assert types is not None
    return types


def _interleaved(measure: Callable[[], float], event_types: frozenset[str], rounds: int) -> float:
    """The kernel side alone, finely interleaved: one sensor loaded in this process (no
    consumer runs during a measurement), its programs detached and attached in turn for
    `rounds` pairs of runs; the median of the paired differences. Runs of a few hundred
    microseconds per iteration vary by more than the effect from one run to the next on
    this VM; many short pairs cancel most of that."""
    from skanse.runtime.bpf_sensor import BpfSensor, BpfSensorOptions

    sensor = BpfSensor(BpfSensorOptions(event_types=event_types))
    sensor.start()
    diffs = []
    try:
        for _ in range(rounds):
            sensor.stop()
            for _record in sensor.records(1 << 30):  # empty the rings between runs
                pass
            off = measure()
            sensor.attach()
            diffs.append(measure() - off)
    finally:
        sensor.close()
    return _median(diffs)


def _interleaved_with_consumer(
    measure: Callable[[], float], iterations: int, rules: Path, workdir: Path, rounds: int
) -> tuple[float, float]:
    """The whole sensor, finely interleaved: the deployed service (rules, process table,
    outputs, the consumer loop) runs in a thread of this process, and its programs are
    detached and attached in turn for `rounds` pairs of runs, so the consumer's work
    competes with the workload as it does in `skanse runtime run`. Returns the median of
    the paired differences and the consumer's CPU per iteration (this process's CPU time
    while attached, less while detached; the main thread only waits for the workload)."""
    import resource
    import threading

    from skanse.runtime.config import OutputsConfig, SensorConfig
    from skanse.runtime.service import SensorService

    config = SensorConfig(
        rules=[str(rules)],
        outputs=OutputsConfig(stdout=False, file=os.devnull),
        state_dir=str(workdir / "state"),
    )
    service = SensorService(config, stdout=sys.stdout, log=lambda _record: None)
    service.start()
    stop = threading.Event()
    consumer = threading.Thread(target=service.run, args=(stop,), daemon=True)
    consumer.start()

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    diffs: list[float] = []
    cpu_diffs: list[float] = []
    sensor = service.sensor
    agent = service.agent
    assert agent is not None

    def caught_up() -> None:
        """Wait until the consumer has handled every record (a burst of opens outruns it):
        its work must count for the run that caused it, not slow down the next one."""
        handled = -1
        while sensor.pending_bytes() or agent.stats.records != handled:
            handled = agent.stats.records
            time.sleep(0.05)

    try:
        sensor.stop()
        for _ in range(rounds):
            caught_up()
            before = cpu()
            off = measure()
            off_cpu = cpu() - before
            sensor.attach()
            before = cpu()
            on = measure()
            sensor.stop()
            caught_up()
            on_cpu = cpu() - before
            diffs.append(on - off)
            cpu_diffs.append((on_cpu - off_cpu) * 1e6 / iterations)
    finally:
        stop.set()
        consumer.join(30)
        service.close()
    return _median(diffs), _median(cpu_diffs)  # us per iteration


PROGRAMS = ("skn_exec", "skn_fork", "skn_exit", "skn_sys_exit")


def _programs() -> dict[int, tuple[str, int, int]]:
    """{id: (name, run_time_ns, run_cnt)} of the loaded programs whose names are ours."""
    done = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True
    )
    return {
        int(item["id"]): (
            item["name"],
            int(item.get("run_time_ns", 0)),
            int(item.get("run_cnt", 0)),
        )
        for item in json.loads(done.stdout or "[]")
        if item.get("name") in PROGRAMS
    }


def _kernel_stats(
    rules: Path, workdir: Path, workloads: dict[str, tuple[Callable[[], float], int]]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per workload: {program: (calls per iteration, ns per call)} from the kernel's BPF
    statistics, for the programs of one sensor started here (another sensor loaded at the
    same time, a test's, has programs of the same names: they are told apart by id)."""
    stats_file = Path("/proc/sys/kernel/bpf_stats_enabled")
    previous = stats_file.read_text().strip()
    before_start = set(_programs())
    stats_file.write_text("1")
    results: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        sensor = Sensor(rules, workdir)
        try:
            ours = set(_programs()) - before_start
            for label, (measure, iterations) in workloads.items():
                before = _programs()
                measure()
                after = _programs()
                results[label] = {}
                for prog_id in ours:
                    name, spent, calls = after[prog_id]
                    spent -= before[prog_id][1]
                    calls -= before[prog_id][2]
                    results[label][name] = (calls / iterations, spent / max(calls, 1))
        finally:
            sensor.stop()
    finally:
        stats_file.write_text(previous)
    return results


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
    runs = 1 if args.quick else 5
    build_runs = 1 if args.quick else 9
    rounds = 3 if args.quick else 20
    open_n, exec_n = (100_000, 1_000) if args.quick else (300_000, 5_000)
    syscall_n = 1_000_000 if args.quick else 3_000_000
    paced_seconds = 5 if args.quick else 60
    rows: list[tuple[str, str, str, str]] = []
    event_types = _event_types(args.rules)

    with tempfile.TemporaryDirectory(prefix="skanse-bench-") as tmp:
        workdir = Path(tmp)
        open_loop = _compile(OPEN_LOOP, "open_loop", workdir)
        exec_loop = _compile(EXEC_LOOP, "exec_loop", workdir)
        exec_chain = _compile(EXEC_CHAIN, "exec_chain", workdir, "-static")
        syscall_loop = _compile(SYSCALL_LOOP, "syscall_loop", workdir)
        paced = _compile(PACED, "paced", workdir)
        target = workdir / "target"
        target.write_text("x")
        true = shutil.which("true") or "/bin/true"

        def timed(*command: str) -> float:
            out = subprocess.run(list(command), capture_output=True, text=True, check=True)
            return float(out.stdout)

        def open_us(n: int = open_n) -> float:
            return timed(str(open_loop), str(target), str(n))

        def exec_us(n: int = exec_n) -> float:
            return timed(str(exec_chain), str(n))

        def fork_exec_exit_us(n: int = exec_n) -> float:
            return timed(str(exec_loop), true, str(n))

        def syscall_us(n: int = syscall_n) -> float:
            return timed(str(syscall_loop), str(n))

        # (label, measure, the iterations of a shorter run for the interleaved pairs)
        for label, measure, short_n in (
            ("open+close", open_us, open_n // 3),
            ("exec (static binary execs itself, with argv)", exec_us, 1000),
            ("fork+exec+exit of /bin/true", fork_exec_exit_us, 500),
            ("getppid (no rule needs it)", syscall_us, syscall_n // 3),
        ):

            def short(measure: Callable[[int], float] = measure, n: int = short_n) -> float:
                return measure(n)

            base, with_sensor, cost = _alternate(measure, args.rules, workdir, runs)
            whole, consumer_cpu = _interleaved_with_consumer(
                short, short_n, args.rules, workdir, rounds
            )
            kernel = _interleaved(short, event_types, rounds)
            unit, scale = ("ns", 1000.0) if measure is syscall_us else ("us", 1.0)
            rows.append(
                (
                    f"(a) {label}",
                    f"{base * scale:.2f} {unit}",
                    f"{with_sensor * scale:.2f} {unit}",
                    f"{cost * scale:+.2f} {unit}/op (median of {runs} process pairs); "
                    f"whole sensor interleaved: {whole * scale:+.2f}, its consumer's CPU "
                    f"{consumer_cpu * scale:.2f}; kernel side alone: {kernel * scale:+.2f} "
                    f"(medians of {rounds} interleaved pairs)",
                )
            )

        # the kernel programs' own time per call, and calls per iteration, by workload
        stats = _kernel_stats(
            args.rules,
            workdir,
            {
                "open+close": (open_us, open_n),
                "exec": (exec_us, exec_n),
                "fork+exec+exit": (fork_exec_exit_us, exec_n),
            },
        )
        for label, programs in stats.items():
            parts = [
                f"{name.removeprefix('skn_')} {calls:.2f} x {ns:,.0f} ns"
                for name, (calls, ns) in sorted(programs.items())
                if calls >= 0.005
            ]
            total_us = sum(calls * ns for calls, ns in programs.values()) / 1000
            rows.append(
                (
                    f"(a) kernel programs per {label}",
                    "-",
                    f"{total_us:.2f} us",
                    "calls x time per call: " + ", ".join(parts),
                )
            )

        project = _make_project(workdir)

        def build_seconds() -> float:
            subprocess.run(["make", "-s", "clean"], cwd=project, check=True)
            started = time.monotonic()
            subprocess.run(["make", "-s", "-j2"], cwd=project, check=True)
            return time.monotonic() - started

        build_seconds()  # warm the page cache
        base, with_sensor, _ = _alternate(build_seconds, args.rules, workdir, build_runs)
        rows.append(
            (
                "(b) make -j2 of a 49-file C project",
                f"{base:.2f} s",
                f"{with_sensor:.2f} s",
                f"{(with_sensor / base - 1) * 100:+.1f}% (medians of {build_runs} runs each)",
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
