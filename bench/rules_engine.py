"""Events per second through the rules engine with the whole stable Falco ruleset loaded.

    python bench/rules_engine.py [--events 300000] [--rules PATH] [--repeat 3]
    python -m bench.rules_engine --base REV [--rounds 5]


A realistic, seeded mix of exit events (60% open/openat/openat2, 30% execve, 7% connect,
3% other syscalls) from a process table of a few hundred processes, some in containers, with
ancestry chains (so proc.aname[n] walks real state). One process, one thread: the rate is
per core. Each variant is run three times and the best run is reported (the machine is
shared, so noise only ever slows a run down).

With --base, the engine of another commit (its src/ extracted with git archive) and this
tree's run the same events, `rule_matching: first`, in child processes taking turns round by
round (the order rotates); each child reports its CPU time (the machine is shared: CPU time
moves less than wall time under outside load), and the ratio of each round is printed.

Peer tools: Falco is not packaged for Debian or PyPI, so it cannot be run side by side here;
its own documentation calls more than ~3,000 kernel events/s per CPU hard to keep up with.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skanse.rules.engine import Engine
from skanse.rules.events import ProcessTable
from skanse.rules.loader import RulesFile, load_rules

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT.parent / "shared" / "corpora" / "falco" / "falco_rules.yaml"

_BINARIES = [
    ("nginx", "/usr/sbin/nginx"),
    ("python3", "/usr/bin/python3"),
    ("node", "/usr/local/bin/node"),
    ("java", "/usr/bin/java"),
    ("postgres", "/usr/lib/postgresql/15/bin/postgres"),
    ("bash", "/usr/bin/bash"),
    ("sh", "/bin/sh"),
    ("cat", "/usr/bin/cat"),
    ("ls", "/usr/bin/ls"),
    ("grep", "/usr/bin/grep"),
    ("curl", "/usr/bin/curl"),
    ("git", "/usr/bin/git"),
    ("containerd-shim", "/usr/bin/containerd-shim-runc-v2"),
    ("runc", "/usr/bin/runc"),
    ("kubelet", "/usr/bin/kubelet"),
]
_FILES = [
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/etc/ld.so.cache",
    "/proc/self/status",
    "/var/lib/app/data.db",
    "/tmp/build/output.o",  # noqa: S108 - a path in synthetic events, never opened
    "/etc/hosts",
    "/etc/resolv.conf",
    "/usr/share/zoneinfo/UTC",
    "/var/log/app/app.log",
    "/home/dev/project/src/main.py",
    "/etc/ssl/certs/ca-certificates.crt",
]
_OTHER = ["read", "write", "close", "fstat", "mmap", "socket", "dup2", "ptrace", "symlink"]


def build_world(rng: random.Random, n_procs: int = 300) -> tuple[ProcessTable, list[int]]:
    table = ProcessTable()
    table.upsert({"pid": 1, "ppid": 0, "name": "systemd", "exe": "/sbin/init"})
    containers = []
    for i in range(20):
        cid = f"{i:02x}" + "ab" * 5
        image = rng.choice(["nginx", "docker.io/library/python", "ghcr.io/acme/api", "redis"])
        table.upsert_container({"id": cid, "name": f"app-{i}", "image": f"{image}:1.0"})
        containers.append(cid)
    pids = [1]
    for pid in range(100, 100 + n_procs):
        parent = rng.choice(pids[-40:])
        name, exe = rng.choice(_BINARIES)
        in_container = rng.random() < 0.5
        table.upsert(
            {
                "pid": pid,
                "ppid": parent,
                "name": name,
                "exe": exe,
                "exepath": exe,
                "args": ["-c", "echo hi"] if name in ("bash", "sh") else ["--serve"],
                "uid": 0 if rng.random() < 0.6 else 1000,
                "user": "root" if rng.random() < 0.6 else "app",
                "loginuid": -1,
                "tty": 0 if rng.random() < 0.95 else 34816,
                "cwd": "/",
                "start_ts": 1_700_000_000_000_000_000 - rng.randrange(10**12),
                "container_id": rng.choice(containers) if in_container else None,
            }
        )
        pids.append(pid)
    return table, pids


def build_events(rng: random.Random, pids: list[int], n: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    ts = 1_700_000_000_000_000_000
    for i in range(n):
        ts += 1000
        pid = rng.choice(pids)
        r = rng.random()
        if r < 0.60:
            # sensitive reads happen, rarely (0.2% of opens)
            path = "/etc/shadow" if rng.random() < 0.002 else rng.choice(_FILES)
            flags = "O_RDONLY|O_CLOEXEC" if rng.random() < 0.8 else "O_WRONLY|O_CREAT|O_TRUNC"
            event = {
                "type": rng.choice(["openat", "openat", "open", "openat2"]),
                "ts": ts,
                "num": i,
                "pid": pid,
                "res": 3,
                "args": {"name": path, "flags": flags},
                "fd": {"num": 3, "type": "file", "name": path},
            }
        elif r < 0.90:
            event = {"type": "execve", "ts": ts, "num": i, "pid": pid, "res": 0, "args": {}}
        elif r < 0.97:
            event = {
                "type": "connect",
                "ts": ts,
                "num": i,
                "pid": pid,
                "res": 0,
                "fd": {
                    "num": 4,
                    "type": "ipv4",
                    "cip": "10.0.0.5",
                    "cport": 40000 + i % 20000,
                    "sip": rng.choice(["10.96.0.1", "203.0.113.10", "140.82.112.3"]),
                    "sport": rng.choice([443, 80, 5432, 22]),
                    "l4proto": "tcp",
                    "connected": True,
                },
            }
        else:
            event = {
                "type": rng.choice(_OTHER),
                "ts": ts,
                "num": i,
                "pid": pid,
                "res": 0,
                "args": {"request": "PTRACE_PEEKDATA", "target": "/tmp/x"},  # noqa: S108
            }
        events.append(event)
    return events


def run(engine: Engine, events: list[dict[str, object]]) -> tuple[float, int]:
    elapsed, _, alerts = run_timed(engine, events)
    return elapsed, alerts


def run_timed(engine: Engine, events: list[dict[str, object]]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process, alerts."""
    process = engine.process
    gc.collect()
    gc.disable()
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        alerts = 0
        for event in events:
            if process(event):
                alerts += 1
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        gc.enable()
    return elapsed, cpu, alerts


