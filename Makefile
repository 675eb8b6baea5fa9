# envspec developer tasks. `make test` is the whole suite, as CI runs it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_CLUSTER ?= envspec-test
PYTEST_ARGS ?=

.PHONY: install test unit lint schema golden bench helm demo cluster-up cluster-down clean screenshots

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The whole suite: lint, then every test, cluster tests included, against a local
# control plane started here (built from source on first use, then cached) and
# stopped afterwards.
test: install lint
	$(BIN)/envspec cluster up --name $(TEST_CLUSTER) --provider kwok
	status=0; \
	ENVSPEC_TEST_CLUSTER=$(TEST_CLUSTER) $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/envspec cluster down --name $(TEST_CLUSTER) || true; \
	exit $$status

# Fast tests only: no cluster.
unit: install
	$(BIN)/pytest -m "not cluster" $(PYTEST_ARGS)

# ruff (lint and format), mypy --strict over the package, the tests and the benchmarks,
# and the import contracts of pyproject.toml (an import against the layers fails).
lint: install
	$(BIN)/ruff check envspec tests bench docs
	$(BIN)/ruff format --check envspec tests bench docs
	$(BIN)/mypy --strict envspec tests bench docs
	$(BIN)/lint-imports

# Regenerate the committed JSON Schema from the model.
schema: install
	$(BIN)/envspec schema > schemas/maestro-env.schema.json

# Regenerate the golden renderings of examples/ (review the diff before committing).
golden: install
	ENVSPEC_UPDATE_GOLDEN=1 $(BIN)/pytest tests/test_golden.py -q

# Helm 4, the second peer of bench/up.py: built from the Go module proxy on first use
# (minutes), then cached beside the control plane. Only the benchmarks need it.
helm: install
	$(BIN)/python bench/helm.py

bench: install helm
	$(BIN)/python bench/render.py
	$(BIN)/envspec cluster up --name envspec-bench --provider kwok
	status=0; \
	export KUBECONFIG=$$($(BIN)/envspec cluster kubeconfig --name envspec-bench); \
	for bench in imports up watch gc_sweep test worker api; do $(BIN)/python bench/$$bench.py || status=$$?; done; \
	$(BIN)/envspec cluster down --name envspec-bench || true; \
	exit $$status

# docs/dashboard.png for the README: the REST API's dashboard in headless Chromium, on the test cluster.
screenshots: install
	$(BIN)/envspec cluster up --name $(TEST_CLUSTER) --provider kwok
	KUBECONFIG=$$($(BIN)/envspec cluster kubeconfig --name $(TEST_CLUSTER)) $(BIN)/python docs/screenshots.py

# The quick start: a local cluster and the example environment on it.
demo: install
	$(BIN)/envspec cluster up
	KUBECONFIG=$$($(BIN)/envspec cluster kubeconfig) $(BIN)/envspec up -f examples/fullstack/maestro-env.yaml
	KUBECONFIG=$$($(BIN)/envspec cluster kubeconfig) $(BIN)/envspec test -f examples/fullstack/maestro-env.yaml
	KUBECONFIG=$$($(BIN)/envspec cluster kubeconfig) $(BIN)/envspec status -f examples/fullstack/maestro-env.yaml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
