"""Feedback: the finite-difference self-check, and correct code never told it made a mistake."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import REFERENCE_SOURCE, append, replace_method, write_layout
from test_grading import EXTRA_ATTRIBUTES, FLOAT32, LOOP_SOFTMAX

from autograder import assignment, cases, checks, feedback, mistakes, reference, submission
from autograder.checks import PASSED
from autograder.outputs import CaseOutput, PhaseOutput

REFERENCE = reference.load_module(reference.REFERENCE_PATH)


@pytest.fixture(scope="module")
def public_cases():
    found = reference.attach_expected(REFERENCE, cases.build_cases(("public",)))
    return mistakes.attach(found, REFERENCE_SOURCE)


def _output(module, case, float32: bool = False) -> CaseOutput:
    """What the worker would report for a trusted module, probes included (in process)."""
    dtype = np.float32 if float32 else np.float64
    cls = getattr(module, case.activation)
    obj = cls(**case.kwargs)
    with np.errstate(all="ignore"):
        A = np.asarray(obj.forward(np.asarray(case.Z, dtype=dtype)))
        dLdZ = np.asarray(obj.backward(np.asarray(case.dLdA, dtype=dtype)))
    output = CaseOutput(
        case.id,
        PhaseOutput("ok", A.astype(np.float64), info={"dtype": str(A.dtype)}),
        PhaseOutput("ok", dLdZ.astype(np.float64), info={"dtype": str(dLdZ.dtype)}),
        PhaseOutput("ok"),
        stored_A="same",
    )
    probes = []
    for P in feedback.probe_inputs(case, output):
        with np.errstate(all="ignore"):
            probes.append(np.asarray(cls(**case.kwargs).forward(P.astype(dtype)), dtype=np.float64))
    output.probes = probes
    return output


@pytest.mark.parametrize("float32", [False, True], ids=["float64", "float32"])
def test_reference_backward_agrees_with_its_own_forward(public_cases, float32):
    for case in public_cases:
        check = feedback.self_check(case, _output(REFERENCE, case, float32))
        assert check is not None, case.id
        assert check.checked.any(), case.id
        bad = check.checked & ~check.agrees
        assert not bad.any(), (case.id, np.argwhere(bad)[:3].tolist())


def test_kinks_and_large_Z_are_not_checked(public_cases):
    by_id = {c.id: c for c in public_cases}
    relu = feedback.self_check(by_id["ReLU-p4"], _output(REFERENCE, by_id["ReLU-p4"]))
    # Z = [-2, -0.001, 0, 0.001, 2]: the kink at 0 is skipped, the rest checked.
    assert relu.checked.tolist() == [True, True, False, True, True]
    sigmoid = by_id["Sigmoid-p4"]
    big = feedback.self_check(sigmoid, _output(REFERENCE, sigmoid))
    assert not big.checked[np.abs(np.asarray(sigmoid.Z)) > feedback.FD_MAX_Z].any()


def _verdict(grader, tmp_path, source: str, test: str) -> str:
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    output = {t.name: t for t in report.tests}[test].output
    lines = [line.strip() for line in output.splitlines() if "Self-check" in line]
    assert lines, output
    return lines[0]


def test_backward_that_does_not_match_its_forward(grader, tmp_path):
    source = mistakes.BY_NAME["mish-dAdZ-only-t"].source(REFERENCE_SOURCE)
    verdict = _verdict(grader, tmp_path, source, "Mish backward (public)")
    assert "your forward is right on this case" in verdict
    assert "your backward does not match your own forward" in verdict


def test_wrong_forward_with_a_consistent_backward(grader, tmp_path):
    # The tanh approximation in both methods: backward is the derivative of a wrong forward.
    source = mistakes.BY_NAME["gelu-tanh-approximation"].source(REFERENCE_SOURCE)
    source = mistakes.BY_NAME["gelu-tanh-approximation-backward"].source(source)
    verdict = _verdict(grader, tmp_path, source, "GELU backward (public)")
    assert "your forward is wrong" in verdict
    assert "your backward matches your own forward" in verdict


def test_wrong_forward_and_inconsistent_backward(grader, tmp_path):
    source = mistakes.BY_NAME["gelu-tanh-approximation"].source(REFERENCE_SOURCE)
    source = mistakes.BY_NAME["gelu-dAdZ-only-Phi"].source(source)
    verdict = _verdict(grader, tmp_path, source, "GELU backward (public)")
    assert "both: your forward is wrong" in verdict
    assert "your backward does not match your own forward" in verdict


def test_softmax_backward_checked_against_its_forward(grader, tmp_path):
    source = mistakes.BY_NAME["softmax-diagonal-jacobian"].source(REFERENCE_SOURCE)
    verdict = _verdict(grader, tmp_path, source, "Softmax backward (public)")
    assert "your backward does not match your own forward" in verdict


def test_a_wrong_value_at_a_kink_is_called_so(grader, tmp_path):
    source = mistakes.BY_NAME["hardswish-edge-at-3"].source(REFERENCE_SOURCE)
    verdict = _verdict(grader, tmp_path, source, "Hardswish backward (public)")
    assert "sit at Z = -3 or Z = 3" in verdict
    assert "does not match" not in verdict


def test_probes_only_for_failing_backwards(grader, tmp_path):
    source = mistakes.BY_NAME["relu-dAdZ-1-at-0"].source(REFERENCE_SOURCE)
    runs = grader.run(submission.load(write_layout(tmp_path, source, "file")))
    probed = {i for i, output in runs["public"].cases.items() if output.probes}
    assert probed == {"ReLU-p4"}
    assert all(p is not None for p in runs["public"].cases["ReLU-p4"].probes)
    assert not any(output.probes for output in runs["hidden"].cases.values())


def test_probed_cases_per_activation_are_the_ones_shown():
    assert feedback.PROBED_PER_ACTIVATION == checks.SHOWN_FAILURES


# ---------------------------------------------------------------- correct variants

# More correct ways to write the classes, on top of test_grading's three.
ELU_FROM_A = replace_method(
    REFERENCE_SOURCE,
    "ELU",
    "backward",
    # alpha * e^Z = A + alpha where Z <= 0.
    "dAdZ = np.where(self.Z > 0, 1.0, self.A + self.alpha)\nreturn dLdA * dAdZ",
)
HARDSWISH_REWRITTEN = replace_method(
    REFERENCE_SOURCE,
    "Hardswish",
    "backward",
    """
    Z = self.Z
    dAdZ = np.zeros_like(Z, dtype=float)
    middle = (Z > -3) & (Z < 3)
    dAdZ[middle] = Z[middle] / 3 + 0.5
    dAdZ[Z >= 3] = 1.0
    return dLdA * dAdZ
    """,
)
SOFTMAX_LOGSUMEXP = replace_method(
    REFERENCE_SOURCE,
    "Softmax",
    "forward",
    """
    M = np.max(Z, axis=1, keepdims=True)
    log_sum = M + np.log(np.sum(np.exp(Z - M), axis=1, keepdims=True))
    self.A = np.exp(Z - log_sum)
    return self.A
    """,
)
SIGMOID_VIA_LOGADDEXP = append(
    REFERENCE_SOURCE,
    """
    class Sigmoid(Sigmoid):
        def forward(self, Z):
            self.A = np.exp(-np.logaddexp(0.0, -Z))
            return self.A

        def backward(self, dLdA):
            return dLdA * self.A * (1.0 - self.A)
    """,
)
CORRECT = {
    "float32": FLOAT32,
    "loop-softmax": LOOP_SOFTMAX,
    "extra-attributes": EXTRA_ATTRIBUTES,
    "elu-derivative-from-A": ELU_FROM_A,
    "hardswish-rewritten": HARDSWISH_REWRITTEN,
    "softmax-logsumexp": SOFTMAX_LOGSUMEXP,
    "sigmoid-logaddexp": SIGMOID_VIA_LOGADDEXP,
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_variants_are_never_told_they_made_a_mistake(grader, tmp_path, name):
    sub = submission.load(write_layout(tmp_path, CORRECT[name], "file"))
    report = grader.grade_submission(sub, use_pytest=False)
    failing = [(t.name, t.output) for t in report.tests if t.status != PASSED]
    assert not failing and report.score == 100.0
    # Stronger than "no hint was printed": the matcher itself, asked about every
    # public case and phase of this correct code, names nothing.
    runs = grader.run(sub)
    for case in grader.cases:
        if case.visibility != "public":
            continue
        output = runs["public"].cases[case.id]
        for phase in case.spec.points:
            assert feedback.named_mistakes(case, phase, output) == [], (case.id, phase)


def test_self_check_is_silent_without_probes(public_cases):
    case = next(c for c in public_cases if c.activation == "Tanh")
    output = _output(REFERENCE, case)
    output.probes = []
    assert feedback.self_check(case, output) is None
    bad = mistakes.load_source(mistakes.BY_NAME["tanh-1-minus-A"].source(REFERENCE_SOURCE))
    wrong = _output(bad, case)
    assert "does not match" in feedback.self_check_text(case, wrong)
    wrong.probes = [None, None]  # forward failed on the probes
    assert feedback.self_check_text(case, wrong) == ""


def test_every_activation_has_formulas():
    # The notebook and the plots read them from the table.
    for spec in assignment.ACTIVATIONS:
        assert spec.formula and spec.derivative, spec.name


def test_a_hang_while_probing_costs_nothing(grader, tmp_path):
    # ReLU's backward is wrong (so its cases are probed) and its forward hangs from
    # the first call after the 5 public cases on: only the feedback probes reach it.
    source = mistakes.BY_NAME["relu-dAdZ-1-at-0"].source(REFERENCE_SOURCE)
    source = source.replace("class ReLU:", "_CALLS = [0]\n\n\nclass ReLU:", 1)
    source = replace_method(
        source,
        "ReLU",
        "forward",
        """
        _CALLS[0] += 1
        if _CALLS[0] > 5 and Z.shape == (5,):
            while True:
                pass
        self.Z = Z
        self.A = np.maximum(Z, 0)
        return self.A
        """,
    )
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    tests = {t.name: t for t in report.tests}
    assert tests["ReLU forward (public)"].status == PASSED
    assert tests["ReLU forward (hidden)"].status == PASSED
    assert tests["ReLU backward (public)"].status == "failed"  # its own bug, not a timeout
    assert "timeout" not in {t.status for t in report.tests}
    assert sum(t.status != PASSED for t in report.tests) == 2
