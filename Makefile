# One entry point for people and CI. Every target that runs code depends on `setup`,
# which is idempotent: it reinstalls only when a requirements file changed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   ?= .venv
PY     := $(VENV)/bin/python
TOOLS  := .tools
# jsii prints a banner on every start under Node 20 (past its end of life; it still works, see
# ../shared/ENVIRONMENT.md). Silence exactly that warning and nothing else.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

SETUP_STAMP := $(VENV)/.setup-stamp
SETUP_INPUTS := requirements.txt requirements-dev.txt inference_image/requirements.txt pyproject.toml \
                inference_image/pyproject.toml package-lock.json

.PHONY: help setup demo test e2e lint bench bench-archive clean

help:
	@echo "make setup  - create $(VENV) and install Python and npm packages (idempotent)"
	@echo "make demo   - synthesize the example app and serve its model locally, with sample predictions"
	@echo "make test   - run the test suite (everything but the container/emulator end-to-end checks)"
	@echo "make e2e    - build and run the real image with podman, deploy to moto, lint the templates"
	@echo "make lint   - ruff, mypy, hadolint, cfn-lint, checkov"
	@echo "make bench  - measure the inference server against two baselines and print a table"
	@echo "make bench-archive - time model.tar.gz packaging against tar czf"

setup: $(SETUP_STAMP)

$(SETUP_STAMP): $(SETUP_INPUTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . -e inference_image
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(PY) examples/iris/demo.py

test: setup
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

e2e: setup $(TOOLS)/checkov/bin/checkov
	$(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

bench: setup
	$(PY) bench/serve_bench.py $(BENCH_ARGS)

bench-archive: setup
	$(PY) bench/archive_bench.py $(ARCHIVE_BENCH_ARGS)

# checkov pins an old boto3, so it lives in a venv of its own.
$(TOOLS)/checkov/bin/checkov:
	python3 -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install -q --disable-pip-version-check checkov==3.3.30

lint: setup $(TOOLS)/checkov/bin/checkov
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	hadolint inference_image/Dockerfile
	$(PY) -m pytest -q tests/e2e/test_template_lint.py

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .e2e examples/iris/model
