# syntax=docker/dockerfile:1
# skanse's own image: built in one stage, run from a clean one as UID/GID 10001.
# Read-only friendly: byte code is compiled at build time and never written at run time,
# so `docker run --read-only` and readOnlyRootFilesystem: true work.
#
# BASE is pinned by tag and digest. The digest is the one Renovate recorded for
# python:3.12.3-slim-bookworm in the public GitHub repository nalabelle/build, file
# images/digests.Dockerfile, commit b709b6a5c2136a0cf8e8a348b370817ec6152d21 (2024-04-12);
# at least one other public Dockerfile pins the same digest for that tag. Update tag and
# digest together (`docker buildx imagetools inspect python:3.12-slim-bookworm` prints the
# current digest). Without a registry, `make image` passes a Debian base made locally
# (tools/debian_base.py: debootstrap, python3 and python3-venv from Debian's packages):
#   podman build --build-arg BASE=localhost/skanse-base:bookworm ...
#
# Reproducible: built with SOURCE_DATE_EPOCH (`make image`: a fixed date) and `--timestamp` of
# the same value (buildah/podman; BuildKit: SOURCE_DATE_EPOCH with rewrite-timestamp), the
# same sources, base and packages give the same image id. Byte code is compiled with hash
# checks (py_compile does so when SOURCE_DATE_EPOCH is set), not source mtimes.
ARG BASE=python:3.12.3-slim-bookworm@sha256:541d45d3d675fb8197f534525a671e2f8d66c882b89491f9dda271f4f94dcd06
FROM ${BASE} AS build
# Given by `make image` (a fixed date): byte code with hash checks, no build times.
ARG SOURCE_DATE_EPOCH
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# The dependencies first, in their own layer: a change to skanse's sources reinstalls skanse
# only. pip's download cache is kept between builds (not in the image): a rebuild with
# --no-cache fetches nothing it fetched before. A build behind a TLS-inspecting proxy passes
# the CA bundle that trusts it as the secret `pip-ca` (`--secret id=pip-ca,src=...`); like the
# cache, a secret is never part of a layer.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > /tmp/requirements.txt \
    && python3 -m venv /opt/skanse && /opt/skanse/bin/pip install -r /tmp/requirements.txt
# The admission decision's modules are compiled with mypyc (setup.py COMPILED: the webhook
# decides a review in about half the CPU). mypyc type-checks them against the installed
# dependencies, so the build runs without isolation in /opt/skanse, with mypy, PyYAML's stubs
# and a recent setuptools on PYTHONPATH from /tmp/buildtools, which no later stage copies;
# gcc and Python's headers are installed in this stage only. --build-arg SKANSE_COMPILE=0
# installs plain Python.
ARG SKANSE_COMPILE=require
RUN if [ "$SKANSE_COMPILE" != 0 ]; then \
      headers=; python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || headers=python3-dev; \
      apt-get update \
      && apt-get install -y --no-install-recommends gcc libc6-dev $headers \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && if [ "$SKANSE_COMPILE" != 0 ]; then \
      /opt/skanse/bin/pip install --target /tmp/buildtools mypy types-PyYAML "setuptools>=70.1"; \
    fi
COPY README.md MANIFEST.in setup.py ./
COPY src/ src/
# The runtime sensor's kernel programs go into the install as setup.py builds them: prebuilt
# *.bpf.o in src/ (from `make bpf`) as they are, and then no BPF toolchain is installed;
# else compiled here with clang against the build machine's BTF (CO-RE: it then loads on any
# kernel with BTF). A build machine without BTF, or --build-arg SKANSE_BPF=0 (setup.py then
# compiles nothing), gives a `cli` image without them (it needs none); the `sensor` target
# then fails its build (sensor-objects below).
ARG SKANSE_BPF=auto
RUN need=; for c in src/skanse/runtime/bpf/*.bpf.c; do [ -e "${c%.c}.o" ] || need=1; done; \
    if [ -n "$need" ] && [ "$SKANSE_BPF" != 0 ] && [ -e /sys/kernel/btf/vmlinux ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends clang llvm bpftool libbpf-dev \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && if [ "$SKANSE_COMPILE" != 0 ]; then \
      PYTHONPATH=/tmp/buildtools SKANSE_COMPILE=$SKANSE_COMPILE \
        /opt/skanse/bin/pip install --no-deps --no-build-isolation /src; \
    else /opt/skanse/bin/pip install --no-deps /src; fi \
    && /opt/skanse/bin/pip check

# The sensor's image must carry every kernel program whose source is installed: without them
# it would start and only then report the sensor missing. This stage fails the build instead;
# `cli` copies from `build` and never runs it.
FROM build AS sensor-objects
RUN cd /opt/skanse/lib/python3*/site-packages/skanse/runtime/bpf \
    && for c in *.bpf.c; do [ -s "${c%.c}.o" ] || { \
      echo "no ${c%.c}.o: the sensor image needs BTF on the build machine or \`make bpf\` first" >&2; \
      exit 1; }; done

# The runtime sensor's image (`docker build --target sensor`; deploy/sensor/ runs it): the
# same install plus what the sensor calls at run time, libbpf to load its kernel program
# and nft to isolate a container. The default image below, for the CLI and the admission
# webhook, goes without them.
FROM ${BASE} AS sensor
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/skanse/bin:$PATH
# apt's logs, lists and caches are removed: they hold times and would change the layer.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libbpf1 nftables \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
      /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old /var/lib/dpkg/*-old
COPY --from=sensor-objects /opt/skanse /opt/skanse
USER 10001:10001
ENTRYPOINT ["skanse"]
CMD ["runtime", "run", "--help"]

# The default image: the CLI and the admission webhook (deploy/admission/ runs it).
FROM ${BASE} AS cli
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/skanse/bin:$PATH
COPY --from=build /opt/skanse /opt/skanse
WORKDIR /scan
USER 10001:10001
ENTRYPOINT ["skanse"]
CMD ["--help"]
