"""Class statistics of a batch: counts, score distribution, pass rates, common failures.

The batch turns every report into a small :class:`Outcome` (what the
statistics need, nothing a student wrote); :func:`summarize` aggregates
them and the renderers write the result as text, as a self-contained HTML
page and, when matplotlib is installed, as PNG charts.
"""

from __future__ import annotations

import html
import io
import statistics
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

from autograder.report.escape import printable
from autograder.report.record import PASSED, Report, TestEntry
from autograder.report.report_html import html_bar, isolation_of

HISTOGRAM_BINS = 10
TOP_FAILURES = 10
BAR_WIDTH = 40
CHART_FILES = ("summary-histogram.png", "summary-activations.png")


# ------------------------------------------------------------------ outcomes


# The label of a failing test without a code (a report from before codes existed).
UNCLASSIFIED = "unclassified"


def failure_kind(test: TestEntry, public_twin: TestEntry | None = None) -> str:
    """A short label for why a test did not pass: the same label for the same mistake.

    Read from the report's data, never its wording: the catalogued mistake
    the output matched, else the failure code (``report.FAILURE_KINDS``).
    Hidden tests name no mistake, so a failing hidden test borrows the label
    of its public twin (same activation and phase) when that failed too, and
    otherwise says that only the hidden cases fail, with its own code.
    """
    if test.visibility == "hidden":
        if public_twin is not None and public_twin.status != PASSED:
            return failure_kind(public_twin)
        return f"hidden cases only: {test.failure_kind or UNCLASSIFIED}"
    return test.mistake or test.failure_kind or UNCLASSIFIED


@dataclass
class TestOutcome:
    """One test of one submission, as the statistics see it."""

    __test__ = False

    name: str
    activation: str
    status: str
    kind: str  # failure_kind(), "" when passed


@dataclass
class Outcome:
    """What the batch keeps of one submission's report."""

    submission: str
    score: float
    max_score: float
    activations: dict[str, dict[str, float]]
    tests: list[TestOutcome] = field(default_factory=list)
    problem: str = ""
    reused: bool = False  # the report of an unchanged submission was kept
    duration_s: float = 0.0
    sandbox: str = ""  # the isolation level student code ran at

    @classmethod
    def from_report(cls, report: Report, reused: bool = False) -> Outcome:
        """The outcome of a report."""
        public = {(t.activation, t.phase): t for t in report.tests if t.visibility == "public"}
        tests = [
            TestOutcome(
                t.name,
                t.activation,
                t.status,
                "" if t.status == PASSED else failure_kind(t, public.get((t.activation, t.phase))),
            )
            for t in report.tests
        ]
        return cls(
            submission=report.submission,
            score=report.score,
            max_score=report.max_score,
            activations=report.activations(),
            tests=tests,
            problem=report.problem,
            reused=reused,
            duration_s=report.duration_s,
            sandbox=isolation_of(report).get("level") or report.sandbox,
        )


# ------------------------------------------------------------------ statistics


@dataclass
class Rate:
    """A share of graded submissions: ``passed`` of ``total``."""

    label: str
    passed: int
    total: int
    mean_share: float | None = None  # mean share of points (activations only)

    @property
    def share(self) -> float:
        """passed / total, 0 when nothing was graded."""
        return self.passed / self.total if self.total else 0.0


@dataclass
class Failure:
    """A frequent failure: a test and the kind of mistake."""

    test: str
    kind: str
    count: int
    share: float


@dataclass
class ClassSummary:
    """Statistics of a batch."""

    count: int
    max_score: float
    mean: float
    median: float
    minimum: float
    maximum: float
    histogram: list[tuple[str, int]]
    activations: list[Rate]
    tests: list[Rate]
    failures: list[Failure]
    unusable: list[tuple[str, str]]
    reused: int
    # Submissions per sandbox level that graded them (the weakest is worth a look).
    levels: dict[str, int] = field(default_factory=dict)

    @property
    def graded(self) -> int:
        """Submissions that could be graded (the base of the pass rates)."""
        return self.count - len(self.unusable)


def _bin_labels(bins: int) -> list[str]:
    step = 100 // bins
    return [f"{i * step}-{(i + 1) * step}%" for i in range(bins)]


def _histogram(shares: list[float], bins: int = HISTOGRAM_BINS) -> list[tuple[str, int]]:
    counts = [0] * bins
    for share in shares:
        # Full marks fall in the last bin; everything else in [k/bins, (k+1)/bins).
        counts[min(int(share * bins + 1e-9), bins - 1)] += 1
    return list(zip(_bin_labels(bins), counts, strict=True))


