"""The checks: one pytest test per (activation, phase, visibility), and the rules.

``evaluate`` is a plain function from a test spec and the grading context
(cases with expected values, what the worker returned, the student's
source) to a result with points; ``test_check`` is the pytest test that
runs it, records points and visibility as pytest-json-report metadata, and
fails with the feedback text. The engine parametrizes it through
:class:`ChecksPlugin`, so pytest never looks anywhere near the submission.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import pytest

from autograder.course import assignment
from autograder.course.assignment import ForbiddenNames
from autograder.course.cases import Case
from autograder.course.course_file import Course
from autograder.isolation import outputs as out
from autograder.isolation.outputs import CaseOutput, RunOutput
from autograder.judge import compare, feedback
from autograder.report import record as rep
from autograder.report.record import ERROR, FAILED, PASSED, TIMEOUT, TestEntry

__all__ = ["ERROR", "FAILED", "PASSED", "TIMEOUT"]  # status names, re-exported from report

# Failing public cases described in full per test (the most telling first); the
# rest are listed by id. The self-check probes exactly these.
SHOWN_FAILURES = 2
# Case ids listed at most in one line of a test's feedback.
LISTED_IDS = 8
# Failure codes of a phase that returned an array with the wrong numbers (or form).
VALUE_KINDS = frozenset(
    {rep.WRONG_VALUE, rep.SHAPE, rep.DTYPE, rep.NAN_INF, rep.OVERFLOW, rep.UNDERFLOW, rep.IN_PLACE}
    | {rep.NOT_RUN}
)


@dataclass(frozen=True)
class TestSpec:
    """One graded test: an activation's phase on its public or hidden cases, or a rule."""

    __test__ = False  # not a pytest test class

    activation: str
    phase: str  # forward | backward | dLdbeta | rule
    visibility: str  # public | hidden
    points: float
    rule: ForbiddenNames | None = None
    # The display (and Gradescope) name the course gives the test ("" for the default).
    label: str = ""

    @property
    def name(self) -> str:
        """The test's display name, e.g. ``ReLU backward (public)``."""
        if self.label:
            return self.label
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
    """Whether one case passed one test, and why not.

    ``kind`` is the failure code (``report.FAILURE_KINDS``), set for hidden
    cases too; the words (``message``, ``brief``, ``notes``) only for public ones.
    """

    case_id: str
    status: str  # passed | failed | error | timeout
    message: str = ""
    kind: str = ""
    mistake: str = ""  # the catalogued mistake this case's output matched
    notes: list[feedback.Note] = field(default_factory=list)
    brief: str = ""  # a shorter message, for a case shown after the first
    follows_forward: bool = False  # fails because this case's forward does


@dataclass
class TestResult:
    """A test's outcome: points earned, status, failure code and the feedback text."""

    __test__ = False

    spec: TestSpec
    score: float
    status: str
    output: str
    verdicts: list[CaseVerdict] = field(default_factory=list)
    failure_kind: str = ""
    mistake: str = ""

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
            "failure_kind": self.failure_kind,
            "mistake": self.mistake,
        }

    def entry(self) -> TestEntry:
        """The report's entry for this result."""
        return TestEntry.from_dict(self.metadata())


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


def test_specs(cases: list[Case], course: Course) -> list[TestSpec]:
    """The course's tests that exist for these cases (hidden tests only when hidden cases do).

    Points, rules and names are the course's; tests come in the course's order.
    """
    present = {(c.activation, c.visibility) for c in cases}
    specs = []
    for act in course.rows():
        for phase in act.points:
            for visibility in assignment.VISIBILITIES:
                points = act.test_points(phase, visibility)
                if points > 0 and (act.name, visibility) in present:
                    label = course.test_name(act.name, phase, visibility)
                    specs.append(TestSpec(act.name, phase, visibility, points, label=label))
        for rule in act.rules:
            if (act.name, "public") in present:
                label = course.rule_test_name(act.name, rule.name)
                specs.append(TestSpec(act.name, "rule", "public", rule.points, rule, label))
    return specs


# ------------------------------------------------------------------ the import


def _import_reason(run: RunOutput) -> str:
    """Why the module did not import, in one line."""
    message = run.import_message.strip()
    if run.import_status == out.NOT_IMPLEMENTED:
        return "it raises NotImplementedError when it is imported"
    if run.import_status == out.ERROR:
        return _exception_line(message) if message else "it raised an exception"
    if message.startswith(_CRASH_PREFIX):
        message = message[len(_CRASH_PREFIX) :]
    return message or f"it ended with status {run.import_status}"


# Longest exception text a headline quotes.
_HEADLINE_CHARS = 200


def _exception_line(traceback: str) -> str:
    """One line from the worker's short traceback: the exception, and where in the file.

    The worker writes '  File "activation.py", line 3, in <module>' lines, each
    followed by its source line, then 'ModuleNotFoundError: ...' (which may span
    lines); a SyntaxError has no frame of the student's and names its line itself.
    """
    lines = traceback.splitlines()
    frames = [i for i, line in enumerate(lines) if line.strip().startswith('File "')]
    where, start = "", 0
    if frames:
        frame = lines[frames[-1]].strip()
        name = frame[len('File "') :].split('"', 1)[0]
        number = frame.split(", line ", 1)[-1].split(",", 1)[0]
        where = f" at line {number} of {name}"
        start = frames[-1] + 1
        if start < len(lines) and lines[start].startswith("    "):
            start += 1  # the source line
    text = " ".join(line.strip() for line in lines[start:] if line.strip())
    if len(text) > _HEADLINE_CHARS:
        text = text[: _HEADLINE_CHARS - 3] + "..."
    return text + where


# The runner's wording for a child that died while importing.
_CRASH_PREFIX = "the file could not be imported: "


def import_headline(ctx: GradingContext) -> str:
    """One line for the top of the report when the module did not import ("" when it did)."""
    for visibility in ("public", "hidden"):
        run = ctx.runs.get(visibility)
        if run is not None and run.import_status != out.OK:
            return "your module did not import: " + _import_reason(run)
    return ""


# ------------------------------------------------------------------ one case

NOT_IMPLEMENTED_TEXT = "not implemented yet (raises NotImplementedError)"


def _whole_case(output: CaseOutput) -> bool:
    """Whether every phase failed together (the runner lost the case as a whole)."""
    phases = (output.forward, output.backward, output.dLdbeta)
    return len({(p.status, p.message) for p in phases}) == 1


