# EchoStream: everything a user runs, set up from nothing on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= data
DEMO_DIR ?= data/demo
DEMO_PAIRS ?= 200

.PHONY: demo test corpus setup system-deps clean-data

setup: $(STAMP)

system-deps:
	bash scripts/install_system_deps.sh

$(STAMP): setup.py
	$(MAKE) system-deps
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

corpus: $(STAMP)
	$(PY) scripts/prepare_mini.py --data-dir $(DATA_DIR)
	$(PY) scripts/fit_vocoder.py --data-dir $(DATA_DIR)

demo: $(STAMP)
	$(PY) scripts/prepare_mini.py --data-dir $(DEMO_DIR) --max-pairs $(DEMO_PAIRS)
	$(PY) scripts/fit_vocoder.py --data-dir $(DEMO_DIR)
	cat $(DEMO_DIR)/REPORT.md

test: $(STAMP)
	$(PY) -m pytest -q tests

clean-data:
	rm -rf $(DATA_DIR)
