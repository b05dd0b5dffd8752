# cartsim developer commands. GNU make; needs only python3 (3.10+) on PATH:
# everything else is installed into .venv from pyproject.toml.
#   make demo   run the default simulation (writes outputs/<date>/<time>/simulation.nc)
#   make test   lint + tests (what CI runs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint bench clean wheel-check app notebook

venv: $(STAMP)

# Reinstall only when pyproject.toml changes (or the venv is new).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	@touch $(STAMP)

demo: venv
	$(BIN)/cartsim

# The dosing what-if app as a page on this computer (prints the URL; Ctrl+C stops it).
app: venv
	$(BIN)/cartsim-app

# JupyterLab on the notebooks/ folder (opens a browser tab; Ctrl+C stops it).
notebook: venv
	$(BIN)/jupyter lab notebooks/

# pytest exits 5 when it collects no test; make fails on it like on any non-zero
# exit, so an empty or mis-collected suite fails CI. Keep it that way.
test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Build the wheel, install it into a fresh venv outside the checkout and run the CLI and
# the API from there (CI runs it after `make test`; ~2-3 min, mostly installing and compiling).
wheel-check:
	bash .ci/wheel_check.sh

lint: venv
	$(BIN)/ruff check .

# ~20 min on the 2-core machine; each script also runs alone (see benchmarks/README.md).
bench: venv
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/trial.py
	$(BIN)/python benchmarks/fit.py
	$(BIN)/python benchmarks/sweep.py --multirun-points 100
	$(BIN)/python benchmarks/work_precision.py
	$(BIN)/python benchmarks/shard.py

# Build artefacts and caches only; keeps .venv and the run outputs (outputs/, multirun/).
clean:
	rm -rf build dist .pytest_cache .ruff_cache .benchmarks *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
