# callbridge — the two commands of the README, and the steps they are made of.
#   make run    create .venv if missing, install, serve on 127.0.0.1:8080 (SQLite under ./var/)
#   make test   install dev dependencies, then lint, types, import contracts and the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-dev lint types contracts pytest clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "callbridge needs Python >= 3.11 (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	mkdir -p var
	$(BIN)/callbridge serve

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install-dev
	$(BIN)/mypy

contracts: install-dev
	$(BIN)/lint-imports

pytest: install-dev
	$(BIN)/pytest

test: lint types contracts pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
