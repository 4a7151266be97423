# checkov in its own virtualenv: its pinned dependencies conflict with the
# app's lock, so it never shares .venv. Included by the Makefile; `make install`
# builds it, and tests/infra runs it against infra/terraform.
CHECKOV_VENV := .venv-checkov
CHECKOV_LOCK := infra/requirements-checkov.lock

.PHONY: checkov checkov-lock

$(CHECKOV_VENV)/.installed-stamp: $(CHECKOV_LOCK)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes -r $(CHECKOV_LOCK)
	touch $@

# The same scan the tests run, with readable output.
checkov: $(CHECKOV_VENV)/.installed-stamp
	$(CHECKOV_VENV)/bin/checkov -d infra/terraform --framework terraform --skip-download --compact --quiet

# Regenerates the hashed lock from infra/requirements-checkov.in (needs PyPI).
checkov-lock: $(CHECKOV_VENV)/.installed-stamp
	$(CHECKOV_VENV)/bin/python -m pip install --quiet pip-tools
	$(CHECKOV_VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		-o $(CHECKOV_LOCK) infra/requirements-checkov.in
