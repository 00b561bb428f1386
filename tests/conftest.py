"""Shared fixtures: one grader (one zygote) for the whole session, with short limits."""

from __future__ import annotations

import pytest

from autograder.course.course_file import in_effect
from autograder.engine import GradeOptions, Grader
from autograder.isolation.runner import Limits

# What a perfect submission scores under the course in effect (this repository has no
# course.toml, so the full preset's total), as the session grader grades.
FULL_MARKS = in_effect().total

# Short limits keep the tests of hangs quick; the defaults are larger.
TEST_LIMITS = dict(call_timeout=1.0, import_timeout=5.0, budget=30.0)


@pytest.fixture(scope="session")
def grader():
    """A grader with public and hidden cases, shared by every test."""
    # The tests' own submissions are trusted: the process level may grade them too
    # (a machine without bubblewrap, as a non-root user).
    with Grader(GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True)) as g:
        yield g


def by_name(report) -> dict:
    """The report's tests by name."""
    return {t.name: t for t in report.tests}
