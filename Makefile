# One virtualenv, made on first use; `make test` installs what it needs and runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint test test-fast serve clean

install: $(STAMP)

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
test: lint
	$(BIN)/python -m pytest

# for local work: the checks and the suite without the tests marked slow
test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

# The API on 127.0.0.1:8000 with the SQLite store under var/, the bundled graph, catalog and model,
# and a printed demo key.
serve: $(STAMP)
	$(BIN)/zpd serve --demo-key --host 127.0.0.1 --port 8000
