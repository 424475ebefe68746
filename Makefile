# `make run`: set everything up and run the product's main job.
# `make test`: set everything up and run the whole suite (lint, types, tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench bench-quick bench-api clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch pinned first so pip takes the CPU wheel on disk, never a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/eraser serve

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

$(VENV)/.chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	touch $@

pytest: $(STAMP) $(VENV)/.chromium
	$(BIN)/pytest -q

bench-quick: $(STAMP)
	$(BIN)/eraser bench --quick --out runs/bench-quick

bench-api: $(STAMP)
	$(BIN)/python -m service.bench.api --out runs/bench-api

bench: $(STAMP)
	$(BIN)/eraser bench --out runs/bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache runs var

.PHONY: bench-pipeline
bench-pipeline: $(STAMP)
	$(BIN)/python -m service.bench.pipeline --out runs/bench-pipeline
