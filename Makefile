# parley: `make demo` runs it, `make test` tests it. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "parley needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP) ## Run parley with the demo store and sandbox providers (http://127.0.0.1:8000)
	$(BIN)/parley demo

test: $(STAMP) ## Run the whole suite, on SQLite and PostgreSQL
	$(BIN)/pytest

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP) ## Run the benchmarks (figures beside in-run ceilings)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var
