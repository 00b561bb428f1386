"""Real handins of each CMU term, graded under their term's preset (fixtures/real).

The expectations in ``fixtures/real/expected.json`` are checked here with the
in-process harness (``course_harness``), so they hold for the course model
before it is wired into the grader; the wiring stage checks them again
through the real grader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import course_harness
import pytest

from autograder.course import course_file as course

REAL = Path(__file__).resolve().parent / "fixtures" / "real"
EXPECTED = json.loads((REAL / "expected.json").read_text(encoding="utf-8"))["fixtures"]
GRADES = [(name, g) for name, entry in EXPECTED.items() for g in entry["grades"]]


def test_every_fixture_has_expectations_and_a_documented_source():
    files = {p.name for p in REAL.glob("*.py")}
    assert files == set(EXPECTED)
    readme = (REAL / "README.md").read_text(encoding="utf-8")
    for name, entry in EXPECTED.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert entry["source"] in row and entry["commit"] in row, name
        head = (REAL / name).read_text(encoding="utf-8").splitlines()[:8]
        assert head[:2] == ["# ruff: noqa", "# fmt: off"], name
        assert any(entry["commit"] in line for line in head), name
        kind = "verbatim" if entry["copy"].startswith("verbatim") else "look-alike"
        assert kind in row, name


def test_the_fixtures_cover_the_terms_and_cases_the_issue_names():
    by_course = {g["course"] for _, g in GRADES}
    assert {"cmu-f23", "cmu-s25", "cmu-f25"} <= by_course
    full_marks = {g["course"] for _, g in GRADES if g["score"] == g["max_score"]}
    assert {"cmu-f23", "cmu-s25", "cmu-f25"} <= full_marks  # a correct handin of each term
    sources = "".join((REAL / n).read_text(encoding="utf-8") for n in EXPECTED)
    assert re.search(r"def backward\(self\):", sources)  # Spring 2023 API
    assert "class GeLU" in sources and "class SoftMax" in sources  # near misses
    assert "self.dLdbeta = np.sum" in sources  # Fall 2025 Swish
    one_class = [g for _, g in GRADES if len(g["short"]) == 1 and g["score"] < g["max_score"]]
    assert one_class  # a known defect in one class


@pytest.mark.parametrize(("name", "grade"), GRADES, ids=[f"{n}:{g['course']}" for n, g in GRADES])
def test_a_fixture_scores_as_expected_under_its_course(name, grade):
    c = course.load(grade["course"])
    got = course_harness.outcomes(REAL / name, c)
    assert set(got) == set(c.names)
    for act, outcome in got.items():
        want = grade["short"].get(act)
        if want is None:  # every class not listed gets all its points
            assert outcome["score"] == pytest.approx(c.row(act).max_score), (act, outcome)
            assert outcome["failing"] == {} and outcome["rules"] == [], act
        else:
            assert outcome == want, act
    assert sum(o["score"] for o in got.values()) == pytest.approx(grade["score"])
    assert grade["max_score"] == c.total


def test_a_defect_costs_the_whole_section_under_all_or_nothing():
    text = course.preset_text("cmu-f25").replace(
        'credit = "proportional"', 'credit = "all-or-nothing"'
    )
    aon = course.parse(text)
    defect = course_harness.grade(REAL / "f25_lookalike_swish_overflow.py", aon)
    correct = course_harness.grade(REAL / "f25_lookalike_swish_prints.py", aon)
    assert aon.score(defect) == 0 and aon.autolab_scores(defect) == {"Activation": 0}
    assert aon.score(correct) == 10 and aon.autolab_scores(correct) == {"Activation": 10}


def test_the_cmu_exclusions_are_what_a_term_correct_handin_needs():
    # Without Tanh's large-|Z| cases left out, the writeup's own Tanh formula loses points.
    text = course.preset_text("cmu-s25").replace('leave_out = ["large |Z|"]', "")
    strict = course.parse(text)
    scores = course_harness.grade(REAL / "s25_lookalike_exp_tanh.py", strict)
    assert scores["Tanh"] < strict.row("Tanh").max_score
    assert all(scores[a] == strict.row(a).max_score for a in strict.names if a != "Tanh")


# ------------------------------------------------------------------ through the real grader


@pytest.fixture(scope="module")
def graders():
    """One real grader (worker, sandbox, checks) per course, started on first use."""
    from conftest import TEST_LIMITS

    from autograder.engine import GradeOptions, Grader
    from autograder.isolation.runner import Limits

    made: dict[str, Grader] = {}

    def get(name: str, text: str | None = None) -> Grader:
        key = name if text is None else f"{name}:{hash(text)}"
        if key not in made:
            c = course.load(name) if text is None else course.parse(text, default_name=name)
            options = GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True, course=c)
            made[key] = Grader(options)
        return made[key]

    yield get
    for g in made.values():
        g.close()


def _failing_counts(want: dict) -> dict[str, int]:
    return {test: len(ids) for test, ids in want.get("failing", {}).items()}


@pytest.mark.parametrize(("name", "grade"), GRADES, ids=[f"{n}:{g['course']}" for n, g in GRADES])
def test_a_fixture_scores_as_expected_through_the_real_grader(graders, name, grade):
    c = course.load(grade["course"])
    report = graders(grade["course"]).grade(REAL / name, use_pytest=False)
    assert report.hidden_graded
    assert report.max_score == pytest.approx(grade["max_score"]) == pytest.approx(c.total)
    assert report.score == pytest.approx(grade["score"], abs=1e-4)
    totals = report.activations()
    assert list(totals) == list(c.names)  # every class of the course, in its order
    for act in c.names:
        want = grade["short"].get(act)
        tests = [t for t in report.tests if t.activation == act]
        if want is None:  # a correct class: all its points, every test passed
            assert totals[act]["score"] == pytest.approx(c.row(act).max_score, abs=1e-4), act
            assert all(t.status == "passed" for t in tests), [(t.name, t.output) for t in tests]
            continue
        # A known defect costs exactly that class's points, case for case.
        assert totals[act]["score"] == pytest.approx(want["score"], abs=1e-4), act
        failing = {
            f"{t.phase}/{t.visibility}": t.cases_total - t.cases_passed
            for t in tests
            if t.phase != "rule" and t.cases_passed < t.cases_total
        }
        assert failing == _failing_counts(want), act
        broken = [t.name.split("rule: ", 1)[1] for t in tests if t.phase == "rule" and t.score == 0]
        assert broken == want["rules"], act
        # A public test where some cases pass names the failing ones.
        for t in tests:
            ids = want["failing"].get(f"{t.phase}/{t.visibility}", [])
            if t.visibility == "public" and ids and t.cases_passed:
                assert all(cid in t.output for cid in ids), (t.name, t.output)


def _tests_of(report, act: str) -> list:
    return [t for t in report.tests if t.activation == act]


@pytest.mark.parametrize(("name", "grade"), GRADES, ids=[f"{n}:{g['course']}" for n, g in GRADES])
def test_other_terms_get_one_clear_sentence_per_class(graders, name, grade):
    feedback = grade["feedback"]
    report = graders(grade["course"]).grade(REAL / name, use_pytest=False)
    text = "\n".join(t.output for t in report.tests)
    for act in feedback.get("spring_2023_api", []):
        tests = _tests_of(report, act)
        backward = next(t for t in tests if t.phase == "backward" and t.visibility == "public")
        assert backward.failure_kind == "api"
        assert f"{act}.backward() takes no dLdA" in backward.output
        assert "must take dLdA and return dLdZ" in backward.output
        # Once per class, not a TypeError per case; forward keeps its points.
        assert text.count(f"{act}.backward() takes no dLdA") == 1
        assert "TypeError" not in text
        forward = [t for t in tests if t.phase == "forward"]
        assert forward and all(t.status == "passed" for t in forward)
        hidden = next(t for t in tests if t.phase == "backward" and t.visibility == "hidden")
        assert hidden.failure_kind == "api" and hidden.cases_passed == 0
    for act in feedback.get("not_found", []):
        tests = _tests_of(report, act)
        first = tests[0]
        assert (first.phase, first.visibility) == ("forward", "public")
        assert f"class {act} not found" in first.output
        assert (
            text.count(f"class {act} not found;")
            + text.count(f"class {act} not found in your file")
            == 1
        )
        for t in tests[1:]:
            if t.visibility == "public":
                assert f"not run: class {act} not found" in t.output, t.output
        assert all(t.failure_kind == "missing" and t.score == 0 for t in tests)
        near = feedback.get("near_miss", {}).get(act)
        if near:
            assert f"your file defines {near}: did you mean {act}?" in first.output
        else:
            assert "did you mean" not in first.output
    for act in feedback.get("no_hint_for", []):
        for t in _tests_of(report, act):
            assert t.mistake == "", (t.name, t.mistake)
            assert "Likely mistake" not in t.output and "Hint" not in t.output, t.output
            assert "dLdbeta" not in t.output or (t.phase == "dLdbeta" and "not run" in t.output)
    if feedback.get("prints"):
        assert report.student_output.strip()
        assert report.score == report.max_score


def test_all_or_nothing_through_the_real_grader(graders):
    text = course.preset_text("cmu-f25").replace(
        'credit = "proportional"', 'credit = "all-or-nothing"'
    )
    from autograder.report import render

    grader = graders("cmu-f25-aon", text)
    defect = grader.grade(REAL / "f25_lookalike_swish_overflow.py", use_pytest=False)
    correct = grader.grade(REAL / "f25_lookalike_swish_prints.py", use_pytest=False)
    assert correct.score == correct.max_score == 10
    assert defect.score == 0 and defect.max_score == 10
    assert render.autolab_scores(defect) == {"scores": {"Activation": 0.0}, "scoreboard": [0.0]}
    assert render.autolab_scores(correct)["scores"] == {"Activation": 10.0}
    # Each test keeps its own score; the failing ones say what all or nothing did.
    swish = {t.name: t for t in _tests_of(defect, "Swish")}
    assert swish["Swish backward (public)"].score > 0
    failing = [t for t in defect.tests if t.status != "passed"]
    assert failing and all("All or nothing" in t.output for t in failing)
    assert not any("All or nothing" in t.output for t in defect.tests if t.status == "passed")
    doc = json.loads(render.gradescope(defect))
    assert doc["score"] == 0 and sum(t["score"] for t in doc["tests"]) > 9
    assert "All or nothing" in doc["output"]
    assert "All or nothing" in render.table(defect)
