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
# Isolation the platform bundles accept: auto (strongest available, refuse where student
# code could read the expected values), strict (bwrap or uid, or refuse), process (same-user
# defence only; not recommended).
SANDBOX ?= auto
# The course: a course file or a preset (cmu-f23, cmu-s25, cmu-f25, full). Empty: the
# repository's course.toml, else full.
COURSE ?=
COURSE_FLAG = $(if $(strip $(COURSE)),--course "$(COURSE)")
# The oldest Python 3.11 a course is likely to meet: Debian 12's system Python is 3.11.2.
OLDEST_PYTHON ?= /usr/bin/python3
OLDEST_VENV ?= build/venv-oldest-python

.PHONY: help grade test test-oldest-python lint format handout-files check-generated clean handout gradescope autolab bench

help:
	@echo "make grade [SUBMISSION=path]   grade a submission (default: the handout stubs)"
	@echo "make grade SUBMISSIONS=DIR     grade a class: gradebook, reports, summary in GRADES (grades/)"
	@echo "make test                      lint, drift checks and the whole test suite"
	@echo "make test-oldest-python        the submission-loading tests under OLDEST_PYTHON (/usr/bin/python3)"
	@echo "make handout-files             regenerate stubs and public case data from solutions/"
	@echo "  (grade, handout-files, check-generated, handout, gradescope, autolab take COURSE=...:"
	@echo "   a course file or a preset; default: course.toml, else full)"
	@echo "make handout                   dist/handout.tar.gz: what students download"
	@echo "make gradescope [SANDBOX=...]  dist/gradescope/autograder.zip"
	@echo "make autolab [SANDBOX=...]     dist/autolab/autograde.tar and autograde-Makefile"
	@echo "make bench                     throughput benchmark of batch grading (takes minutes)"
	@echo "make format                    apply ruff's formatting and fixes"

# Base install: what grading needs. pip is quiet, so say what the wait is for.
$(VENV)/.installed-base: pyproject.toml
	@echo "Setting up $(VENV) (first run, or pyproject.toml changed): installing numpy, scipy,"
	@echo "pytest, pytest-json-report and nbformat; this takes a minute or so..."
	@test -x "$(PY)" || "$(PYTHON)" -m venv "$(VENV)"
	@"$(PY)" -m pip install --quiet --disable-pip-version-check -e .
	@echo "$(VENV) is ready."
	@touch "$@"

# Development install: base plus test and lint tools.
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-base
	@echo "Installing the test and lint tools into $(VENV) (first run only)..."
	@"$(PY)" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch "$@"

# Paths are quoted: SUBMISSION="a path with spaces" works.
grade: $(VENV)/.installed-base
ifneq ($(strip $(SUBMISSIONS)),)
	@"$(PY)" -m autograder grade-all "$(SUBMISSIONS)" -o "$(GRADES)" $(COURSE_FLAG) $(GRADE_FLAGS)
else
	@"$(PY)" -m autograder grade "$(SUBMISSION)" --format "$(FORMAT)" $(COURSE_FLAG) $(GRADE_FLAGS)
endif

handout: $(VENV)/.installed-base
	"$(PY)" -m autograder.build.bundles handout $(COURSE_FLAG)

gradescope: $(VENV)/.installed-base
	"$(PY)" -m autograder.build.bundles gradescope --sandbox "$(SANDBOX)" $(COURSE_FLAG)

autolab: $(VENV)/.installed-base
	"$(PY)" -m autograder.build.bundles autolab --sandbox "$(SANDBOX)" $(COURSE_FLAG)

# Not part of `make test`: it grades thousands of submissions and prints the rates.
bench: $(VENV)/.installed-base
	$(PY) bench/bench_batch.py $(BENCH_FLAGS)

# ruff, then the package's layering (the import contracts in pyproject.toml).
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

handout-files: $(VENV)/.installed-base
	$(PY) -m autograder handout $(COURSE_FLAG)

check-generated: $(VENV)/.installed-base
	$(PY) -m autograder handout --check $(COURSE_FLAG)

test: $(VENV)/.installed-dev lint check-generated
	$(PY) -m pytest

# Reading handins must work on every Python 3.11.x (tarfile's extraction filter, for
# one, arrived only in 3.11.4), so the submission-loading tests, command-line refusals
# included, run again under the machine's system Python in a venv of its own. Skipped,
# saying why, where that Python is missing or older than 3.11.
test-oldest-python:
	@if ! "$(OLDEST_PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		echo "test-oldest-python: SKIPPED: $(OLDEST_PYTHON) is missing or older than Python 3.11"; \
	else \
		set -e; \
		test -x "$(OLDEST_VENV)/bin/python" || "$(OLDEST_PYTHON)" -m venv "$(OLDEST_VENV)"; \
		"$(OLDEST_VENV)/bin/python" -m pip install --quiet --disable-pip-version-check -e .; \
		echo "test-oldest-python: $$("$(OLDEST_VENV)/bin/python" -c 'import sys; print(sys.version.split()[0], sys.executable)')"; \
		"$(OLDEST_VENV)/bin/python" -m pytest -q tests/test_submission.py; \
	fi

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
