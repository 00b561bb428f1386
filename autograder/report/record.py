"""The score report: built from pytest-json-report's JSON, or directly from results.

Its dictionary form is the ``--format json`` output and the input of every
renderer; its keys are a published interface (see the README, which keeps a
changelog of them). Status names and failure codes live here, beside the
record that carries them, so rendering a stored report needs neither pytest
nor the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

# Version of the JSON report's keys; the README's changelog says what changed.
SCHEMA_VERSION = 3

# ------------------------------------------------------------------ statuses

PASSED, FAILED, ERROR, TIMEOUT = "passed", "failed", "error", "timeout"
STATUSES = (PASSED, FAILED, ERROR, TIMEOUT)

# ------------------------------------------------------------------ credit modes

PROPORTIONAL, ALL_OR_NOTHING = "proportional", "all-or-nothing"
# Points are compared with this slack (the report rounds them to 4 decimals).
POINTS_SLACK = 1e-6

# ------------------------------------------------------------------ failure codes
# Why a case (and so a test) did not pass, as data: the summary and the
# renderers read these, never the feedback's wording.

WRONG_VALUE = "wrong-value"  # an array of the right shape with wrong numbers
SHAPE = "shape"  # the wrong shape (or an array where one number was due)
DTYPE = "dtype"  # not a real-valued numpy array (None, a list, complex, ...)
NAN_INF = "nan-inf"  # inf or nan where the result is finite
OVERFLOW = "overflow"  # inf or nan after numpy warned of an overflow
UNDERFLOW = "underflow-0/0"  # nan from 0/0 after terms underflowed to 0
IN_PLACE = "in-place"  # an input (Z or dLdA) was changed in place
NOT_IMPLEMENTED = "not-implemented"  # raised NotImplementedError
EXCEPTION = "exception"  # raised another exception
TIMEOUT_KIND = "timeout"  # did not finish in time
IMPORT = "import"  # the module did not import
RULE = "rule"  # a source rule was broken (np.tanh in Tanh)
MISSING = "missing"  # a class, method or attribute (self.dLdbeta) was absent
API = "api"  # a method of another term's API (backward(self) returning dAdZ)
CRASHED = "crashed"  # the worker process died (os._exit, a signal)
NOT_RUN = "not-run"  # not run or not judged because something before it failed

# When the cases of one test fail for different reasons, the test's code is
# the first of these that occurs: the cause that most likely explains the rest.
KIND_PRIORITY = (
    IMPORT,
    NOT_IMPLEMENTED,
    MISSING,
    API,
    CRASHED,
    TIMEOUT_KIND,
    EXCEPTION,
    IN_PLACE,
    OVERFLOW,
    UNDERFLOW,
    NAN_INF,
    SHAPE,
    DTYPE,
    WRONG_VALUE,
    RULE,
    NOT_RUN,
)
FAILURE_KINDS = frozenset(KIND_PRIORITY)


def main_kind(kinds: list[str]) -> str:
    """The code that stands for a test whose failing cases have these codes ("" if none)."""
    present = set(kinds)
    return next((k for k in KIND_PRIORITY if k in present), "")


@dataclass
class TestEntry:
    """One test as reported."""

    __test__ = False

    name: str
    activation: str
    phase: str
    visibility: str
    score: float
    max_score: float
    status: str
    output: str
    cases_passed: int = 0
    cases_total: int = 0
    # Why it did not pass: one code of FAILURE_KINDS ("" when passed), and the id
    # of the catalogued mistake its output matched ("" when none; public tests only).
    failure_kind: str = ""
    mistake: str = ""

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TestEntry:
        """An entry from its dictionary form; keys it does not know are ignored."""
        return cls(**{k: v for k, v in doc.items() if k in _ENTRY_FIELDS})


_ENTRY_FIELDS = tuple(f.name for f in fields(TestEntry))


@dataclass
class Report:
    """The outcome of grading one submission."""

    submission: str
    tests: list[TestEntry] = field(default_factory=list)
    duration_s: float = 0.0
    sandbox: str = ""
    hidden_graded: bool = False
    student_output: str = ""
    # Why the submission could not be graded at all (batch grading), else "".
    problem: str = ""
    # Notes on how it was graded (e.g. a weaker sandbox level and why).
    notes: list[str] = field(default_factory=list)
    # How student code was isolated, as data: level, seccomp, cgroup, self_check, skipped.
    isolation: dict[str, Any] = field(default_factory=dict)
    # One line saying why the module did not import ("" when it did).
    import_error: str = ""
    # The course it was graded under (``Course.report_info()``): name, total,
    # credit mode, activations in order, Autolab problems, digest. Empty for a
    # report from before courses (schema 1 and 2): proportional, one Autolab
    # problem per activation.
    course: dict[str, Any] = field(default_factory=dict)

    @property
    def credit(self) -> str:
        """The credit mode: ``proportional`` or ``all-or-nothing``."""
        return str(self.course.get("credit") or PROPORTIONAL)

    @property
    def all_passed(self) -> bool:
        """Whether every test earned all its points (what all-or-nothing asks)."""
        return all(t.score >= t.max_score - POINTS_SLACK for t in self.tests)

    @property
    def score(self) -> float:
        """Points earned over all tests, under the course's credit mode.

        All or nothing: every test's points when every test passes, else 0
        (each test keeps its own score, for feedback).
        """
        if self.credit == ALL_OR_NOTHING and not self.all_passed:
            return 0.0
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        """Points available over the tests that were graded."""
        return round(sum(t.max_score for t in self.tests), 4)

    def activation_names(self) -> list[str]:
        """The graded activations in the course's order (else the tests' order)."""
        names = [n for n in self.course.get("activations") or () if isinstance(n, str)]
        for t in self.tests:
            if t.activation not in names:
                names.append(t.activation)
        return names

    def activations(self) -> dict[str, dict[str, float]]:
        """Score (after the credit mode) and maximum per activation, in the course's order.

        Under all-or-nothing credit each also has ``earned``: what its tests
        earned before the credit mode (the class summary's pass rates read it).
        """
        totals: dict[str, dict[str, float]] = {}
        aon = self.credit == ALL_OR_NOTHING
        zero = aon and not self.all_passed
        for name in self.activation_names():
            tests = [t for t in self.tests if t.activation == name]
            if tests:
                earned = round(sum(t.score for t in tests), 4)
                totals[name] = {
                    "score": 0.0 if zero else earned,
                    "max_score": round(sum(t.max_score for t in tests), 4),
                }
                if aon:
                    totals[name]["earned"] = earned
        return totals

    def autolab_scores(self) -> dict[str, float]:
        """Autolab's ``scores``: one problem per activation, or the course's single problem."""
        autolab = self.course.get("autolab") or {}
        if autolab.get("problems") == "single" and autolab.get("problem"):
            return {str(autolab["problem"]): self.score}
        totals = self.activations()
        return {n: totals.get(n, {}).get("score", 0.0) for n in self.activation_names()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (``--format json``)."""
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "submission": self.submission,
            "score": self.score,
            "max_score": self.max_score,
            "activations": self.activations(),
            # Every field is a plain str or number: a shallow copy is a full one, and
            # asdict's deep copy costs a millisecond per report in a batch.
            "tests": [{name: getattr(t, name) for name in _ENTRY_FIELDS} for t in self.tests],
            "duration_s": round(self.duration_s, 4),
            "sandbox": self.sandbox,
            "hidden_graded": self.hidden_graded,
            "student_output": self.student_output,
            "import_error": self.import_error,
        }
        if self.course:
            doc["course"] = self.course
        if self.problem:
            doc["problem"] = self.problem
        if self.notes:
            doc["notes"] = self.notes
        if self.isolation:
            doc["isolation"] = self.isolation
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Report:
        """Rebuild a report from its JSON form.

        Keys it does not know (a newer grader's, or another tool's) are
        ignored, and keys added since schema 1 take their defaults, so a
        stored report of any version renders.
        """
        return cls(
            submission=doc["submission"],
            tests=[TestEntry.from_dict(t) for t in doc.get("tests", [])],
            duration_s=float(doc.get("duration_s", 0.0)),
            sandbox=doc.get("sandbox", ""),
            hidden_graded=bool(doc.get("hidden_graded", False)),
            student_output=doc.get("student_output", ""),
            problem=doc.get("problem", ""),
            notes=list(doc.get("notes", [])),
            isolation=dict(doc.get("isolation") or {}),
            import_error=doc.get("import_error", ""),
            course=dict(doc.get("course") or {}),
        )


class Graded(Protocol):
    """What an entry needs to know of its test (the checks' ``TestSpec`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def activation(self) -> str: ...
    @property
    def phase(self) -> str: ...
    @property
    def visibility(self) -> str: ...
    @property
    def points(self) -> float: ...


def zero_entry(spec: Graded, output: str, kind: str = NOT_RUN) -> TestEntry:
    """A test that earned nothing because it could not be judged (status ``error``)."""
    return TestEntry(
        name=spec.name,
        activation=spec.activation,
        phase=spec.phase,
        visibility=spec.visibility,
        score=0.0,
        max_score=spec.points,
        status=ERROR,
        output=output,
        failure_kind=kind,
    )
