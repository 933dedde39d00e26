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
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
RUN python -m venv /opt/skanse && /opt/skanse/bin/pip install .

FROM python:3.12.3-slim-bookworm@sha256:541d45d3d675fb8197f534525a671e2f8d66c882b89491f9dda271f4f94dcd06
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/skanse/bin:$PATH
COPY --from=build /opt/skanse /opt/skanse
WORKDIR /scan
USER 10001:10001
ENTRYPOINT ["skanse"]
CMD ["--help"]
