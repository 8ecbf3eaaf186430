# releaseflow developer commands. `make run` and `make test` are all a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: pip runs again only when pyproject.toml is newer.
STAMP := $(VENV)/.releaseflow-installed

.PHONY: help venv run test lint typecheck format bench clean distclean

help:
	@echo "make run        start releaseflow with embedded defaults (SQLite in ./data) and a demo pipeline"
	@echo "make test       set up .venv and run the whole suite: lint, types, layers, unit/integration/acceptance"
	@echo "make lint       ruff check, ruff format --check, import-linter layer contract"
	@echo "make typecheck  mypy (strict)"
	@echo "make format     apply ruff format and the safe ruff fixes"
	@echo "make bench      run the benchmarks (reports figures, asserts nothing)"
	@echo "make clean      remove caches and build output; 'make distclean' also removes .venv and ./data"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "releaseflow needs Python 3.11 or newer as $(PYTHON) (try: make PYTHON=python3.11 ...)"; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing releaseflow and its dev tools into $(VENV)"
	@PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

run: venv
	@bash scripts/system-packages demo
	$(BIN)/releaseflow demo

# The whole suite everywhere: the system packages CI installs first (podman, a registry, PostgreSQL),
# installed the same way (as root; otherwise it prints the command to run and stops).
test:
	@bash scripts/system-packages test
	@$(MAKE) --no-print-directory venv
	@bash scripts/check

lint: venv
	@bash scripts/check lint format layers

typecheck: venv
	@bash scripts/check types

format: venv
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

bench: venv
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache src/*.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) data
