"""Feedback: each failing test explains itself in a few lines, with its cause as a code.

Every kind of explanation is tested with a fixture submission that makes
exactly that mistake (most of them outside the catalogue), asserting the
failure code and the key sentence; correct code is never told it made one.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import FULL_MARKS, by_name
from helpers import REFERENCE_SOURCE, append, replace_method, write_layout
from test_grading import EXTRA_ATTRIBUTES, FLOAT32, LOOP_SOFTMAX

from autograder import files
from autograder.course import assignment, cases, reference
from autograder.isolation import outputs as out
from autograder.isolation.outputs import CaseOutput, PhaseOutput, RunOutput
from autograder.judge import checks, feedback, mistakes
from autograder.report import render
from autograder.report.record import (
    CRASHED,
    EXCEPTION,
    FAILURE_KINDS,
    IMPORT,
    MISSING,
    OVERFLOW,
    PASSED,
    TIMEOUT_KIND,
    UNDERFLOW,
    WRONG_VALUE,
    Report,
)
from autograder.submission import handin as submission

REFERENCE = reference.load_module(files.REFERENCE_PATH)


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


def failure_section(table: str) -> list[str]:
    """The lines of the table's "What did not pass" section (heading included)."""
    lines = table.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("What did not pass")]
    if not starts:
        return []
    start = starts[0]
    end = start + 1
    while end < len(lines) and not lines[end].startswith(("Your code printed", "Graded in")):
        end += 1
    section = lines[start:end]
    while section and not section[-1].strip():
        section.pop()
    return section


# A single mistake explains itself in this many lines of "What did not pass" at most.
MAX_FAILURE_LINES = 20


def _grade(grader, tmp_path, source: str):
    return grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)


def _fwd(cls: str, body: str) -> str:
    return replace_method(REFERENCE_SOURCE, cls, "forward", body)


def _bwd(cls: str, body: str) -> str:
    return replace_method(REFERENCE_SOURCE, cls, "backward", body)


def _public_case(grader, case_id: str):
    return next(c for c in grader.cases if c.id == case_id)


# ---------------------------------------------------------------- the self-check


def _self_check(grader, tmp_path, source: str, activation: str) -> tuple[str, str]:
    """The self-check's verdict (code, sentence) on the first probed case of ``activation``."""
    runs = grader.run(submission.load(write_layout(tmp_path, source, "file")))
    for case in grader.cases:
        output = runs["public"].cases.get(case.id)
        if case.activation == activation and output is not None and output.probes:
            verdict = feedback.self_check_verdict(case, output)
            if verdict is not None:
                return verdict
    raise AssertionError(f"no self-check verdict for {activation}")


def test_backward_that_does_not_match_its_forward(grader, tmp_path):
    source = mistakes.BY_NAME["mish-dAdZ-only-t"].source(REFERENCE_SOURCE)
    code, sentence = _self_check(grader, tmp_path, source, "Mish")
    assert code == feedback.BACKWARD_MISMATCH
    assert "your backward is not its derivative" in sentence


def test_wrong_forward_with_a_consistent_backward(grader, tmp_path):
    # The tanh approximation in both methods: backward is the derivative of a wrong forward.
    source = mistakes.BY_NAME["gelu-tanh-approximation"].source(REFERENCE_SOURCE)
    source = mistakes.BY_NAME["gelu-tanh-approximation-backward"].source(source)
    code, sentence = _self_check(grader, tmp_path, source, "GELU")
    assert code == feedback.FORWARD_ONLY
    assert "your backward is the correct derivative of your forward; fix forward" in sentence


# An uncatalogued single mistake in forward, with a backward that is exactly the
# derivative of that forward: the backward is never called wrong.
SIGMOID_STEEP = replace_method(
    _fwd("Sigmoid", "self.A = _sigmoid(2.0 * Z)\nreturn self.A"),
    "Sigmoid",
    "backward",
    "return dLdA * 2.0 * self.A * (1.0 - self.A)",
)


def test_a_backward_consistent_with_a_wrong_forward_is_told_to_fix_forward(grader, tmp_path):
    report = _grade(grader, tmp_path, SIGMOID_STEEP)
    backward = by_name(report)["Sigmoid backward (public)"]
    assert backward.failure_kind == WRONG_VALUE and backward.mistake == ""
    assert "your backward is the correct derivative of your forward; fix forward" in backward.output
    assert "not the derivative" not in backward.output
    assert "those where forward fails" in backward.output
    assert by_name(report)["Sigmoid forward (public)"].failure_kind == WRONG_VALUE


def test_wrong_forward_and_inconsistent_backward(grader, tmp_path):
    source = mistakes.BY_NAME["gelu-tanh-approximation"].source(REFERENCE_SOURCE)
    source = mistakes.BY_NAME["gelu-dAdZ-only-Phi"].source(source)
    code, sentence = _self_check(grader, tmp_path, source, "GELU")
    assert code == feedback.BOTH
    assert "your backward is not the derivative of your forward either" in sentence


def test_softmax_backward_checked_against_its_forward(grader, tmp_path):
    source = mistakes.BY_NAME["softmax-diagonal-jacobian"].source(REFERENCE_SOURCE)
    code, _ = _self_check(grader, tmp_path, source, "Softmax")
    assert code == feedback.BACKWARD_MISMATCH


def test_a_wrong_value_at_a_kink_is_called_so(grader, tmp_path):
    source = mistakes.BY_NAME["hardswish-edge-at-3"].source(REFERENCE_SOURCE)
    code, sentence = _self_check(grader, tmp_path, source, "Hardswish")
    assert code == feedback.AT_KINK
    assert "sit at Z = -3 or Z = 3" in sentence


def test_probes_only_for_failing_backwards(grader, tmp_path):
    source = mistakes.BY_NAME["relu-dAdZ-1-at-0"].source(REFERENCE_SOURCE)
    runs = grader.run(submission.load(write_layout(tmp_path, source, "file")))
    probed = {i for i, output in runs["public"].cases.items() if output.probes}
    assert probed == {"ReLU-p4"}
    assert all(p is not None for p in runs["public"].cases["ReLU-p4"].probes)
    assert not any(output.probes for output in runs["hidden"].cases.values())


def test_probed_cases_per_activation_are_the_ones_shown():
    assert feedback.PROBED_PER_ACTIVATION == checks.SHOWN_FAILURES


def test_the_most_telling_failing_cases_are_probed(grader, tmp_path):
    # Every GELU backward case fails; the worked example (dLdA of ones) is probed first.
    runs = grader.run(submission.load(write_layout(tmp_path, GELU_NO_Z_FACTOR, "file")))
    probed = [i for i, output in runs["public"].cases.items() if output.probes]
    assert "GELU-p4" in probed and len(probed) == feedback.PROBED_PER_ACTIVATION


# ---------------------------------------------------------------- backward: dLdA and dAdZ

SIGMOID_DOUBLED = _bwd("Sigmoid", "return 2.0 * dLdA * self.A * (1.0 - self.A)")
RELU_CLIPS_DLDA = _bwd("ReLU", "return np.maximum(dLdA, 0)")
# GELU's derivative without the factor Z on phi: not in the catalogue.
GELU_NO_Z_FACTOR = _bwd(
    "GELU",
    """
    Z = self.Z
    Phi = 0.5 * (1.0 + erf(Z / math.sqrt(2.0)))
    phi = np.exp(-0.5 * Z * Z) / math.sqrt(2.0 * math.pi)
    return dLdA * (Phi + phi)
    """,
)


def _worst_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("at [")]


def test_element_wise_backward_shows_dLdA_and_the_implied_derivative(grader, tmp_path):
    backward = by_name(_grade(grader, tmp_path, SIGMOID_DOUBLED))["Sigmoid backward (public)"]
    assert backward.failure_kind == WRONG_VALUE and backward.mistake == ""
    lines = _worst_lines(backward.output)
    assert lines and all(", dLdA = " in line for line in lines)
    # The derivative it implies is twice the right one: a factor is off.
    for line in lines:
        dAdZ = line.split("dAdZ = dLdZ / dLdA: expected ", 1)[1]
        expected, yours = (float(x) for x in dAdZ.split(", yours "))
        assert yours == pytest.approx(2 * expected, rel=1e-4)