def _child(rules: Path, n_events: int, repeat: int) -> int:
    """One side of the A/B run: whichever skanse is first on sys.path, best of `repeat`."""
    import skanse

    result = load_rules([RulesFile(rules.name, rules.read_bytes())])
    assert result.ruleset is not None
    rng = random.Random(42)  # noqa: S311 - reproducible benchmark data, not secrets
    table, pids = build_world(rng)
    events = build_events(rng, pids, n_events)
    engine = Engine(result.ruleset, rule_matching="first", table=table)
    run(engine, events[:20_000])  # warm-up: memo caches, compilation of the buckets
    runs = [run_timed(engine, events) for _ in range(repeat)]
    print(
        json.dumps(
            {
                "skanse": str(Path(skanse.__file__).parent),
                "wall": min(r[0] for r in runs),
                "cpu": min(r[1] for r in runs),
                "alerts": runs[0][2],
            }
        )
    )
    return 0


def _ab(args: argparse.Namespace) -> int:
    from bench.scan_manifests import _checkout_src

    with tempfile.TemporaryDirectory(prefix="skanse-rules-ab-") as tmp:
        sides = {args.base: _checkout_src(args.base, Path(tmp) / "base"), "this": ROOT / "src"}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        wall: dict[str, list[float]] = {name: [] for name in sides}
        alerts: dict[str, set[int]] = {name: set() for name in sides}
        names = list(sides)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                env = dict(os.environ, PYTHONPATH=f"{sides[name]}{os.pathsep}{ROOT}")
                done = subprocess.run(
                    [
                        *(sys.executable, "-m", "bench.rules_engine", "--child"),
                        *("--events", str(args.events), "--repeat", str(args.repeat)),
                        *("--rules", str(args.rules)),
                    ],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                out = json.loads(done.stdout.splitlines()[-1])
                if Path(out["skanse"]).parent != sides[name]:
                    raise SystemExit(f"{name} ran {out['skanse']}, not {sides[name]}")
                cpu[name].append(out["cpu"])
                wall[name].append(out["wall"])
                alerts[name].add(out["alerts"])
    base, this = names
    n = args.events
    print(
        f"rules: {args.rules.name}; {n:,} events, rule_matching first; {args.rounds} rounds"
        f" taking turns, best of {args.repeat} per child; {os.cpu_count()} CPUs, load"
        f" average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}"
    )
    print()
    print("| engine | events/s (CPU time) | us/event | events/s (wall) | alerts |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        c = statistics.median(cpu[name])
        w = statistics.median(wall[name])
        found = ", ".join(str(a) for a in sorted(alerts[name]))
        print(f"| {name} | {n / c:,.0f} | {c / n * 1e6:.2f} | {n / w:,.0f} | {found} |")
    ratios = [b / t for b, t in zip(cpu[base], cpu[this], strict=True)]
    print()
    print(
        f"this / {base}, CPU time per round: "
        + ", ".join(f"{r:.2f}x" for r in ratios)
        + f"; median {statistics.median(ratios):.2f}x"
    )
    return 0 if alerts[base] == alerts[this] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", help="A/B: also run this commit's engine, taking turns")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.rules.exists():
        print(f"rules file not found: {args.rules}", file=sys.stderr)
        return 2
    if args.child:
        return _child(args.rules, args.events, args.repeat)
    if args.base:
        return _ab(args)

    t0 = time.perf_counter()
    result = load_rules([RulesFile(args.rules.name, args.rules.read_bytes())])
    load_ms = (time.perf_counter() - t0) * 1000
    if result.ruleset is None:
        print("rules did not load", file=sys.stderr)
        return 2
    rng = random.Random(42)  # noqa: S311 - reproducible benchmark data, not secrets
    table, pids = build_world(rng)
    events = build_events(rng, pids, args.events)

    variants = [
        ("compiled + evt.type index, first", "first", True),
        ("compiled + evt.type index, all", "all", True),
        ("compiled, no index (every rule, every event)", "first", False),
    ]
    print(
        f"rules: {args.rules.name} ({len(result.ruleset.enabled('syscall'))} enabled rules, "
        f"loaded and compiled in {load_ms:.0f} ms); {len(events):,} events "
        "(60% open, 30% exec, 7% connect, 3% other); best of "
        f"{args.repeat}; Python {sys.version.split()[0]}, one core"
    )
    print()
    print(f"| {'variant':<46} | {'events/s':>10} | {'us/event':>8} | {'alerts':>7} |")
    print(f"|{'-' * 48}|{'-' * 12}:|{'-' * 9}:|{'-' * 8}:|")
    for label, matching, indexed in variants:
        engine = Engine(result.ruleset, rule_matching=matching, table=table)
        if not indexed:
            everything = tuple((r, r.fn) for r in engine.rules)
            engine._by_type = {}
            engine._catchall = everything
        run(engine, events[:20_000])  # warm-up: memo caches, first-call costs
        best = None
        for _ in range(args.repeat):
            elapsed, alerts = run(engine, events)
            best = elapsed if best is None or elapsed < best else best
        assert best is not None
        rate = len(events) / best
        print(f"| {label:<46} | {rate:>10,.0f} | {1e6 / rate:>8.2f} | {alerts:>7,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
