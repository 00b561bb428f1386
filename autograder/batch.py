"""Grade a whole directory of submissions in parallel: reports, gradebook, class summary.

Each entry directly in the directory (a folder, ``.py``, archive or
notebook) is one submission, named by the entry without its extension.
``jobs`` worker processes each own a :class:`~autograder.engine.Grader`
(one zygote, the prepared cases, its own sandbox uid and cgroup) and grade one
submission at a time; every submission still runs in fresh children of that
zygote, so a crash, hang or hostile act costs only its own cases. The parent
process hands out work, watches the workers (a worker that dies or overruns
is replaced and its submission retried once, then scored 0 with the reason)
and writes the gradebook and the summary.

A report is reused when the submission's content hash (its files as loaded
plus the grader's identity: cases, expected values, limits, grader code) is
the one stored in the report, so a re-run only grades what changed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from autograder import files
from autograder.course.course_file import Course
from autograder.engine import GradeOptions, Grader
from autograder.files import write_atomic
from autograder.isolation import sandbox
from autograder.isolation.sandbox import RANK
from autograder.isolation.worker.proctree import descendants
from autograder.judge.checks import TestSpec
from autograder.report import report_html
from autograder.report import summary as summary_mod
from autograder.report.record import Report, zero_entry
from autograder.report.summary import ClassSummary, Outcome
from autograder.submission import handin as submission

GRADEBOOK = "gradebook.csv"
SUMMARY_TEXT = "summary.txt"
SUMMARY_HTML = "summary.html"
HASH_KEY = "content_hash"
# Entries that are never submissions: hidden files and macOS archive debris.
IGNORED_PREFIXES = (".", "__MACOSX")
# A submission gets this many tries when the worker grading it dies.
ATTEMPTS = 2
# Seconds an interrupted worker gets to close its grader before it is killed.
INTERRUPT_GRACE = 5.0
# Seconds past the engine's own limits after which a worker is deemed stuck.
WATCHDOG_MARGIN = 30.0
# Spreadsheet programs run cells starting with these as formulas (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BatchError(Exception):
    """The batch cannot start (bad directory, no submissions); one line for the user."""


class BatchGraderError(RuntimeError):
    """The grader cannot run here (a worker could not start); not the submissions' fault."""


@dataclass(frozen=True)
class Entry:
    """One submission in the directory."""

    name: str
    path: Path


@dataclass
class BatchResult:
    """What a batch produced."""

    outcomes: list[Outcome]
    summary: ClassSummary
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ entries


def discover(directory: Path, outdir: Path | None = None) -> list[Entry]:
    """The submissions directly in ``directory``, sorted, with unique names.

    Hidden entries and the output directory (when it lies inside) are skipped.
    Two entries with the same name without extension (``alice.py`` and
    ``alice.tar``) keep their full file names instead, so neither report
    overwrites the other.
    """
    skip = outdir.resolve() if outdir is not None else None
    paths = sorted(
        p
        for p in directory.iterdir()
        if not p.name.startswith(IGNORED_PREFIXES) and (skip is None or p.resolve() != skip)
    )
    stems = [submission.submission_name(p) for p in paths]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem] = counts.get(stem, 0) + 1
    taken: set[str] = set()
    entries = []
    for path, stem in zip(paths, stems, strict=True):
        name = stem if counts[stem] == 1 else path.name
        base, n = name, 2
        while name in taken:
            name, n = f"{base}~{n}", n + 1
        taken.add(name)
        entries.append(Entry(name, path))
    return entries


# ------------------------------------------------------------------ hashing


