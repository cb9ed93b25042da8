# The provision node's one entry point. `make run` and `make test` do all their own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv fmt lint typecheck migrations-check browser test-sqlite test-postgres clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@scripts/run.sh

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy .

migrations-check: $(STAMP)
	DJANGO_SETTINGS_MODULE=provision.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

browser:
	@scripts/ensure-chromium.sh

test-sqlite: $(STAMP) browser
	$(BIN)/pytest

test-postgres: $(STAMP)
	scripts/with-postgres.sh $(BIN)/pytest

test: lint typecheck migrations-check test-sqlite test-postgres

clean:
	rm -rf $(VENV) var/*.sqlite3* var/static var/bench-venv

# Benchmarks (never part of `make test`): SQLite and PostgreSQL, ~10 min on 2 cores; BENCH_QUICK=1 for a
# short run. Prints a table against the targets and writes bench/results/latest.json. The node runs as the
# Docker image installs it: the project without its dev extras, in a venv of its own (with them, structlog
# loads rich's tracebacks into every process: ~5 MB more per process tree than in production).
BENCH_VENV := var/bench-venv
.PHONY: bench
$(BENCH_VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	@touch $@

bench: $(BENCH_VENV)/.installed
	scripts/with-postgres.sh $(BENCH_VENV)/bin/python -m bench
