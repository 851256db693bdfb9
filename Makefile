# aiida-reactmlip: `make demo` and `make test` do all the set-up on a fresh machine (as root, offline but
# for the package registries). Every target is idempotent: it installs only what is missing.

VENV      ?= .venv
PYTHON    ?= python3
PROFILE   ?= reactmlip
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.reactmlip-installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-fast bench setup install system-deps clean-venv

## Debian packages: Quantum ESPRESSO (pw.x, neb.x), its pseudopotentials, Open MPI, a faster BLAS.
system-deps:
	@if ! command -v pw.x >/dev/null || ! command -v neb.x >/dev/null || [ ! -d /usr/share/espresso/pseudo ]; then \
		echo ">>> installing Quantum ESPRESSO from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			quantum-espresso quantum-espresso-data libopenblas0-serial >/dev/null; \
	fi
	@command -v pw.x >/dev/null && echo ">>> pw.x: $$(command -v pw.x)"

## The virtualenv with the package. torch is pinned to the CPU wheel; constraints.txt pins the rest.
$(STAMP): pyproject.toml constraints.txt
	@echo ">>> creating $(VENV) and installing aiida-reactmlip (torch==2.13.0 CPU)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">>> pip's output goes to $(VENV)/install.log (printed here if it fails)"
	@( $(BIN)/pip install -q --upgrade pip \
	  && $(BIN)/pip install -q torch==2.13.0 \
	  && $(BIN)/pip install -q -c constraints.txt -e '.[tests]' ) > $(VENV)/install.log 2>&1 \
	  || { tail -n 60 $(VENV)/install.log; exit 1; }
	touch $(STAMP)

install: $(STAMP)

## AiiDA profile (SQLite, no broker), localhost, codes, pseudopotential family, bundled model weights.
setup: system-deps install
	$(BIN)/reactmlip setup --profile-name $(PROFILE)

## The main job end to end: prints the error table and where the results are.
demo: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/reactmlip -p $(PROFILE) demo

## The test suite (SQLite suite, pw.x runs, MLIPs, and the PostgreSQL + RabbitMQ daemon path), without the
## end-to-end runs marked `slow` (about 20 minutes on 2 cores).
test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## Only the end-to-end runs marked `slow`: the demo, the full fine-tuning study, the active-learning evidence,
## DFT NEB against MLIP NEB (about 25 minutes on 2 cores). CI runs `make test` and then this.
test-slow: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

## Only the fast tests (no pw.x, no daemon): seconds to a minute.
test-fast: install
	$(BIN)/python -m pytest -m "not pwx and not daemon and not slow" $(PYTEST_ARGS)

## Performance benchmarks (not timed tests): results are printed and written to benchmarks/results/.
bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m benchmarks

clean-venv:
	rm -rf $(VENV)
