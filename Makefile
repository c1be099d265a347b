# Quick start: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo bench compare samples clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ not found: install it, or run make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python -m tools.demo

bench: setup
	$(BIN)/python -m pytest benchmarks --benchmark -q

compare: setup
	$(BIN)/python -m benchmarks.compare

samples: setup
	$(BIN)/python -m data.generate
	$(BIN)/python -m tools.sample_logs

clean:
	rm -rf $(VENV) .replay-state demo-out .benchmarks
