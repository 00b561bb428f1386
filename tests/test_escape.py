"""Control characters from a submission never reach a terminal raw.

Each attack (escape sequences in printed output, in an exception message,
in a warning, in the submission's name) sits beside its honest twin (plain
text with accents, CJK and tabs, which must come through unchanged).
"""

from __future__ import annotations

import json

import pytest
from conftest import FULL_MARKS, by_name
from helpers import REFERENCE_SOURCE, append, replace_method

from autograder import batch
from autograder.report import render, summary
from autograder.report.escape import printable
from autograder.report.record import Report
from autograder.submission import handin as submission

# What must never appear raw in a text format: ESC, CSI (C1), CR, BEL, backspace, DEL,
# a right-to-left override, a line separator.
RAW = ("\x1b", "\x9b", "\r", "\x07", "\x08", "\x7f", "\u202e", "\u2028")


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("a\rb", "a\\x0db"),
        ("bell\x07 back\x08 del\x7f", "bell\\x07 back\\x08 del\\x7f"),
        ("\x9b31m", "\\x9b31m"),
        ("\u202eevil", "\\u202eevil"),
        ("line\u2028sep", "line\\u2028sep"),
        ("nul\x00", "nul\\x00"),
    ],
)
def test_control_characters_are_escaped(raw, shown):
    assert printable(raw) == shown


def test_printable_text_is_left_alone():
    text = "naïve café 日本語 ∂L/∂Z\tcolumn\nnext line\n"
    assert printable(text) is text or printable(text) == text


FAKE_SCORE = "\x1b[2J\x1b[H" + "Total score                                 100.00 / 100.00\r"
SHOUTING = append(
    replace_method(
        REFERENCE_SOURCE,
        "ReLU",
        "forward",
        "raise ValueError('\\x1b[31mfine\\x1b[0m\\r100/100\\x07')",
    ),
    f"print({FAKE_SCORE!r})\nprint('\\x1b]0;owned\\x07')",
)
WARNING_TANH = replace_method(
    REFERENCE_SOURCE,
    "Tanh",
    "forward",
    "import warnings\nwarnings.warn('\\x1b[2Jwarned')\nself.A = Z\nreturn self.A",
)
HONEST = append(REFERENCE_SOURCE, "print('naïve café 日本語\\tcolumn')")


def _grade(grader, tmp_path, source: str, name: str) -> Report:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return grader.grade_submission(submission.load(path), use_pytest=False)


def _text_formats(report: Report) -> dict[str, str]:
    return {"table": render.table(report), "autolab": render.autolab(report)}


def test_printed_escapes_and_a_fake_score_are_shown_escaped(grader, tmp_path):
    report = _grade(grader, tmp_path, SHOUTING, "shouting")
    assert "\x1b[2J" in report.student_output  # the data keeps what was printed
    assert json.loads(render.as_json(report))["student_output"] == report.student_output
    forward = by_name(report)["ReLU forward (public)"]
    assert "\x1b[31m" in forward.output and forward.failure_kind == "exception"
    for name, text in _text_formats(report).items():
        for raw in RAW:
            assert raw not in text, (name, repr(raw))
        assert "| \\x1b[2J\\x1b[HTotal score" in text, name  # quoted, visible, harmless
        assert "\\x1b[31mfine\\x1b[0m\\x0d100/100\\x07" in text, name
    last = render.autolab(report).splitlines()[-1]
    assert json.loads(last)["scores"]["ReLU"] < 7


def test_an_escape_in_a_warning_is_escaped(grader, tmp_path):
    report = _grade(grader, tmp_path, WARNING_TANH, "warner")
    forward = by_name(report)["Tanh forward (public)"]
    assert "\x1b[2Jwarned" in forward.output
    assert "\x1b" not in render.table(report) and "\\x1b[2Jwarned" in render.table(report)


def test_plain_printed_text_comes_through_unchanged(grader, tmp_path):
    report = _grade(grader, tmp_path, HONEST, "honest")
    assert report.score == FULL_MARKS
    assert "  | naïve café 日本語\tcolumn" in render.table(report)


def test_a_submission_named_with_an_escape_sequence(grader, tmp_path):
    name = "evil\x1b[2J\x1b[32m"
    report = _grade(grader, tmp_path, REFERENCE_SOURCE, name)
    assert report.submission == name and report.score == FULL_MARKS
    for text in _text_formats(report).values():
        assert "\x1b" not in text and "Autograder report: evil\\x1b[2J\\x1b[32m" in text


def test_summary_text_escapes_names_and_problems(tmp_path):
    # A class directory: one submission named with an escape that prints a fake score,
    # one unusable archive named with another escape.
    classdir = tmp_path / "class"
    classdir.mkdir()
    (classdir / "evil\x1b[2J.py").write_text(SHOUTING)
    (classdir / "broken\x1b]0;x\x07.zip").write_bytes(b"not a zip \x1b[2J")
    result = batch.grade_all(classdir, tmp_path / "grades", progress=False, jobs=1)
    text = (tmp_path / "grades" / batch.SUMMARY_TEXT).read_text()
    assert text == summary.render_text(result.summary)
    for raw in RAW:
        assert raw not in text, repr(raw)
    assert "broken\\x1b]0;x\\x07" in text
    stored = json.loads((tmp_path / "grades" / "evil\x1b[2J.json").read_text())
    assert "\x1b[2J" in stored["student_output"]  # JSON keeps the raw string
