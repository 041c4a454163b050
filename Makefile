# The two commands: `make demo` and `make test`. Both set up what they need from
# PyPI (uv into .tools, then .venv from uv.lock) on a machine with only python3 and make.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: setup demo test test-unit test-integration lint format docs bench stress clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced

# The demo keeps its Prefect run history in .demo/prefect unless you point it elsewhere.
# Prefect does not create a missing parent of PREFECT_HOME; a first start of its temporary
# server (database migrations) can take longer than its default 20 s on a slow machine.
demo: setup
	home=$${PREFECT_HOME:-$(CURDIR)/.demo/prefect}; mkdir -p "$$home" && \
	PREFECT_HOME="$$home" PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120 \
	PREFECT_SERVER_ANALYTICS_ENABLED=false GX_ANALYTICS_ENABLED=false \
	$(VENV)/bin/python -m flows.demo

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# docs/cli.md and the settings table of docs/configuration.md are generated from the code
# (the parser, the settings table, the API's request models); tests/unit/test_docs.py fails when stale.
docs: setup
	$(VENV)/bin/python -m dagvault_cli.reference
	$(VENV)/bin/python -m dagvault_cli.settings_reference

# Two workers (pytest-xdist; CI has 2 cores): most tests wait on CLI, server and flow
# subprocesses. Files stay whole on one worker (--dist loadfile): module-scoped servers and
# the order of a file's tests hold as in a serial run. Files go out in collection order
# (--no-loadscope-reorder), which tests/_order.py sorts longest first, so that no worker
# starts a long file while the other is nearly done.
# pytest exits 5 when it collects no test: that is a failure here, never a pass.
PYTEST := $(VENV)/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder
# The project's own modules are compiled first: under PYTHONDONTWRITEBYTECODE every CLI, API
# and flow subprocess would compile them again (the installed packages are compiled by uv sync).
define pytest
	$(VENV)/bin/python -m compileall -q dagvault dagvault_api dagvault_cli flows tasks deployments
	$(PYTEST) $(1); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status
endef

# Everything: tests/unit, tests/integration and the fault suite tests/faults.
test: lint
	$(call pytest)

# In-process tests only (no Prefect server, no child process of the test's own): a minute.
test-unit: setup
	$(call pytest,tests/unit)

# A real Prefect server, CLI and API processes, moto S3, and the fault suite.
test-integration: setup
	$(call pytest,tests/integration tests/faults)

bench: setup
	$(VENV)/bin/python -m benchmarks.backup_bench
	$(VENV)/bin/python -m benchmarks.incremental_bench
	$(VENV)/bin/python -m benchmarks.export_bench
	$(VENV)/bin/python -m benchmarks.cli_latency

# The fault suite's long form: at least 20 SIGKILL points per operation, a one-minute load
# test, more corruptions and fuzzed inputs (about 15 minutes). Its figures go to
# .stress/reliability.md and .json (docs/reliability.md quotes them).
stress: setup
	rm -rf .stress
	DAGVAULT_STRESS=1 DAGVAULT_FAULT_REPORT=$(CURDIR)/.stress $(VENV)/bin/python -m pytest tests/faults
	cat .stress/reliability.md

clean:
	rm -rf .tools $(VENV) .demo .stress .pytest_cache .ruff_cache
