"""Every graded case can fail: a zero or a constant answer never passes a case.

A case whose expected values sit inside the tolerance of 0 (Swish's dLdbeta
of 4.2e-8 against an absolute tolerance of 1e-6, once) or are constant (a
one-column Softmax: A is all ones, dLdZ all zeros) grades nothing: a stub
returning ``np.zeros_like(Z)`` would earn its points. For every case of every
preset, public and hidden, and every phase the course grades, this test
computes the expected values with the reference and checks that the
comparison the checks use rejects zeros, ones and the mean of the expected
values.
"""

from __future__ import annotations

import numpy as np
import pytest

from autograder.course import course_file as course
from autograder.course import reference
from autograder.course.cases import Case, describe, materialize
from autograder.judge.compare import compare, compare_scalar

REFERENCE = reference.load_reference()


def _graded() -> list[tuple[str, str, str, str]]:
    """(preset, visibility, activation, case id) of every graded case, each once per preset."""
    rows = []
    for name in course.preset_names():
        c = course.load(name)
        for visibility in ("public", "hidden"):
            for act, cid, _ in c.cases(visibility):
                rows.append((name, visibility, act, cid))
    return rows


GRADED = _graded()
_EXPECTED: dict[str, Case] = {}


def _case(preset: str, visibility: str, cid: str) -> tuple[course.Course, Case]:
    c = course.load(preset)
    act, spec = next((a, s) for a, i, s in c.cases(visibility) if i == cid)
    if cid not in _EXPECTED:  # the same id is the same input in every preset
        Z, dLdA = materialize(spec)
        case = Case(cid, act, visibility, dict(spec.kwargs), Z, dLdA, describe(spec, Z))
        case.expected = reference.run_case(REFERENCE, case)
        _EXPECTED[cid] = case
    return c, _EXPECTED[cid]


def _answers(expected: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "zeros": np.zeros_like(expected),
        "ones": np.ones_like(expected),
        "mean": np.full_like(expected, float(np.mean(expected))),
    }


def test_the_presets_grade_cases_of_both_visibilities():
    assert {v for _, v, _, _ in GRADED} == {"public", "hidden"}
    assert {p for p, *_ in GRADED} == set(course.preset_names())


@pytest.mark.parametrize(
    ("preset", "visibility", "activation", "cid"), GRADED, ids=[f"{r[0]}:{r[3]}" for r in GRADED]
)
def test_zero_and_constant_answers_fail(preset, visibility, activation, cid):
    c, case = _case(preset, visibility, cid)
    row = c.row(activation)
    expected = case.expected
    graded = [phase for phase in row.points if row.test_points(phase, visibility) > 0]
    assert graded, f"{cid}: no phase of {activation} is graded on {visibility} cases"
    passing = []
    for phase in graded:
        if phase == "dLdbeta":
            # A scalar: its "mean" is itself, so only zero and one are wrong answers.
            for label, value in (("zero", 0.0), ("one", 1.0)):
                result = compare_scalar(
                    expected.dLdbeta,
                    np.array(value),
                    row.rtol,
                    row.atol,
                    "dLdbeta",
                    expected.dLdbeta_scale,
                )
                if result.passed:
                    passing.append(f"dLdbeta={label} (expected {expected.dLdbeta:.3g})")
            continue
        want = expected.phase(phase)
        for label, got in _answers(want).items():
            if compare(want, got, row.rtol, row.atol).passed:
                passing.append(f"{phase}={label}")
    assert not passing, f"{preset} {cid} ({case.description}) passes a wrong answer: {passing}"
