# `make demo` and `make test` each set up everything on a fresh machine: .venv, torch, rbench.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU wheel here. On a GPU box pass the CUDA build you want: make TORCH='torch==2.13.0' ...
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.rbench-installed

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so nothing later resolves a multi-GB CUDA build on a CPU machine.
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded default (local Ray, MLflow + Optuna in SQLite under ./runs/).
demo: install
	$(VENV)/bin/rbench demo

test: install lint
	$(PY) -m pytest -q --timeout=900

# ruff (configured in pyproject.toml): lint, and the formatting check `ruff format` fixes.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) -m harness.bench.engine_overhead

clean:
	rm -rf runs .pytest_cache