def test_a_backward_that_returns_max_of_dLdA_shows_it(grader, tmp_path):
    backward = by_name(_grade(grader, tmp_path, RELU_CLIPS_DLDA))["ReLU backward (public)"]
    assert backward.failure_kind == WRONG_VALUE
    # Each shown element: got equals max(dLdA, 0), which the dLdA beside it makes visible.
    for line in _worst_lines(backward.output):
        dLdA = float(line.split("dLdA = ", 1)[1].split(":", 1)[0])
        got = float(line.split("got ", 1)[1].split(";", 1)[0])
        assert got == pytest.approx(max(dLdA, 0.0))


def test_the_worked_example_is_shown_first(grader, tmp_path):
    backward = by_name(_grade(grader, tmp_path, GELU_NO_Z_FACTOR))["GELU backward (public)"]
    assert backward.cases_passed == 0
    shown = [line for line in backward.output.splitlines() if line.startswith("- case ")]
    assert shown[0].startswith("- case GELU-p4:")  # dLdA = (1, 1, 0, 1, -1): got is dAdZ


def test_vector_backward_shows_no_element_derivative(grader, tmp_path):
    source = mistakes.BY_NAME["softmax-diagonal-jacobian"].source(REFERENCE_SOURCE)
    backward = by_name(_grade(grader, tmp_path, source))["Softmax backward (public)"]
    assert "dLdA = " not in backward.output  # one element of dLdZ depends on a whole row


# ---------------------------------------------------------------- where it fails

# The sum over the whole array instead of each row: a single row is still right.
SOFTMAX_SUM_ALL = _fwd(
    "Softmax",
    "E = np.exp(Z - np.max(Z, axis=1, keepdims=True))\nself.A = E / np.sum(E)\nreturn self.A",
)
ELU_ALPHA_SQUARED = _fwd(
    "ELU",
    "self.Z = Z\nself.A = np.where(Z > 0, Z, self.alpha**2 * np.expm1(np.minimum(Z, 0)))\n"
    "return self.A",
)
LEAKY_DEFAULT_002 = mistakes.replace_methods(
    REFERENCE_SOURCE, "LeakyReLU", "def __init__(self, alpha=0.02):\n    self.alpha = alpha"
)


def test_a_revealing_passing_case_is_named(grader, tmp_path):
    forward = by_name(_grade(grader, tmp_path, SOFTMAX_SUM_ALL))["Softmax forward (public)"]
    assert forward.failure_kind == WRONG_VALUE and forward.mistake == ""
    assert (
        "Where: case Softmax-p2 (a single row) passes and every case with several rows fails"
        in (forward.output)
    )


# Two nested loops over rows and columns: right on (N, C), an exception on 1-D and 3-D.
SIGMOID_TWO_LOOPS = _fwd(
    "Sigmoid",
    """
    N, C = Z.shape
    A = np.zeros((N, C))
    for i in range(N):
        for j in range(C):
            A[i, j] = 1.0 / (1.0 + math.exp(-Z[i, j])) if Z[i, j] > -700 else 0.0
    self.A = A
    return A
    """,
)


def test_code_that_only_works_in_2d_is_told_so(grader, tmp_path):
    forward = by_name(_grade(grader, tmp_path, SIGMOID_TWO_LOOPS))["Sigmoid forward (public)"]
    assert forward.failure_kind == EXCEPTION
    assert "Where: only the 2-D cases pass" in forward.output
    assert "element-wise code must work on any shape" in forward.output


def test_a_parameter_mistake_is_named(grader, tmp_path):
    forward = by_name(_grade(grader, tmp_path, ELU_ALPHA_SQUARED))["ELU forward (public)"]
    assert forward.failure_kind == WRONG_VALUE and forward.mistake == ""
    assert (
        "every case with the default alpha passes, every case with alpha = 2.0 or 0.5 fails: "
        "check where alpha enters the formula"
    ) in forward.output


def test_a_wrong_default_is_named(grader, tmp_path):
    forward = by_name(_grade(grader, tmp_path, LEAKY_DEFAULT_002))["LeakyReLU forward (public)"]
    assert forward.failure_kind == WRONG_VALUE
    assert "every case with the default alpha fails: check the default value of alpha" in (
        forward.output
    )


# ---------------------------------------------------------------- overflow against 0/0

