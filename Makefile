# Dice Console: `make run` starts the console, `make test` runs every test this machine can run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test lint ktestenv engines clean runner

install: $(STAMP) runner

# The compiled step runner (agent/gorunner: Go standard library only, static, CGO_ENABLED=0) that
# runs local pipeline steps when it is built; without Go the Python agent runs them (README).
GO     ?= $(shell command -v go 2>/dev/null || { test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go; })
RUNNER := agent/bin/dice-step
# The compiled shim (agent/gorunner/shim.go, jail.go) alone, without the runner's packages: what
# starts every local process where it is built, else scheduler/local/shim.py (README).
SHIMBIN := agent/bin/dice-shim

runner:
	@if [ -n "$(GO)" ]; then $(MAKE) --no-print-directory $(RUNNER) $(SHIMBIN); \
	else echo "step runner and shim: Go not found, local steps run on the Python agent and processes under the Python shim (see README)"; fi

$(RUNNER): $(wildcard agent/gorunner/*.go) agent/gorunner/go.mod
	@mkdir -p agent/bin
	cd agent/gorunner && CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags='-s -w' -o ../bin/.dice-step.$$$$.tmp . && mv -f ../bin/.dice-step.$$$$.tmp ../bin/dice-step

$(SHIMBIN): $(wildcard agent/gorunner/*.go) agent/gorunner/go.mod
	@mkdir -p agent/bin
	cd agent/gorunner && CGO_ENABLED=0 $(GO) build -tags shim -trimpath -buildvcs=false -ldflags='-s -w' -o ../bin/.dice-shim.$$$$.tmp . && mv -f ../bin/.dice-shim.$$$$.tmp ../bin/dice-shim

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
	rm -rf $(VENV) var tools/ktestenv/bin agent/bin
