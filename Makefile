# The two commands of the README: `make demo` and `make test`. Each builds its
# own virtual environment with the machine's python3 on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BENTOML_DO_NOT_TRACK := true
export RAY_USAGE_STATS_ENABLED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-cli: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[cli]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,bentoml,ray]'
	touch $@ $(VENV)/.installed-cli

demo: $(VENV)/.installed-cli
	$(BIN)/mlf-middleware demo

# The whole suite runs in a network namespace that has only loopback (when
# root): servers, Ray and PostgreSQL all live on 127.0.0.1 there, and no test
# traffic can leave the machine.
test: $(VENV)/.installed-dev
	.ci/system-deps.sh
	.ci/in-loopback-netns.sh $(BIN)/python -m pytest -q -p no:cacheprovider

# Not part of `make test` (a smoke run of each benchmark is): about 20
# minutes; rewrites docs/performance.md and benchmarks/results.json.
bench: $(VENV)/.installed-dev
	.ci/system-deps.sh bench
	$(BIN)/python benchmarks/run_all.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check mlf_middleware integrations tests benchmarks examples

clean:
	rm -rf $(VENV) mlf_demo.db mlf_demo.db-wal mlf_demo.db-shm mlf_demo.html
