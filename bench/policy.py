"""What a ValidatingAdmissionPolicy of five validations adds to `skanse scan` and the webhook.

    python -m bench.policy [--runs 3] [--rounds 40] [--reviews 200]

scan: the manifest corpus with and without `--policy bench/policy_five.yaml`, fresh processes,
runs alternated so that load on the machine falls on both alike; the median CPU time (user +
system, which other jobs on a shared machine disturb far less than wall time), the median
wall time, and the ratios. webhook: CPU time (process_time) per review of the same
Deployment, in one process, with and without the policy, in short rounds that alternate the
variants; what the policy costs per review is the median of the rounds' paired differences.
The policy's evaluation alone is measured beside them.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Like bench.measure, but the child's CPU time (user + system) as well as its wall time.
_MEASURE_CPU = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL).returncode\n"
    "elapsed = time.perf_counter() - start\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(elapsed, usage.ru_utime + usage.ru_stime, code)\n"
)


def _measure_cpu(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, exit code) of one fresh run of `command`."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE_CPU, *command], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "bench" / "policy_five.yaml"


def _scan(corpus: Path, runs: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="skanse-bench-"))
    # --allow-unchecked: the corpus holds templates (Helm, envsubst) that are not YAML, which
    # a scan otherwise reports as "could not check" with exit code 2.
    base = [
        sys.executable, "-m", "skanse", "scan", str(corpus), "--no-config", "--allow-unchecked",
        "-f", "json",
    ]  # fmt: skip
    commands = {
        "skanse scan": [*base, "-o", str(out / "plain.json")],
        "skanse scan --policy (5 validations)": [
            *base, "--policy", str(POLICY), "-o", str(out / "policy.json"),
        ],
    }  # fmt: skip
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            elapsed, spent, code = _measure_cpu(command)
            if code not in (0, 1):
                raise SystemExit(f"{name} exited {code}")
            wall[name].append(elapsed)
            cpu[name].append(spent)
    print(f"corpus: {corpus}, {runs} alternated runs each (medians)\n")
    print("| command | CPU time | wall time | CPU of each run |")
    print("|---|---|---|---|")
    for name in commands:
        runs_text = ", ".join(f"{x:.2f}" for x in cpu[name])
        print(
            f"| {name} | {statistics.median(cpu[name]):.2f} s "
            f"| {statistics.median(wall[name]):.2f} s | {runs_text} |"
        )
    for label, table in (("CPU", cpu), ("wall", wall)):
        plain, with_policy = (statistics.median(v) for v in table.values())
        print(f"\npolicy / plain ({label}): {with_policy / plain:.2f}", end="")
    print("\n")


def _webhook(reviews: int, rounds: int) -> None:
    import json

    from skanse.admission.handler import Webhook
    from skanse.admission.policy import Policy
    from skanse.admission.review import parse_review
    from skanse.admission.vap import PolicyEnforcer
    from skanse.policy.load import load_policies

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": f"c{i}", "image": "registry.example.com/shop/web:1.4.2",
                         "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}
                        for i in range(3)
                    ],
                },
            },
        },
    }  # fmt: skip
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": deployment,
            },
        }
    ).encode()
    webhooks = {
        "webhook": Webhook(Policy()),
        "webhook + policy (5 validations)": Webhook(
            Policy(), policies=PolicyEnforcer(load_policies([POLICY]))
        ),
    }
    enforcer = PolicyEnforcer(load_policies([POLICY]))
    request = parse_review(body)

    def policy_only() -> None:
        enforcer.review(request, len(body))

    runs: dict[str, Callable[[], object]] = {
        name: functools.partial(webhook.validate, body) for name, webhook in webhooks.items()
    }
    runs["the policy's evaluation alone"] = policy_only
    # Many short rounds, the variants in turn within each (the order rotating), and the
    # median of each round's paired difference: load from other jobs moves between rounds
    # far more than within one, and a difference of a tenth of a millisecond on half a
    # millisecond needs the pairing to be seen through it.
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in runs.values():
        for _ in range(200):
            run()
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = runs[name]
            start = time.process_time()
            for _ in range(reviews):
                run()
            samples[name].append((time.process_time() - start) / reviews * 1000)
    plain_name, policy_name = names[:2]
    added = sorted(b - a for a, b in zip(samples[plain_name], samples[policy_name], strict=True))
    print(
        "webhook: CPU per review of one Deployment (3 containers), "
        f"{rounds} rounds x {reviews} reviews, medians\n"
    )
    print("| webhook | CPU per review |")
    print("|---|---|")
    for name in names:
        print(f"| {name} | {statistics.median(samples[name]):.3f} ms |")
    quartiles = statistics.quantiles(added, n=4)
    print(
        f"\nadded by the policy (A/B of the webhook, median of the {rounds} paired rounds): "
        f"{statistics.median(added):.3f} ms per review "
        f"(quartiles {quartiles[0]:.3f} to {quartiles[2]:.3f} ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reviews", type=int, default=200, help="reviews per round")
    parser.add_argument("--rounds", type=int, default=40, help="webhook rounds")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/manifests")
    parser.add_argument("--only", choices=("scan", "webhook"), default=None)
    args = parser.parse_args()
    if args.only != "webhook":
        _scan(args.corpus, args.runs)
    if args.only != "scan":
        _webhook(args.reviews, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
