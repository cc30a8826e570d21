# `make demo` and `make test` are the README's Quickstart: each creates .venv and installs mesa
# (with the CPU build of torch, pinned in constraints.txt) when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck bench

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mesa demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy mesa probes models examples

test: lint typecheck
	$(BIN)/python -m pytest -q

# One experiment of experiments/ (`make bench NAME=bench_env ARGS="--repeats 5"`); without NAME,
# the list of experiments. Same as `.venv/bin/python -m experiments NAME ARGS`.
bench: $(STAMP)
	$(BIN)/python -m experiments $(NAME) $(ARGS)
