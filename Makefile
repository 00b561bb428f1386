# Instructor's and CI's entry points. Every target sets itself up on a fresh
# machine: a virtual environment in .venv, created and filled on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUBMISSION ?= handout
FORMAT ?= table
GRADE_FLAGS ?=

.PHONY: help grade test lint format handout-files check-generated clean

help:
	@echo "make grade [SUBMISSION=path]   grade a submission (default: the handout stubs)"
	@echo "make test                      lint, drift checks and the whole test suite"
	@echo "make handout-files             regenerate stubs and public case data from solutions/"
	@echo "make format                    apply ruff's formatting and fixes"

# Base install: what grading needs.
$(VENV)/.installed-base: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

# Development install: base plus test and lint tools.
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-base
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

grade: $(VENV)/.installed-base
	@$(PY) -m autograder grade $(SUBMISSION) --format $(FORMAT) $(GRADE_FLAGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

handout-files: $(VENV)/.installed-base
	$(PY) -m autograder handout

check-generated: $(VENV)/.installed-base
	$(PY) -m autograder handout --check

test: $(VENV)/.installed-dev lint check-generated
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
