# The two commands of the README:
#   make serve   install into .venv and start the server (SQLite, no external service)
#   make test    install the dev tools into .venv, then lint, type-check and test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# llama-cpp-python compiles llama.cpp. A "native" build (AVX-512/AMX kernels picked
# for the build machine) segfaulted on Gemma 3 here; the portable build runs.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: serve test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) install -e ".[local]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e ".[local,torch,dev,postgres]"
	touch $@

serve: $(VENV)/.installed
	$(BIN)/pluggably serve

test: lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

# The benchmark suite (about 10 minutes; LiteLLM's proxy is installed into
# bench/.venv-litellm on first use): bench/results/suite.{json,md}
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