def near_miss(name: str, defined: list[str]) -> str:
    """The class the student probably meant as ``name`` ("" when none is close).

    The same name in other letter case (GeLU, SoftMax), else a close spelling;
    never another activation of the table (ELU is not a misspelt GELU).
    """
    candidates = [d for d in defined if d != name and d not in assignment.BY_NAME]
    for other in candidates:
        if other.lower() == name.lower():
            return other
    lowered = {d.lower(): d for d in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[close[0]] if close else ""


def class_not_found(name: str, defined: list[str]) -> str:
    """The one sentence for a graded class the file does not define."""
    other = near_miss(name, defined)
    if other:
        return (
            f"class {name} not found; your file defines {other}: did you mean {name}? "
            "Class names must match exactly."
        )
    return f"class {name} not found in your file"


# What each method takes, and the Spring 2023 API a backward without it comes from.
METHOD_INPUT = {"forward": "Z", "backward": "dLdA"}


def api_text(cls: str, method: str, takes: str) -> str:
    """The one sentence for a method that cannot take its input."""
    arg = METHOD_INPUT[method]
    if method == "backward" and takes in ("()", "(self)"):
        return (
            f"{cls}.backward() takes no dLdA: this is the Spring 2023 API (backward() "
            "returning dAdZ). Here backward(dLdA) must take dLdA and return "
            "dLdZ = dLdA * dAdZ."
        )
    return (
        f"{cls}.{method}{takes or '(...)'} cannot be called as {method}({arg}); "
        f"define it as {method}(self, {arg})."
    )


def _phase_problem(
    case: Case, phase: str, output: CaseOutput, run: RunOutput | None = None
) -> tuple[str, str, str] | None:
    """(status, failure code, message) when a phase did not produce a usable value."""
    cls = case.activation
    method = "backward" if phase == "dLdbeta" else phase
    result = output.phase(phase)
    if result.status == out.OK and result.value is not None:
        return None
    if output.class_missing:
        # Said once, in the class's first test; its other tests only point there.
        if phase == "forward":
            return ERROR, rep.MISSING, class_not_found(cls, run.classes if run else [])
        return ERROR, rep.MISSING, f"not run: class {cls} not found"
    if result.status == out.API:
        absent = result.info.get("method", method)
        if absent != method:
            return FAILED, rep.NOT_RUN, f"not run: {cls}.{absent} cannot take its input"
        return ERROR, rep.API, api_text(cls, absent, result.info.get("takes", ""))
    if result.status == out.OK:
        what = result.info.get("type", "something else")
        if what == "NoneType":
            text = f"{cls}.{method} returned None: did it forget to return its result?"
            return FAILED, rep.DTYPE, text
        dtype = result.info.get("dtype")
        if dtype:
            text = f"{cls}.{method} returned an array of dtype {dtype}; expected real numbers"
            return FAILED, rep.DTYPE, text
        return FAILED, rep.DTYPE, f"{cls}.{method} returned a {what}, expected a numpy array"
    if result.status == out.MISSING:
        absent = result.info.get("method")
        if absent:
            text = f"{cls} has no method {absent}(); it must define {absent}(self, ...)"
            if absent != phase:
                text = f"not run: {cls} has no method {absent}()"
            return ERROR, rep.MISSING, text
        if phase == "dLdbeta":
            return FAILED, rep.MISSING, f"{cls}.backward did not set self.dLdbeta"
        return ERROR, rep.MISSING, f"class {cls} was not found in your file"
    if result.status in (out.TIMEOUT, out.CRASHED):
        status, kind = (TIMEOUT, rep.TIMEOUT_KIND)
        default = "took too long"
        if result.status == out.CRASHED:
            status, kind, default = ERROR, rep.CRASHED, "the worker process died"
        # The worker's message names the phase that hung or crashed ("backward used more
        # than 2 s of CPU time"); forward's result, if it had one, stands on its own.
        message = result.message or default
        if not _whole_case(output) and method not in message:
            message = f"{cls}.{method}: {message}"
        return status, kind, message
    if result.status == out.NOT_IMPLEMENTED:
        return ERROR, rep.NOT_IMPLEMENTED, NOT_IMPLEMENTED_TEXT
    if result.status == out.SKIPPED:
        if phase != "forward" and output.forward.status == out.NOT_IMPLEMENTED:
            text = f"not run: {cls}.forward is {NOT_IMPLEMENTED_TEXT}"
            return ERROR, rep.NOT_IMPLEMENTED, text
        previous = "forward" if phase == "backward" else "backward"
        before = output.phase(previous)
        if before.status == out.MISSING and before.info.get("method") == previous:
            return FAILED, rep.NOT_RUN, f"not run: {cls} has no method {previous}()"
        if before.status == out.API:
            arg = METHOD_INPUT[previous]
            return FAILED, rep.NOT_RUN, f"not run: {cls}.{previous} does not take {arg}"
        return FAILED, rep.NOT_RUN, f"not run: {cls}.{previous} did not succeed on this case"
    where = "the constructor" if result.info.get("constructor") else f"{cls}.{method}"
    text = result.message or result.info.get("exception", "an exception")
    return ERROR, rep.EXCEPTION, f"{where} raised an exception:\n{text}"


def _import_verdict(case: Case, run: RunOutput) -> CaseVerdict:
    status = TIMEOUT if run.import_status == out.TIMEOUT else ERROR
    if case.visibility != "public":
        return CaseVerdict(case.id, status, kind=rep.IMPORT)
    message = "your file could not be imported: " + _import_reason(run)
    return CaseVerdict(case.id, status, message, rep.IMPORT)


def judge_case(case: Case, phase: str, output: CaseOutput | None, run: RunOutput) -> CaseVerdict:
    """Judge one case of one phase; words only for public cases, a failure code for all."""
    public = case.visibility == "public"
    if output is None:
        return _import_verdict(case, run)
    phase_output = output.phase(phase)
    problem = _phase_problem(case, phase, output, run)
    if problem is not None:
        status, kind, message = problem
        if not public:
            return CaseVerdict(case.id, status, kind=kind)
        notes = feedback.case_notes(case, phase, output, None, kind)
        # Only a phase that was not run at all fails merely because forward did.
        follows = notes.follows_forward and kind == rep.NOT_RUN
        return CaseVerdict(
            case.id, status, message, kind, notes.mistake, notes.notes, follows_forward=follows
        )
    expected = case.expected
    assert expected is not None
    spec = case.spec
    got = phase_output.value
    assert got is not None
    if phase == "dLdbeta":
        result = compare.compare_scalar(
            expected.dLdbeta, got, spec.rtol, spec.atol, "dLdbeta", expected.dLdbeta_scale
        )
        name = "dLdbeta"
    else:
        name = "A" if phase == "forward" else "dLdZ"
        # An element-wise backward shows each element's dLdA and the dAdZ it implies.
        dLdA = case.dLdA if phase == "backward" and not spec.vector else None
        result = compare.compare(
            expected.phase(phase), got, spec.rtol, spec.atol, case.Z, name, dLdA
        )
    side_effect = _side_effect(case, phase, output)
    if result.passed and not side_effect:
        return CaseVerdict(case.id, PASSED)
    if side_effect:
        kind = rep.IN_PLACE
    else:
        kind = feedback.value_kind(case, phase, got, result, output)
    if not public:
        return CaseVerdict(case.id, FAILED, kind=kind)
    message = brief = result.message if not result.passed else side_effect
    if result.worst and len(result.worst) > 1:
        brief = compare.describe(result, name, shown=1)
    if side_effect and not result.passed:
        message += "\n" + side_effect
        brief += "\n" + side_effect
    notes = feedback.case_notes(case, phase, output, result, kind)
    return CaseVerdict(
        case.id,
        FAILED,
        message,
        kind,
        notes.mistake,
        notes.notes,
        brief=brief,
        follows_forward=notes.follows_forward and not side_effect,
    )


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


def _ids(verdicts: list[CaseVerdict]) -> str:
    ids = [v.case_id for v in verdicts]
    if len(ids) > LISTED_IDS:
        return ", ".join(ids[:LISTED_IDS]) + f" and {len(ids) - LISTED_IDS} more"
    return ", ".join(ids)


def _test_notes(failing: list[CaseVerdict]) -> list[feedback.Note]:
    """The test's sentences: each once (the first case's wording), one self-check verdict."""
    seen: dict[str, feedback.Note] = {}
    for v in failing:
        for note in v.notes:
            seen.setdefault(note.key, note)
    checks = [k for k in seen if k.startswith("self-check:")]
    if len(checks) > 1:
        keep = min(checks, key=lambda k: feedback.SELF_CHECK_PRIORITY.index(k.split(":", 1)[1]))
        for key in checks:
            if key != keep:
                del seen[key]
    order = {key: i for i, key in enumerate(seen)}
    return sorted(seen.values(), key=lambda n: (n.rank, order[n.key]))


def _output(spec: TestSpec, verdicts: list[CaseVerdict], cases: dict[str, Case]) -> str:
    failing = [v for v in verdicts if v.status != PASSED]
    head = f"{len(verdicts) - len(failing)}/{len(verdicts)} {spec.visibility} cases passed"
    if not failing:
        return head
    if spec.visibility == "hidden":
        # Hidden cases: how many passed, never which (each would leak a bit of its input).
        return head + "."
    if all(v.kind == rep.IMPORT for v in failing):
        return f"{head}: {failing[0].message}"
    # The cases that fail on their own first; among wrong values, the most telling first
    # (an exception or a hang reads best in the table's order).
    ordered = failing
    if all(v.kind in VALUE_KINDS for v in failing):
        by_id = {v.case_id: v for v in failing}
        telling = feedback.telling_order([cases[v.case_id] for v in failing])
        ordered = [by_id[c.id] for c in telling]
    ordered = sorted(ordered, key=lambda v: v.follows_forward)
    notes = _test_notes(ordered)
    if all(v.follows_forward for v in failing):
        lines = [
            f"{head}; the failing cases ({_ids(ordered)}) are those where forward fails: "
            "fix forward first."
        ]
        # Worth saying only when backward is right for the forward it has.
        lines.extend(n.text for n in notes if n.key == f"self-check:{feedback.FORWARD_ONLY}")
        return "\n".join(lines)
    messages = {v.message for v in failing}
    if len(failing) > 1 and len(messages) == 1 and failing[0].message:
        # One message for every failing case (e.g. not implemented): say it once.
        lines = [f"{head}. Every failing case: {failing[0].message}"]
    else:
        lines = [head + "."]
        # Cases with the same message (a hang, an exception) share one entry.
        groups: dict[str, list[CaseVerdict]] = {}
        for v in ordered:
            groups.setdefault(v.message, []).append(v)
        shown = list(groups.values())[:SHOWN_FAILURES]
        for i, group in enumerate(shown):
            first = group[0]
            text = first.message if i == 0 else (first.brief or first.message)
            label = cases[first.case_id].label() if len(group) == 1 else f"cases {_ids(group)}"
            lines.append(f"- {label}\n  " + text.replace("\n", "\n  "))
        rest = [v for group in list(groups.values())[SHOWN_FAILURES:] for v in group]
        if rest:
            lines.append(f"- and {len(rest)} more failing cases: {_ids(rest)}")
    lines.extend(n.text for n in notes)
    passing = [cases[v.case_id] for v in verdicts if v.status == PASSED]
    where = feedback.where_note([cases[v.case_id] for v in failing], passing)
    # A named mistake already says where to look; "only large |Z| fails" adds nothing
    # to a sentence on overflow or 0/0.
    named = any(n.key.startswith("mistake:") for n in notes)
    numeric = any(n.key.startswith("numeric:") for n in notes)
    if where is not None and not named and not (where.key == "where:large" and numeric):
        lines.append(where.text)
    return "\n".join(lines)


def _score(points: float, passed: int, total: int) -> float:
    return round(points * passed / total, 4) if total else 0.0


def _mistake(verdicts: list[CaseVerdict]) -> str:
    """The catalogued mistake most of the failing cases matched ("" when none)."""
    counts: dict[str, int] = {}
    for v in verdicts:
        if v.mistake:
            counts[v.mistake] = counts.get(v.mistake, 0) + 1
    return max(counts, key=lambda m: counts[m]) if counts else ""


def evaluate(spec: TestSpec, ctx: GradingContext) -> TestResult:
    """Evaluate one test on one submission."""
    if spec.rule is not None:
        return _evaluate_rule(spec, ctx)
    cases = ctx.cases_of(spec.activation, spec.visibility)
    run = ctx.runs.get(spec.visibility, RunOutput())
    verdicts = [judge_case(c, spec.phase, run.cases.get(c.id), run) for c in cases]
    passed = sum(v.status == PASSED for v in verdicts)
    failing = [v for v in verdicts if v.status != PASSED]
    return TestResult(
        spec=spec,
        score=_score(spec.points, passed, len(verdicts)),
        status=_aggregate(verdicts),
        output=_output(spec, verdicts, {c.id: c for c in cases}),
        verdicts=verdicts,
        failure_kind=rep.main_kind([v.kind for v in failing]),
        mistake=_mistake(failing),
    )


def _forward_ran(output: CaseOutput | None) -> bool:
    """Whether the student's forward was called on a case (whatever came of it)."""
    if output is None:
        return False
    status = output.forward.status
    if status == out.ERROR:
        return not output.forward.info.get("constructor")
    return status in (out.OK, out.TIMEOUT, out.CRASHED)


def _evaluate_rule(spec: TestSpec, ctx: GradingContext) -> TestResult:
    rule = spec.rule
    assert rule is not None
    run = ctx.runs.get("public", RunOutput())
    ran = any(_forward_ran(run.cases.get(c.id)) for c in ctx.cases_of(spec.activation, "public"))
    kind = ""
    if run.import_status != out.OK:
        status, kind = FAILED, rep.IMPORT
        text = "not judged: your file could not be imported"
    elif not ran:
        # Nothing of the class ran (a stub, an import error): no point to earn yet.
        status, kind = FAILED, rep.NOT_RUN
        text = f"not judged: {spec.activation}.forward did not run"
    elif ctx.source is None:
        status, kind, text = ERROR, rep.NOT_RUN, "the source of your file is not available"
    else:
        from autograder.judge import rules

        try:
            found = rules.violations(ctx.source, spec.activation, rule.names)
        except (SyntaxError, ValueError, RecursionError) as exc:
            found, status, kind = None, ERROR, rep.NOT_RUN
            text = f"your file could not be parsed: {exc}"
        else:
            if found:
                status, kind = FAILED, rep.RULE
                text = rule.message + " Found: " + "; ".join(found)
            else:
                status, text = PASSED, "rule respected"
    verdict = CaseVerdict(f"{spec.activation}-rule", status, text, kind)
    score = spec.points if status == PASSED else 0.0
    return TestResult(spec, score, status, text, [verdict], failure_kind=kind)


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
            entries.append(TestEntry.from_dict(meta))
            continue
        crash = ""
        if test:
            for stage in ("setup", "call", "teardown"):
                crash = crash or ((test.get(stage) or {}).get("crash") or {}).get("message", "")
        detail = f": {crash.splitlines()[0]}" if crash else " (it did not run)"
        entries.append(rep.zero_entry(spec, "internal grader error in this test" + detail))
    return entries
