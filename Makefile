# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing and install the pinned requirements.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test faults bench install clean

# setuptools' notice that an editable install of a flat layout imports from this folder is what
# we want (edits take effect without a reinstall): silenced, so that installing prints nothing.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ksync demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The whole fault suite at full length (10 seeds per seeded fault), then docs/reliability.md.
faults: $(STAMP)
	rm -f .ksync/faults/results.jsonl
	KSYNC_FAULT_SEEDS=10 KSYNC_FAULT_FULL=1 $(PY) -m pytest -m faults $(PYTEST_ARGS) tests/faults
	$(PY) -m tests.faults.report

bench: $(STAMP)
	$(PY) bench/ratelimit.py
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) .ksync .pytest_cache
