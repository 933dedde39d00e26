"""CIS Kubernetes Benchmark versions and how their kubelet control ids differ.

The ids move between versions (4.2.6 is `--protect-kernel-defaults` in CIS 1.23/1.24 and
`--make-iptables-util-chains` from CIS 1.7 on), so a finding names (benchmark, id), never an
id alone. The tables here are verified against kube-bench's cfg files by
tests/host/test_cis_mapping.py.
"""

from __future__ import annotations

from skanse.errors import UsageError

__all__ = [
    "BENCHMARKS",
    "DEFAULT_BENCHMARK",
    "K8S_TO_BENCHMARK",
    "STRONG_CIPHERS",
    "parse_benchmark",
]

# Benchmarks whose node controls skanse maps (kube-bench names them this way).
BENCHMARKS = ("cis-1.23", "cis-1.24", "cis-1.10", "cis-1.11", "cis-1.12")
DEFAULT_BENCHMARK = "cis-1.12"

# Kubernetes minor -> benchmark, as kube-bench's cfg/config.yaml version_mapping has it.
K8S_TO_BENCHMARK = {
    "1.22": "cis-1.23",
    "1.23": "cis-1.23",
    "1.24": "cis-1.24",
    "1.25": "cis-1.7",
    "1.26": "cis-1.8",
    "1.27": "cis-1.9",
    "1.28": "cis-1.10",
    "1.29": "cis-1.11",
    "1.30": "cis-1.11",
    "1.31": "cis-1.11",
    "1.32": "cis-1.12",
    "1.33": "cis-1.12",
    "1.34": "cis-1.12",
}

# Forward-secret AEAD suites (CIS 1.12's list; earlier versions also allowed RSA key exchange).
STRONG_CIPHERS = frozenset(
    {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        # TLS 1.3 suites are fixed by Go and always strong; naming them is harmless
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    }
)


def parse_benchmark(text: str) -> str:
    """`cis-1.12`, `1.12` (a benchmark) or `k8s-1.30` / `v1.30.2` (a Kubernetes version)."""
    value = text.strip().lower()
    if value in BENCHMARKS:
        return value
    if f"cis-{value}" in BENCHMARKS:
        return f"cis-{value}"
    version = value.removeprefix("k8s-").removeprefix("v")
    minor = ".".join(version.split(".")[:2])
    if minor in K8S_TO_BENCHMARK:
        benchmark = K8S_TO_BENCHMARK[minor]
        if benchmark in BENCHMARKS:
            return benchmark
        raise UsageError(
            f"--cis {text}: Kubernetes {minor} maps to {benchmark}, whose kubelet ids skanse "
            f"does not carry; use one of {', '.join(BENCHMARKS)}"
        )
    raise UsageError(
        f"--cis {text}: expected a benchmark ({', '.join(BENCHMARKS)}) or a Kubernetes "
        f"version 1.22 to 1.34"
    )
