# The two commands of the README: `make run` and `make test`.
# Both work on a fresh machine as root with nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages that tests start for real (registry, BPF toolchain, ...).
# sysdig: decodes the legacy Falco .scap captures and is the libsinsp oracle in tests/rules.
# docker-registry, skopeo: the real registry and an independent image copier for tests/oci.
# wrk: the admission webhook's load benchmark.
# chromium: opens the posture report in tests/report_posture (console errors, screenshot);
# libpango-1.0-0, libpangoft2-1.0-0, fonts-dejavu-core: WeasyPrint's runtime for the PDF;
# poppler-utils: pdftotext reads the PDF back in the end-to-end test.
# iproute2, nftables, util-linux, bsdutils: the runtime tests' network namespaces, veth
# pairs, isolation tables, unshare and `script`; openssl: certificates for the webhook
# output's HTTPS test.
# debootstrap: a real Debian minbase root file system for the SBOM and image tests (cached
# under /var/cache/skanse-tests by tests/_debian.py).
# podman, buildah, containerd, runc, umoci, uidmap, conmon, catatonit: real containers and
# image builds in the runtime and end-to-end tests (crun refuses this machine's hybrid cgroups:
# the tests pass --runtime runc). postgresql: the report's history store against a real server.
# zsh, fish: `skanse completion zsh|fish` scripts are loaded by the real shells in a test.
APT_PACKAGES ?= sysdig docker-registry skopeo wrk chromium libpango-1.0-0 libpangoft2-1.0-0 \
	fonts-dejavu-core poppler-utils iproute2 nftables util-linux bsdutils openssl \
	debootstrap podman buildah containerd runc umoci uidmap conmon catatonit \
	containernetworking-plugins slirp4netns postgresql zsh fish \
	$(BPF_PACKAGES)
# clang, llvm, bpftool, libbpf-dev: build the runtime sensor's CO-RE BPF object (`make bpf`);
# libbpf1: loads it at run time. `make run` needs only these.
BPF_PACKAGES ?= clang llvm bpftool libbpf-dev libbpf1

.PHONY: run test lint types imports unit install install-test system-deps clean bench \
	bench-admission bench-sensor bpf bpf-deps image wheel sdist compiled test-compiled

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## run: install skanse into .venv and scan the bundled examples (exit 1 = findings, as designed)
# (no BPF toolchain: scanning YAML does not need the sensor; `make bpf` builds it)
run: install
	@echo '$$ skanse scan examples/'
	@$(BIN)/skanse scan examples/; status=$$?; \
	  if [ $$status -gt 1 ]; then exit $$status; fi; \
	  echo "(exit status $$status: 0 = clean, 1 = findings at or above --fail-on, 2 = error)"

# Installs the Debian packages named in $(1) that are missing (as root, with apt-get).
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
endef

system-deps:
	$(call apt_install,$(APT_PACKAGES))

bpf-deps:
	$(call apt_install,$(BPF_PACKAGES))

# The runtime sensor's kernel program: compiled against the vmlinux.h of the build machine's
# kernel (generated here, never committed); CO-RE relocations make the object load on other
# kernels with BTF. BTF's line info names the source relative to the checkout
# (-fdebug-prefix-map), so two checkouts build the same object. Without BTF at build time
# there is nothing to compile against: the sensor then reports the object as missing and its
# tests skip with that reason.
BPF_DIR   := src/skanse/runtime/bpf
BPF_OBJ   := $(BPF_DIR)/sensor.bpf.o $(BPF_DIR)/isolate.bpf.o
BPF_BUILD := build/bpf
BTF       ?= /sys/kernel/btf/vmlinux
BPF_ARCH  := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

$(BPF_BUILD)/vmlinux.h:
	@mkdir -p $(BPF_BUILD)
	bpftool btf dump file $(BTF) format c > $@.tmp
	mv $@.tmp $@

