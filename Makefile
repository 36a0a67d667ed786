# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
# Each creates .venv and installs the package on first use (or when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test reliability run clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/throttled demo

test: $(STAMP)
	$(VENV)/bin/pytest -q

reliability: $(STAMP)
	THROTTLED_RELIABILITY=full $(VENV)/bin/pytest -q tests/reliability

run: $(STAMP)
	$(VENV)/bin/throttled run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
