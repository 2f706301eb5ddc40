# One virtualenv, made on first use; `make test` installs what it needs and runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Ralph, the Learning Record Store the xAPI forwarding test runs, pins a FastAPI of its own: it
# lives in a virtualenv of its own (the tests find it at .venv-ralph, or at $ZPD_RALPH_VENV)
RALPH_VENV ?= .venv-ralph
RALPH_STAMP := $(RALPH_VENV)/.installed-stamp
# A real Caliper sensor (ims-caliper, from the npm registry, as package-lock.json pins it) for the
# Caliper endpoint's test
SENSOR := tests/caliper_sensor
SENSOR_STAMP := $(SENSOR)/node_modules/.installed-stamp

.PHONY: install lint test test-fast serve clean

install: $(STAMP) $(RALPH_STAMP) $(SENSOR_STAMP)

$(SENSOR_STAMP): $(SENSOR)/package-lock.json
	npm ci --prefix $(SENSOR) --no-audit --no-fund --loglevel=error
	touch $(SENSOR_STAMP)

$(RALPH_STAMP):
	test -x $(RALPH_VENV)/bin/python || $(PYTHON) -m venv $(RALPH_VENV)
	$(RALPH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RALPH_VENV)/bin/python -m pip install --quiet 'ralph-malph[backend-fs,lrs,cli]==5.1.0' requests
	touch $(RALPH_STAMP)

# torch first, pinned: the CPU build this machine keeps on disk (a bare "torch" pulls a CUDA build).
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# ruff (lint and format) and mypy, configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# what CI runs (.ci/run): the checks, then the whole suite
test: lint $(RALPH_STAMP) $(SENSOR_STAMP)
	$(BIN)/python -m pytest

# for local work: the checks and the suite without the tests marked slow
test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) $(RALPH_VENV) $(SENSOR)/node_modules .pytest_cache *.egg-info

# The API on 127.0.0.1:8000 with the SQLite store under var/, the bundled graph, catalog and model,
# and a printed demo key.
serve: $(STAMP)
	$(BIN)/zpd serve --demo-key --host 127.0.0.1 --port 8000
