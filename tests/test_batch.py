"""Batch grading: gradebook, per-submission reports, isolation, re-runs, summary, CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import TEST_LIMITS
from helpers import REFERENCE_SOURCE, append, replace_method, write_layout

from autograder import batch, files
from autograder.build import stubs
from autograder.course import course_file as course
from autograder.engine import GradeOptions
from autograder.isolation.runner import Limits
from autograder.report import summary
from autograder.report.record import Report, TestEntry

ROOT = files.PROJECT_ROOT
STUBS = stubs.stub_text()
OPTIONS = GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True)
WRONG_RELU = replace_method(
    REFERENCE_SOURCE, "ReLU", "forward", "self.A = np.zeros_like(Z)\nreturn self.A"
)
EXITS_AT_IMPORT = append(REFERENCE_SOURCE, "import os\nos._exit(3)")
HANGS_IN_SIGMOID = replace_method(REFERENCE_SOURCE, "Sigmoid", "forward", "while True:\n    pass")
FULL = course.load("full")  # the course in effect here: this repository has no course.toml
TABLE_ORDER = list(FULL.names)
TOTAL = FULL.total


def overwrites(outdir: Path) -> str:
    """A submission that tries to replace another's report and the gradebook."""
    return append(
        WRONG_RELU,
        f"""
        import json as _json, pathlib as _pathlib
        for _name in ("good.json", "gradebook.csv"):
            try:
                _pathlib.Path({str(outdir)!r}, _name).write_text(
                    _json.dumps({{"submission": "good", "score": 0, "max_score": 100, "tests": []}})
                )
            except OSError:
                pass
        """,
    )


