"""Benchmark `skanse netpol`: a synthetic cluster of 10,000 pods in 200 namespaces with
2,000 NetworkPolicies, read as one `kubectl get -A -o json` dump.

    .venv/bin/python bench/netpol.py [--pods 10000] [--namespaces 200] [--policies 2000]

Prints a table: reading the dump, building the model, the full `list` (analysis and every
connection, rendered as text) and one `explain`. The peer tool (np-guard netpol-analyzer)
is a Go program that no reachable registry ships, so it is not run side by side.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any


def synthetic_cluster(pods: int, namespaces: int, policies: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    replicas = 10
    workloads = pods // replicas
    items: list[dict[str, Any]] = []
    for n in range(namespaces):
        items.append(  # noqa: PERF401 - one shape per kind reads better than comprehensions
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": f"ns{n}",
                    "labels": {"team": f"t{n % 20}", "env": rng.choice(["prod", "dev"])},
                },
            }
        )
    apps = [f"app{i}" for i in range(workloads // namespaces + 1)]
    for w in range(workloads):
        ns = f"ns{w % namespaces}"
        app = apps[w // namespaces]
        tier = rng.choice(["web", "api", "db", "cache"])
        for r in range(replicas):
            items.append(  # noqa: PERF401
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{app}-5d8f-{r}",
                        "namespace": ns,
                        "labels": {"app": app, "tier": tier, "pod-template-hash": "5d8f"},
                        "ownerReferences": [
                            {"kind": "ReplicaSet", "name": f"{app}-5d8f", "controller": True}
                        ],
                    },
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": "x",
                                "ports": [{"name": "http", "containerPort": 8080}],
                            }
                        ]
                    },
                    "status": {"podIP": f"10.{w // 250}.{w % 250}.{r + 1}"},
                }
            )
    for p in range(policies):
        ns = f"ns{p % namespaces}"
        if p < namespaces:  # every namespace: default deny both ways
            spec: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        else:
            target = {"matchLabels": {"app": rng.choice(apps)}}
            peers: list[dict[str, Any]] = []
            for _ in range(rng.randint(1, 3)):
                kind = rng.random()
                if kind < 0.4:
                    peers.append(
                        {"podSelector": {"matchLabels": {"tier": rng.choice(["web", "api"])}}}
                    )
                elif kind < 0.7:
                    peers.append(
                        {
                            "namespaceSelector": {"matchLabels": {"team": f"t{rng.randrange(20)}"}},
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "tier", "operator": "In", "values": ["api", "web"]}
                                ]
                            },
                        }
                    )
                elif kind < 0.9:
                    peers.append(
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "env", "operator": "NotIn", "values": ["dev"]}
                                ]
                            }
                        }
                    )
                else:
                    second = rng.randrange(40)
                    peers.append(
                        {
                            "ipBlock": {
                                "cidr": f"10.{second}.0.0/16",
                                "except": [f"10.{second}.{rng.randrange(250)}.0/24"],
                            }
                        }
                    )
            ports = [{"port": rng.choice([80, 443, 5432, 6379, "http"]), "protocol": "TCP"}]
            direction = rng.choice(["ingress", "egress"])
            key = "from" if direction == "ingress" else "to"
            spec = {
                "podSelector": target,
                direction: [{key: peers, "ports": ports}],
                "policyTypes": [direction.capitalize()],
            }
        items.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"p{p}", "namespace": ns},
                "spec": spec,
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main() -> None:
    from skanse.netpol.engine import analyse
    from skanse.netpol.explain import explain, parse_target
    from skanse.netpol.load import build_model, read_objects
    from skanse.netpol.render import ListFormat, render_connections

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--policies", type=int, default=2_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "cluster.json"
        dump.write_text(json.dumps(synthetic_cluster(args.pods, args.namespaces, args.policies)))
        size = dump.stat().st_size
        rows = []
        t0 = time.perf_counter()
        read = read_objects([str(dump)])
        t1 = time.perf_counter()
        rows.append(
            (
                "read and parse the dump",
                t1 - t0,
                f"{len(read.objects)} objects, {size / 1e6:.1f} MB",
            )
        )
        model = build_model(read.objects)
        t2 = time.perf_counter()
        rows.append(
            (
                "build the model",
                t2 - t1,
                f"{len(model.workloads)} workloads, {len(model.policies)} policies",
            )
        )
        analysis = analyse(model)
        connections = analysis.connections()
        text = render_connections(ListFormat.TXT, connections)
        t3 = time.perf_counter()
        rows.append(
            (
                "list (analyse + render)",
                t3 - t2,
                f"{analysis.n_classes} classes, {len(connections)} connections, "
                f"{len(text) / 1e6:.1f} MB",
            )
        )
        src, _ = parse_target(model, model.workloads[0].ident)
        dst, query = parse_target(model, f"{model.workloads[-1].ident}:8080/TCP", allow_port=True)
        t4 = time.perf_counter()
        result = explain(model, src, dst, query)
        t5 = time.perf_counter()
        rows.append(
            ("explain (one pair, port 8080)", t5 - t4, "allowed" if result[0].verdict else "denied")
        )
        rows.append(("list end to end (read + model + list)", t3 - t0, ""))

    print(
        f"skanse netpol: {args.pods} pods, {args.namespaces} namespaces, {args.policies} policies"
    )
    print(f"{'step':40} {'seconds':>9}  detail")
    for name, seconds, detail in rows:
        print(f"{name:40} {seconds:9.3f}  {detail}")


if __name__ == "__main__":
    main()
