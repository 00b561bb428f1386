"""The score report: built from pytest-json-report's JSON, or directly from results.

Its dictionary form is the ``--format json`` output and the input of every
renderer; its keys are a published interface (see the README).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from autograder import assignment
from autograder.checks import ERROR, TestResult, TestSpec


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
            "submission": self.submission,
            "score": self.score,
            "max_score": self.max_score,
            "activations": self.activations(),
            "tests": [asdict(t) for t in self.tests],
            "duration_s": round(self.duration_s, 4),
            "sandbox": self.sandbox,
            "hidden_graded": self.hidden_graded,
            "student_output": self.student_output,
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
        """Rebuild a report from its JSON form."""
        return cls(
            submission=doc["submission"],
            tests=[TestEntry(**t) for t in doc.get("tests", [])],
            duration_s=float(doc.get("duration_s", 0.0)),
            sandbox=doc.get("sandbox", ""),
            hidden_graded=bool(doc.get("hidden_graded", False)),
            student_output=doc.get("student_output", ""),
            problem=doc.get("problem", ""),
            notes=list(doc.get("notes", [])),
            isolation=dict(doc.get("isolation") or {}),
        )


def zero_entry(spec: TestSpec, output: str) -> TestEntry:
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
    )


def entry(result: TestResult) -> TestEntry:
    """A report entry from an evaluated test."""
    meta = result.metadata()
    return TestEntry(**{k: meta[k] for k in TestEntry.__dataclass_fields__})


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
            entries.append(TestEntry(**{k: meta[k] for k in TestEntry.__dataclass_fields__}))
            continue
        crash = ""
        if test:
            for stage in ("setup", "call", "teardown"):
                crash = crash or ((test.get(stage) or {}).get("crash") or {}).get("message", "")
        detail = f": {crash.splitlines()[0]}" if crash else " (it did not run)"
        entries.append(zero_entry(spec, "internal grader error in this test" + detail))
    return entries
