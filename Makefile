# The two commands a newcomer runs: `make demo` and `make test`. Both bootstrap what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit e2e chaos test-kind binaries bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: the seed's DRF example on a local control plane (one 9 CPU / 18 GiB node, A and B)
demo: $(STAMP)
	$(BIN)/kubedrf demo

## test: lint, type-check, unit tests, then the end-to-end tests on the local control plane
test: lint typecheck binaries
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check operator tests benchmarks examples
	$(BIN)/ruff format --check operator tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples/frameworks

unit: $(STAMP)
	$(BIN)/pytest tests/unit

e2e: binaries
	$(BIN)/pytest tests/e2e

## chaos: three minutes of faults under load, checked against the invariants (also in `test`)
chaos: binaries
	$(BIN)/pytest -m chaos tests/e2e/test_chaos.py

## test-kind: the chart and real containers on a real node (kubelet + containerd) beside the
## local control plane; images built offline. Needs root, docker.io, containerd, debootstrap,
## containernetworking-plugins (README, "Real containers"). Not part of `test`.
test-kind: binaries
	$(BIN)/pytest -m kind tests/kind

## binaries: build (or reuse from the cache) the pinned control-plane binaries
binaries: $(STAMP)
	$(BIN)/kubedrf dev provision

bench: $(STAMP)
	$(BIN)/python benchmarks/allocator.py --shape decline --nodes 10000 --frameworks 1000 --rounds 5
	$(BIN)/python benchmarks/allocator.py --shape quota --nodes 3000 --frameworks 3000 --roles 3000 --rounds 5

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
