# livefit: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
JARS   := build/jars/livefit-flink-adapters.jar

.PHONY: setup demo report test test-unit test-e2e lint clean stack-down cluster submit cancel stop down screenshot

setup: $(STAMP) $(JARS)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "livefit needs Python 3.11 (set PYTHON=python3.11)"'
	@command -v java >/dev/null || { echo "livefit needs Java 17 (java not on PATH)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

$(JARS): $(STAMP) $(wildcard jobs/java/livefit/flink/*.java)
	$(BIN)/python -m livefit.jars

# Everything on the embedded stack: PostgreSQL, Debezium, Tansu, Flink local execution.
# `make demo EVENTS=500` stops by itself after 500 live interactions are scored.
demo: setup
	$(BIN)/livefit demo $(if $(EVENTS),--events $(EVENTS)) $(if $(RATE),--rate $(RATE))

# The model quality report committed under docs/quality/ (default seed + a second one).
report: setup
	$(BIN)/livefit report --also-seed 2026 --out docs/quality

test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check livefit udfs models jobs bench tests
	$(BIN)/mypy

test-unit: setup
	$(BIN)/python -m pytest -m "not e2e"

test-e2e: setup
	$(BIN)/python -m pytest tests -m e2e

# The way Flink users run it: a standalone session cluster (web UI http://127.0.0.1:8081) next
# to the embedded stack with live traffic; the job submitted with `flink run -d`.
cluster: setup
	$(BIN)/livefit stack up --seed --traffic $(or $(RATE),20)
	$(BIN)/livefit cluster up

submit: setup
	$(BIN)/livefit submit

cancel: setup
	$(BIN)/livefit cancel

stop: setup
	$(BIN)/livefit stop

down:
	-$(BIN)/livefit cluster down
	-$(BIN)/livefit stack down

screenshot:
	scripts/screenshot-webui.sh docs/flink-web-ui.png

stack-down:
	$(BIN)/livefit stack down

clean:
	rm -rf build .livefit models/artifacts