def summarize(outcomes: list[Outcome]) -> ClassSummary:
    """Aggregate the outcomes of a batch.

    Scores count every submission (an unusable one scores 0, as in the
    gradebook); pass rates and failures count only the submissions that could
    be graded, so a missing file does not read as a hard activation.
    """
    scores = [o.score for o in outcomes]
    levels = dict(Counter(o.sandbox or "none" for o in outcomes))
    max_score = max((o.max_score for o in outcomes), default=0.0)
    graded = [o for o in outcomes if not o.problem]
    shares = [o.score / o.max_score if o.max_score else 0.0 for o in outcomes]

    activations = []
    # The course's order, as the reports give it (each lists its activations in order).
    names = list(dict.fromkeys(name for o in outcomes for name in o.activations))
    for name in names:
        rows = [o.activations[name] for o in graded if name in o.activations]
        if not rows:
            continue
        # What each class earned on its own (all-or-nothing credit zeroes every class).
        earned = [r.get("earned", r["score"]) for r in rows]
        full = sum(e >= r["max_score"] - 1e-9 for e, r in zip(earned, rows, strict=True))
        mean_share = statistics.fmean(
            e / r["max_score"] if r["max_score"] else 0.0 for e, r in zip(earned, rows, strict=True)
        )
        activations.append(Rate(name, full, len(rows), mean_share))

    test_names: list[str] = []
    passed: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    kinds: Counter[tuple[str, str]] = Counter()
    for o in graded:
        for t in o.tests:
            if t.name not in seen:
                test_names.append(t.name)
            seen[t.name] += 1
            if t.status == PASSED:
                passed[t.name] += 1
            else:
                kinds[(t.name, t.kind)] += 1
    tests = [Rate(name, passed[name], seen[name]) for name in test_names]
    failures = [
        Failure(name, kind, n, n / len(graded))
        for (name, kind), n in sorted(
            kinds.items(), key=lambda kv: (-kv[1], test_names.index(kv[0][0]))
        )[:TOP_FAILURES]
    ]
    return ClassSummary(
        count=len(outcomes),
        max_score=max_score,
        mean=statistics.fmean(scores) if scores else 0.0,
        median=statistics.median(scores) if scores else 0.0,
        minimum=min(scores, default=0.0),
        maximum=max(scores, default=0.0),
        histogram=_histogram(shares),
        activations=activations,
        tests=tests,
        failures=failures,
        unusable=[(o.submission, o.problem) for o in outcomes if o.problem],
        reused=sum(o.reused for o in outcomes),
        levels=levels,
    )


# ------------------------------------------------------------------ text


def _bar(n: int, largest: int, width: int = BAR_WIDTH) -> str:
    return "#" * (round(width * n / largest) if largest else 0)


def _pct(share: float) -> str:
    return f"{100 * share:5.1f}%"


def render_text(s: ClassSummary) -> str:
    """The summary as plain text (summary.txt, and what grade-all prints)."""
    lines = [f"Class summary: {s.count} submissions"]
    if s.unusable:
        lines[0] += f" ({len(s.unusable)} unusable, scored 0)"
    if s.reused:
        lines.append(f"{s.reused} unchanged since their last grading: reports reused.")
    if s.levels:
        levels = ", ".join(f"{level} {n}" for level, n in sorted(s.levels.items()))
        lines.append(f"Sandbox level that graded them: {levels}.")
    if not s.count:
        return printable("\n".join(lines) + "\n")
    lines.append(
        f"Score (of {s.max_score:g}): mean {s.mean:.2f}, median {s.median:.2f}, "
        f"min {s.minimum:g}, max {s.maximum:g}"
    )
    lines += ["", "Score histogram (share of the maximum):"]
    largest = max(n for _, n in s.histogram)
    for label, n in s.histogram:
        lines.append(f"  {label:>8} {n:5d} {_bar(n, largest)}")
    if s.graded:
        width = max(len(r.label) for r in s.activations + s.tests)
        lines += [
            "",
            f"Activations ({s.graded} graded submissions): fully passed, mean share of points",
        ]
        for r in s.activations:
            lines.append(f"  {r.label:<{width}} {_pct(r.share)}  {_pct(r.mean_share or 0.0)}")
        lines += ["", "Tests: passed"]
        for r in s.tests:
            lines.append(f"  {r.label:<{width}} {_pct(r.share)}  ({r.passed}/{r.total})")
        if s.failures:
            lines += ["", "Most common failures:"]
            for i, f in enumerate(s.failures, start=1):
                lines.append(f"  {i:2d}. {f.test}: {f.kind}: {f.count} ({_pct(f.share).strip()})")
    if s.unusable:
        lines += ["", "Unusable submissions (scored 0):"]
        lines.extend(f"  {name}: {problem}" for name, problem in s.unusable)
    # Submission names and problems come from the students' files: no raw controls.
    return printable("\n".join(lines) + "\n")


