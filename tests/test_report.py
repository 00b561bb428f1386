"""The report as data: failure codes, the JSON schema, and renderers that read codes, not prose."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REFERENCE_SOURCE, write_layout

from autograder import files
from autograder.judge import mistakes
from autograder.report import render, summary
from autograder.report.record import (
    FAILURE_KINDS,
    KIND_PRIORITY,
    NOT_IMPLEMENTED,
    SCHEMA_VERSION,
    STATUSES,
    WRONG_VALUE,
    Report,
    TestEntry,
    main_kind,
)


def _entry(name: str, status: str, output: str, kind: str = "", mistake: str = "") -> TestEntry:
    act, phase, visibility = name.split()
    return TestEntry(
        f"{act} {phase} ({visibility})",
        act,
        phase,
        visibility,
        2.0 if status == "passed" else 0.0,
        2.0,
        status,
        output,
        failure_kind=kind,
        mistake=mistake,
    )


def test_codes_are_short_and_ordered():
    assert set(KIND_PRIORITY) == FAILURE_KINDS and len(KIND_PRIORITY) == len(FAILURE_KINDS)
    assert STATUSES == ("passed", "failed", "error", "timeout")
    for code in FAILURE_KINDS:
        assert code == code.strip() and " " not in code and len(code) <= 16
    assert main_kind([]) == ""
    assert main_kind([WRONG_VALUE, "timeout", WRONG_VALUE]) == "timeout"


def test_json_report_has_a_schema_version_and_failure_codes(grader, tmp_path):
    source = mistakes.BY_NAME["relu-dAdZ-1-at-0"].source(REFERENCE_SOURCE)
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    doc = json.loads(render.as_json(report))
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["import_error"] == ""
    tests = {t["name"]: t for t in doc["tests"]}
    for t in doc["tests"]:
        assert {"failure_kind", "mistake"} <= set(t)
        assert (t["failure_kind"] == "") == (t["status"] == "passed"), t["name"]
    public, hidden = tests["ReLU backward (public)"], tests["ReLU backward (hidden)"]
    assert (public["failure_kind"], public["mistake"]) == (WRONG_VALUE, "relu-dAdZ-1-at-0")
    assert (hidden["failure_kind"], hidden["mistake"]) == (WRONG_VALUE, "")


def test_pytest_and_direct_paths_carry_the_same_codes(grader, tmp_path):
    source = mistakes.BY_NAME["softmax-no-max"].source(REFERENCE_SOURCE)
    path = write_layout(tmp_path, source, "file")
    via_pytest = grader.grade(path, use_pytest=True)
    direct = grader.grade(path, use_pytest=False)
    codes = [(t.name, t.failure_kind, t.mistake) for t in via_pytest.tests]
    assert codes == [(t.name, t.failure_kind, t.mistake) for t in direct.tests]
    assert ("Softmax forward (public)", "overflow", "softmax-no-max") in codes


def test_from_dict_ignores_unknown_keys_and_fills_new_ones():
    doc = Report("alice", [_entry("ReLU forward public", "failed", "x", WRONG_VALUE)]).to_dict()
    doc["isolation"] = {"level": "bwrap", "seccomp": True}  # a key this version does not know
    doc["tests"][0]["per_case"] = [1, 2]
    again = Report.from_dict(doc)
    assert (
        again.tests[0].failure_kind == WRONG_VALUE
        and again.tests[0].name == "ReLU forward (public)"
    )
    # A report of schema 1 (before codes, mistakes and the import headline) still loads.
    old = {
        "submission": "bob",
        "tests": [
            {
                k: v
                for k, v in doc["tests"][0].items()
                if k not in ("failure_kind", "mistake", "per_case")
            }
        ],
    }
    loaded = Report.from_dict(old)
    assert loaded.tests[0].failure_kind == "" and loaded.import_error == ""
    assert "ReLU forward (public)" in render.table(loaded)
    assert summary.Outcome.from_report(loaded).tests[0].kind == summary.UNCLASSIFIED


def test_summary_reads_codes_not_prose():
    # Outputs worded to fool a text search; the codes say what happened.
    misleading = (
        "changed its input in place; inf or nan; could not be imported; not implemented yet"
    )
    report = Report(
        "alice",
        [
            _entry("ReLU forward public", "failed", misleading, WRONG_VALUE),
            _entry("ReLU backward public", "failed", "1/3 public cases passed.", "overflow"),
            _entry("Tanh backward public", "failed", misleading, WRONG_VALUE, "tanh-1-minus-A"),
            _entry("Tanh backward hidden", "failed", "0/3 hidden cases passed.", WRONG_VALUE),
            _entry("Sigmoid forward hidden", "timeout", "0/3 hidden cases passed.", "timeout"),
        ],
    )
    kinds = {t.name: t.kind for t in summary.Outcome.from_report(report).tests}
    assert kinds == {
        "ReLU forward (public)": WRONG_VALUE,
        "ReLU backward (public)": "overflow",
        "Tanh backward (public)": "tanh-1-minus-A",
        "Tanh backward (hidden)": "tanh-1-minus-A",  # borrowed from its failing public twin
        "Sigmoid forward (hidden)": "hidden cases only: timeout",
    }


def test_status_word_reads_the_code_not_the_prose():
    says_not_implemented = "not implemented yet (raises NotImplementedError)"
    wrong = Report("a", [_entry("ReLU forward public", "error", says_not_implemented, WRONG_VALUE)])
    stub = Report("b", [_entry("ReLU forward public", "error", "", NOT_IMPLEMENTED)])
    assert "Not implemented yet: ReLU" not in render.table(wrong)
    assert "Not implemented yet: ReLU" in render.table(stub)


def test_rendering_a_stored_report_imports_neither_pytest_nor_the_checks(grader, tmp_path):
    source = mistakes.BY_NAME["tanh-1-minus-A"].source(REFERENCE_SOURCE)
    report = grader.grade(write_layout(tmp_path, source, "file"), use_pytest=False)
    stored = tmp_path / "report.json"
    stored.write_text(render.as_json(report))
    code = (
        "import json, sys\n"
        "from autograder.report import record, render, summary\n"
        "r = record.Report.from_dict(json.load(open(sys.argv[1])))\n"
        "for fn in render.RENDERERS.values():\n"
        "    fn(r)\n"
        "s = summary.summarize([summary.Outcome.from_report(r)])\n"
        "summary.render_text(s), summary.render_html(s)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')\n"
        "       or m in ('autograder.judge.checks', 'autograder.judge.feedback', 'autograder.engine')]\n"
        "print(json.dumps(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(stored)],
        capture_output=True,
        text=True,
        cwd=files.PROJECT_ROOT,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == []
