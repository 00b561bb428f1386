"""The checks: one pytest test per (activation, phase, visibility), and the rules.

``evaluate`` is a plain function from a test spec and the grading context
(cases with expected values, what the worker returned, the student's
source) to a result with points; ``test_check`` is the pytest test that
runs it, records points and visibility as pytest-json-report metadata, and
fails with the feedback text. The engine parametrizes it through
:class:`ChecksPlugin`, so pytest never looks anywhere near the submission.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from autograder import assignment, compare, feedback
from autograder import outputs as out
from autograder.assignment import ForbiddenNames
from autograder.cases import Case
from autograder.outputs import CaseOutput, RunOutput

PASSED, FAILED, ERROR, TIMEOUT = "passed", "failed", "error", "timeout"
# Failing public cases described in full per test; the rest are listed by id.
SHOWN_FAILURES = 3


@dataclass(frozen=True)
class TestSpec:
    """One graded test: an activation's phase on its public or hidden cases, or a rule."""

    __test__ = False  # not a pytest test class

    activation: str
    phase: str  # forward | backward | dLdbeta | rule
    visibility: str  # public | hidden
    points: float
    rule: ForbiddenNames | None = None

    @property
    def name(self) -> str:
        """The test's display name, e.g. ``ReLU backward (public)``."""
        if self.rule is not None:
            return f"{self.activation} rule: {self.rule.name}"
        return f"{self.activation} {self.phase} ({self.visibility})"

    @property
    def id(self) -> str:
        """A stable identifier, used as the pytest parameter id."""
        if self.rule is not None:
            return f"{self.activation}-rule"
        return f"{self.activation}-{self.phase}-{self.visibility}"


@dataclass
class CaseVerdict:
    """Whether one case passed one test, and why not."""

    case_id: str
    status: str  # passed | failed | error | timeout
    message: str = ""


@dataclass
class TestResult:
    """A test's outcome: points earned, status and the feedback text."""

    __test__ = False

    spec: TestSpec
    score: float
    status: str
    output: str
    verdicts: list[CaseVerdict] = field(default_factory=list)

    def metadata(self) -> dict:
        """The JSON-able record that travels through pytest-json-report."""
        return {
            "name": self.spec.name,
            "activation": self.spec.activation,
            "phase": self.spec.phase,
            "visibility": self.spec.visibility,
            "score": self.score,
            "max_score": self.spec.points,
            "status": self.status,
            "output": self.output,
            "cases_passed": sum(v.status == PASSED for v in self.verdicts),
            "cases_total": len(self.verdicts),
        }


@dataclass
class GradingContext:
    """Everything the checks need about one submission."""

    submission: str
    cases: list[Case]
    runs: dict[str, RunOutput]  # by visibility
    source: str | None = None

    def cases_of(self, activation: str, visibility: str) -> list[Case]:
        """The cases of one activation and visibility, in table order."""
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            for c in self.cases:
                index.setdefault((c.activation, c.visibility), []).append(c)
            self.__dict__["_index"] = index
        return index.get((activation, visibility), [])


def test_specs(cases: list[Case]) -> list[TestSpec]:
    """The tests that exist for these cases (hidden tests only when hidden cases do)."""
    present = {(c.activation, c.visibility) for c in cases}
    specs = []
    for act in assignment.ACTIVATIONS:
        for phase in act.points:
            for visibility in assignment.VISIBILITIES:
                points = act.test_points(phase, visibility)
                if points > 0 and (act.name, visibility) in present:
                    specs.append(TestSpec(act.name, phase, visibility, points))
        for rule in act.rules:
            if (act.name, "public") in present:
                specs.append(TestSpec(act.name, "rule", "public", rule.points, rule))
    return specs


# ------------------------------------------------------------------ one case

NOT_IMPLEMENTED_TEXT = "not implemented yet (raises NotImplementedError)"


