# syntax=docker/dockerfile:1
# skanse's own image: built in one stage, run from a clean one as UID/GID 10001.
# Read-only friendly: byte code is compiled at build time and never written at run time,
# so `docker run --read-only` and readOnlyRootFilesystem: true work.
#
# The base is pinned by tag and digest. The digest is the one Renovate recorded for
# python:3.12.3-slim-bookworm in the public GitHub repository nalabelle/build, file
# images/digests.Dockerfile, commit b709b6a5c2136a0cf8e8a348b370817ec6152d21 (2024-04-12);
# at least one other public Dockerfile pins the same digest for that tag. Update tag and
# digest together (`docker buildx imagetools inspect python:3.12-slim-bookworm` prints the
# current digest).
FROM python:3.12.3-slim-bookworm@sha256:541d45d3d675fb8197f534525a671e2f8d66c882b89491f9dda271f4f94dcd06 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm bpftool libbpf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
# The runtime sensor's kernel program, as the Makefile's `bpf` target builds it: CO-RE, so
# compiled once against the build machine's BTF it loads on any kernel with BTF. A build
# machine without BTF gives an image without the sensor (`skanse runtime run` says so);
# a prebuilt sensor.bpf.o in src/ (from `make bpf`) is used as it is.
RUN obj=src/skanse/runtime/bpf/sensor.bpf.o; \
    if [ ! -e "$obj" ] && [ -e /sys/kernel/btf/vmlinux ]; then \
      arch="$(uname -m | sed -e s/x86_64/x86/ -e s/aarch64/arm64/)" \
      && bpftool btf dump file /sys/kernel/btf/vmlinux format c > /tmp/vmlinux.h \
      && clang -g -O2 -Wall -target bpf "-D__TARGET_ARCH_$arch" -I/tmp \
           -c src/skanse/runtime/bpf/sensor.bpf.c -o "$obj" \
      && llvm-strip -g "$obj"; \
    fi
RUN python -m venv /opt/skanse && /opt/skanse/bin/pip install .

# The runtime sensor's image (`docker build --target sensor`; deploy/sensor/ runs it): the
# same install plus what the sensor calls at run time, libbpf to load its kernel program
# and nft to isolate a container. The default image below, for the CLI and the admission
# webhook, goes without them.
FROM python:3.12.3-slim-bookworm@sha256:541d45d3d675fb8197f534525a671e2f8d66c882b89491f9dda271f4f94dcd06 AS sensor
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/skanse/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 nftables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/skanse /opt/skanse
USER 10001:10001
ENTRYPOINT ["skanse"]
CMD ["runtime", "run", "--help"]

FROM python:3.12.3-slim-bookworm@sha256:541d45d3d675fb8197f534525a671e2f8d66c882b89491f9dda271f4f94dcd06
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/skanse/bin:$PATH
COPY --from=build /opt/skanse /opt/skanse
WORKDIR /scan
USER 10001:10001
ENTRYPOINT ["skanse"]
CMD ["--help"]