# Subtracting the max of the whole array: rows far below it underflow to 0, then 0/0.
SOFTMAX_GLOBAL_MAX = _fwd(
    "Softmax",
    "E = np.exp(Z - np.max(Z))\nself.A = E / np.sum(E, axis=1, keepdims=True)\nreturn self.A",
)
SIGMOID_OVERFLOW = _fwd("Sigmoid", "E = np.exp(Z)\nself.A = E / (1.0 + E)\nreturn self.A")


def test_zero_over_zero_after_underflow_is_not_called_overflow(grader, tmp_path):
    forward = by_name(_grade(grader, tmp_path, SOFTMAX_GLOBAL_MAX))["Softmax forward (public)"]
    assert forward.failure_kind == UNDERFLOW
    assert "nan from 0/0" in forward.output and "overflow" not in forward.output


def test_overflow_is_called_overflow(grader, tmp_path):
    forward = by_name(_grade(grader, tmp_path, SIGMOID_OVERFLOW))["Sigmoid forward (public)"]
    assert forward.failure_kind == OVERFLOW and forward.mistake == ""
    assert "overflowed to inf" in forward.output and "0/0" not in forward.output


def test_catalogued_overflow_carries_its_code_and_id(grader, tmp_path):
    source = mistakes.BY_NAME["softmax-no-max"].source(REFERENCE_SOURCE)
    forward = by_name(_grade(grader, tmp_path, source))["Softmax forward (public)"]
    assert (forward.failure_kind, forward.mistake) == (OVERFLOW, "softmax-no-max")


# ---------------------------------------------------------------- once per test


def test_each_sentence_appears_once_per_test(grader, tmp_path):
    source = mistakes.BY_NAME["tanh-1-minus-A"].source(REFERENCE_SOURCE)
    backward = by_name(_grade(grader, tmp_path, source))["Tanh backward (public)"]
    assert backward.mistake == "tanh-1-minus-A"
    assert backward.output.count(f"{feedback.MISTAKE_PREFIX} (tanh-1-minus-A)") == 1
    assert backward.output.count("Self-check") == 1
    assert backward.output.count("- case ") == checks.SHOWN_FAILURES


# ---------------------------------------------------------------- import failures

# A stray import of a module the grading machine lacks (torch itself is installed in CI).
ABSENT = "torch_is_not_installed_here"
IMPORTS_TORCH = REFERENCE_SOURCE.replace("import math\n", f"import math\nimport {ABSENT}\n", 1)
SYNTAX_ERROR = append(REFERENCE_SOURCE, "def broken(:\n    pass")


def test_an_import_failure_is_one_headline_and_one_line_per_test(grader, tmp_path):
    line = IMPORTS_TORCH.splitlines().index(f"import {ABSENT}") + 1
    report = _grade(grader, tmp_path, IMPORTS_TORCH)
    assert report.import_error == (
        f"your module did not import: ModuleNotFoundError: No module named '{ABSENT}' "
        f"at line {line} of activation.py"
    )
    assert all(t.failure_kind == IMPORT for t in report.tests)
    assert all(len(t.output.splitlines()) == 1 for t in report.tests)
    public = [t for t in report.tests if t.visibility == "public" and t.phase != "rule"]
    assert all(f"No module named '{ABSENT}'" in t.output for t in public)
    # The table: the headline at the top, the reason said once, one line for every test.
    table = render.table(report)
    assert table.splitlines()[3].startswith("Your module did not import: ModuleNotFoundError")
    assert table.count("No module named") == 1 and "Traceback" not in table
    assert failure_section(table) == [
        "What did not pass: every test, since your module did not import (above)."
    ]


def test_an_exception_at_import_is_one_line_with_its_place(grader, tmp_path):
    source = append(REFERENCE_SOURCE, "raise ValueError('first line\\nsecond line')")
    line = len(source.rstrip("\n").splitlines())
    report = _grade(grader, tmp_path, source)
    assert report.import_error == (
        f"your module did not import: ValueError: first line second line at line {line} "
        "of activation.py"
    )


def test_a_syntax_error_is_a_headline(grader, tmp_path):
    report = _grade(grader, tmp_path, SYNTAX_ERROR)
    assert report.import_error.startswith("your module did not import: SyntaxError")
    assert {t.failure_kind for t in report.tests} == {IMPORT}


# ---------------------------------------------------------------- hangs, crashes, missing methods


