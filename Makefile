# The two commands of the README:
#   make serve   install into .venv and start the server (SQLite, no external service)
#   make test    install the dev tools into .venv, then lint, type-check and test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# Every install resolves inside constraints.txt: the versions the suite last passed with.
# A fresh clone thus installs what CI tested, not whatever was released this morning.
# `make lock` re-resolves the newest releases on purpose and rewrites the file.
CONSTRAINTS := constraints.txt
# llama-cpp-python compiles llama.cpp. A "native" build (AVX-512/AMX kernels picked
# for the build machine) segfaulted on Gemma 3 here; the portable build runs.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: serve test lint typecheck pytest bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install -c $(CONSTRAINTS) -e ".[local]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -c $(CONSTRAINTS) -e ".[local,torch,dev,postgres]"
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

# Re-resolve every dependency at today's newest release in a new venv and record the
# result in constraints.txt (local version labels such as torch's +cpu dropped: the
# pyproject pin picks the build); then run `make test` and commit both if it passes.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip --disable-pip-version-check -q install -e ".[local,torch,dev,postgres]"
	{ echo "# Written by 'make lock' on $$(date -u +%F) (Python $$($(LOCK_VENV)/bin/python -c 'import platform; print(platform.python_version())')): the versions 'make serve' and 'make test' install."; \
	  $(LOCK_VENV)/bin/python -m pip --disable-pip-version-check freeze --exclude-editable | sed 's/+[0-9a-z.]*$$//' | sort -f; } > $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
