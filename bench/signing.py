"""Benchmark: signature verification latency on loopback, cached and uncached.

    python bench/signing.py [--runs 300]

Starts Debian's docker-registry on 127.0.0.1, pushes two small images, signs one in Cosign's
legacy layout (`.sig` tag) and one as a Sigstore bundle (fallback tag, since distribution 2.8
has no referrers API), then times, in this process with one warm registry client (as the
admission webhook keeps one per thread):

- `verify_signatures` for each format (uncached: every call reads the signature store);
- `verify_image` under a policy with its cache emptied before each call (uncached), and with
  a warm cache, by tag (one manifest request to resolve the tag) and by digest (no network);
- the `skanse verify` command, a fresh process per run (start-up included).

Reports median and 95th percentile per call in milliseconds. The targets of the issue: under
5 ms cached and under 50 ms uncached.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.sbom import start_registry

ROOT = Path(__file__).resolve().parent.parent


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    for _ in range(min(20, runs)):  # warm the connection pool and caches
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"| {name} | {statistics.median(ordered):.2f} | {p95:.2f} | {len(ordered)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="calls per library scenario")
    parser.add_argument("--cli-runs", type=int, default=10, help="processes for `skanse verify`")
    args = parser.parse_args()

    from cryptography.hazmat.primitives.asymmetric import ec

    from skanse.oci.reference import Reference, parse_reference
    from skanse.oci.registry import RegistryClient
    from skanse.oci.writer import LayerBuilder, build_image, push_image
    from skanse.signing.keys import SigningKey
    from skanse.signing.policy import parse_policy, verify_image
    from skanse.signing.sign import sign_image
    from skanse.signing.verify import verify_signatures

    work = Path(tempfile.mkdtemp(prefix="skanse-bench-signing-"))
    registry, host = start_registry(work)
    try:
        client = RegistryClient()
        key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        pub = key.public_key("cosign.pub")
        (work / "cosign.pub").write_bytes(pub.pem())
        refs = {}
        for name, content in (("legacy", b"legacy"), ("bundle", b"bundle")):
            ref = parse_reference(f"{host}/bench/{name}:1.0")
            layer = LayerBuilder().add_file("/app/version", content).build()
            push_image(client, ref, build_image([layer]))
            sign_image(client, ref, key, bundle=name == "bundle")
            refs[name] = ref
        digest = client.get_manifest(refs["legacy"])[2]
        pinned = refs["legacy"].with_digest(digest)
        policy = parse_policy(
            (
                "apiVersion: skanse.io/v1alpha1\nkind: ImagePolicy\n"
                "keys: {ci: cosign.pub}\n"
                f"images: [{{glob: '{host}/bench/**', keys: [ci]}}]\n"
            ).encode(),
            base_dir=work,
        )
        assert verify_image(str(pinned), policy, client=client).allowed

        def uncached_policy(ref: str) -> Callable[[], object]:
            def call() -> object:
                policy.cache.clear()
                decision = verify_image(ref, policy, client=client)
                assert decision.allowed and not decision.cached, decision.reason
                return decision

            return call

        def cached_policy(ref: str) -> Callable[[], object]:
            def call() -> object:
                decision = verify_image(ref, policy, client=client)
                assert decision.allowed and decision.cached, decision.reason
                return decision

            return call

        def verify(ref: Reference) -> Callable[[], object]:
            def call() -> object:
                result = verify_signatures(client, ref, [pub])
                assert result.verified, result.reason
                return result

            return call

        rows = [
            row("verify_signatures, legacy .sig, by tag", timed(verify(refs["legacy"]), args.runs)),
            row("verify_signatures, legacy .sig, by digest", timed(verify(pinned), args.runs)),
            row(
                "verify_signatures, bundle (fallback tag), by tag",
                timed(verify(refs["bundle"]), args.runs),
            ),
            row(
                "verify_image uncached, by tag",
                timed(uncached_policy(str(refs["legacy"])), args.runs),
            ),
            row("verify_image uncached, by digest", timed(uncached_policy(str(pinned)), args.runs)),
            row(
                "verify_image cached, by tag", timed(cached_policy(str(refs["legacy"])), args.runs)
            ),
            row("verify_image cached, by digest", timed(cached_policy(str(pinned)), args.runs)),
        ]
        skanse = str(Path(sys.executable).with_name("skanse"))
        cli = [skanse, "verify", "--key", str(work / "cosign.pub"), str(refs["legacy"])]
        env = dict(os.environ)

        def run_cli() -> object:
            return subprocess.run(cli, check=True, capture_output=True, env=env)

        rows.append(row("`skanse verify` (new process), by tag", timed(run_cli, args.cli_runs)))
        print(f"registry: docker-registry on {host}; {os.cpu_count()} CPUs\n")
        print("| scenario | median (ms) | p95 (ms) | runs |")
        print("|---|---|---|---|")
        print("\n".join(rows))
        client.close()
    finally:
        registry.terminate()
        registry.wait()


if __name__ == "__main__":
    main()
