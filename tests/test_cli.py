"""The command line: formats, exit statuses, one-line errors, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REFERENCE_SOURCE, write_layout

from autograder import files
from autograder.course import course_file
from autograder.course import course_file as course

ROOT = files.PROJECT_ROOT
# The course in effect here (this repository has no course.toml: full).
COURSE = course_file.in_effect()
STUB_SCORE = COURSE.row("Identity").max_score  # the stubs give Identity complete


def run(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def stubs_json():
    result = run("grade", str(ROOT / "handout"), "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_json_report_has_the_published_keys(stubs_json):
    assert set(stubs_json) >= {
        "submission",
        "score",
        "max_score",
        "activations",
        "tests",
        "duration_s",
    }
    assert stubs_json["score"] == STUB_SCORE and stubs_json["max_score"] == COURSE.total
    keys = {"name", "activation", "phase", "visibility", "score", "max_score", "status", "output"}
    for test in stubs_json["tests"]:
        assert set(test) >= keys
        assert test["phase"] in ("forward", "backward", "dLdbeta", "rule")
        assert test["visibility"] in ("public", "hidden")
        assert test["status"] in ("passed", "failed", "error", "timeout")
    assert sum(a["max_score"] for a in stubs_json["activations"].values()) == COURSE.total
    assert list(stubs_json["activations"]) == list(COURSE.names)
    assert stubs_json["course"]["name"] == COURSE.name


def test_gradescope_format_follows_the_specification(tmp_path):
    out = tmp_path / "results.json"
    result = run("grade", str(ROOT / "handout"), "--format", "gradescope", "-o", str(out))
    assert result.returncode == 0 and result.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["score"] == STUB_SCORE
    # No execution_time: students may see it, and a hidden case's timeout would show in it.
    assert "execution_time" not in doc
    for test in doc["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "after_published")
    assert any(t["visibility"] == "after_published" for t in doc["tests"])


def test_autolab_format_ends_with_the_score_line():
    result = run("grade", str(ROOT / "solutions"), "--format", "autolab")
    last = result.stdout.rstrip("\n").splitlines()[-1]
    scores = json.loads(last)["scores"]
    assert list(scores) == list(COURSE.autolab_problems())
    assert sum(scores.values()) == COURSE.total


def test_table_is_the_default(tmp_path):
    result = run("grade", str(write_layout(tmp_path, REFERENCE_SOURCE, "file")))
    assert result.returncode == 0
    total = f"{COURSE.total:6.2f} / {COURSE.total:6.2f}"
    assert "Total score" in result.stdout and total in result.stdout


def test_public_only_grades_public_cases_only():
    doc = json.loads(
        run("grade", str(ROOT / "solutions"), "--format", "json", "--public-only").stdout
    )
    assert {t["visibility"] for t in doc["tests"]} == {"public"}
    assert doc["score"] == doc["max_score"] < COURSE.total and doc["hidden_graded"] is False


@pytest.mark.parametrize(
    "target, needle",
    [
        ("does/not/exist", "does not exist"),
        (".", "no activation file found"),
        ("pyproject.toml", "cannot grade pyproject.toml"),
    ],
)
def test_unusable_input_exits_2_with_one_line(tmp_path, target, needle):
    result = run("grade", target, cwd=ROOT / "autograder" if target == "." else ROOT)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr
    assert "expected" in lines[0]


def test_a_broken_archive_exits_2_and_leaves_no_output_file(tmp_path):
    bad = tmp_path / "handin.tar"
    bad.write_bytes(b"garbage" * 100)
    out = tmp_path / "report.json"
    result = run("grade", str(bad), "-o", str(out))
    assert result.returncode == 2 and "cannot unpack" in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["handin.tar"]


def test_usage_errors_exit_2():
    assert run("grade").returncode == 2
    assert run("grade", "x", "--format", "pdf").returncode == 2
    assert run("grade", "x", "--timeout", "-1").returncode == 2
    assert run().returncode == 2


def test_user_pytest_options_cannot_leak_into_the_checks(tmp_path):
    env = {
        **os.environ,
        "PYTEST_ADDOPTS": "--maxfail=1 -p no:pytest_jsonreport",
        "PYTEST_PLUGINS": "nonexistent",
    }
    result = run("grade", str(ROOT / "solutions"), "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["score"] == COURSE.total


def test_autograder_script_and_module_agree(tmp_path):
    script = Path(sys.executable).with_name("autograder")
    if not script.exists():
        pytest.skip("the autograder script is not installed next to this Python")
    a = subprocess.run(
        [str(script), "grade", str(ROOT / "handout"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    b = run("grade", str(ROOT / "handout"), "--format", "json")
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    da.pop("duration_s"), db.pop("duration_s")
    assert da == db


def test_handout_check_reports_drift(tmp_path):
    assert run("handout", "--check").returncode == 0


# ------------------------------------------------------------------ the course


def test_grade_takes_a_preset_and_reports_under_it(tmp_path):
    f25 = course.load("cmu-f25")
    result = run("grade", str(ROOT / "solutions"), "--course", "cmu-f25", "--format", "autolab")
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stdout.rstrip("\n").splitlines()[-1])
    assert last == {"scores": {"Activation": f25.total}, "scoreboard": [f25.total]}
    doc = json.loads(
        run("grade", str(ROOT / "solutions"), "--course", "cmu-f25", "--format", "json").stdout
    )
    assert doc["course"]["name"] == "cmu-f25" and doc["max_score"] == f25.total
    assert list(doc["activations"]) == list(f25.names)
    assert {t["activation"] for t in doc["tests"]} == set(f25.names)


def test_grade_takes_a_course_file(tmp_path):
    path = tmp_path / "mine.toml"
    assert run("course", "init", "cmu-s25", str(path)).returncode == 0
    path.write_text(
        path.read_text().replace('credit = "proportional"', 'credit = "all-or-nothing"')
    )
    stubs = run("grade", str(ROOT / "handout"), "--course", str(path), "--format", "json")
    doc = json.loads(stubs.stdout)
    assert doc["course"]["credit"] == "all-or-nothing" and doc["score"] == 0.0
    assert (
        doc["activations"]["Identity"]["earned"] == course.load("cmu-s25").row("Identity").max_score
    )
    assert "All or nothing" in run("grade", str(ROOT / "handout"), "--course", str(path)).stdout


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[course]\ntotal = 3\n[activations.GeLU]\nforward = { public = 3 }\n", "activations.GeLU"),
        (
            "[course]\ntotal = 3\ncredits = 'x'\n[activations.ReLU]\nforward = { public = 3 }\n",
            "course.credits",
        ),
        ("[course]\ntotal = 5\n[activations.ReLU]\nforward = { public = 3 }\n", "course.total"),
    ],
)
def test_an_invalid_course_file_is_exit_2_one_line_and_nothing_written(tmp_path, text, key):
    path = tmp_path / "course.toml"
    path.write_text(text)
    out = tmp_path / "report.json"
    for args in (
        ("grade", str(ROOT / "solutions"), "--course", str(path), "-o", str(out)),
        ("grade-all", str(tmp_path), "-o", str(tmp_path / "grades"), "--course", str(path)),
        ("handout", "--check", "--course", str(path)),
        ("course", "show", "--course", str(path)),
    ):
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr, lines
        assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course.toml"]


def test_an_unknown_preset_is_exit_2_and_lists_the_presets():
    result = run("grade", str(ROOT / "solutions"), "--course", "cmu-f24")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "no such preset" in line and "cmu-f23" in line and "cmu-f25" in line


def test_course_init_writes_a_preset_and_never_overwrites(tmp_path):
    result = run("course", "init", "cmu-f23", cwd=tmp_path)
    assert result.returncode == 0 and "course.toml" in result.stdout
    written = tmp_path / "course.toml"
    assert written.read_text() == course.preset_text("cmu-f23")
    written.write_text(written.read_text() + "# mine\n")
    again = run("course", "init", "cmu-f25", cwd=tmp_path)
    assert again.returncode == 2 and "not overwritten" in again.stderr
    assert written.read_text().endswith("# mine\n")
    assert run("course", "init", "nope", str(tmp_path / "x.toml")).returncode == 2
    assert not (tmp_path / "x.toml").exists()


def test_course_show_is_cheap_and_names_classes_and_points():
    result = run("course", "show", "--course", "cmu-f25")
    assert result.returncode == 0, result.stderr
    f25 = course.load("cmu-f25")
    assert "course cmu-f25" in result.stdout and f25.digest()[:16] in result.stdout
    for name in f25.names:
        assert name in result.stdout
    assert "Softplus" not in result.stdout
    default = run("course", "show")
    assert f"course {COURSE.name}" in default.stdout


def test_handout_check_follows_the_course():
    # The committed handout is the course in effect's; another course's would differ.
    assert run("handout", "--check").returncode == 0
    other = "cmu-f25" if COURSE.name != "cmu-f25" else "cmu-f23"
    result = run("handout", "--check", "--course", other)
    assert result.returncode == 1
    assert "out of date: handout/mytorch/nn/activation.py" in result.stdout
    assert "presets/full.toml" not in result.stdout  # the full preset follows the table only
