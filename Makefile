# Each target does one job; `make help` lists them. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs Python 3.12: use it locally too (pyenv's, if it is not on PATH).
PYTHON ?= $(shell for p in python3.13 python3.12 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.1[23]*/bin/python 2>/dev/null); do \
  $$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the pinned dependencies

.PHONY: chromium
chromium: ## Install Debian's chromium for the browser tests, if missing
	@test -x $(CHROMIUM) || { echo "installing chromium"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

.PHONY: test
test: $(STAMP) chromium ## Run every test (unit, integration, infra, browser)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests; rc=$$?; test $$rc -eq 5 && echo "no tests collected" && exit 1; exit $$rc

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: format
format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: synth
synth: $(STAMP) ## Synthesise the CDK app offline into cdk.out
	$(BIN)/python infra/app.py

.PHONY: demo
demo: $(STAMP) ## The closed loop on this machine: local stack, synthetic company, report
	$(BIN)/python -m closedloop.local.demo

.PHONY: serve
serve: $(STAMP) ## Keep the local stack and demo site up on 127.0.0.1:8000
	$(BIN)/python -m closedloop.local.serve

.PHONY: bench
bench: $(STAMP) ## Run the benchmarks (installs the peers they compare against)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,bench]'
	$(BIN)/python benchmarks/collect.py
	$(BIN)/python benchmarks/attribution.py
	$(BIN)/python benchmarks/attribute_job.py

.PHONY: lock
lock: ## Re-resolve and pin every transitive dependency into requirements.lock
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e '.[dev,bench]'
	.lockvenv/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .lockvenv

.PHONY: clean
clean: ## Remove the venv and generated output
	rm -rf $(VENV) cdk.out out .pytest_cache .mypy_cache .ruff_cache
