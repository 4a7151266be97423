# Every target works from a fresh clone with only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install test serve bench lock clean

include infra/checkov.mk
include graphql_api/web/web.mk

install: $(STAMP) $(CHECKOV_VENV)/.installed-stamp web-vendor

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest

serve: install
	$(BIN)/bookrec demo --host $(HOST) --port $(PORT)

bench: install
	$(BIN)/python -m bench

# Regenerates the lock files from pyproject.toml (needs PyPI): requirements.lock is what the
# image runs, requirements-dev.lock adds the test, benchmark and tracing extras for .venv.
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile $(LOCK_FLAGS) -o requirements.lock pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev --extra bench --extra otel -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) data .pytest_cache $(WEB_DIR)/node_modules $(WEB_DIR)/vendor
