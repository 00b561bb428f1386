"""A small in-process grader of trusted fixture files under a course, for tests of the model.

It judges a case the way the checks do (same comparisons, same tolerances,
an input changed in place fails, proportional credit per test, a rule judged
once forward passes a public case), but runs the code in this process:
only for the project's own fixtures, never for a submission. It lets the
course model and the real-handin fixtures be tested before the course is
wired into the grader; the wiring stage checks the same expectations
through the real grader.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from autograder.course import reference
from autograder.course.cases import Case, describe, materialize
from autograder.course.course_file import Course
from autograder.judge import rules
from autograder.judge.compare import compare, compare_scalar

REFERENCE = reference.load_reference()


_CASES: dict[str, Case] = {}


def expected_case(activation: str, cid: str, visibility: str, spec) -> Case:
    """The case with its reference outputs (cached: an id is the same input in every course)."""
    if cid not in _CASES:
        Z, dLdA = materialize(spec)
        case = Case(cid, activation, visibility, dict(spec.kwargs), Z, dLdA, describe(spec, Z))
        case.expected = reference.run_case(REFERENCE, case)
        _CASES[cid] = case
    return _CASES[cid]


def _run(cls, case: Case) -> dict[str, bool]:
    """Which phases of one case the class gets right (forward, backward, dLdbeta)."""
    ok = dict.fromkeys(("forward", "backward", "dLdbeta"), False)
    row_rtol, row_atol = 1e-5, 1e-6
    expected = case.expected
    Z, dLdA = case.Z.copy(), case.dLdA.copy()
    try:
        obj = cls(**case.kwargs)
        A = obj.forward(Z)
    except Exception:
        return ok
    try:
        A = np.asarray(A, dtype=np.float64)
        ok["forward"] = (
            np.array_equal(Z, case.Z) and compare(expected.A, A, row_rtol, row_atol).passed
        )
    except (TypeError, ValueError):
        return ok
    try:
        dLdZ = np.asarray(obj.backward(dLdA), dtype=np.float64)
    except Exception:
        return ok
    try:
        ok["backward"] = (
            np.array_equal(dLdA, case.dLdA)
            and compare(expected.dLdZ, dLdZ, row_rtol, row_atol).passed
        )
    except (TypeError, ValueError):
        return ok
    if expected.dLdbeta is not None and getattr(obj, "dLdbeta", None) is not None:
        try:
            got = np.asarray(obj.dLdbeta, dtype=np.float64)
            ok["dLdbeta"] = compare_scalar(
                expected.dLdbeta, got, row_rtol, row_atol, "dLdbeta", expected.dLdbeta_scale
            ).passed
        except (TypeError, ValueError):
            pass
    return ok


def _load(path: Path):
    return reference.load_module(path, name="_fixture_" + path.stem.replace("-", "_"))


def outcomes(path: Path, course: Course) -> dict[str, dict]:
    """Per activation: the failing case ids by test (``phase/visibility``), and the score.

    Scores are before the credit mode: proportional per test, as the checks
    compute them; ``rules`` lists the rules the file breaks (or cannot be
    judged on, when no public forward case passes).
    """
    source = path.read_text(encoding="utf-8")
    out: dict[str, dict] = {}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = _load(path)
        for row in course.rows():
            cls = getattr(module, row.name, None)
            score = 0.0
            failing: dict[str, list[str]] = {}
            forward_public_passed = False
            for visibility in ("public", "hidden"):
                specs = course.case_specs(row.name, visibility)
                results = []
                for cid, spec in specs:
                    case = expected_case(row.name, cid, visibility, spec)
                    ok = _run(cls, case) if cls is not None else dict.fromkeys(row.points, False)
                    results.append((cid, ok))
                for phase in row.points:
                    points = row.test_points(phase, visibility)
                    if not (points and specs):
                        continue
                    bad = [cid for cid, ok in results if not ok[phase]]
                    score += points * (len(results) - len(bad)) / len(results)
                    if bad:
                        failing[f"{phase}/{visibility}"] = bad
                if visibility == "public":
                    forward_public_passed = any(ok["forward"] for _, ok in results)
            broken = []
            for rule in row.rules:
                if forward_public_passed and not rules.violations(source, row.name, rule.names):
                    score += rule.points
                else:
                    broken.append(rule.name)
            out[row.name] = {"score": round(score, 4), "failing": failing, "rules": broken}
    return out


def grade(path: Path, course: Course) -> dict[str, float]:
    """Per-activation scores of a trusted activation file under ``course`` (before credit mode)."""
    return {name: o["score"] for name, o in outcomes(path, course).items()}