def _correct_output(case) -> CaseOutput:
    e = case.expected
    beta = PhaseOutput("ok", np.array(e.dLdbeta)) if e.dLdbeta is not None else PhaseOutput("ok")
    return CaseOutput(
        case.id,
        PhaseOutput("ok", e.A.copy(), info={"dtype": "float64"}),
        PhaseOutput("ok", e.dLdZ.copy(), info={"dtype": "float64"}),
        beta,
        stored_A="same",
    )


def _handmade_report(grader, change) -> Report:
    """Grade hand-built worker outputs: the reference's, with ``change(case, output)`` applied."""
    runs = {}
    for visibility in ("public", "hidden"):
        run = RunOutput()
        for case in grader.cases:
            if case.visibility == visibility:
                output = _correct_output(case)
                change(case, output)
                run.cases[case.id] = output
        runs[visibility] = run
    ctx = checks.GradingContext("handmade", grader.cases, runs, REFERENCE_SOURCE)
    return Report("handmade", [checks.evaluate(spec, ctx).entry() for spec in grader.specs])


def test_handmade_outputs_of_the_reference_score_full_marks(grader):
    assert _handmade_report(grader, lambda case, output: None).score == FULL_MARKS


@pytest.mark.parametrize(
    "status, kind, message",
    [
        (out.TIMEOUT, TIMEOUT_KIND, "backward used more than 2 s of CPU time"),
        (out.CRASHED, CRASHED, "backward was killed by signal 11 (SIGSEGV)"),
    ],
    ids=["hang", "crash"],
)
def test_a_hang_or_crash_in_backward_keeps_the_forward_points(grader, status, kind, message):
    def hang(case, output):
        if case.activation == "ReLU":
            output.backward = PhaseOutput(status, message=message)

    report = _handmade_report(grader, hang)
    tests = by_name(report)
    for visibility in ("public", "hidden"):
        forward = tests[f"ReLU forward ({visibility})"]
        assert forward.status == PASSED and forward.score == forward.max_score
        backward = tests[f"ReLU backward ({visibility})"]
        assert backward.score == 0 and backward.failure_kind == kind
    public = tests["ReLU backward (public)"].output
    assert message in public and public.count(message) == 1
    assert "forward" not in public
    assert report.score == FULL_MARKS - tests["ReLU backward (public)"].max_score - (
        tests["ReLU backward (hidden)"].max_score
    )


def test_a_phase_less_message_is_given_its_phase_and_said_once(grader):
    def hang(case, output):
        if case.activation == "ELU":
            note = "took too long" if case.id in ("ELU-p1", "ELU-p2") else "not run: timed out"
            output.backward = PhaseOutput(out.TIMEOUT, message=note)

    public = by_name(_handmade_report(grader, hang))["ELU backward (public)"].output
    assert public.count("ELU.backward: took too long") == 1
    assert "- cases ELU-p1, ELU-p2\n" in public


def test_a_real_hang_in_backward_is_told_once_per_message(grader, tmp_path):
    hanging = _bwd("ReLU", "while True:\n    pass")
    tests = by_name(_grade(grader, tmp_path, hanging))
    assert tests["ReLU forward (public)"].status == PASSED
    backward = tests["ReLU backward (public)"]
    assert backward.failure_kind == TIMEOUT_KIND
    lines = backward.output.splitlines()
    assert len(lines) == len(set(lines)), backward.output  # no sentence twice
    assert "forward" not in backward.output


def test_a_missing_backward_keeps_the_forward_points(grader):
    def no_backward(case, output):
        if case.activation == "Swish":
            output.backward = PhaseOutput(out.MISSING, info={"method": "backward"})
            output.dLdbeta = PhaseOutput(out.MISSING, info={"method": "backward"})

    tests = by_name(_handmade_report(grader, no_backward))
    assert tests["Swish forward (public)"].status == PASSED
    backward, beta = tests["Swish backward (public)"], tests["Swish dLdbeta (public)"]
    assert backward.failure_kind == beta.failure_kind == MISSING
    assert "Swish has no method backward()" in backward.output
    assert "not run: Swish has no method backward()" in beta.output
    assert beta.output.count("no method backward") == 1


