# The two commands a newcomer needs:
#   make demo   — install into .venv and run the whole detect → respond → review loop with no servers
#   make test   — install everything, start the real services, run lint, types and the test suite
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test lint typecheck compose-check services-up services-down unit integration bench clean

$(BIN)/soar: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/soar

demo: install
	$(BIN)/soar demo

lint: install
	$(BIN)/ruff check soar integrations tests scripts
	$(BIN)/ruff format --check soar integrations tests scripts

typecheck: install
	$(BIN)/mypy

compose-check:
	@command -v docker-compose >/dev/null || scripts/ensure_packages.sh docker-compose
	ELASTIC_PASSWORD=check SOAR_ELASTICSEARCH_PASSWORD=check docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid"

services-up: install
	scripts/services.sh up

services-down:
	scripts/services.sh down

# The fast suite (no service) prints the branch coverage of the playbook engine and fails under 90 %.
ENGINE_COVERAGE := --cov=soar/playbooks --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=90

unit: install
	$(BIN)/pytest -q -m "not integration" $(ENGINE_COVERAGE)

# The test command: everything a fresh machine needs, then every check (the unit suite with the engine's
# coverage, then the integration suite).
test: install lint typecheck compose-check services-up
	scripts/ensure_chromium.sh
	CI=$${CI:-true} $(BIN)/pytest -q -m "not integration" $(ENGINE_COVERAGE) --junitxml=test-artifacts/junit-unit.xml
	CI=$${CI:-true} $(BIN)/pytest -q -m integration --junitxml=test-artifacts/junit.xml

bench: install services-up
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) .cache/run .mypy_cache .ruff_cache .pytest_cache
