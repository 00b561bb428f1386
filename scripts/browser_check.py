#!/usr/bin/env python3
"""Check the class summary and a student's report page in a real headless browser.

Not part of ``make test`` (it needs Chromium and takes a while):

    apt-get install -y chromium          # Debian/Ubuntu
    .venv/bin/python scripts/browser_check.py [--out DIR] [--chromium PATH]

It grades a small synthetic class with ``grade-all`` (a correct submission,
the stubs, two buggy ones, one whose name needs escaping, one unusable),
then loads ``summary.html`` and one report page in headless Chromium:

* ``--dump-dom`` (the page as the browser parsed it): the class list holds
  every submission once, best score first, with its sandbox level, and each
  link resolves to an existing report page whose title names that
  submission;
* ``--screenshot``: PNG pictures of both pages in ``DIR`` (default
  ``build/browser-check``) for a person to look at.

Exit status 0 when every check passes, 1 otherwise (each failure printed).
"""

from __future__ import annotations

import argparse
import html.parser
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import batch, files  # noqa: E402
from autograder.build import stubs  # noqa: E402
from autograder.engine import GradeOptions  # noqa: E402
from autograder.submission import handin as submission  # noqa: E402

WINDOW = "1200,4200"  # tall enough for the whole summary of this small class
WRONG_RELU = """

def _forward_zeros(self, Z):
    self.A = np.zeros_like(Z)
    return self.A


ReLU.forward = _forward_zeros
"""
WRONG_SIGMOID = """

def _backward_wrong(self, dLdA):
    return dLdA * self.A


Sigmoid.backward = _backward_wrong
"""


def make_class(directory: Path) -> dict[str, str]:
    """A small class of submissions in ``directory``; name -> what it is."""
    correct = files.REFERENCE_PATH.read_text(encoding="utf-8")
    entries = {
        "alice.py": (correct, "correct"),
        "bob.py": (stubs.stub_text(), "the stubs"),
        "carol.py": (correct + WRONG_RELU, "ReLU forward wrong"),
        "dave & <eve>.py": (correct + WRONG_RELU + WRONG_SIGMOID, "two bugs, a name to escape"),
        "frank.tar": ("not an archive", "unusable"),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, (text, _) in entries.items():
        (directory / name).write_text(text, encoding="utf-8")
    return {submission.submission_name(Path(n)): what for n, (_, what) in entries.items()}


class Links(html.parser.HTMLParser):
    """The rows of the class list (#submissions) and the page title, from a parsed DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.rows: list[list[str]] = []
        self.hrefs: list[str] = []
        self._in_table = self._in_title = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Track the title, the class table, its rows, cells and links."""
        attributes = dict(attrs)
        if tag == "title":
            self._in_title = True
        elif tag == "table" and attributes.get("id") == "submissions":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "td":
            self._cell = []
        elif self._in_table and tag == "a" and attributes.get("href"):
            self.hrefs.append(attributes["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        """Close cells, the table and the title."""
        if tag == "title":
            self._in_title = False
        elif tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        """Collect text of the title and of table cells."""
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)


def chromium(binary: str, *args: str) -> str:
    """Run headless Chromium with a throw-away profile; return its stdout."""
    with tempfile.TemporaryDirectory(prefix="browser-check-profile-") as profile:
        result = subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",  # we run as root in a container; the page is our own file
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def parse(dom: str) -> Links:
    """The class list and title of a page as Chromium parsed it."""
    links = Links()
    links.feed(dom)
    return links


def main(argv: list[str] | None = None) -> int:
    """Grade the class, load its pages in Chromium, check them and save screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "browser-check"), metavar="DIR")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        subs, grades = Path(tmp) / "class", Path(tmp) / "grades"
        expected = make_class(subs)
        result = batch.grade_all(subs, grades, GradeOptions(), jobs=2, progress=False)
        scores = {o.submission: o.score for o in result.outcomes}
        summary_url = (grades / batch.SUMMARY_HTML).as_uri()
        page = parse(chromium(args.chromium, "--dump-dom", summary_url))
        rows = [r for r in page.rows if r]
        names = [r[1] for r in rows]
        if sorted(names) != sorted(expected):
            problems.append(f"class list {names} != submissions {sorted(expected)}")
        listed = [float(r[2].split("/")[0]) for r in rows]
        if listed != sorted(listed, reverse=True):
            problems.append(f"class list not sorted by score: {listed}")
        for row in rows:
            if scores.get(row[1]) is not None and float(row[2].split("/")[0]) != scores[row[1]]:
                problems.append(f"{row[1]}: listed {row[2]}, graded {scores[row[1]]:g}")
            if not row[4]:
                problems.append(f"{row[1]}: no sandbox level")
        for href, name in zip(page.hrefs, names, strict=False):
            target = (grades / unquote(urlparse(href).path)).resolve()
            if not target.is_file():
                problems.append(f"link {href!r} of {name!r} leads nowhere")
                continue
            report = parse(chromium(args.chromium, "--dump-dom", target.as_uri()))
            if report.title != f"Autograder report: {name}":
                problems.append(f"{href}: title {report.title!r}, expected {name!r}")
        chromium(args.chromium, f"--screenshot={out / 'summary.png'}", summary_url)
        # The report of the best submission that still failed something.
        shown = max((n for n in scores if scores[n] < max(scores.values())), key=scores.get)
        report_url = (grades / batch.summary_mod.report_page(shown)).as_uri()
        chromium(args.chromium, f"--screenshot={out / 'report.png'}", report_url)
        print(
            f"graded {len(scores)} submissions: "
            + ", ".join(f"{n} {s:g}" for n, s in scores.items())
        )
        print(f"class list as the browser parsed it: {names}")
        print(f"screenshots: {out / 'summary.png'}, {out / 'report.png'} ({shown})")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    print("browser check: " + ("passed" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
