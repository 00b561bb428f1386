"""The catalogue of known mistakes: data that is tested.

Every entry is submitted alone, graded end to end, and must be named in the
feedback; its outputs must differ clearly from the reference where they are
stored; the student bundle must recognise them from the data file alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import REFERENCE_SOURCE, write_layout
from test_feedback import MAX_FAILURE_LINES, failure_section

from autograder import engine, files
from autograder.course import assignment, cases, reference
from autograder.engine import GradeOptions, Grader
from autograder.judge import feedback, mistakes
from autograder.report import render
from autograder.report.record import FAILURE_KINDS, PASSED
from autograder.submission import handin as submission

COMPUTED = [m for m in mistakes.CATALOGUE if not m.structural]


def test_names_are_unique_and_activations_exist():
    names = [m.name for m in mistakes.CATALOGUE]
    assert len(names) == len(set(names))
    for m in mistakes.CATALOGUE:
        assert m.activation in assignment.BY_NAME, m.name
        assert m.phase in assignment.BY_NAME[m.activation].points, m.name
        assert m.message.strip() and "\n" not in m.message, m.name
    for s in feedback.STRUCTURAL:
        assert s.name in mistakes.BY_NAME, f"structural mistake {s.name} has no example"


@pytest.mark.parametrize(
    "name",
    [
        # What the issue lists, entry by entry.
        "sigmoid-dAdZ-at-A",
        "tanh-dAdZ-at-A",
        "tanh-1-minus-A",
        "relu-dAdZ-1-at-0",
        "leakyrelu-default-alpha-0.1",
        "elu-dAdZ-1-at-0",
        "celu-elu-formula",
        "gelu-tanh-approximation",
        "dLdbeta-not-summed",
        "dLdbeta-missing",
        "softplus-overflow",
        "mish-dAdZ-only-t",
        "hardswish-middle-slope",
        "hardswish-pre-2.7-edges",
        "relu6-no-upper-clip",
        "softmax-wrong-axis",
        "softmax-no-max",
        "softmax-diagonal-jacobian",
        "output-flattened",
        "output-transposed",
        "A-not-stored",
        "Z-changed-in-place",
    ],
)
def test_the_issues_list_is_covered(name):
    assert name in mistakes.BY_NAME


@pytest.mark.parametrize("mistake", mistakes.CATALOGUE, ids=[m.name for m in mistakes.CATALOGUE])
def test_each_mistake_submitted_alone_is_named(grader, tmp_path, mistake):
    source = mistake.source(REFERENCE_SOURCE)
    assert source != REFERENCE_SOURCE
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    tests = {t.name: t for t in report.tests}
    # The phase where the mistake shows fails, and carries the mistake's id as data.
    shown = tests[f"{mistake.activation} {mistake.phase} (public)"]
    assert shown.status != PASSED
    assert shown.mistake == mistake.name, shown.output
    assert shown.failure_kind in FAILURE_KINDS
    # A mistake in one class costs nothing elsewhere.
    for test in report.tests:
        if test.activation != mistake.activation:
            assert test.status == PASSED, (test.name, test.output)
        elif test.status != PASSED:
            assert test.failure_kind in FAILURE_KINDS, test.name
    # It explains itself in a few lines.
    section = failure_section(render.table(report))
    assert len(section) <= MAX_FAILURE_LINES, "\n".join(section)


def test_replace_methods_changes_signatures_and_adds_methods():
    source = mistakes.replace_methods(
        REFERENCE_SOURCE,
        "LeakyReLU",
        "def __init__(self, alpha=0.5):\n    self.alpha = alpha\n\ndef extra(self):\n    return 1",
    )
    module = mistakes.load_source(source)
    assert module.LeakyReLU().alpha == 0.5
    assert module.LeakyReLU().extra() == 1
    # Everything else is untouched.
    assert module.ReLU().forward(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]
    with pytest.raises(KeyError):
        mistakes.replace_methods(REFERENCE_SOURCE, "NoSuchClass", "def f(self):\n    pass")


@pytest.fixture(scope="module")
def public_cases():
    """Public cases with reference outputs and the catalogue's outputs, computed now."""
    module = reference.load_module(files.REFERENCE_PATH)
    found = reference.attach_expected(module, cases.build_cases(("public",)))
    return mistakes.attach(found, REFERENCE_SOURCE)


