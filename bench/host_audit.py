"""Wall time and peak RSS of `skanse host audit` on this machine, next to the peers.

    python -m bench.host_audit [--runs 5]

Rows: the whole `skanse host audit` process (generic and k8s-node profiles, as root and, when
run as root, unprivileged through setpriv), the audit alone inside one process (library call,
no interpreter start-up), and the peers where they are installed: Lynis' sysctl test
(`lynis audit system --tests KRNL-6000`), a full `lynis audit system --quick`, and
systemd-detect-virt (isolation only; it says "docker" on a Firecracker VM with a stale
/.dockerenv). Lynis is a Debian package: `apt-get install lynis`. kube-bench and
docker-bench are not packaged for PyPI, Debian or npm and are not compared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import Measurement, measure


def in_process(runs: int) -> Measurement:
    """The audit alone: imports done, one fresh HostRoot per run (nothing cached)."""
    from skanse.host.audit import audit_host
    from skanse.host.facts import AuditContext, HostProfile
    from skanse.host.root import HostRoot

    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        audit_host(HostRoot("/"), AuditContext(profile=HostProfile.K8S_NODE))
        seconds.append(time.perf_counter() - start)
    return Measurement("audit_host() in-process", seconds, 0, {0})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="skanse-bench-"))
    skanse = [sys.executable, "-m", "skanse", "host", "audit", "--no-config", "-f", "json"]
    commands = {
        "skanse host audit": [*skanse, "-o", str(out / "a.json")],
        "skanse host audit --profile k8s-node": [
            *skanse, "--profile", "k8s-node", "-o", str(out / "b.json"),
        ],
        "skanse --version": [sys.executable, "-m", "skanse", "--version"],
    }  # fmt: skip
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv:
        commands["skanse host audit (as nobody)"] = [
            setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *skanse,
        ]  # fmt: skip
    lynis = shutil.which("lynis")
    if lynis:
        lynis_common = ["--no-colors", "--quiet", "--logfile", str(out / "lynis.log"),
                        "--report-file", str(out / "lynis.dat")]  # fmt: skip
        commands["lynis --tests KRNL-6000"] = [
            lynis, "audit", "system", "--tests", "KRNL-6000", *lynis_common,
        ]  # fmt: skip
        commands["lynis audit system --quick"] = [
            lynis, "audit", "system", "--quick", *lynis_common,
        ]  # fmt: skip
    detect = shutil.which("systemd-detect-virt")
    if detect:
        commands["systemd-detect-virt"] = [detect]
    results = [measure(name, command, args.runs) for name, command in commands.items()]
    results.insert(3, in_process(args.runs))

    print(f"machine: {os.cpu_count()} cores; runs per row: {args.runs} (median, largest RSS)")
    print("(other developers' work shares these cores: figures are an upper bound)\n")
    print(f"| {'what':<38} | {'wall time':>10} | {'peak RSS':>9} | exit |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 11}|------|")
    for m in results:
        codes = ",".join(str(c) for c in sorted(m.exit_codes))
        rss = f"{m.peak_kib / 1024:>6.0f} MB" if m.peak_kib else f"{'-':>9}"
        print(f"| {m.tool:<38} | {statistics.median(m.seconds):>8.3f} s | {rss} | {codes:>4} |")
    if detect:
        verdict = subprocess.run([detect], capture_output=True, text=True, check=False)
        print(f"\nsystemd-detect-virt says: {verdict.stdout.strip() or verdict.stderr.strip()}")
    import json

    facts = json.loads((out / "a.json").read_text())["facts"]
    print(f"skanse says: {facts['isolation']}")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