def comparable(doc: dict) -> dict:
    """A report without what legitimately differs between runs."""
    return {k: v for k, v in doc.items() if k not in ("duration_s", batch.HASH_KEY)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A class of submissions in every input form, good and bad, graded once."""
    root = tmp_path_factory.mktemp("batch")
    subs, outdir = root / "subs", root / "out"
    subs.mkdir()
    write_layout(subs, REFERENCE_SOURCE, "package", name="good")
    write_layout(subs, WRONG_RELU, "file", name="wrong-relu")
    write_layout(subs, STUBS, "tar", name="stubs")
    write_layout(subs, WRONG_RELU, "notebook", name="notebook")
    write_layout(subs, REFERENCE_SOURCE, "zip-folder", name="zipped")
    write_layout(subs, EXITS_AT_IMPORT, "file", name="exits")
    write_layout(subs, HANGS_IN_SIGMOID, "file", name="hangs")
    write_layout(subs, overwrites(outdir), "file", name="vandal")
    (subs / "broken.tar").write_bytes(b"not a tar archive" * 10)
    (subs / "empty").mkdir()
    (subs / ".DS_Store").write_bytes(b"\0")
    result = batch.grade_all(subs, outdir, OPTIONS, jobs=2, progress=False)
    return subs, outdir, result


def read_gradebook(outdir: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((outdir / "gradebook.csv").read_text())))


@pytest.mark.slow
def test_every_entry_gets_a_row_and_a_report(graded):
    _, outdir, _ = graded
    usable = ["good", "wrong-relu", "stubs", "notebook", "zipped", "exits", "hangs", "vandal"]
    names = sorted([*usable, "broken", "empty"])
    header = (outdir / "gradebook.csv").read_text().splitlines()[0]
    assert header == ",".join(["submission", "score", "max_score", *TABLE_ORDER])
    rows = read_gradebook(outdir)
    assert [r["submission"] for r in rows] == names
    assert sorted(p.stem for p in outdir.glob("*.json")) == names
    for row in rows:
        doc = json.loads((outdir / f"{row['submission']}.json").read_text())
        assert float(row["score"]) == doc["score"]
        assert float(row["max_score"]) == doc["max_score"] == TOTAL
        for act in TABLE_ORDER:
            assert float(row[act]) == doc["activations"][act]["score"]
    # No temporary or partial files are left behind.
    assert not [p.name for p in outdir.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_unusable_entries_score_0_with_the_reason_in_their_json(graded):
    _, outdir, _ = graded
    broken = json.loads((outdir / "broken.json").read_text())
    assert broken["score"] == 0 and broken["max_score"] == TOTAL
    assert "cannot unpack broken.tar" in broken["problem"]
    assert batch.HASH_KEY not in broken  # always looked at again
    empty = json.loads((outdir / "empty.json").read_text())
    assert "no activation file found" in empty["problem"]
    assert all(t["status"] == "error" and t["score"] == 0 for t in empty["tests"])


@pytest.mark.slow
def test_batch_reports_equal_single_grade_reports(graded, grader):
    subs, outdir, _ = graded
    for path in sorted(subs.iterdir()):
        name = path.name.split(".")[0]
        if name in ("broken", "empty", ""):
            continue
        doc = json.loads((outdir / f"{name}.json").read_text())
        assert doc[batch.HASH_KEY].startswith("sha256:")
        single = grader.grade(path).to_dict()  # through pytest, as `autograder grade`
        assert comparable(doc) == comparable(single), name


@pytest.mark.slow
def test_crashes_hangs_and_vandals_change_no_other_score(graded):
    _, outdir, result = graded
    scores = {o.submission: o.score for o in result.outcomes}
    assert scores["good"] == scores["zipped"] == TOTAL
    assert scores["exits"] == 0.0
    hangs = json.loads((outdir / "hangs.json").read_text())
    assert hangs["activations"]["Sigmoid"]["score"] == 0.0
    assert hangs["score"] == TOTAL - FULL.row("Sigmoid").max_score
    assert scores["vandal"] == scores["wrong-relu"] < TOTAL
    good = json.loads((outdir / "good.json").read_text())
    if good["sandbox"] == "process":
        pytest.skip("the plain process level runs student code as this user: it can write here")
    assert good["score"] == TOTAL and good["submission"] == "good"


@pytest.mark.slow
def test_rerun_reuses_unchanged_reports_and_regrades_changed_ones(tmp_path):
    subs, outdir = tmp_path / "subs", tmp_path / "out"
    write_layout(subs, REFERENCE_SOURCE, "file", name="alice")
    write_layout(subs, WRONG_RELU, "file", name="bob")
    (subs / "broken.zip").write_bytes(b"junk")
    first = batch.grade_all(subs, outdir, OPTIONS, jobs=2, progress=False)
    assert not any(o.reused for o in first.outcomes)
    stamp = (outdir / "alice.json").stat().st_mtime_ns
    time.sleep(0.01)
    write_layout(subs / "late", REFERENCE_SOURCE, "file", name="bob")
    (subs / "late" / "bob.py").replace(subs / "bob.py")  # bob hands in a fix
    (subs / "late").rmdir()
    second = batch.grade_all(subs, outdir, OPTIONS, jobs=2, progress=False)
    by_name = {o.submission: o for o in second.outcomes}
    assert by_name["alice"].reused and by_name["alice"].score == TOTAL
    assert (outdir / "alice.json").stat().st_mtime_ns == stamp
    assert not by_name["bob"].reused and by_name["bob"].score == TOTAL
    assert not by_name["broken"].reused
    assert "2 unchanged" not in summary.render_text(second.summary)
    assert "1 unchanged since their last grading" in summary.render_text(second.summary)
    # A different grader configuration (here: public cases only) regrades everything.
    third = batch.grade_all(
        subs,
        outdir,
        GradeOptions(public_only=True, limits=Limits(**TEST_LIMITS), allow_unisolated=True),
        progress=False,
    )
    assert not any(o.reused for o in third.outcomes)
    assert {o.max_score for o in third.outcomes} == {third.outcomes[0].max_score} != {TOTAL}
    # --force regrades even when nothing changed.
    fourth = batch.grade_all(subs, outdir, OPTIONS, force=True, progress=False)
    assert not any(o.reused for o in fourth.outcomes)


def test_the_course_is_part_of_the_resume_key():
    # Same cases, only the credit mode differs: the identity must still differ, or an
    # edited preset (TOML, not one of the hashed *.py files) would reuse stale grades.
    from types import SimpleNamespace

    cmu = course.load("cmu-f23")
    aon = course.parse(
        course.preset_text("cmu-f23").replace('"proportional"', '"all-or-nothing"'),
        default_name="cmu-f23",
    )
    renamed = course.parse(course.preset_text("cmu-f23").replace("Fall 2024", "2024"))

    def identity(c):
        return batch.grader_identity(SimpleNamespace(cases=[], options=OPTIONS, course=c))

    assert identity(cmu) == identity(renamed)  # a new title changes no grade
    assert identity(cmu) != identity(aon)
    assert identity(cmu) != identity(course.load("cmu-s25"))


@pytest.mark.slow
def test_grade_all_follows_the_course(tmp_path):
    subs, outdir = tmp_path / "subs", tmp_path / "out"
    write_layout(subs, REFERENCE_SOURCE, "file", name="alice")
    write_layout(subs, WRONG_RELU, "file", name="bob")
    f23 = course.load("cmu-f23")
    options = GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True, course=f23)
    first = batch.grade_all(subs, outdir, options, jobs=1, progress=False)
    scores = {o.submission: o.score for o in first.outcomes}
    assert scores["alice"] == f23.total
    # A wrong ReLU costs ReLU's points, and only those.
    assert f23.total - f23.row("ReLU").max_score <= scores["bob"] < f23.total
    rows = list(csv.reader(io.StringIO((outdir / batch.GRADEBOOK).read_text())))
    assert tuple(rows[0]) == f23.gradebook_columns()
    assert "Softplus" not in (outdir / batch.SUMMARY_TEXT).read_text()
    doc = json.loads((outdir / "alice.json").read_text())
    assert doc["course"]["name"] == "cmu-f23" and list(doc["activations"]) == list(f23.names)
    # Another course: nothing is reused.
    options.course = course.load("cmu-s25")
    second = batch.grade_all(subs, outdir, options, jobs=1, progress=False)
    assert not any(o.reused for o in second.outcomes)


def test_content_hash_follows_the_files_and_the_grader(tmp_path):
    from autograder.submission import handin as submission

    a = submission.load(write_layout(tmp_path / "a", REFERENCE_SOURCE, "file"))
    b = submission.load(write_layout(tmp_path / "b", REFERENCE_SOURCE, "tar"))
    c = submission.load(write_layout(tmp_path / "c", WRONG_RELU, "file"))
    assert batch.content_hash("id", a) == batch.content_hash("id", a)
    assert batch.content_hash("id", a) != batch.content_hash("id", c)
    assert batch.content_hash("id", a) != batch.content_hash("other", a)
    assert batch.content_hash("id", a) != batch.content_hash("id", b)  # more files, other layout


def test_discover_names_entries_and_skips_what_is_not_a_submission(tmp_path):
    (tmp_path / "alice.py").write_text("")
    (tmp_path / "alice.tar").write_text("")
    (tmp_path / "bob.tar.gz").write_text("")
    (tmp_path / "carol").mkdir()
    (tmp_path / ".DS_Store").write_text("")
    (tmp_path / "grades").mkdir()
    entries = batch.discover(tmp_path, tmp_path / "grades")
    assert [(e.name, e.path.name) for e in entries] == [
        ("alice.py", "alice.py"),
        ("alice.tar", "alice.tar"),
        ("bob", "bob.tar.gz"),
        ("carol", "carol"),
    ]


def test_gradebook_cells_cannot_become_spreadsheet_formulas():
    outcome = summary.Outcome("=HYPERLINK(1)", 1.5, TOTAL, {"ReLU": {"score": 1.5, "max_score": 7}})
    rows = list(csv.reader(io.StringIO(batch.gradebook_csv([outcome], FULL))))
    assert rows[1][0] == "'=HYPERLINK(1)"
    assert rows[1][1:3] == ["1.5", "100"]
    assert rows[1][3 + TABLE_ORDER.index("ReLU")] == "1.5"


def _crash_on(name: str, monkeypatch):
    """Make the worker process grading ``name`` die (workers are forked: they see the patch)."""
    real = batch.grade_entry

    def grade_entry(grader, identity, entry, outdir, force=False):
        if entry.name == name:
            os._exit(9)
        return real(grader, identity, entry, outdir, force)

    monkeypatch.setattr(batch, "grade_entry", grade_entry)


@pytest.mark.slow
def test_a_dying_worker_is_replaced_and_costs_only_its_submission(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    for name in ("a", "b", "crasher", "d"):
        write_layout(subs, REFERENCE_SOURCE, "file", name=name)
    _crash_on("crasher", monkeypatch)
    result = batch.grade_all(subs, tmp_path / "out", OPTIONS, jobs=2, progress=False)
    scores = {o.submission: o.score for o in result.outcomes}
    assert scores == {"a": TOTAL, "b": TOTAL, "crasher": 0.0, "d": TOTAL}
    doc = json.loads((tmp_path / "out" / "crasher.json").read_text())
    assert "grading worker died" in doc["problem"]


@pytest.mark.slow
def test_a_stuck_worker_is_killed_by_the_watchdog(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    for name in ("a", "stuck"):
        write_layout(subs, REFERENCE_SOURCE, "file", name=name)
    real = batch.grade_entry

    def grade_entry(grader, identity, entry, outdir, force=False):
        if entry.name == "stuck":
            time.sleep(3600)
        return real(grader, identity, entry, outdir, force)

    monkeypatch.setattr(batch, "grade_entry", grade_entry)
    monkeypatch.setattr(batch, "WATCHDOG_MARGIN", 0.5)
    options = GradeOptions(
        limits=Limits(call_timeout=0.5, import_timeout=0.5, budget=1.0), allow_unisolated=True
    )
    started = time.monotonic()
    result = batch.grade_all(subs, tmp_path / "out", options, jobs=2, progress=False)
    assert time.monotonic() - started < 30
    scores = {o.submission: (o.score, o.problem) for o in result.outcomes}
    assert scores["a"] == (TOTAL, "")
    assert scores["stuck"][0] == 0.0 and "did not finish within" in scores["stuck"][1]


# ------------------------------------------------------------------ summary


def _report(name: str, statuses: dict[str, str], problem: str = "") -> Report:
    tests = []
    for test_name, status in statuses.items():
        act, phase, visibility = test_name.split()
        tests.append(
            TestEntry(
                name=f"{act} {phase} ({visibility})",
                activation=act,
                phase=phase,
                visibility=visibility,
                score=2.0 if status == "passed" else 0.0,
                max_score=2.0,
                status=status,
                output="not implemented yet (raises NotImplementedError)"
                if status == "error"
                else "1/3 public cases passed.",
                failure_kind={"error": "not-implemented", "failed": "wrong-value"}.get(status, ""),
            )
        )
    return Report(submission=name, tests=tests, problem=problem)


def test_summary_statistics():
    full = {"ReLU forward public": "passed", "ReLU backward public": "passed"}
    half = {"ReLU forward public": "passed", "ReLU backward public": "failed"}
    none = {"ReLU forward public": "error", "ReLU backward public": "error"}
    outcomes = [
        summary.Outcome.from_report(_report("a", full)),
        summary.Outcome.from_report(_report("b", half)),
        summary.Outcome.from_report(_report("c", half)),
        summary.Outcome.from_report(_report("d", none)),
        summary.Outcome.from_report(_report("e", none, problem="no activation file found")),
    ]
    s = summary.summarize(outcomes)
    assert s.count == 5 and s.graded == 4 and s.unusable == [("e", "no activation file found")]
    assert s.mean == pytest.approx((4 + 2 + 2 + 0 + 0) / 5) and s.median == 2.0
    assert dict(s.histogram) == {"0-10%": 2, "50-60%": 2, "90-100%": 1} | {
        label: 0 for label, _ in s.histogram if label not in ("0-10%", "50-60%", "90-100%")
    }
    (relu,) = s.activations
    assert (relu.label, relu.passed, relu.total) == ("ReLU", 1, 4)
    assert relu.mean_share == pytest.approx((1 + 0.5 + 0.5 + 0) / 4)
    rates = {r.label: (r.passed, r.total) for r in s.tests}
    assert rates == {"ReLU forward (public)": (3, 4), "ReLU backward (public)": (1, 4)}
    top = s.failures[0]
    assert (top.test, top.kind, top.count) == ("ReLU backward (public)", "wrong-value", 2)
    assert ("ReLU forward (public)", "not-implemented") in {(f.test, f.kind) for f in s.failures}


def test_summary_text_and_html_name_every_part():
    outcomes = [
        summary.Outcome.from_report(_report("<b>x</b>", {"ReLU forward public": "failed"})),
        summary.Outcome.from_report(_report("<b>y</b>", {}, problem="cannot unpack <y>.tar")),
    ]
    s = summary.summarize(outcomes)
    text = summary.render_text(s)
    for needle in (
        "2 submissions (1 unusable",
        "mean",
        "median",
        "histogram",
        "ReLU forward (public)",
        "Most common failures",
        "<b>y</b>: cannot unpack <y>.tar",
    ):
        assert needle in text
    page = summary.render_html(s)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "src=" not in page and "href=" not in page  # self-contained
    assert "&lt;b&gt;y&lt;/b&gt;" in page and "<b>y</b>" not in page
    assert "cannot unpack &lt;y&gt;.tar" in page


def test_charts_are_png_and_missing_matplotlib_costs_one_line(tmp_path, monkeypatch):
    outcomes = [summary.Outcome.from_report(_report("a", {"ReLU forward public": "passed"}))]
    pytest.importorskip("matplotlib")
    _, written, notes = batch.write_outputs(tmp_path, outcomes, "t", FULL)
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == 2 and not notes
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    out = tmp_path / "nompl"
    out.mkdir()
    _, written, notes = batch.write_outputs(out, outcomes, "t", FULL)
    assert len(notes) == 1 and "matplotlib is not installed" in notes[0]
    assert sorted(p.name for p in out.iterdir()) == ["gradebook.csv", "summary.html", "summary.txt"]


# ------------------------------------------------------------------ progress and CLI


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    outcome = summary.Outcome("alice", 7.0, 100.0, {})
    lines = io.StringIO()
    progress = batch.Progress(2, lines)
    progress(outcome)
    progress.close()
    assert lines.getvalue() == "[1/2] alice: 7 / 100\n"
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    progress = batch.Progress(2, terminal)
    progress(outcome)
    progress.close()
    assert "1/2" in terminal.getvalue() and "alice" not in terminal.getvalue()
    monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed: plain lines
    terminal = _Terminal()
    progress = batch.Progress(1, terminal)
    progress(outcome)
    assert terminal.getvalue() == "[1/1] alice: 7 / 100\n"


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_grade_all_writes_everything_and_prints_the_summary(tmp_path):
    subs = tmp_path / "subs"
    write_layout(subs, REFERENCE_SOURCE, "file", name="alice")
    write_layout(subs, STUBS, "tar", name="bob")
    out = tmp_path / "grades"
    result = run_cli("grade-all", str(subs), "-o", str(out), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "] alice: 100 / 100" in result.stdout and "] bob: 4 / 100" in result.stdout
    assert "Class summary: 2 submissions" in result.stdout
    assert f"wrote {out / 'gradebook.csv'}" in result.stdout
    assert (out / "summary.txt").read_text() in result.stdout
    single = json.loads(run_cli("grade", str(subs / "bob.tar"), "--format", "json").stdout)
    assert comparable(json.loads((out / "bob.json").read_text())) == comparable(single)


@pytest.mark.parametrize(
    "make_args, needle",
    [
        (lambda t: ["grade-all", str(t / "nope"), "-o", str(t / "o")], "is not a directory"),
        (lambda t: ["grade-all", str(t / "emptydir"), "-o", str(t / "o")], "holds no submissions"),
        (lambda t: ["grade-all", str(t / "subs"), "-o", str(t / "file")], "not a directory"),
        (lambda t: ["grade-all", str(t / "subs"), "-o", str(t / "subs")], "must not be"),
        (lambda t: ["grade-all", str(t / "subs")], "required"),
        (lambda t: ["grade-all", str(t / "subs"), "-o", "x", "--jobs", "0"], "must be positive"),
    ],
)
def test_cli_grade_all_bad_input_is_one_line_and_exit_2(tmp_path, make_args, needle):
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "a.py").write_text("")
    result = run_cli(*make_args(tmp_path))
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_make_grade_with_submissions_runs_grade_all(tmp_path):
    result = subprocess.run(
        ["make", "-n", "grade", f"SUBMISSIONS={tmp_path}", "GRADES=out"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0
    assert f'-m autograder grade-all "{tmp_path}" -o "out"' in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the uid level needs root"
)
def test_a_killed_worker_takes_its_student_process_along(tmp_path, monkeypatch):
    # At the uid level a student process has dropped privileges, which clears its
    # parent-death signal: killing the worker alone would leave it spinning.
    pids = Path(tempfile.mkdtemp(prefix="autograder-pids-"))
    try:
        pids.chmod(0o777)
        hang = replace_method(
            REFERENCE_SOURCE,
            "ReLU",
            "forward",
            f"import os, pathlib\npathlib.Path({str(pids)!r}, str(os.getpid())).touch()\n"
            "while True:\n    pass",
        )
        write_layout(tmp_path / "subs", hang, "file", name="hang")
        # Landlock off: the marker files are written outside the run's own directory.
        limits = Limits(
            call_timeout=60.0, import_timeout=5.0, budget=60.0, layers_off=("landlock",)
        )
        monkeypatch.setattr(
            batch, "WATCHDOG_MARGIN", 2.0 - limits.wall_budget() - limits.import_timeout
        )
        options = GradeOptions(sandbox="uid", limits=limits)
        result = batch.grade_all(
            tmp_path / "subs", tmp_path / "out", options, jobs=1, progress=False
        )
        assert "did not finish within" in result.outcomes[0].problem
        started = [int(p.name) for p in pids.iterdir()]
        assert started
        deadline = time.monotonic() + 5
        while [p for p in started if _running(p)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in started if _running(p)]
    finally:
        shutil.rmtree(pids, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"
