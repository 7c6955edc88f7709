# prunekit — two commands on a fresh machine: `make demo`, `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pinned for dev/CI so a resolver never pulls a newer torch (and a multi-GB CUDA build).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint bench-coverage clean

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/prunekit demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench-coverage: $(STAMP)
	$(BIN)/python benchmarks/coverage.py

clean:
	rm -rf $(VENV) demo-report .pytest_cache
