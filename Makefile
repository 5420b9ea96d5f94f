# From nothing to faces in two commands (Debian/Ubuntu; see the README for managing your own environment):
#   make demo    set up, then draw faces from real recorded voices with the shipped demo model
#   make test    set up, then lint and run the test suite (what CI runs)
# Set-up is tools/setup.sh: apt packages, a virtual environment in $(VENV), torch pinned first, the package
# with its extras. A second run only checks. PYTHON, VENV and TORCH (a pip spec) can be overridden.
PYTHON ?= python3
VENV ?= .venv
OUT ?= demo-faces
BIN := $(VENV)/bin

.PHONY: setup demo test
setup:
	@bash tools/setup.sh "$(PYTHON)" "$(VENV)"

demo: setup
	@PATH="$(abspath $(BIN)):$$PATH" $(BIN)/s2f examples -o "$(OUT)"
	@echo "(s2f and python are in $(VENV)/bin: source $(VENV)/bin/activate to use them by name)"

test: setup
	@echo "[test] ruff check src tests benchmarks tools"
	@$(BIN)/python -m ruff check src tests benchmarks tools
	@echo "[test] python -m pytest"
	@PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest
