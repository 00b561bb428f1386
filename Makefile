# Instructor's and CI's entry points. Every target sets itself up on a fresh
# machine: a virtual environment in .venv, created and filled on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUBMISSION ?= handout
# A directory of submissions (one entry each): `make grade SUBMISSIONS=DIR` grades them all.
SUBMISSIONS ?=
GRADES ?= grades
FORMAT ?= table
GRADE_FLAGS ?=
BENCH_FLAGS ?=

.PHONY: help grade test lint format handout-files check-generated clean handout gradescope autolab bench

help:
	@echo "make grade [SUBMISSION=path]   grade a submission (default: the handout stubs)"
	@echo "make grade SUBMISSIONS=DIR     grade a class: gradebook, reports, summary in GRADES (grades/)"
	@echo "make test                      lint, drift checks and the whole test suite"
	@echo "make handout-files             regenerate stubs and public case data from solutions/"
	@echo "make handout                   dist/handout.tar.gz: what students download"
	@echo "make gradescope                dist/gradescope/autograder.zip"
	@echo "make autolab                   dist/autolab/autograde.tar and autograde-Makefile"
	@echo "make bench                     throughput benchmark of batch grading (takes minutes)"
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
ifneq ($(strip $(SUBMISSIONS)),)
	@$(PY) -m autograder grade-all $(SUBMISSIONS) -o $(GRADES) $(GRADE_FLAGS)
else
	@$(PY) -m autograder grade $(SUBMISSION) --format $(FORMAT) $(GRADE_FLAGS)
endif

handout: $(VENV)/.installed-base
	$(PY) -m autograder.bundles handout

gradescope: $(VENV)/.installed-base
	$(PY) -m autograder.bundles gradescope

autolab: $(VENV)/.installed-base
	$(PY) -m autograder.bundles autolab

# Not part of `make test`: it grades thousands of submissions and prints the rates.
bench: $(VENV)/.installed-base
	$(PY) bench/bench_batch.py $(BENCH_FLAGS)

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
