# Two commands set up a fresh machine: `make workbook` (run every notebook) and `make test` (run the tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup lab workbook test bench reproduce lint clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

lab: setup  ## JupyterLab on notebooks/
	$(BIN)/jupyter lab notebooks/

workbook: setup  ## execute every notebook headless into runs/ (executed copies + HTML)
	$(BIN)/python -m fer_utils.workbook

test: setup  ## the whole test suite (what CI runs)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

bench: setup  ## speed and memory, as ratios against baselines measured in the same run
	$(BIN)/python benchmarks/run.py

reproduce: setup  ## retrain the shipped models from their cards on your FER2013 and compare
	$(BIN)/python -m fer_utils reproduce

lint: setup  ## ruff's checks (the code is not run through ruff format)
	$(BIN)/python -m ruff check .

clean:
	rm -rf runs .pytest_cache