def test_a_missing_class_is_named_once(grader):
    def no_class(case, output):
        if case.activation == "Mish":
            failed = CaseOutput.failed(case.id, out.MISSING, "")
            output.forward, output.backward, output.dLdbeta = (
                failed.forward,
                failed.backward,
                failed.dLdbeta,
            )

    forward = by_name(_handmade_report(grader, no_class))["Mish forward (public)"]
    assert forward.failure_kind == MISSING
    assert forward.output.count("class Mish was not found in your file") == 1


# ---------------------------------------------------------------- hidden tests: counts only


def test_hidden_tests_show_counts_only_in_every_format(grader, tmp_path):
    source = mistakes.BY_NAME["relu-dAdZ-1-at-0"].source(REFERENCE_SOURCE)
    report = _grade(grader, tmp_path, source)
    hidden = by_name(report)["ReLU backward (hidden)"]
    assert hidden.status == "failed" and hidden.cases_passed < hidden.cases_total
    assert hidden.output == f"{hidden.cases_passed}/{hidden.cases_total} hidden cases passed."
    assert hidden.failure_kind == WRONG_VALUE and hidden.mistake == ""
    hidden_id = re.compile(r"\b[A-Za-z0-9]+-h\d+\b")
    for name, render_fn in render.RENDERERS.items():
        assert not hidden_id.search(render_fn(report)), name


# ---------------------------------------------------------------- the line budget

UNCATALOGUED = {
    "sigmoid-steep": SIGMOID_STEEP,
    "sigmoid-doubled": SIGMOID_DOUBLED,
    "relu-clips-dLdA": RELU_CLIPS_DLDA,
    "gelu-no-Z-factor": GELU_NO_Z_FACTOR,
    "softmax-sum-all": SOFTMAX_SUM_ALL,
    "elu-alpha-squared": ELU_ALPHA_SQUARED,
    "leaky-default-0.02": LEAKY_DEFAULT_002,
    "softmax-global-max": SOFTMAX_GLOBAL_MAX,
    "sigmoid-overflow": SIGMOID_OVERFLOW,
    "tanh-np-tanh": _fwd("Tanh", "self.A = np.tanh(Z)\nreturn self.A"),
    "sigmoid-two-loops": SIGMOID_TWO_LOOPS,
}


