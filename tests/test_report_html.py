"""The class summary's list of submissions and each submission's report as an HTML page.

The page as a real browser renders it is checked by ``scripts/browser_check.py``
(headless Chromium, outside ``make test``); these tests check what is written.
"""

from __future__ import annotations

import html.parser
import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from helpers import REFERENCE_SOURCE, append

from autograder import batch
from autograder.build import stubs
from autograder.report import report_html
from autograder.report.record import Report, TestEntry

STUBS = stubs.stub_text()
WRONG_RELU = """
def _zeros(self, Z):
    self.A = np.zeros_like(Z)
    return self.A


ReLU.forward = _zeros
"""


class Page(html.parser.HTMLParser):
    """The links and the rows of the #submissions table of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._table = False
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        """Track the class table, its rows, cells and links."""
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id") == "submissions"
        elif self._table and tag == "tr":
            self.rows.append([])
        elif self._table and tag == "td":
            self._cell = []
        elif self._table and tag == "a":
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        """Close cells and the table."""
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = False

    def handle_data(self, data):
        """Text of the current cell."""
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """A small class graded with grade-all: names that need escaping and quoting included."""
    root = tmp_path_factory.mktemp("class")
    subs, out = root / "subs", root / "out"
    subs.mkdir()
    (subs / "alice.py").write_text(REFERENCE_SOURCE)
    (subs / "bob.py").write_text(STUBS)
    (subs / "carol #1 & <co>.py").write_text(append(REFERENCE_SOURCE, WRONG_RELU))
    (subs / "dave.tar").write_bytes(b"not an archive")
    result = batch.grade_all(subs, out, jobs=1, progress=False)
    return result, out


def test_grade_all_writes_each_report_as_a_page_next_to_its_json(graded_class):
    result, out = graded_class
    for outcome in result.outcomes:
        doc = json.loads((out / f"{outcome.submission}.json").read_text())
        page = (out / f"{outcome.submission}.html").read_text()
        assert f"<h1>Autograder report: {report_html._text(outcome.submission)}</h1>" in page
        assert f"{doc['score']:g} / {doc['max_score']:g}" in page
        assert f"sandbox <b>{doc['sandbox']}</b>" in page
        assert '<a href="summary.html">' in page
        if doc.get("problem"):
            assert report_html._text(doc["problem"]) in page


def test_summary_lists_every_submission_best_first_linking_to_its_page(graded_class):
    result, out = graded_class
    page = Page((out / batch.SUMMARY_HTML).read_text())
    rows = [r for r in page.rows if r]
    names = [r[1] for r in rows]
    scores = {o.submission: o.score for o in result.outcomes}
    assert sorted(names) == sorted(scores)
    listed = [float(r[2].split("/")[0]) for r in rows]
    assert listed == sorted(listed, reverse=True) == sorted(scores.values(), reverse=True)
    assert {r[4] for r in rows} == {o.sandbox for o in result.outcomes} != {""}
    for href, name in zip(page.links, names, strict=True):
        assert (out / unquote(href)).read_text().count(report_html._text(name)) >= 1
    assert "not graded: cannot unpack" in rows[-1][5]


def test_summary_escapes_names_and_quotes_links(graded_class):
    _, out = graded_class
    text = (out / batch.SUMMARY_HTML).read_text()
    assert "<co>" not in text and "carol #1 &amp; &lt;co&gt;" in text
    assert 'href="carol%20%231%20%26%20%3Cco%3E.html"' in text


def test_report_page_shows_student_text_inert():
    # A student's output and a name with markup and terminal escapes: shown, never run.
    report = Report(
        submission="x<script>",
        tests=[
            TestEntry("ReLU forward (public)", "ReLU", "forward", "public", 0, 2, "failed", "<b>")
        ],
        student_output="\x1b[2J\x1b[HFake 100/100 <img src=x onerror=alert(1)>",
        sandbox="bwrap",
    )
    page = report_html.render(report)
    assert "<script>" not in page and "<img" not in page and "\x1b" not in page
    assert "\\x1b[2J" in page and "x&lt;script&gt;" in page and "&lt;b&gt;" in page


def test_a_reused_report_gets_its_page_back(graded_class, tmp_path):
    _, out = graded_class
    copy = tmp_path / "out"
    copy.mkdir()
    for path in out.iterdir():
        copy.joinpath(path.name).write_bytes(path.read_bytes())
    (copy / "alice.html").unlink()
    subs = Path(out).parent / "subs"
    again = batch.grade_all(subs, copy, jobs=1, progress=False)
    assert next(o for o in again.outcomes if o.submission == "alice").reused
    assert "Autograder report: alice" in (copy / "alice.html").read_text()
