"""The command line: formats, exit statuses, one-line errors, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REFERENCE_SOURCE, write_layout

from autograder import reference

ROOT = reference.PROJECT_ROOT


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
    assert stubs_json["score"] == 4.0 and stubs_json["max_score"] == 100.0
    keys = {"name", "activation", "phase", "visibility", "score", "max_score", "status", "output"}
    for test in stubs_json["tests"]:
        assert set(test) >= keys
        assert test["phase"] in ("forward", "backward", "dLdbeta", "rule")
        assert test["visibility"] in ("public", "hidden")
        assert test["status"] in ("passed", "failed", "error", "timeout")
    assert sum(a["max_score"] for a in stubs_json["activations"].values()) == 100.0


def test_gradescope_format_follows_the_specification(tmp_path):
    out = tmp_path / "results.json"
    result = run("grade", str(ROOT / "handout"), "--format", "gradescope", "-o", str(out))
    assert result.returncode == 0 and result.stdout == ""
    doc = json.loads(out.read_text())
    assert doc["score"] == 4.0
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
    assert len(scores) == 14 and sum(scores.values()) == 100.0


def test_table_is_the_default(tmp_path):
    result = run("grade", str(write_layout(tmp_path, REFERENCE_SOURCE, "file")))
    assert result.returncode == 0
    assert "Total score" in result.stdout and "100.00 / 100.00" in result.stdout


def test_public_only_grades_public_cases_only():
    doc = json.loads(
        run("grade", str(ROOT / "solutions"), "--format", "json", "--public-only").stdout
    )
    assert {t["visibility"] for t in doc["tests"]} == {"public"}
    assert doc["score"] == doc["max_score"] < 100 and doc["hidden_graded"] is False


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
    assert json.loads(result.stdout)["score"] == 100.0


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
