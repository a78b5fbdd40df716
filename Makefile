# rasterflow: `make demo` and `make test` are all a new user needs on a fresh machine.
# Each creates the environment (.venv) when it is missing or pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= rasterflow-demo

.PHONY: demo test lint bench system-deps clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,globus]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/rasterflow demo $(DEMO_DIR)

# System packages the tests use for real parts: Slurm (a single-node cluster on localhost)
# and Chromium (the viewer test). Installed with apt-get when missing and we are root.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  command -v slurmd >/dev/null && command -v chromium >/dev/null || { \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends slurm-wlm munge chromium >/dev/null; }; \
	  bash .ci/slurm_up.sh; \
	else echo "not root: Slurm and browser tests will be skipped with a reason"; fi

# The import architecture (layers, no cycles) is tests/unit/test_architecture.py: it runs with
# the suite, and alone in `lint`. mypy reads its settings from pyproject.toml ([tool.mypy]).
test: $(BIN)/.installed system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q tests/unit/test_architecture.py

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_tiles.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
