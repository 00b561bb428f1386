"""Graded fixture submissions: correct variants, stubs and typical single bugs."""

from __future__ import annotations

import pytest
from conftest import by_name
from helpers import REFERENCE_SOURCE, append, replace_method, write_layout

from autograder import files
from autograder.course import course_file
from autograder.judge.checks import PASSED

HANDOUT = files.PROJECT_ROOT / "handout"
# The course in effect (this repository has no course.toml: full), as the session grader uses.
COURSE = course_file.in_effect()
SOLUTIONS = files.PROJECT_ROOT / "solutions"


def assert_full_marks(report) -> None:
    failing = [(t.name, t.output) for t in report.tests if t.status != PASSED]
    assert not failing, failing
    assert report.score == report.max_score == COURSE.total


def test_reference_scores_full_marks_through_pytest(grader):
    report = grader.grade(SOLUTIONS)
    assert_full_marks(report)
    assert report.hidden_graded
    assert {t.visibility for t in report.tests} == {"public", "hidden"}
    assert list(report.activations()) == list(COURSE.names)


def test_untouched_stubs_score_only_identity(grader):
    report = grader.grade(HANDOUT)
    totals = report.activations()
    identity = COURSE.row("Identity").max_score
    assert totals["Identity"] == {"score": identity, "max_score": identity}
    assert report.score == identity
    for name, total in totals.items():
        if name != "Identity":
            assert total["score"] == 0.0, name
    forward = by_name(report)["ReLU forward (public)"]
    assert forward.status == "error"
    assert "not implemented yet" in forward.output
    assert "Traceback" not in forward.output


@pytest.mark.parametrize(
    "layout", ["package", "flat", "file", "tar", "tgz", "targz", "zip", "zip-folder", "notebook"]
)
def test_every_input_form_of_a_correct_submission_scores_full_marks(grader, tmp_path, layout):
    path = write_layout(tmp_path, REFERENCE_SOURCE, layout)
    report = grader.grade(path, use_pytest=False)
    assert_full_marks(report)
    assert report.submission == "sub"


FLOAT32 = append(
    REFERENCE_SOURCE,
    '''
    def _in_float32(cls):
        """The same class, computing everything in float32."""

        class InFloat32(cls):
            def forward(self, Z):
                return super().forward(np.asarray(Z, dtype=np.float32))

            def backward(self, dLdA):
                return super().backward(np.asarray(dLdA, dtype=np.float32))

        InFloat32.__name__ = cls.__name__
        return InFloat32


    for _name in ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "CELU", "GELU", "Swish",
                  "Softplus", "Mish", "Hardswish", "ReLU6", "Softmax"]:
        globals()[_name] = _in_float32(globals()[_name])
    ''',
)

LOOP_SOFTMAX = replace_method(
    REFERENCE_SOURCE,
    "Softmax",
    "backward",
    """
    N, C = dLdA.shape
    dLdZ = np.zeros((N, C))
    for i in range(N):
        J = np.zeros((C, C))
        for m in range(C):
            for n in range(C):
                if m == n:
                    J[m, n] = self.A[i, m] * (1 - self.A[i, m])
                else:
                    J[m, n] = -self.A[i, m] * self.A[i, n]
        dLdZ[i, :] = dLdA[i, :] @ J
    return dLdZ
    """,
)

EXTRA_ATTRIBUTES = replace_method(
    REFERENCE_SOURCE,
    "ReLU",
    "forward",
    """
    self.Z = Z.copy()
    self.calls = getattr(self, "calls", 0) + 1
    self.cache = {"mask": Z > 0}
    self.A = np.where(self.cache["mask"], Z, 0.0)
    return self.A
    """,
)


@pytest.mark.parametrize(
    "source",
    [FLOAT32, LOOP_SOFTMAX, EXTRA_ATTRIBUTES],
    ids=["computes-in-float32", "loop-softmax-jacobian", "extra-attributes"],
)
def test_correct_variants_score_full_marks(grader, tmp_path, source):
    assert_full_marks(grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False))


