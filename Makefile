# The two commands of the README's quick start, and what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up test lint setup lighthouse bench

$(BIN)/oberon: pyproject.toml
	bash scripts/system-packages up
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# axe-core for the browser tests and Lighthouse for `make lighthouse`, pinned by package-lock.json.
node_modules/.package-lock.json: package.json package-lock.json
	bash scripts/system-packages test
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(BIN)/oberon node_modules/.package-lock.json

up: $(BIN)/oberon
	$(BIN)/oberon up

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	bash scripts/system-packages test
	$(BIN)/oberon check
	$(BIN)/pytest

# A recorded Lighthouse run of the event page (about 30 s): scores into bench/results/.
lighthouse: setup
	$(BIN)/python bench/lighthouse.py

# The load benchmarks of issue 8 (about 8 min; needs Debian's wrk and varnishd): results into bench/results/.
bench: setup
	$(BIN)/python bench/run.py --runs 3
