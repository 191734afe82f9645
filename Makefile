# callbridge — the two commands of the README, and the steps they are made of.
#   make run    create .venv if missing, install, serve on 127.0.0.1:8080 (SQLite under ./var/)
#   make test   install dev dependencies (and Debian's chromium for the browser tests, when
#               missing and we may: as root), then lint, types, import contracts and the suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-dev browser lint types contracts pytest clean

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

# The browser tests drive Debian's chromium through playwright (never `playwright install`,
# which downloads a browser). CI runs as root: install it there when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (browser tests)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; \
		else echo "chromium is missing: install Debian's chromium to run the browser tests"; fi; }

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

pytest: install-dev browser
	$(BIN)/pytest

test: lint types contracts pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
