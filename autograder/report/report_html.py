"""One submission's report as a self-contained HTML page (no scripts, no external files).

``grade-all`` writes it next to the JSON report (``<name>.html``), and the
class summary links each submission to it, so an instructor can click from
the class to one student's feedback. It shows everything the JSON holds,
hidden tests included: it is for the course staff.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

from autograder.report.escape import printable
from autograder.report.record import PASSED, Report, TestEntry

SUMMARY_PAGE = "summary.html"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 0.15em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) { background: #f4f4f4; }
.passed { color: #2e7d32; } .failed { color: #c62828; }
.bar { background: #4a7ebb; height: 0.9em; display: inline-block; vertical-align: middle; }
.low { background: #c0504d; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto;
      white-space: pre-wrap; }
.problem { background: #fdecea; border: 1px solid #f5c6cb; padding: 0.6em; }
"""


def isolation_of(report: Report) -> dict[str, Any]:
    """The report's isolation record (``"isolation"`` in its JSON), {} when it has none.

    Read from the report itself, not through ``to_dict()``, which copies every
    test: this runs once per submission in a batch.
    """
    value = getattr(report, "isolation", None)
    if isinstance(value, dict):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return {}


def _text(value: object) -> str:
    """``value`` as HTML text: escaped, with control characters spelled out (``\\x1b``)."""
    return html.escape(printable(str(value)))


def html_bar(share: float, width_em: float = 10.0) -> str:
    """A bar ``share`` (0 to 1) of ``width_em`` long, red below one half."""
    cls = "bar low" if share < 0.5 else "bar"
    return f'<span class="{cls}" style="width:{width_em * max(0.0, min(share, 1.0)):.2f}em"></span>'


def _status(test: TestEntry) -> str:
    cls = "passed" if test.status == PASSED else "failed"
    return f'<span class="{cls}">{_text(test.status)}</span>'


def render(report: Report, summary_link: str | None = SUMMARY_PAGE) -> str:
    """The report as one HTML page; ``summary_link`` (relative) leads back to the class."""
    isolation = isolation_of(report)
    level = isolation.get("level") or report.sandbox or "none"
    title = f"Autograder report: {report.submission}"
    share = report.score / report.max_score if report.max_score else 0.0
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_text(title)}</title><style>{_CSS}</style></head><body>",
    ]
    if summary_link:
        out.append(f'<p><a href="{html.escape(summary_link)}">&larr; Class summary</a></p>')
    out += [
        f"<h1>{_text(title)}</h1>",
        f'<p>Score <b id="score">{report.score:g} / {report.max_score:g}</b> {html_bar(share)}'
        f" &middot; sandbox <b>{_text(level)}</b>"
        f" &middot; graded in {report.duration_s:.2f} s"
        + ("" if report.hidden_graded else " &middot; public cases only")
        + "</p>",
    ]
    if report.problem:
        out.append(f'<p class="problem">Not graded: {_text(report.problem)}</p>')
    acts = report.activations()
    if acts:
        out.append("<h2>Activations</h2><table><tr><th>activation</th><th>score</th><th></th></tr>")
        for name, totals in acts.items():
            part = totals["score"] / totals["max_score"] if totals["max_score"] else 0.0
            out.append(
                f'<tr><td>{_text(name)}</td><td class="num">{totals["score"]:g} / '
                f"{totals['max_score']:g}</td><td>{html_bar(part)}</td></tr>"
            )
        out.append("</table>")
    if report.tests:
        out.append(
            "<h2>Tests</h2><table><tr><th>test</th><th>status</th><th>points</th>"
            "<th>cases passed</th></tr>"
        )
        for t in report.tests:
            cases = f"{t.cases_passed}/{t.cases_total}" if t.cases_total else ""
            out.append(
                f"<tr><td>{_text(t.name)}</td><td>{_status(t)}</td>"
                f'<td class="num">{t.score:g} / {t.max_score:g}</td>'
                f'<td class="num">{cases}</td></tr>'
            )
        out.append("</table>")
    failures = [t for t in report.tests if t.status != PASSED]
    if failures:
        out.append("<h2>What did not pass</h2>")
        for t in failures:
            out.append(
                f"<h3>{_text(t.name)}: {t.score:g} / {t.max_score:g} points ({_text(t.status)})</h3>"
            )
            if t.output:
                out.append(f"<pre>{_text(t.output)}</pre>")
    if report.student_output:
        out.append(f"<h2>The code printed</h2><pre>{_text(report.student_output)}</pre>")
    notes = list(report.notes)
    skipped = isolation.get("skipped") or []
    notes += [
        f"{s.get('level')} skipped: {s.get('reason')}" for s in skipped if isinstance(s, dict)
    ]
    if notes:
        out.append("<h2>Notes</h2><ul>")
        out.extend(f"<li>{_text(note)}</li>" for note in notes)
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