$(BPF_DIR)/%.bpf.o: $(BPF_DIR)/%.bpf.c $(BPF_BUILD)/vmlinux.h
	clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(BPF_BUILD) \
	  -fdebug-prefix-map=$(CURDIR)=. -c $< -o $@.tmp
	llvm-strip -g $@.tmp
	mv $@.tmp $@

bpf: bpf-deps
	@if [ -e $(BTF) ]; then $(MAKE) --no-print-directory $(BPF_OBJ); \
	else echo "warning: $(BTF) is missing: the eBPF sensor is not built (its tests skip)"; fi

## image: build localhost/skanse:VERSION (CLI, webhook) and localhost/skanse-sensor:VERSION with
## podman, reproducibly, on a Debian base made here (IMAGE_BASE=ref builds on another base)
IMAGE_BASE ?=
image: bpf
	@command -v podman >/dev/null || $(MAKE) --no-print-directory system-deps
	SKANSE_IMAGE_BASE=$(IMAGE_BASE) $(PYTHON) tools/images.py

## wheel: dist/skanse-VERSION-cp3XX-cp3XX-linux_<arch>.whl with the sensor's BPF object and
## the admission decision compiled with mypyc (built without isolation, in .venv: mypyc
## type-checks with the project's dependencies)
wheel: bpf install-test
	SKANSE_BPF=require SKANSE_COMPILE=require $(BIN)/pip wheel --no-deps --no-build-isolation \
	  --quiet -w dist .

## compiled: the wheel as `make wheel` builds it (the admission decision's modules compiled
## with mypyc, setup.py COMPILED), unpacked into build/compiled: what the bench and
## `make test-compiled` import (PYTHONPATH=build/compiled)
COMPILED_DIR := build/compiled
compiled: $(COMPILED_DIR)/.built
$(COMPILED_DIR)/.built: setup.py pyproject.toml $(shell find src/skanse -name '*.py') | install-test
	rm -rf build/wheel-compiled $(COMPILED_DIR)
	SKANSE_COMPILE=require $(BIN)/pip wheel --no-deps --no-build-isolation --quiet \
	  -w build/wheel-compiled .
	$(BIN)/pip install --no-deps --quiet --target $(COMPILED_DIR) build/wheel-compiled/skanse-*.whl
	touch $@

## sdist: dist/skanse-VERSION.tar.gz (the BPF source; a build from it compiles the object)
sdist: install-test
	$(BIN)/python -m build --sdist --outdir dist .

lint: install-test
	$(BIN)/ruff check src tests bench tools setup.py
	$(BIN)/ruff format --check src tests bench tools setup.py

types: install-test
	$(BIN)/mypy

imports: install-test
	$(BIN)/lint-imports

unit: install-test system-deps bpf
	$(BIN)/pytest -q

# The suite again against the compiled build (mypyc checks annotations at run time and
# compiles calls between functions: the build must pass what the sources pass), less the
# directories whose code it does not compile (the sensor, the end-to-end images, the report's
# browser test), which the source run covers.
COMPILED_SKIP ?= tests/runtime tests/e2e tests/report_posture
test-compiled: compiled
	SKANSE_EXPECT_COMPILED=1 PYTHONPATH=$(COMPILED_DIR) $(BIN)/pytest -q -p no:cacheprovider \
	  $(addprefix --ignore=,$(COMPILED_SKIP))

## test: install what the tests need, then lint, types, import contracts and the whole suite
## (source, then the compiled modules' tests against the compiled build)
test: lint types imports unit test-compiled

bench: install system-deps
	$(BIN)/python -m bench.scan_manifests
	$(BIN)/python -m bench.scan_dockerfiles
	$(BIN)/python -m bench.host_audit

## bench-admission: load the webhook over HTTPS (wrk closed loop, open loop at 500/s)
bench-admission: install system-deps
	$(BIN)/python -m bench.admission_load

## bench-sensor: what the eBPF sensor costs the machine it watches (root; several minutes)
bench-sensor: install system-deps bpf
	$(BIN)/python -m bench.sensor

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(BPF_BUILD) $(BPF_OBJ)