def _phase_problem(case: Case, phase: str, output: CaseOutput) -> tuple[str, str] | None:
    """(status, message) when a phase did not produce a usable value."""
    cls = case.activation
    method = "backward" if phase == "dLdbeta" else phase
    result = output.phase(phase)
    if result.status == out.OK and result.value is not None:
        return None
    if result.status == out.OK:
        what = result.info.get("type", "something else")
        if what == "NoneType":
            return FAILED, f"{cls}.{method} returned None: did it forget to return its result?"
        dtype = result.info.get("dtype")
        if dtype:
            return (
                FAILED,
                f"{cls}.{method} returned an array of dtype {dtype}; expected real numbers",
            )
        return FAILED, f"{cls}.{method} returned a {what}, expected a numpy array"
    if result.status == out.MISSING:
        if phase == "dLdbeta":
            return FAILED, f"{cls}.backward did not set self.dLdbeta"
        return ERROR, f"class {cls} was not found in your file"
    if result.status == out.TIMEOUT:
        return TIMEOUT, result.message or "took too long"
    if result.status == out.CRASHED:
        return ERROR, result.message or "the worker process died"
    if result.status == out.NOT_IMPLEMENTED:
        return ERROR, NOT_IMPLEMENTED_TEXT
    if result.status == out.SKIPPED:
        if phase != "forward" and output.forward.status == out.NOT_IMPLEMENTED:
            return ERROR, f"not run: {cls}.forward is {NOT_IMPLEMENTED_TEXT}"
        previous = "forward" if phase == "backward" else "backward"
        return FAILED, f"not run: {cls}.{previous} did not succeed on this case"
    where = "the constructor" if result.info.get("constructor") else f"{cls}.{method}"
    text = result.message or result.info.get("exception", "an exception")
    return ERROR, f"{where} raised an exception:\n{text}"


def judge_case(case: Case, phase: str, output: CaseOutput | None, run: RunOutput) -> CaseVerdict:
    """Judge one case of one phase; messages are detailed for public cases only."""
    public = case.visibility == "public"
    if output is None:
        status = TIMEOUT if run.import_status == out.TIMEOUT else ERROR
        if run.import_status == out.NOT_IMPLEMENTED:
            message = "your file raises NotImplementedError when it is imported"
        else:
            message = "your file could not be imported"
        if public and run.import_message:
            message += ":\n" + run.import_message
        return CaseVerdict(case.id, status, message)
    phase_output = output.phase(phase)
    problem = _phase_problem(case, phase, output)
    if problem is not None:
        status, message = problem
        if public:
            message += feedback.case_hints(case, phase, output, None)
        return CaseVerdict(case.id, status, message if public else "")
    expected = case.expected
    assert expected is not None
    spec = case.spec
    if phase == "dLdbeta":
        result = compare.compare_scalar(
            expected.dLdbeta,
            phase_output.value,
            spec.rtol,
            spec.atol,
            "dLdbeta",
            expected.dLdbeta_scale,
        )
    else:
        name = "A" if phase == "forward" else "dLdZ"
        result = compare.compare(
            expected.phase(phase), phase_output.value, spec.rtol, spec.atol, case.Z, name
        )
    side_effect = _side_effect(case, phase, output)
    if result.passed and not side_effect:
        return CaseVerdict(case.id, PASSED)
    if not public:
        return CaseVerdict(case.id, FAILED)
    message = result.message if not result.passed else side_effect
    if side_effect and not result.passed:
        message += "\n" + side_effect
    message += feedback.case_hints(case, phase, output, result)
    return CaseVerdict(case.id, FAILED, message)


def _side_effect(case: Case, phase: str, output: CaseOutput) -> str:
    if phase == "forward" and output.Z_modified:
        return f"{case.activation}.forward changed its input Z in place; compute A in a new array."
    if phase == "backward" and output.dLdA_modified:
        return f"{case.activation}.backward changed its input dLdA in place; leave it untouched."
    return ""


# ------------------------------------------------------------------ one test


def _aggregate(verdicts: list[CaseVerdict]) -> str:
    statuses = {v.status for v in verdicts}
    if statuses <= {PASSED}:
        return PASSED
    for status in (TIMEOUT, ERROR):
        if status in statuses:
            return status
    return FAILED


