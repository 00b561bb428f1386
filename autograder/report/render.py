"""Renderers: the same report as a table, JSON, Gradescope, Autolab or JUnit XML output.

Nothing a student's code printed is ever written raw: it travels inside
JSON strings or indented under a heading, every text format escapes control
characters (:func:`escape.printable`), and the Autolab score line is always
the very last line, written by us. Renderers read the report's status names
and failure codes, never the wording of the feedback, and import neither
pytest nor the checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from xml.etree import ElementTree as ET

from autograder.report import record as rep
from autograder.report.escape import printable
from autograder.report.record import PASSED, Report
from autograder.report.report_html import isolation_of

RULE = "-" * 64


def _lines(text: str) -> list[str]:
    """Lines of text from a submission, control characters escaped first.

    Escaping before splitting keeps a CR (or a Unicode line separator) from
    starting a line of its own that could pass for one of ours.
    """
    return printable(text).splitlines()


def _status_word(report: Report, activation: str) -> str:
    tests = [t for t in report.tests if t.activation == activation]
    if all(t.status == PASSED for t in tests):
        return "passed"
    forward = [t for t in tests if t.phase == "forward" and t.visibility == "public"]
    if forward and forward[0].failure_kind == rep.NOT_IMPLEMENTED and forward[0].cases_passed == 0:
        return "not implemented"
    if any(t.score > 0 for t in tests):
        return "partial"
    statuses = {t.status for t in tests}
    return "timeout" if "timeout" in statuses else ("error" if "error" in statuses else "failed")


def _cell(report: Report, activation: str, phases: tuple[str, ...]) -> str:
    tests = [t for t in report.tests if t.activation == activation and t.phase in phases]
    if not tests:
        return ""
    if tests[0].phase == "rule":
        if tests[0].status == PASSED:
            return "rule ok"
        # "x": broken; "-": not judged (forward never ran, the file did not import).
        # A report from before failure codes (schema 1) showed "x" for both.
        kind = tests[0].failure_kind
        return "rule " + ("x" if kind == rep.RULE or not kind else "-")
    passed = sum(t.cases_passed for t in tests)
    total = sum(t.cases_total for t in tests)
    label = "dLdbeta " if tests[0].phase == "dLdbeta" else ""
    return f"{label}{passed}/{total}"


def table(report: Report) -> str:
    """A per-activation summary like the CMU runner's, then each failure's details.

    Cells count passed cases (public and hidden together). A module that did
    not import gets one headline at the top and one line for all its tests.
    """
    lines = [RULE, f"Autograder report: {report.submission}", RULE]
    if report.import_error:
        lines += [report.import_error[0].upper() + report.import_error[1:], RULE]
    acts = report.activations()
    width = max([len(a) for a in acts] + [10])
    lines.append(
        f"{'Activation':<{width}}  {'forward':>7}  {'backward':>8}  {'other':<11} {'score':>15}  status"
    )
    not_implemented = []
    for name, totals in acts.items():
        status = _status_word(report, name)
        if status == "not implemented":
            not_implemented.append(name)
        score = f"{totals['score']:6.2f} / {totals['max_score']:6.2f}"
        lines.append(
            f"{name:<{width}}  {_cell(report, name, ('forward',)):>7}  "
            f"{_cell(report, name, ('backward',)):>8}  {_cell(report, name, ('dLdbeta', 'rule')):<11} "
            f"{score:>15}  {status}"
        )
    lines.append(RULE)
    lines.append(
        f"{'Total score':<{width}}  {'':>7}  {'':>8}  {'':<11} "
        f"{f'{report.score:6.2f} / {report.max_score:6.2f}':>15}"
    )
    if not report.hidden_graded:
        lines.append("Public cases only: hidden cases are graded by the course staff.")
    aon = all_or_nothing_line(report)
    if aon:
        lines.append(aon)
    lines.append(RULE)
    if not_implemented:
        lines.append("Not implemented yet: " + ", ".join(not_implemented) + ".")
    failures = [
        t for t in report.tests if t.status != PASSED and t.activation not in not_implemented
    ]
    if failures and all(t.failure_kind == rep.IMPORT for t in failures):
        # The headline says why; each test's own line is in the other formats.
        lines.append("What did not pass: every test, since your module did not import (above).")
    elif failures:
        lines.append("What did not pass:")
        for t in failures:
            header = f"* {t.name}: {t.score:g} / {t.max_score:g} points ({t.status})"
            output = _lines(t.output)
            if len(output) <= 1:
                # A one-line verdict (hidden counts, an import failure) shares the header's line.
                lines.append(header + (f": {output[0]}" if output else ""))
                continue
            lines.append(header)
            lines.extend("    " + line for line in output)
    elif not not_implemented:
        lines.append("Everything passed. Well done!")
    if report.student_output:
        lines.append("")
        lines.append("Your code printed (first lines):")
        lines.extend("  | " + line for line in _lines(report.student_output)[:20])
    lines.append("")
    lines.append(f"Graded in {report.duration_s:.2f} s (sandbox: {report.sandbox or 'none'}).")
    lines.extend(f"Note: {note}" for note in report.notes)
    # Submission names, messages and printed output come from the student: no raw controls.
    return printable("\n".join(lines) + "\n")


def all_or_nothing_line(report: Report) -> str:
    """Under all-or-nothing credit, one line saying so and what it did ("" otherwise)."""
    if report.credit != rep.ALL_OR_NOTHING:
        return ""
    failing = sum(t.score < t.max_score - rep.POINTS_SLACK for t in report.tests)
    line = "All or nothing: the points count only when every test passes"
    if failing:
        return line + f"; {failing} test{'s' if failing > 1 else ''} did not, so the score is 0."
    return line + "; every test did."


def as_json(report: Report) -> str:
    """The JSON report."""
    return json.dumps(report.to_dict(), indent=2) + "\n"


# Gradescope shows public tests at once and hidden ones once grades are published.
GRADESCOPE_VISIBILITY = {"public": "visible", "hidden": "after_published"}
# What each isolation level means for the student reading the output.
LEVEL_WORDS = {
    "bwrap": "bubblewrap sandbox, as a separate unprivileged user",
    "uid": "a separate unprivileged user",
    "process": "a separate process of the grader's own user",
}


def isolation_line(report: Report) -> str:
    """One line naming the isolation level student code ran at (from the report's data)."""
    isolation = isolation_of(report)
    level = isolation.get("level") or report.sandbox or "none"
    line = f"Isolation of your code: {level}"
    if level in LEVEL_WORDS:
        line += f" ({LEVEL_WORDS[level]})"
    if "seccomp" in isolation:
        line += f"; syscall filter {'on' if isolation['seccomp'] else 'off'}"
    return line + "."


def gradescope(report: Report) -> str:
    """results.json in Gradescope's autograder format.

    Gradescope shows the top-level ``output`` at once, whatever the tests'
    visibility, and hides the total score from students while any test is
    hidden. So ``output`` speaks only of the public tests and the isolation
    level, and says of the hidden tests only how many there are and what they
    are worth. There is no ``execution_time``: a hidden case that timed out
    would show in it. ``extra_data`` (stored, not shown) carries the isolation
    record for the course staff.
    """
    public = [t for t in report.tests if t.visibility == "public"]
    hidden = [t for t in report.tests if t.visibility != "public"]
    lines = [report.problem] if report.problem else []
    earned = round(sum(t.score for t in public), 4)
    available = round(sum(t.max_score for t in public), 4)
    lines.append(f"Public tests: {earned:g} / {available:g} points.")
    if report.credit == rep.ALL_OR_NOTHING:
        lines.append(
            f"All or nothing: the score is {report.max_score:g} when every test, public and "
            "hidden, passes, and 0 otherwise."
        )
    if hidden:
        worth = round(sum(t.max_score for t in hidden), 4)
        lines.append(
            f"Hidden tests: {len(hidden)}, worth {worth:g} points, graded now; their results "
            "and your total score appear when grades are published."
        )
    lines.append(isolation_line(report))
    isolation = isolation_of(report) or None
    doc = {
        "score": report.score,
        "output": "\n".join(lines),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "extra_data": {
            "sandbox": report.sandbox,
            "isolation": isolation,
            "hidden_graded": report.hidden_graded,
        },
        "tests": [
            {
                "name": t.name,
                "score": t.score,
                "max_score": t.max_score,
                "status": "passed" if t.status == PASSED else "failed",
                "output": t.output,
                "output_format": "text",
                "visibility": GRADESCOPE_VISIBILITY[t.visibility],
                "tags": [t.activation, t.phase],
            }
            # Public tests first: the student's numbered list has no gaps.
            for t in public + hidden
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def autolab_scores(report: Report) -> dict:
    """Autolab's score line: one problem per activation (or the course's single problem),
    plus a scoreboard."""
    return {"scores": report.autolab_scores(), "scoreboard": [report.score]}


def autolab(report: Report) -> str:
    """The table, then the score line Autolab reads: always the very last line.

    The table escapes control characters and the score line is ASCII JSON, so
    nothing the student printed can move the cursor or fake the last line.
    """
    return table(report) + json.dumps(autolab_scores(report)) + "\n"


# Characters XML 1.0 cannot hold at all (control characters a submission may print).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit(report: Report) -> str:
    """JUnit XML for CI systems: one testcase per test, failures carrying the feedback."""
    failures = sum(t.status == rep.FAILED for t in report.tests)
    errors = sum(t.status not in (PASSED, rep.FAILED) for t in report.tests)
    counts = {
        "tests": str(len(report.tests) + bool(report.problem)),
        "failures": str(failures),
        "errors": str(errors + bool(report.problem)),
        "skipped": "0",
        "time": f"{report.duration_s:.3f}",
    }
    suites = ET.Element("testsuites", {"name": "autograder", **counts})
    suite = ET.SubElement(
        suites, "testsuite", {"name": _xml_text(f"autograder: {report.submission}"), **counts}
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("score", f"{report.score:g}"),
        ("max_score", f"{report.max_score:g}"),
        ("hidden_graded", str(report.hidden_graded).lower()),
        ("sandbox", report.sandbox),
    ):
        ET.SubElement(properties, "property", {"name": key, "value": _xml_text(value)})
    if report.problem:
        case = ET.SubElement(suite, "testcase", {"classname": "submission", "name": "load"})
        error = ET.SubElement(
            case, "error", {"message": _xml_text(report.problem), "type": "unusable"}
        )
        error.text = _xml_text(report.problem)
    for t in report.tests:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": _xml_text(f"activations.{t.activation}"),
                "name": _xml_text(t.name),
                "time": "0",
            },
        )
        points = f"{t.score:g} / {t.max_score:g} points"
        if t.status != PASSED:
            tag = "failure" if t.status == rep.FAILED else "error"
            first = (t.output.splitlines() or [t.status])[0]
            node = ET.SubElement(
                case, tag, {"message": _xml_text(f"{points}: {first}"), "type": t.status}
            )
            node.text = _xml_text(t.output)
        ET.SubElement(case, "system-out").text = points
    if report.student_output:
        ET.SubElement(suite, "system-out").text = _xml_text(report.student_output)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": table,
    "json": as_json,
    "gradescope": gradescope,
    "autolab": autolab,
    "junit": junit,
}
