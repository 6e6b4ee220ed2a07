# Dice Console: `make run` starts the console, `make test` runs every test this machine can run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test lint ktestenv engines clean

install: $(STAMP)

# Idempotent: re-runs pip only when pyproject.toml changed.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Dice Console needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(BIN)/python manage.py standalone --host $(HOST) --port $(PORT)

# With Go installed, the Kubernetes tier's control plane is built first (minutes the first
# time, seconds after); without Go that tier is skipped with a one-line note.
# NO_KTESTENV=1 skips that build (a run that selects no Kubernetes test, e.g. CI's SQLite tier
# running beside the tier that builds it).
test: install
	@if [ -n "$(NO_KTESTENV)" ]; then echo "k8s tier: not building tools/ktestenv (NO_KTESTENV)"; \
	elif command -v go >/dev/null 2>&1; then $(MAKE) --no-print-directory ktestenv; \
	else echo "k8s tier: Go not found, skipping the build of tools/ktestenv (see README)"; fi
	@$(MAKE) --no-print-directory engines
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python tools/import_cycles.py
	$(BIN)/python manage.py makemigrations --check --dry-run

# Spark and Flink, each in its own virtual environment (.engines/), never the console's.
engines:
	@PYTHON=$(PYTHON) tools/engines/install.sh

ktestenv:
	$(MAKE) --no-print-directory -C tools/ktestenv

clean:
	rm -rf $(VENV) var tools/ktestenv/bin
