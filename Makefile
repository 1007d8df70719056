# Two entry points: `make demo` and `make test`. Both build .venv from pyproject.toml first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck generate check-generated pytest bench bench-quick clean

$(BIN)/.installed: pyproject.toml tests/toy_backend/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e tests/toy_backend  # a backend from another distribution
	touch $@

## demo: install evstore alone (what the demo needs) and run the demo on ./evstore-demo.db
$(BIN)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

demo: $(BIN)/.demo
	$(BIN)/evstore demo

## test: install, then lint, type-check, check generated code, run the whole test suite
test: $(BIN)/.installed lint typecheck check-generated pytest

LINTED := src tests tools $(wildcard benchmarks)

lint: $(BIN)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports  # the layers: contracts in pyproject.toml [tool.importlinter]

typecheck: $(BIN)/.installed
	$(BIN)/mypy

generate: $(BIN)/.installed
	$(BIN)/python tools/async_to_sync.py

check-generated: $(BIN)/.installed
	$(BIN)/python tools/async_to_sync.py --check

# Most tests wait on servers, not the CPU: three workers (more made timing-bound tests
# contend on 2 cores); then, alone, the tests that
# restart or kill servers (marked serial).
pytest: $(BIN)/.installed
	$(BIN)/pytest tests -q -n 3 -m "not serial"
	$(BIN)/pytest tests -q -m serial

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks

bench-quick: $(BIN)/.installed
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache evstore-demo.db*