def _output(spec: TestSpec, verdicts: list[CaseVerdict], cases: dict[str, Case]) -> str:
    failing = [v for v in verdicts if v.status != PASSED]
    head = f"{len(verdicts) - len(failing)}/{len(verdicts)} {spec.visibility} cases passed"
    if not failing:
        return head
    if spec.visibility == "hidden":
        # Hidden cases: which ones and how, never their inputs or expected values.
        return head + ". Not passed: " + ", ".join(f"{v.case_id} ({v.status})" for v in failing)
    messages = {v.message for v in failing}
    if len(failing) > 1 and len(messages) == 1 and failing[0].message:
        # One message for every failing case (e.g. not implemented): say it once.
        return f"{head}. Every failing case: {failing[0].message}"
    lines = [head + "."]
    for v in failing[:SHOWN_FAILURES]:
        lines.append(f"- {cases[v.case_id].label()}\n  " + v.message.replace("\n", "\n  "))
    if len(failing) > SHOWN_FAILURES:
        more = [v.case_id for v in failing[SHOWN_FAILURES:]]
        lines.append(f"- and {len(more)} more failing cases: {', '.join(more)}")
    return "\n".join(lines)


def _score(points: float, passed: int, total: int) -> float:
    return round(points * passed / total, 4) if total else 0.0


def evaluate(spec: TestSpec, ctx: GradingContext) -> TestResult:
    """Evaluate one test on one submission."""
    if spec.rule is not None:
        return _evaluate_rule(spec, ctx)
    cases = ctx.cases_of(spec.activation, spec.visibility)
    run = ctx.runs.get(spec.visibility, RunOutput())
    verdicts = [judge_case(c, spec.phase, run.cases.get(c.id), run) for c in cases]
    passed = sum(v.status == PASSED for v in verdicts)
    return TestResult(
        spec=spec,
        score=_score(spec.points, passed, len(verdicts)),
        status=_aggregate(verdicts),
        output=_output(spec, verdicts, {c.id: c for c in cases}),
        verdicts=verdicts,
    )


def _evaluate_rule(spec: TestSpec, ctx: GradingContext) -> TestResult:
    rule = spec.rule
    assert rule is not None
    forward = evaluate(TestSpec(spec.activation, "forward", "public", 1.0), ctx)
    if not any(v.status == PASSED for v in forward.verdicts):
        status, text = FAILED, f"not judged until {spec.activation}.forward passes a public case"
    elif ctx.source is None:
        status, text = ERROR, "the source of your file is not available"
    else:
        from autograder import rules

        try:
            found = rules.violations(ctx.source, spec.activation, rule.names)
        except (SyntaxError, ValueError, RecursionError) as exc:
            found, status, text = None, ERROR, f"your file could not be parsed: {exc}"
        else:
            if found:
                status, text = FAILED, rule.message + " Found: " + "; ".join(found)
            else:
                status, text = PASSED, "rule respected"
    verdict = CaseVerdict(f"{spec.activation}-rule", status, text)
    return TestResult(spec, spec.points if status == PASSED else 0.0, status, text, [verdict])


# ------------------------------------------------------------------ pytest


class ChecksPlugin:
    """A pytest plugin object: parametrizes ``test_check`` and serves the context."""

    def __init__(self, ctx: GradingContext, specs: list[TestSpec]) -> None:
        self.ctx = ctx
        self.specs = specs
        self.json_report: dict | None = None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "spec" in metafunc.fixturenames:
            metafunc.parametrize("spec", self.specs, ids=[s.id for s in self.specs])

    @pytest.fixture
    def grading_context(self) -> GradingContext:
        return self.ctx

    def pytest_json_modifyreport(self, json_report: dict) -> None:
        self.json_report = json_report


def test_check(spec: TestSpec, grading_context: GradingContext, json_metadata: dict) -> None:
    """One graded test; its points and visibility travel as JSON metadata."""
    result = evaluate(spec, grading_context)
    json_metadata.update(result.metadata())
    if result.status != PASSED:
        pytest.fail(result.output, pytrace=False)