# ------------------------------------------------------------------ HTML

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 0.15em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar { background: #4a7ebb; height: 0.9em; display: inline-block; vertical-align: middle; }
.low { background: #c0504d; }
tr:nth-child(even) { background: #f4f4f4; }
"""


def report_page(name: str) -> str:
    """The file name of a submission's HTML report, next to its JSON (``<name>.html``)."""
    return f"{name}.html"


def by_score(outcomes: list[Outcome]) -> list[Outcome]:
    """The submissions, best score first (then by name)."""
    return sorted(outcomes, key=lambda o: (-o.score, o.submission))


def _submissions_html(outcomes: list[Outcome]) -> list[str]:
    """The class list: one row per submission, best first, linking to its own report."""
    e = html.escape
    out = [
        "<h2>Submissions</h2><p>Best score first; each name opens that submission's report.</p>",
        '<table id="submissions"><tr><th>#</th><th>submission</th><th>score</th><th></th>'
        "<th>sandbox</th><th>note</th></tr>",
    ]
    for rank, o in enumerate(by_score(outcomes), start=1):
        share = o.score / o.max_score if o.max_score else 0.0
        href = e(quote(report_page(o.submission)))
        note = f"not graded: {o.problem}" if o.problem else ("unchanged" if o.reused else "")
        out.append(
            f'<tr><td class="num">{rank}</td><td><a href="{href}">{e(o.submission)}</a></td>'
            f'<td class="num">{o.score:g} / {o.max_score:g}</td><td>{html_bar(share)}</td>'
            f"<td>{e(o.sandbox or 'none')}</td><td>{e(note)}</td></tr>"
        )
    out.append("</table>")
    return out


def render_html(
    s: ClassSummary, title: str = "Class summary", outcomes: list[Outcome] | None = None
) -> str:
    """The summary as one self-contained HTML page (no scripts, no external files).

    With ``outcomes``, it ends with the class list, linking each submission to
    its report page (:func:`report_page`).
    """
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{s.count} submissions"
        + (f", {len(s.unusable)} unusable (scored 0)" if s.unusable else "")
        + (f"; {s.reused} unchanged since their last grading" if s.reused else "")
        + "."
        + (' <a href="#submissions">Each submission\'s report &darr;</a>' if outcomes else "")
        + "</p>",
    ]
    if s.count:
        out.append(
            f"<p>Score (of {s.max_score:g}): mean <b>{s.mean:.2f}</b>, median <b>{s.median:.2f}</b>, "
            f"min {s.minimum:g}, max {s.maximum:g}.</p>"
        )
        largest = max(n for _, n in s.histogram) or 1
        out.append(
            "<h2>Score histogram</h2><table><tr><th>share of maximum</th><th>submissions</th><th></th></tr>"
        )
        for label, n in s.histogram:
            out.append(
                f'<tr><td>{e(label)}</td><td class="num">{n}</td>'
                f'<td><span class="bar" style="width:{20 * n / largest:.2f}em"></span></td></tr>'
            )
        out.append("</table>")
    if s.graded:
        out.append(
            f"<h2>Activations</h2><p>Over the {s.graded} graded submissions.</p>"
            "<table><tr><th>activation</th><th>fully passed</th><th></th><th>mean share of points</th></tr>"
        )
        for r in s.activations:
            out.append(
                f'<tr><td>{e(r.label)}</td><td class="num">{_pct(r.share)}</td>'
                f'<td>{html_bar(r.share, 20.0)}</td><td class="num">{_pct(r.mean_share or 0.0)}</td></tr>'
            )
        out.append("</table><h2>Tests</h2><table><tr><th>test</th><th>passed</th><th></th></tr>")
        for r in s.tests:
            out.append(
                f'<tr><td>{e(r.label)}</td><td class="num">{_pct(r.share)} ({r.passed}/{r.total})</td>'
                f"<td>{html_bar(r.share, 20.0)}</td></tr>"
            )
        out.append("</table>")
        if s.failures:
            out.append(
                "<h2>Most common failures</h2><table>"
                "<tr><th>test</th><th>kind</th><th>submissions</th></tr>"
            )
            for f in s.failures:
                out.append(
                    f'<tr><td>{e(f.test)}</td><td>{e(f.kind)}</td><td class="num">{f.count} '
                    f"({_pct(f.share).strip()})</td></tr>"
                )
            out.append("</table>")
    if s.unusable:
        out.append("<h2>Unusable submissions (scored 0)</h2><table>")
        out.extend(
            f"<tr><td>{e(name)}</td><td>{e(problem)}</td></tr>" for name, problem in s.unusable
        )
        out.append("</table>")
    if outcomes:
        out += _submissions_html(outcomes)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ charts


def render_charts(s: ClassSummary) -> dict[str, bytes]:
    """PNG charts (score histogram, activation pass rates) by file name.

    Raises ImportError when matplotlib is not installed (an optional extra).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    charts: dict[str, bytes] = {}

    def png(fig: Figure) -> bytes:
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()

    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    labels = [label for label, _ in s.histogram]
    ax.bar(range(len(labels)), [n for _, n in s.histogram], color="#4a7ebb")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_xlabel("score (share of the maximum)")
    ax.set_ylabel("submissions")
    ax.set_title(f"Scores of {s.count} submissions (mean {s.mean:.1f}, median {s.median:.1f})")
    charts[CHART_FILES[0]] = png(fig)

    fig = Figure(figsize=(7, 0.35 * max(len(s.activations), 1) + 1.2))
    ax = fig.add_subplot()
    names = [r.label for r in s.activations][::-1]
    ax.barh(names, [100 * r.share for r in s.activations][::-1], color="#4a7ebb")
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of the {s.graded} graded submissions passing every test")
    ax.set_title("Activations fully passed")
    charts[CHART_FILES[1]] = png(fig)
    return charts