@pytest.mark.parametrize("name", list(UNCATALOGUED))
def test_a_single_uncatalogued_mistake_explains_itself_briefly(grader, tmp_path, name):
    report = _grade(grader, tmp_path, UNCATALOGUED[name])
    section = failure_section(render.table(report))
    assert section, name
    assert len(section) <= MAX_FAILURE_LINES, "\n".join(section)
    failing = [t for t in report.tests if t.status != PASSED]
    assert failing and all(t.failure_kind in FAILURE_KINDS for t in failing)


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
# A helper named tanh (and a local variable named tanh), written from exponentials.
TANH_OWN_HELPER = append(
    REFERENCE_SOURCE,
    """
    def tanh(x):
        tanh = np.exp(-2.0 * np.abs(x))
        return np.sign(x) * (1.0 - tanh) / (1.0 + tanh)


    class Tanh(Tanh):
        def forward(self, Z):
            self.A = tanh(Z)
            return self.A
    """,
)
# Module-level helpers calling each other, shared by several classes.
HELPERS = append(
    REFERENCE_SOURCE,
    """
    def _exp_neg_abs(Z):
        return np.exp(-np.abs(Z))


    def _logistic(Z):
        E = _exp_neg_abs(Z)
        return np.where(Z >= 0, 1.0 / (1.0 + E), E / (1.0 + E))


    def _tanh_from_logistic(Z):
        return 2.0 * _logistic(2.0 * Z) - 1.0


    class Sigmoid(Sigmoid):
        def forward(self, Z):
            self.A = _logistic(Z)
            return self.A


    class Tanh(Tanh):
        def forward(self, Z):
            # tanh(Z) = 2 sigmoid(2Z) - 1, except near 0 where the subtraction cancels.
            small = np.abs(Z) < 1e-3
            self.A = np.where(small, Z - Z**3 / 3.0, _tanh_from_logistic(Z))
            return self.A
    """,
)
# One scalar function per element, through np.vectorize (float64 out, whatever came in).
VECTORIZED = append(
    REFERENCE_SOURCE,
    """
    def _scalar_sigmoid(z):
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


    def tanh(z):
        e = math.exp(-2.0 * abs(z))
        return math.copysign((1.0 - e) / (1.0 + e), z) if abs(z) > 1e-4 else z - z**3 / 3.0


    class Sigmoid(Sigmoid):
        def forward(self, Z):
            self.A = np.vectorize(_scalar_sigmoid, otypes=[float])(Z)
            return self.A


    class Tanh(Tanh):
        def forward(self, Z):
            self.A = np.vectorize(tanh, otypes=[float])(Z)
            return self.A


    class ReLU(ReLU):
        def forward(self, Z):
            self.A = np.vectorize(lambda z: z if z > 0 else 0.0, otypes=[float])(Z)
            return self.A

        def backward(self, dLdA):
            return dLdA * np.vectorize(lambda a: 1.0 if a > 0 else 0.0, otypes=[float])(self.A)
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
    "tanh-own-helper": TANH_OWN_HELPER,
    "helper-functions": HELPERS,
    "np-vectorize": VECTORIZED,
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_variants_are_never_told_they_made_a_mistake(grader, tmp_path, name):
    sub = submission.load(write_layout(tmp_path, CORRECT[name], "file"))
    report = grader.grade_submission(sub, use_pytest=False)
    failing = [(t.name, t.output) for t in report.tests if t.status != PASSED]
    assert not failing and report.score == FULL_MARKS
    # No hint of any kind: every test says only how many cases passed (or "rule respected").
    for t in report.tests:
        assert len(t.output.splitlines()) == 1 and not t.failure_kind and not t.mistake, t.name
    assert "What did not pass" not in render.table(report)
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
    assert feedback.self_check_verdict(case, wrong)[0] == feedback.BACKWARD_MISMATCH
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


# ------------------------------------------------------------------ other terms' handins


@pytest.mark.parametrize(
    ("defined", "hint"),
    [
        (["GeLU", "ReLU"], "GeLU"),  # letter case
        (["Gelu_"], "Gelu_"),  # a close spelling
        (["ELU", "ReLU"], ""),  # another activation of the table is no misspelling
        (["Helper", "Linear"], ""),
    ],
)
def test_a_near_miss_is_named_only_when_close_and_not_another_activation(defined, hint):
    from autograder.judge import checks

    assert checks.near_miss("GELU", defined) == hint
    text = checks.class_not_found("GELU", defined)
    assert text.startswith("class GELU not found")
    assert (f"your file defines {hint}: did you mean GELU?" in text) == bool(hint)


def test_a_backward_that_takes_no_dLdA_is_told_once_as_the_spring_2023_api(grader, tmp_path):
    source = append(
        REFERENCE_SOURCE,
        """
        def _old_backward(self):
            return 1 - self.A ** 2


        Tanh.backward = _old_backward
        """,
    )
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    tests = by_name(report)
    backward = tests["Tanh backward (public)"]
    assert backward.failure_kind == "api" and backward.score == 0
    assert backward.output.count("Spring 2023 API") == 1
    assert "TypeError" not in backward.output and "Hint" not in backward.output
    assert tests["Tanh backward (hidden)"].failure_kind == "api"
    assert tests["Tanh forward (public)"].status == "passed"
    assert tests["Tanh forward (hidden)"].status == "passed"


def test_a_TypeError_inside_a_backward_that_takes_dLdA_stays_an_exception(grader, tmp_path):
    # The API is told from the signature, not from the exception: a TypeError of the
    # student's own making is an exception, with its traceback.
    source = replace_method(REFERENCE_SOURCE, "Tanh", "backward", "return len(5)")
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    backward = by_name(report)["Tanh backward (public)"]
    assert backward.failure_kind == "exception"
    assert "TypeError" in backward.output and "Spring 2023" not in backward.output


def test_a_forward_of_the_wrong_arity_is_told_as_such(grader, tmp_path):
    source = append(
        REFERENCE_SOURCE,
        """
        _forward = ReLU.forward


        def _two(self, Z, extra):
            return _forward(self, Z)


        ReLU.forward = _two
        """,
    )
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    tests = by_name(report)
    forward = tests["ReLU forward (public)"]
    assert forward.failure_kind == "api"
    assert "ReLU.forward(Z, extra) cannot be called as forward(Z)" in forward.output
    backward = tests["ReLU backward (public)"]
    assert backward.failure_kind == "not-run" and "fix forward first" in backward.output
