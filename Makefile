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

# axe-core and Lighthouse for the browser tests and `make lighthouse`, pinned by package-lock.json.
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

# Lighthouse on the home, event and category pages (about 45 s), as tests/browser/test_lighthouse.py runs it
# in `make test`: scores into bench/results/lighthouse-<page>.json, exit 1 when a category is under 90.
lighthouse: setup
	$(BIN)/python bench/lighthouse.py

# The load benchmarks of issue 8 (about 8 min; needs Debian's wrk and varnishd): results into bench/results/.
bench: setup
	$(BIN)/python bench/run.py --runs 3