@pytest.mark.parametrize("mistake", COMPUTED, ids=[m.name for m in COMPUTED])
def test_each_computed_mistake_shows_on_a_public_case(public_cases, mistake):
    shown = [c for c in public_cases if mistake.name in c.mistakes]
    assert shown, f"{mistake.name} differs from the reference on no public case"
    for case in shown:
        assert case.activation == mistake.activation
        assert case.mistakes[mistake.name].note == mistake.message


def _clearly_different(case, mistaken) -> bool:
    spec = case.spec
    for phase in ("forward", "backward"):
        want = np.asarray(case.expected.phase(phase), dtype=np.float64)
        got = np.asarray(mistaken.phase(phase), dtype=np.float64)
        if got.shape != want.shape or not np.all(np.isfinite(got)):
            return True
        if np.any(np.abs(got - want) > 100 * (spec.atol + spec.rtol * np.abs(want))):
            return True
    beta, want = mistaken.dLdbeta, case.expected.dLdbeta
    if want is not None and beta is not None:
        scale = max(abs(want), case.expected.dLdbeta_scale or 0.0)
        return abs(beta - want) > 100 * (spec.atol + spec.rtol * scale)
    return False


def test_stored_mistakes_are_far_from_the_reference(public_cases):
    # A mistake within a few tolerances of the reference could be confused with
    # correct code that rounds differently: none is stored.
    for case in public_cases:
        for name, mistaken in case.mistakes.items():
            assert _clearly_different(case, mistaken), (case.id, name)


def test_reference_outputs_match_no_mistake(public_cases):
    # named_mistakes on the reference's own outputs (as if a student returned them).
    from autograder.isolation.outputs import CaseOutput, PhaseOutput

    for case in public_cases:
        e = case.expected
        output = CaseOutput(
            case.id,
            PhaseOutput("ok", e.A, info={"dtype": "float64"}),
            PhaseOutput("ok", e.dLdZ),
            PhaseOutput("ok", None if e.dLdbeta is None else np.array(e.dLdbeta)),
            stored_A="same",
        )
        for phase in case.spec.points:
            assert feedback.named_mistakes(case, phase, output) == [], (case.id, phase)


def test_committed_public_data_carries_the_mistakes(public_cases):
    committed = {c.id: c for c in cases.load_case_data()}
    for case in public_cases:
        assert set(committed[case.id].mistakes) == set(case.mistakes), case.id
        for name, mistaken in case.mistakes.items():
            assert committed[case.id].mistakes[name].note == mistaken.note


def test_student_bundle_names_mistakes_from_the_data_file_alone(monkeypatch, tmp_path):
    # The bundle has neither the reference nor mistakes.py: the public data file
    # must be enough to recognise a mistake.
    monkeypatch.setenv(files.REFERENCE_ENV, str(tmp_path / "no-reference.py"))
    monkeypatch.setitem(__import__("sys").modules, "autograder.judge.mistakes", None)
    assert files.reference_path() is None
    found, hidden = engine.prepare_cases()
    assert not hidden and any(c.mistakes for c in found)
    source = mistakes.BY_NAME["softmax-diagonal-jacobian"].source(REFERENCE_SOURCE)
    sub = submission.load(write_layout(tmp_path, source, "file"))
    with Grader(GradeOptions(public_only=True, allow_unisolated=True)) as g:
        report = g.grade_submission(sub, use_pytest=False)
    backward = {t.name: t for t in report.tests}["Softmax backward (public)"]
    assert backward.mistake == "softmax-diagonal-jacobian"
