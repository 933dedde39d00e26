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
APT_PACKAGES ?= sysdig docker-registry skopeo wrk chromium libpango-1.0-0 libpangoft2-1.0-0 \
	fonts-dejavu-core poppler-utils

.PHONY: run test lint types imports unit install install-test system-deps clean bench bench-admission

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
run: install
	@echo '$$ skanse scan examples/'
	@$(BIN)/skanse scan examples/; status=$$?; \
	  if [ $$status -gt 1 ]; then exit $$status; fi; \
	  echo "(exit status $$status: 0 = clean, 1 = findings at or above --fail-on, 2 = error)"

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: install-test
	$(BIN)/mypy

imports: install-test
	$(BIN)/lint-imports

unit: install-test system-deps
	$(BIN)/pytest -q

## test: install what the tests need, then lint, types, import contracts and the whole suite
test: lint types imports unit

bench: install system-deps
	$(BIN)/python -m bench.scan_manifests
	$(BIN)/python -m bench.scan_dockerfiles
	$(BIN)/python -m bench.host_audit

## bench-admission: load the webhook over HTTPS (wrk closed loop, open loop at 500/s)
bench-admission: install system-deps
	$(BIN)/python -m bench.admission_load

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
