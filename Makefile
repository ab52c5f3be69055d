# The two commands: `make run` starts the platform, `make test` passes the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARGS   ?=
# test processes (pytest-xdist); TEST_WORKERS=0 runs in this process
TEST_WORKERS ?= 2

.PHONY: run test lint bench

run: $(VENV)/.installed
	$(BIN)/hutong serve --demo $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/ruff check hutong tests benchmarks
	$(BIN)/pytest -n $(TEST_WORKERS) $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hutong tests benchmarks

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks $(ARGS)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	sh scripts/install-browser.sh
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(BIN)/pip install -q -e '.[bench]'
	touch $@