def test_pytest_and_direct_paths_give_the_same_report(grader, tmp_path):
    for source in (REFERENCE_SOURCE, BUGS["relu-derivative-1-at-0"][0], BUGS["softmax-no-max"][0]):
        path = write_layout(tmp_path / str(abs(hash(source))), source, "file")
        a = grader.grade(path, use_pytest=True).to_dict()
        b = grader.grade(path, use_pytest=False).to_dict()
        a.pop("duration_s"), b.pop("duration_s")
        assert a == b


# ---------------------------------------------------------------- single bugs

_r = REFERENCE_SOURCE


def _fwd(cls, body):
    return replace_method(_r, cls, "forward", body)


def _bwd(cls, body):
    return replace_method(_r, cls, "backward", body)


# name -> (source, {failing test name: substring its output must contain}).
# Every test not listed must pass.
BUGS = {
    "relu-derivative-1-at-0": (
        replace_method(
            _fwd("ReLU", "self.Z = Z\nself.A = np.maximum(Z, 0)\nreturn self.A"),
            "ReLU",
            "backward",
            "return dLdA * (self.Z >= 0)",
        ),
        {"ReLU backward (public)": "where Z = 0", "ReLU backward (hidden)": "hidden cases passed"},
    ),
    "sigmoid-derivative-at-A": (
        _bwd("Sigmoid", "s = 1 / (1 + np.exp(-self.A))\nreturn dLdA * s * (1 - s)"),
        {"Sigmoid backward (public)": "elements differ", "Sigmoid backward (hidden)": ""},
    ),
    "tanh-1-minus-A": (
        _bwd("Tanh", "return dLdA * (1 - self.A)"),
        {"Tanh backward (public)": "elements differ", "Tanh backward (hidden)": ""},
    ),
    "tanh-uses-np-tanh": (
        _fwd("Tanh", "self.A = np.tanh(Z)\nreturn self.A"),
        {"Tanh rule: no np.tanh": "np.tanh"},
    ),
    "softmax-no-max": (
        _fwd("Softmax", "E = np.exp(Z)\nself.A = E / E.sum(axis=1, keepdims=True)\nreturn self.A"),
        {
            "Softmax forward (public)": "overflow",
            "Softmax backward (public)": "",
            "Softmax forward (hidden)": "",
            "Softmax backward (hidden)": "",
        },
    ),
    "softmax-diagonal-jacobian": (
        _bwd("Softmax", "return dLdA * self.A * (1 - self.A)"),
        {"Softmax backward (public)": "elements differ", "Softmax backward (hidden)": ""},
    ),
    "swish-dLdbeta-not-summed": (
        _bwd(
            "Swish",
            """
            Z, s = self.Z, self.s
            self.dLdbeta = dLdA * Z * Z * s * (1 - s)
            return dLdA * (s + self.beta * Z * s * (1 - s))
            """,
        ),
        {"Swish dLdbeta (public)": "single number", "Swish dLdbeta (hidden)": ""},
    ),
    "gelu-tanh-approximation": (
        _fwd(
            "GELU",
            """
            self.Z = Z
            inner = math.sqrt(2 / math.pi) * (Z + 0.044715 * Z**3)
            self.A = 0.5 * Z * (1 + np.tanh(inner))
            return self.A
            """,
        ),
        {"GELU forward (public)": "elements differ", "GELU forward (hidden)": ""},
    ),
    "hardswish-closed-middle-band": (
        _bwd(
            "Hardswish",
            """
            Z = self.Z
            dAdZ = np.where(Z < -3, 0.0, np.where(Z <= 3, (2 * Z + 3) / 6, 1.0))
            return dLdA * dAdZ
            """,
        ),
        {"Hardswish backward (public)": "where Z = -3", "Hardswish backward (hidden)": ""},
    ),
    "softplus-without-threshold": (
        _fwd(
            "Softplus",
            "self.Z = Z\nself.A = np.log1p(np.exp(self.beta * Z)) / self.beta\nreturn self.A",
        ),
        {"Softplus forward (public)": "inf", "Softplus forward (hidden)": ""},
    ),
    "forward-returns-none": (
        _fwd("ReLU", "self.A = np.maximum(Z, 0)"),
        {"ReLU forward (public)": "returned None", "ReLU forward (hidden)": ""},
    ),
    "forward-does-not-store-A": (
        _fwd("Sigmoid", "return _sigmoid(Z)"),
        {"Sigmoid backward (public)": "did not store", "Sigmoid backward (hidden)": ""},
    ),
    "relu-changes-Z-in-place": (
        _fwd("ReLU", "Z[Z < 0] = 0\nself.A = Z\nreturn self.A"),
        {"ReLU forward (public)": "in place", "ReLU forward (hidden)": ""},
    ),
    "softmax-transposed-output": (
        _fwd(
            "Softmax",
            "E = np.exp(Z - Z.max(axis=1, keepdims=True))\n"
            "self.A = E / E.sum(axis=1, keepdims=True)\nreturn self.A.T",
        ),
        {"Softmax forward (public)": "transposed", "Softmax forward (hidden)": ""},
    ),
    "leaky-relu-wrong-default": (
        _r.replace(
            "def __init__(self, alpha=0.01):\n        self.alpha = alpha\n\n    def forward(self, Z):\n        ### BEGIN SOLUTION\n        self.Z = Z\n        self.A = np.where(Z > 0, Z, self.alpha * Z)",
            "def __init__(self, alpha=0.1):\n        self.alpha = alpha\n\n    def forward(self, Z):\n        ### BEGIN SOLUTION\n        self.Z = Z\n        self.A = np.where(Z > 0, Z, self.alpha * Z)",
        ),
        {
            "LeakyReLU forward (public)": "",
            "LeakyReLU backward (public)": "",
            "LeakyReLU forward (hidden)": "",
            "LeakyReLU backward (hidden)": "",
        },
    ),
    "mish-missing-chain-rule": (
        _bwd("Mish", "return dLdA * self.t"),
        {"Mish backward (public)": "", "Mish backward (hidden)": ""},
    ),
    "relu6-without-upper-clip": (
        _fwd("ReLU6", "self.Z = Z\nself.A = np.maximum(Z, 0.0)\nreturn self.A"),
        {"ReLU6 forward (public)": "", "ReLU6 forward (hidden)": ""},
    ),
}


@pytest.mark.parametrize("name", list(BUGS))
def test_single_bug_loses_only_its_own_tests(grader, tmp_path, name):
    source, failing = BUGS[name]
    assert source != REFERENCE_SOURCE
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    tests = by_name(report)
    for test_name, needle in failing.items():
        test = tests[test_name]
        assert test.status != PASSED, f"{test_name} should fail"
        assert test.score < test.max_score
        assert needle in test.output, test.output
    for test in report.tests:
        if test.name not in failing:
            assert test.status == PASSED, (test.name, test.output)


def test_partial_credit_is_per_case(grader, tmp_path):
    source, _ = BUGS["relu-derivative-1-at-0"]
    test = by_name(grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False))[
        "ReLU backward (public)"
    ]
    # Only the kink case fails: 4 of 5 public cases keep their share of the points.
    assert (test.cases_passed, test.cases_total) == (4, 5)
    assert test.score == pytest.approx(test.max_score * 4 / 5)


def test_hidden_feedback_reveals_no_inputs(grader, tmp_path):
    source, _ = BUGS["sigmoid-derivative-at-A"]
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    hidden = by_name(report)["Sigmoid backward (hidden)"]
    assert "Z =" not in hidden.output and "expected" not in hidden.output
    # Counts only: naming the failing hidden cases would leak a bit of each input.
    assert hidden.output == f"{hidden.cases_passed}/{hidden.cases_total} hidden cases passed."
    assert "Sigmoid-h" not in hidden.output and hidden.failure_kind == "wrong-value"
    public = by_name(report)["Sigmoid backward (public)"]
    assert "expected" in public.output and "seed" in public.output
