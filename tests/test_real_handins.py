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

from autograder import course

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