def grader_identity(grader: Grader) -> str:
    """A digest of everything a score depends on besides the submission.

    The cases with their expected values (so a changed reference or table
    regrades everything), the grading options and limits, and the grader's
    own code.
    """
    import numpy as np

    from autograder.course import cases as cases_mod

    digest = hashlib.sha256()
    digest.update(cases_mod.dumps_case_data(grader.cases).encode())
    options = grader.options
    # Not the sandbox mode: the level that ran is stored in each report and compared
    # on reuse (a report is reused only when graded at the same or a stronger level).
    config = {
        # Points, rules, credit mode, cases and names: a preset is TOML, not one of the
        # *.py files below, so without this an edited course would reuse stale grades.
        "course": grader.course.digest(),
        "public_only": options.public_only,
        "limits": dataclasses.asdict(options.limits),
        "numpy": np.__version__,
    }
    digest.update(json.dumps(config, sort_keys=True).encode())
    # Every module and configuration file of the package, in every folder.
    for path in files.package_files("*.py", "*.ini"):
        rel = path.relative_to(files.PACKAGE_DIR).as_posix()
        digest.update(rel.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def reusable(previous: dict | None, digest: str, level: str) -> bool:
    """Whether a stored report can stand: same content hash, graded at least as strongly."""
    if previous is None or previous.get(HASH_KEY) != digest:
        return False
    stored = previous.get("sandbox")
    return stored in RANK and RANK[stored] >= RANK.get(level, len(RANK))


def content_hash(identity: str, sub: submission.Submission) -> str:
    """The content hash of a loaded submission under a grader identity."""
    digest = hashlib.sha256(identity.encode())
    files = sub.files
    digest.update(f"\0{files.entry}\0{files.module}\0".encode())
    for name in sorted(files.files):
        data = files.files[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return "sha256:" + digest.hexdigest()


# ------------------------------------------------------------------ reports


def write_report(outdir: Path, name: str, report: Report, digest: str | None = None) -> None:
    """Write ``OUTDIR/<name>.json`` and, next to it, the same report as ``<name>.html``."""
    write_atomic(outdir / f"{name}.json", report_json(report, digest))
    write_atomic(outdir / summary_mod.report_page(name), report_html.render(report))


def report_json(report: Report, digest: str | None) -> str:
    """The report as ``grade --format json`` writes it, plus the content hash."""
    doc = report.to_dict()
    if digest:
        doc[HASH_KEY] = digest
    return json.dumps(doc, indent=2) + "\n"


def unusable_report(
    name: str,
    problem: str,
    specs: list[TestSpec],
    sandbox: str = "",
    course: Course | None = None,
) -> Report:
    """A report scoring 0 on every test, with the reason the submission could not be graded."""
    tests = [zero_entry(spec, f"not graded: {problem}") for spec in specs]
    hidden = any(spec.visibility == "hidden" for spec in specs)
    return Report(
        submission=name,
        tests=tests,
        sandbox=sandbox,
        hidden_graded=hidden,
        problem=problem,
        course=course.report_info() if course is not None else {},
    )


def _previous(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def grade_entry(
    grader: Grader, identity: str, entry: Entry, outdir: Path, force: bool = False
) -> Outcome:
    """Grade one entry (or reuse its unchanged report); write ``OUTDIR/<name>.json`` and ``.html``."""
    started = time.perf_counter()
    target = outdir / f"{entry.name}.json"
    try:
        sub = submission.load(entry.path)
    except submission.SubmissionError as exc:
        report = unusable_report(
            entry.name, str(exc), grader.specs, grader.plan.level, grader.course
        )
        report.duration_s = time.perf_counter() - started
        write_report(outdir, entry.name, report)
        return Outcome.from_report(report)
    sub.name = entry.name
    digest = content_hash(identity, sub)
    previous = None if force else _previous(target)
    if previous is not None and reusable(previous, digest, grader.plan.level):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            kept = Report.from_dict(previous)
            page = outdir / summary_mod.report_page(entry.name)
            if not page.is_file():  # a report from before HTML pages existed
                write_atomic(page, report_html.render(kept))
            return Outcome.from_report(kept, reused=True)
    report = grader.grade_submission(sub, use_pytest=False)
    report.duration_s = time.perf_counter() - started
    write_report(outdir, entry.name, report, digest)
    return Outcome.from_report(report)


# ------------------------------------------------------------------ workers


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Unwind (closing the grader: zygote, run directory, cgroup, uid) instead of dying.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _worker_main(conn: Connection, options: GradeOptions, outdir: Path, force: bool) -> None:
    """A worker process: one Grader, one submission at a time."""
    # Ctrl-C reaches the whole process group; the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    grader = None
    try:
        grader = Grader(options)
        grader.zygote()
        identity = grader_identity(grader)
    except Exception as exc:
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        if grader is not None:
            grader.close()
        return
    conn.send(("ready", grader.specs, grader.plan.level))
    try:
        while True:
            task = conn.recv()
            if task is None:
                break
            index, entry = task
            try:
                outcome = grade_entry(grader, identity, entry, outdir, force)
            except Exception as exc:
                # A grader failure must not read as the student's fault, nor stop the batch.
                problem = f"internal grader error while grading: {type(exc).__name__}: {exc}"
                report = unusable_report(
                    entry.name, problem, grader.specs, grader.plan.level, grader.course
                )
                with contextlib.suppress(OSError):
                    write_report(outdir, entry.name, report)
                outcome = Outcome.from_report(report)
                grader.close()
                grader = Grader(options)
            conn.send(("done", index, outcome))
    except (EOFError, OSError):
        pass  # the parent went away
    finally:
        grader.close()


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, ctx, options: GradeOptions, outdir: Path, force: bool) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child, options, outdir, force), daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False
        self.task: int | None = None
        self.started = 0.0

    def assign(self, index: int, entry: Entry) -> None:
        self.task, self.started = index, time.monotonic()
        self.conn.send((index, entry))

    def stop(self, kill: bool = False, grace: float = 0.0) -> None:
        """Stop the worker: ask it to finish (default), or kill it after ``grace`` seconds
        of SIGTERM, in which it closes its grader (zygote, run directory, cgroup)."""
        if kill:
            if grace > 0 and self.process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(self.process.pid, signal.SIGTERM)
                self.process.join(timeout=grace)
            kill_tree(self.process.pid)
        else:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(None)
        self.process.join(timeout=None if kill else 10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def remove_leftovers() -> None:
    """Remove run directories and cgroups of graders that were killed."""
    sandbox.remove_stale_run_dirs()
    with contextlib.suppress(ImportError, OSError):
        from autograder.isolation import cgroups

        cgroups.remove_stale()


def kill_tree(pid: int) -> None:
    """Kill a worker and everything below it: its zygote and a student process in flight.

    A student process that dropped to another uid has lost its parent-death
    signal, so it would outlive a killed worker; the tree is collected first,
    while it is whole.
    """
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _context():
    # fork: workers start in milliseconds and inherit the imported grader; the parent
    # has started no thread yet. Elsewhere (macOS, Windows) spawn is the safe default.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_pool(
    entries: list[Entry],
    outdir: Path,
    options: GradeOptions,
    jobs: int,
    force: bool = False,
    on_done: Callable[[Outcome], None] | None = None,
) -> tuple[list[Outcome], str]:
    """Grade ``entries`` on ``jobs`` workers; return outcomes in entry order and the sandbox level."""
    ctx = _context()
    # A worker overrunning this long on one submission is stuck (the engine's own
    # budget has long passed): it is killed and the submission retried once.
    limits = options.limits
    task_timeout = limits.wall_budget() + limits.import_timeout + WATCHDOG_MARGIN
    pending = deque(range(len(entries)))
    attempts = [0] * len(entries)
    outcomes: list[Outcome | None] = [None] * len(entries)
    specs: list[TestSpec] = []
    level = ""
    deaths_in_a_row = 0
    workers = [_Worker(ctx, options, outdir, force) for _ in range(jobs)]

    remaining = len(entries)

    def record(index: int, outcome: Outcome) -> None:
        nonlocal remaining
        outcomes[index] = outcome
        remaining -= 1
        if on_done is not None:
            on_done(outcome)

    def give_up(index: int, problem: str) -> None:
        entry = entries[index]
        report = unusable_report(entry.name, problem, specs, level, options.course)
        with contextlib.suppress(OSError):
            write_report(outdir, entry.name, report)
        record(index, Outcome.from_report(report))

    def replace(worker: _Worker, reason: str) -> None:
        nonlocal deaths_in_a_row
        worker.stop(kill=True)
        if worker.task is not None:
            index = worker.task
            attempts[index] += 1
            if attempts[index] < ATTEMPTS:
                pending.appendleft(index)
            else:
                give_up(index, reason)
        else:
            deaths_in_a_row += 1
            if deaths_in_a_row > 3:
                raise BatchGraderError(f"grading workers keep dying ({reason})")
        workers[workers.index(worker)] = _Worker(ctx, options, outdir, force)

    try:
        while remaining:
            for w in workers:
                if w.ready and w.task is None and pending:
                    index = pending.popleft()
                    w.assign(index, entries[index])
            sentinels = {w.process.sentinel: w for w in workers}
            conns = {w.conn: w for w in workers}
            for ready in wait([*conns, *sentinels], timeout=1.0):
                w = conns.get(ready) or sentinels.get(ready)
                if w is None or w not in workers:
                    continue
                if ready is w.conn:
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        replace(w, "the grading worker died while grading this submission")
                        continue
                    if message[0] == "ready":
                        w.ready, specs, level = True, message[1], message[2]
                    elif message[0] == "fatal":
                        raise BatchGraderError(message[1])
                    elif message[0] == "done" and message[1] == w.task:
                        deaths_in_a_row = 0
                        record(w.task, message[2])
                        w.task = None
                elif not w.process.is_alive() and not w.conn.poll():
                    code = w.process.exitcode
                    replace(
                        w, f"the grading worker died while grading this submission (exit {code})"
                    )
            now = time.monotonic()
            for w in list(workers):
                if w.task is not None and now - w.started > task_timeout:
                    replace(w, f"grading did not finish within {task_timeout:g} s")
    finally:
        # Interrupted (Ctrl-C, SIGTERM, a closed pipe): workers close their graders
        # first; whatever a killed one could not clean up is removed here.
        if remaining:
            for w in workers:
                with contextlib.suppress(OSError):
                    os.kill(w.process.pid, signal.SIGTERM)
        for w in workers:
            w.stop(kill=remaining > 0, grace=INTERRUPT_GRACE)
        if remaining:
            remove_leftovers()
    return [o for o in outcomes if o is not None], level


# ------------------------------------------------------------------ outputs


def _csv_cell(name: str) -> str:
    return "'" + name if name.startswith(FORMULA_PREFIXES) else name


def _number(x: float) -> str:
    return f"{round(x, 4):.10g}"


def gradebook_csv(outcomes: list[Outcome], course: Course) -> str:
    """The gradebook: ``submission,score,max_score,`` then one column per graded activation."""
    names = list(course.names)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(course.gradebook_columns())
    for o in outcomes:
        per = [_number(o.activations.get(n, {}).get("score", 0.0)) for n in names]
        writer.writerow([_csv_cell(o.submission), _number(o.score), _number(o.max_score), *per])
    return buffer.getvalue()


def write_outputs(
    outdir: Path, outcomes: list[Outcome], title: str, course: Course
) -> tuple[ClassSummary, list[Path], list[str]]:
    """Write the gradebook, the text and HTML summaries and the charts; return what was written."""
    class_summary = summary_mod.summarize(outcomes)
    written = [outdir / GRADEBOOK, outdir / SUMMARY_TEXT, outdir / SUMMARY_HTML]
    write_atomic(written[0], gradebook_csv(outcomes, course))
    write_atomic(written[1], summary_mod.render_text(class_summary))
    write_atomic(written[2], summary_mod.render_html(class_summary, title, outcomes))
    notes = []
    try:
        charts = summary_mod.render_charts(class_summary)
    except ImportError:
        notes.append(
            "PNG charts skipped: matplotlib is not installed (it is in the 'instructor' extra)"
        )
    else:
        for name, data in charts.items():
            write_atomic(outdir / name, data)
            written.append(outdir / name)
    return class_summary, written, notes


# ------------------------------------------------------------------ progress


class Progress:
    """A progress bar on a terminal (tqdm), else one plain line per submission."""

    def __init__(self, total: int, stream=None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stdout
        self.bar = None
        if self.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            # No monitor thread: workers are forked from this process.
            tqdm.monitor_interval = 0
            self.bar = tqdm(total=total, unit="sub", file=self.stream, dynamic_ncols=True)

    def __call__(self, outcome: Outcome) -> None:
        """One submission is done."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        what = f"{outcome.score:g} / {outcome.max_score:g}"
        if outcome.problem:
            what += f" (not graded: {outcome.problem})"
        elif outcome.reused:
            what += " (unchanged)"
        width = len(str(self.total))
        self.stream.write(f"[{self.done:>{width}}/{self.total}] {outcome.submission}: {what}\n")
        self.stream.flush()

    def close(self) -> None:
        """Finish the bar (a no-op for plain lines)."""
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ entry point


def grade_all(
    directory: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    options: GradeOptions | None = None,
    jobs: int | None = None,
    force: bool = False,
    progress: bool | None = None,
    stream=None,
) -> BatchResult:
    """Grade every submission in ``directory`` and write the results to ``outdir``.

    ``progress``: None shows a bar on a terminal and one line per submission
    otherwise, False shows nothing; it goes to ``stream`` (stdout).

    Raises :class:`BatchError` for an unusable directory and
    :class:`BatchGraderError` when the workers cannot grade here.
    """
    directory, outdir = Path(directory), Path(outdir)
    if not directory.is_dir():
        raise BatchError(
            f"{directory} is not a directory; give the folder holding one entry per submission"
        )
    if outdir.exists() and not outdir.is_dir():
        raise BatchError(f"{outdir} exists and is not a directory")
    if outdir.resolve() == directory.resolve():
        raise BatchError("the output directory must not be the submissions directory itself")
    entries = discover(directory, outdir)
    if not entries:
        raise BatchError(
            f"{directory} holds no submissions (one folder, .py, archive or notebook each)"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    options = options or GradeOptions()
    course = options.the_course()  # resolved once: every worker grades the same course
    jobs = max(1, min(jobs or default_jobs(), len(entries)))
    reporter = None if progress is False else Progress(len(entries), stream)
    try:
        outcomes, _level = run_pool(entries, outdir, options, jobs, force, reporter)
    finally:
        if reporter is not None:
            reporter.close()
    class_summary, written, notes = write_outputs(
        outdir, outcomes, f"Class summary: {directory.resolve().name}", course
    )
    return BatchResult(outcomes, class_summary, written, notes)
