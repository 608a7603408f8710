# One-command set-up: every target creates .venv from requirements + constraints when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
SIM_PORT ?= 8799

.PHONY: help venv demo test test-faults sim bench lint validate airflow clean

help:
	@echo "make demo | test | sim | bench | lint | airflow | validate ZIP=... FILE_TYPE=csv|ics | clean"

# The venv: the pinned requirements, then the provider itself (plugins/zoho_crm, editable, from pyproject.toml):
# Airflow registers the zoho_crm connection type (its form and Test button) only from an installed provider.
$(STAMP): requirements.txt requirements-test.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -rf plugins/*.egg-info  # setuptools' build leftover: on sys.path it would be a second copy of the provider
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m include.devtools.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

sim: $(STAMP)
	$(BIN)/python -m include.devtools.zoho_simulator --port $(SIM_PORT) $(SIM_ARGS)

bench: $(STAMP)  # every bench runs; the target fails afterwards when one of them missed a target
	@status=0; \
	for bench in bench_validation bench_download bench_tables; do \
	  echo "== bench/$$bench.py"; $(BIN)/python bench/$$bench.py || status=1; \
	done; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff check --select AIR dags plugins

validate: $(STAMP)
	$(BIN)/python -m zoho_crm.cli.validate $(ZIP) --file-type $(or $(FILE_TYPE),csv) $(VALIDATE_ARGS)

airflow: $(STAMP)
	$(BIN)/python -m include.devtools.local_airflow

clean:
	rm -rf .airflow output .pytest_cache
