# Two set-up commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing relies on a hand install.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BASE   := $(VENV)/.installed-base
FULL   := $(VENV)/.installed-full

.PHONY: demo test docs lint typecheck services packages unit alone bench faults dist clean

$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(FULL): $(BASE) pyproject.toml
	$(PY) -m pip install -q -e ".[test,dev,rabbitmq,mqtt,mongodb,postgres,cron,docs,web,otel,uvloop]"
	touch $@

## Run the welcome-email example on the embedded durable default, a SQLite file (no server
## needed; a fresh file in a temporary directory each time, so no earlier run's items remain).
demo: $(BASE)
	WRKR_URL="sqlite:///$$(mktemp -d)/demo.db" $(PY) -m examples.welcome_email --follow-up-in "3 seconds"

## Lint, type-check, then the whole test suite; services are started if they are down.
test: lint typecheck docs services unit alone

lint: $(FULL)
	$(PY) -m ruff check .

typecheck: $(FULL)
	$(PY) -m mypy

## Build the documentation site from docs/ into build/site; a broken link or reference fails.
## (No --quiet: it hides the warnings that --strict turns into a failure.)
docs: $(FULL)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

packages:
	bash scripts/debian-packages.sh

services: packages
	bash scripts/services/postgres.sh
	bash scripts/services/rabbitmq.sh
	bash scripts/services/mosquitto.sh

# Tests that stop or restart a shared service run alone, after the rest. The others run in
# 4 processes, a file per process at a time (they mostly wait on servers: 13 min -> 4 min).
# Both need the Debian packages (chromium for the browser tests) first, even under make -j.
unit: $(FULL) packages
	$(PY) -m pytest -m "not alone" -n 4 --dist loadfile

alone: $(FULL) packages
	$(PY) -m pytest -m alone || [ $$? -eq 5 ]

bench: $(FULL)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench

## Kill -9 workers, restart private servers, cut the harness's own connections, kill a
## publisher mid-batch, poison and overload: one table per backend (0 lost).
faults: $(FULL) services
	$(PY) -m bench.faults

## Build the sdist and the wheel into dist/ and check them as PyPI would (twine --strict).
dist: $(FULL)
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist
