"""The score report: built from pytest-json-report's JSON, or directly from results.

Its dictionary form is the ``--format json`` output and the input of every
renderer; its keys are a published interface (see the README, which keeps a
changelog of them). Status names and failure codes live here, beside the
record that carries them, so rendering a stored report needs neither pytest
nor the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from autograder import assignment

if TYPE_CHECKING:  # type hints only: the report never imports the checks
    from autograder.checks import TestResult, TestSpec

# Version of the JSON report's keys; the README's changelog says what changed.
SCHEMA_VERSION = 2

# ------------------------------------------------------------------ statuses

PASSED, FAILED, ERROR, TIMEOUT = "passed", "failed", "error", "timeout"
STATUSES = (PASSED, FAILED, ERROR, TIMEOUT)

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
CRASHED = "crashed"  # the worker process died (os._exit, a signal)
NOT_RUN = "not-run"  # not run or not judged because something before it failed

# When the cases of one test fail for different reasons, the test's code is
# the first of these that occurs: the cause that most likely explains the rest.
KIND_PRIORITY = (
    IMPORT,
    NOT_IMPLEMENTED,
    MISSING,
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

    @property
    def score(self) -> float:
        """Points earned over all tests."""
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        """Points available over the tests that were graded."""
        return round(sum(t.max_score for t in self.tests), 4)

    def activations(self) -> dict[str, dict[str, float]]:
        """Score and maximum per activation, in table order."""
        totals: dict[str, dict[str, float]] = {}
        for act in assignment.ACTIVATIONS:
            tests = [t for t in self.tests if t.activation == act.name]
            if tests:
                totals[act.name] = {
                    "score": round(sum(t.score for t in tests), 4),
                    "max_score": round(sum(t.max_score for t in tests), 4),
                }
        return totals

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
            tests=[
                TestEntry(**{k: v for k, v in t.items() if k in _ENTRY_FIELDS})
                for t in doc.get("tests", [])
            ],
            duration_s=float(doc.get("duration_s", 0.0)),
            sandbox=doc.get("sandbox", ""),
            hidden_graded=bool(doc.get("hidden_graded", False)),
            student_output=doc.get("student_output", ""),
            problem=doc.get("problem", ""),
            notes=list(doc.get("notes", [])),
            isolation=dict(doc.get("isolation") or {}),
            import_error=doc.get("import_error", ""),
        )


def zero_entry(spec: TestSpec, output: str, kind: str = NOT_RUN) -> TestEntry:
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


def entry(result: TestResult) -> TestEntry:
    """A report entry from an evaluated test."""
    meta = result.metadata()
    return TestEntry(**{k: meta[k] for k in _ENTRY_FIELDS})


def entries_from_pytest(json_report: dict[str, Any], specs: list[TestSpec]) -> list[TestEntry]:
    """Report entries from pytest-json-report's JSON, one per spec, in spec order.

    A test whose metadata is missing (the check itself crashed) scores 0 with
    status ``error``, so a grader bug can never hand out points.
    """
    by_param: dict[str, dict[str, Any]] = {}
    for test in json_report.get("tests", []):
        nodeid = test.get("nodeid", "")
        if nodeid.endswith("]") and "[" in nodeid:
            by_param[nodeid[nodeid.rindex("[") + 1 : -1]] = test
    entries = []
    for spec in specs:
        test = by_param.get(spec.id)
        meta = (test or {}).get("metadata") or {}
        if "score" in meta and test.get("outcome") in ("passed", "failed"):
            entries.append(TestEntry(**{k: meta[k] for k in _ENTRY_FIELDS if k in meta}))
            continue
        crash = ""
        if test:
            for stage in ("setup", "call", "teardown"):
                crash = crash or ((test.get(stage) or {}).get("crash") or {}).get("message", "")
        detail = f": {crash.splitlines()[0]}" if crash else " (it did not run)"
        entries.append(zero_entry(spec, "internal grader error in this test" + detail))
    return entries
