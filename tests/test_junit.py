"""CI support: the JUnit XML format and --fail-under."""

from __future__ import annotations

import subprocess
import sys
from xml.etree import ElementTree as ET

import pytest
from helpers import REFERENCE_SOURCE, replace_method, write_layout

from autograder import files
from autograder.report import render
from autograder.report.record import Report, TestEntry

ROOT = files.PROJECT_ROOT


def entry(name: str, status: str, output: str = "", score: float = 0.0) -> TestEntry:
    act, phase = name.split()[:2]
    return TestEntry(name, act, phase, "public", score, 2.0, status, output)


def test_junit_has_one_testcase_per_test_with_failures_and_errors():
    report = Report(
        submission="alice",
        tests=[
            entry("ReLU forward (public)", "passed", "3/3 public cases passed", 2.0),
            entry("ReLU backward (public)", "failed", "1/3 public cases passed.\n- case ReLU-p2"),
            entry("Tanh forward (public)", "error", "raised \x1b[31mValueError\x00"),
            entry("Tanh backward (public)", "timeout", "took longer than 2 s"),
        ],
        student_output="hello \x07 world",
    )
    root = ET.fromstring(render.junit(report))
    suite = root.find("testsuite")
    assert root.tag == "testsuites" and suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "2")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [t.name for t in report.tests]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    failure = cases[1].find("failure")
    assert failure is not None and "- case ReLU-p2" in failure.text
    assert failure.get("message").startswith("0 / 2 points")
    assert cases[2].find("error").get("type") == "error"
    assert "ValueError" in cases[2].find("error").text  # control characters replaced
    assert cases[3].find("error").get("type") == "timeout"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["score"] == "2" and props["max_score"] == "8"
    assert "world" in suite.find("system-out").text


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_cli_junit_of_the_reference_has_no_failures(tmp_path):
    out = tmp_path / "report.xml"
    result = run("grade", str(ROOT / "solutions"), "--format", "junit", "-o", str(out))
    assert result.returncode == 0, result.stderr
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite.get("failures") == suite.get("errors") == "0"
    assert int(suite.get("tests")) > 14


@pytest.mark.parametrize(
    "threshold, status",
    [("4", 0), ("4.5", 1), ("100", 1), ("4%", 0), ("5%", 1), ("0", 0)],
)
def test_fail_under_on_the_stubs(tmp_path, threshold, status):
    # The untouched stubs score 4 / 100.
    out = tmp_path / "report.json"
    result = run("grade", str(ROOT / "handout"), "--fail-under", threshold, "-o", str(out))
    assert result.returncode == status
    assert out.is_file()  # the report is written either way
    if status:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "below --fail-under" in lines[0]
    else:
        assert result.stderr == ""


def test_fail_under_percent_counts_against_the_graded_maximum(tmp_path):
    wrong = replace_method(REFERENCE_SOURCE, "ReLU", "backward", "return dLdA")
    path = write_layout(tmp_path, wrong, "file")
    public = ["--public-only", "--format", "junit"]
    assert run("grade", str(ROOT / "solutions"), *public, "--fail-under", "100%").returncode == 0
    assert run("grade", str(path), *public, "--fail-under", "100%").returncode == 1
    assert run("grade", str(path), *public, "--fail-under", "90%").returncode == 0


@pytest.mark.parametrize("bad", ["abc", "-1", "nan%", ""])
def test_fail_under_rejects_what_is_not_a_score(bad):
    result = run("grade", str(ROOT / "handout"), "--fail-under", bad)
    assert result.returncode == 2 and "--fail-under" in result.stderr
    assert "Traceback" not in result.stderr
