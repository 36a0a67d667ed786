# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
# Each creates .venv and installs the package on first use (or when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test check reliability run clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/throttled demo

# ruff and mypy (settings in pyproject.toml) run first: any error stops the run before the tests.
# Unit and integration tests run in parallel (as in `check`), then the end-to-end tests in
# parallel too (each starts its own daemons on its own ports and database; they mostly wait on
# real time, so four share two cores), then the reliability suite one test at a time (clusters,
# kills, load, and its report), slowest listed.
test: $(STAMP)
	$(VENV)/bin/ruff check throttled tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n 4 -m "not slow" tests/unit tests/integration
	$(VENV)/bin/pytest -q -n 4 --durations=10 tests/e2e
	$(VENV)/bin/pytest -q --durations=15 tests/reliability

# The fast loop: the same checks, then unit and integration tests (no e2e, no reliability), in parallel;
# about a minute (55–85 s on the 2-core test machine).
check: $(STAMP)
	$(VENV)/bin/ruff check throttled tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n 4 -m "not slow" tests/unit tests/integration

reliability: $(STAMP)
	THROTTLED_RELIABILITY=full $(VENV)/bin/pytest -q tests/reliability

run: $(STAMP)
	$(VENV)/bin/throttled run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
