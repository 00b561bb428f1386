"""Grade one submission: cases -> worker outputs -> pytest checks -> report.

The process running this module holds the expected values and writes the
report; it never imports or executes the student's code (the worker does,
in another process). pytest runs in this process, from the grader's own
directory and configuration, and never collects anything from a submission.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autograder import files
from autograder.course import cases as cases_mod
from autograder.course import course_file as course_mod
from autograder.course import reference
from autograder.course.cases import Case
from autograder.files import write_atomic
from autograder.isolation import protected, sandbox
from autograder.isolation.outputs import RunOutput
from autograder.isolation.runner import (
    Limits,
    Phase,
    SelfCheck,
    SubmissionRunner,
    WorkerError,
    ZygoteProcess,
)
from autograder.isolation.worker.linux import PR_SET_DUMPABLE, prctl
from autograder.judge import checks, feedback
from autograder.judge.checks import GradingContext
from autograder.report.record import Report
from autograder.submission import handin as submission

JUDGE_DIR = files.PACKAGE_DIR / "judge"
CHECKS_FILE = JUDGE_DIR / "checks.py"
PYTEST_INI = JUDGE_DIR / "checks.ini"
# The package files the expected values (and the mistakes' outputs) depend on.
CACHE_KEY_FILES = (
    "course/assignment.py",
    "course/hidden_cases.py",
    "course/cases.py",
    "course/reference.py",
    "judge/compare.py",
    "judge/feedback.py",
    "judge/mistakes.py",
)


def _probe_phase(public: list[Case], run: RunOutput) -> Phase | None:
    """The feedback-only phase probing the public cases whose backward failed.

    It runs in the same child right after the public cases (before any hidden
    input exists there), is not graded (a crash or hang in it costs nothing),
    and submissions whose backward passes skip it.
    """
    requests = feedback.probe_requests(public, run)
    if not requests:
        return None
    subset = [c for c in public if c.id in requests]
    return Phase(feedback.PROBE_PHASE, subset, show=True, probes=requests, graded=False)


class GraderError(RuntimeError):
    """The grader itself cannot work (not the submission's fault)."""


# What to change when a level's self-check finds a protected path within reach.
_FIXES = {
    "bwrap": "keep instructor files out of the Python installation the sandbox mounts",
    "uid": "make it unreadable for other users (chmod -R go-rwx) or install bubblewrap",
    "process": "install bubblewrap or run the grader as root (a stronger level), or pass "
    "--allow-unisolated to accept that student code can read it",
}


@dataclass
class GradeOptions:
    """Options of one grading run."""

    public_only: bool = False
    sandbox: str = "auto"
    limits: Limits = field(default_factory=Limits)
    # Where to write feedback plots of failing activations (None: no plots).
    plots_dir: str | None = None
    # Accept the process level even where student code could read protected files.
    allow_unisolated: bool = False
    # Delete the bundle's case data from disk once loaded (single-use platform jobs).
    remove_case_data: bool = False
    # More paths student code must not read, and paths it must not write or create.
    protect_read: list[str] = field(default_factory=list)
    protect_write: list[str] = field(default_factory=list)
    # The course graded (None: the one in effect, course.toml at the top or ``full``).
    course: course_mod.Course | None = None

    def the_course(self) -> course_mod.Course:
        """The course graded: the one given, else the one in effect where the grader lives."""
        if self.course is None:
            self.course = course_mod.find_default(files.PROJECT_ROOT)
        return self.course

    def protected(self) -> protected.Protected:
        """Everything the level's self-check must find out of student code's reach."""
        return protected.protected(self.protect_read, self.protect_write)


def prepare_cases(
    course: course_mod.Course | None = None, public_only: bool = False
) -> tuple[list[Case], bool]:
    """The course's cases (default: the course in effect) with expected values, and
    whether hidden cases are among them.

    With the reference at hand (instructor side) every expected value comes
    from it (through the table-wide cache); otherwise the bundle's case data
    supplies inputs and expected values: every case's on a platform, the
    public ones in a student's handout. Either way only the course's cases
    are kept, under the table's ids.
    """
    course = course or course_mod.find_default(files.PROJECT_ROOT)
    ref_path = files.reference_path()
    # Platform bundles (Gradescope, Autolab) ship every case's expected values instead.
    all_data = cases_mod.DATA_DIR / "all_cases.json"
    if ref_path is None and all_data.is_file():
        cases = cases_mod.load_case_data(all_data)
    elif ref_path is None:
        if not cases_mod.PUBLIC_DATA.is_file():
            raise GraderError(
                "neither the reference nor the public case data "
                f"({cases_mod.PUBLIC_DATA.name}) is available"
            )
        cases = [c for c in cases_mod.load_case_data() if c.visibility == "public"]
    else:
        cases = cached_reference_cases(ref_path)
    if public_only:
        cases = [c for c in cases if c.visibility == "public"]
    cases = cases_mod.select(cases, course)
    hidden = any(c.visibility == "hidden" for c in cases)
    return cases, hidden


CACHE_DIR = protected.CACHE_DIR


def _cache_key() -> str:
    """A digest of everything the expected values depend on."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    ref_path = files.reference_path()
    if ref_path is not None:
        digest.update(b"reference\0" + ref_path.read_bytes())
    for name in CACHE_KEY_FILES:
        path = files.PACKAGE_DIR / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            # A key that skipped it would serve values computed from other files.
            raise GraderError(f"cannot read {path} for the expected-value cache key") from exc
        digest.update(name.encode() + b"\0" + data)
    digest.update(np.__version__.encode())
    return digest.hexdigest()[:20]


def cached_reference_cases(ref_path: Path) -> list[Case]:
    """Every case of the table with reference outputs, cached on disk (build/cache) by content hash.

    The cache holds every case of the table, whatever the course: a course only
    selects cases by id (and the ids, inputs and expected values depend on
    nothing but the files in the key), so switching courses never recomputes
    and no course can make the cache stale.

    Computing them imports the reference (and scipy) and runs every case; the
    cache makes the next ``grade`` skip that. A cache that cannot be written
    (read-only checkout) is simply not used.
    """
    path = CACHE_DIR / f"cases-{_cache_key()}.json"
    _make_private(CACHE_DIR)
    if path.is_file():
        try:
            return cases_mod.load_case_data(path)
        except (OSError, ValueError, KeyError):
            pass
    module = reference.load_module(ref_path)
    cases = reference.attach_expected(module, cases_mod.build_cases(("public", "hidden")))
    # The catalogue of known mistakes, run on the public cases, for the feedback.
    from autograder.judge import mistakes

    mistakes.attach(cases, ref_path.read_text(encoding="utf-8"))
    try:
        # Expected values: readable by the grader's user only, whatever the umask.
        CACHE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(CACHE_DIR, 0o700)
        for old in CACHE_DIR.glob("cases-*.json"):
            old.unlink(missing_ok=True)
        write_atomic(path, cases_mod.dumps_case_data(cases), mode=0o600)
    except OSError:
        pass
    return cases


def _make_private(directory: Path) -> None:
    """Expected values: the cache is 0700 and its files 0600, whatever made them."""
    with contextlib.suppress(OSError):
        if directory.is_dir() and not directory.is_symlink():
            os.chmod(directory, 0o700)
            for entry in directory.iterdir():
                if entry.is_file() and not entry.is_symlink():
                    os.chmod(entry, 0o600)


@contextlib.contextmanager
def _pytest_environment() -> Iterator[None]:
    # The user's environment must not inject options or plugins into our run.
    saved = {
        k: os.environ.get(k)
        for k in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    }
    os.environ.pop("PYTEST_ADDOPTS", None)
    os.environ.pop("PYTEST_PLUGINS", None)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_checks(ctx: GradingContext, specs: list[checks.TestSpec]) -> list:
    """Run the checks with pytest and pytest-json-report; return report entries."""
    import pytest

    plugin = checks.ChecksPlugin(ctx, specs)
    args = [
        str(CHECKS_FILE),
        "-c", str(PYTEST_INI),
        "--rootdir", str(JUDGE_DIR),
        "--noconftest",
        "-p", "no:cacheprovider",
        "-qq",
        "--tb=short",
        "-p", "pytest_jsonreport.plugin",
        "--json-report",
        "--json-report-file=none",
        "--json-report-omit", "collectors", "log", "keywords", "streams", "warnings",
        "-s",
    ]  # fmt: skip
    chatter = io.StringIO()
    # pytest's own terminal output is not the report: keep it off the user's screen.
    with (
        _pytest_environment(),
        contextlib.redirect_stdout(chatter),
        contextlib.redirect_stderr(chatter),
    ):
        pytest.main(args, plugins=[plugin])
    if plugin.json_report is None:
        last = (chatter.getvalue().strip().splitlines() or ["no output"])[-1]
        raise GraderError(f"pytest did not produce a report ({last[:200]})")
    return checks.entries_from_pytest(plugin.json_report, specs)


class Grader:
    """Grades submissions one after another on one zygote, with shared cases.

    Each submission still gets fresh worker children; only the zygote (numpy
    already imported) and the expected values are shared. Before the first
    submission the sandbox level checks itself: a child set up exactly like a
    grading child must import the Python runtime and reach none of the
    protected paths. A level that fails falls back to the next one (auto),
    and when none is left grading is refused with the reason.
    """

    def __init__(
        self,
        options: GradeOptions | None = None,
        launched: sandbox.Launched | None = None,
    ) -> None:
        self.options = options or GradeOptions()
        choice = sandbox.choose(self.options.sandbox)
        # Strongest first; a level that fails to start or to check falls back to the next.
        self._plans = choice.plans
        self.plan = self._plans[0]
        self.notes: list[str] = []
        self.isolation: dict = {"level": self.plan.level, "skipped": [], "self_check": "not-run"}
        for level, reason in choice.skipped:
            self._skip(level, reason)
        self.protected = self.options.protected()
        self._zygote: ZygoteProcess | None = None
        self._ready = False
        self._checked = False
        self._pending: SelfCheck | None = None
        if launched is not None and launched.plan.level == self.plan.level:
            self._zygote = ZygoteProcess(self.plan, launched)  # started early by the caller
        else:
            if launched is not None:
                ZygoteProcess(launched.plan, launched).close()
            with contextlib.suppress(WorkerError, sandbox.SandboxError, OSError):
                self._zygote = self._start()  # boots while the cases are prepared
        if self._zygote is not None:
            # The self-check runs as soon as the zygote is ready, while the cases load.
            with contextlib.suppress(WorkerError, OSError):
                self._pending = self._zygote.start_self_check(*self._check_request())
        self.course = self.options.the_course()
        self.cases, self.hidden_graded = prepare_cases(self.course, self.options.public_only)
        if self.options.remove_case_data:
            self._remove_case_data()
        if self.hidden_graded:
            # The expected values are in this process's memory now: no process of
            # the same user may read it (/proc/PID/mem, ptrace).
            prctl(PR_SET_DUMPABLE, 0)
        self.specs = checks.test_specs(self.cases, self.course)
        self.course_info = self.course.report_info()

    def _start(self) -> ZygoteProcess:
        return ZygoteProcess(self.plan, None, self.options.limits.resources(), self.protected.cover)

    def _skip(self, level: str, reason: str) -> None:
        self.isolation["skipped"].append({"level": level, "reason": reason})
        self.notes.append(f"sandbox level {level} not used: {reason}")

    def _remove_case_data(self) -> None:
        """Delete the bundle's case data now that every expected value is in memory."""
        path = cases_mod.DATA_DIR / "all_cases.json"
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise GraderError(f"cannot remove {path} after loading it: {exc.strerror}") from None

    def zygote(self) -> ZygoteProcess:
        """The running zygote of a level that passed its self-check (restarted if it died)."""
        if self._zygote is not None and not self._zygote.alive():
            self._zygote.close()
            self._zygote = None
        while True:
            if self._zygote is None:
                try:
                    self._zygote = self._start()
                except (WorkerError, sandbox.SandboxError) as exc:
                    self._fall_back(str(exc))
                    continue
            try:
                info = self._zygote.wait_ready()
                problem = "" if self._checked else self._check_level(self._zygote, info)
            except WorkerError as exc:
                problem = str(exc)
            if problem:
                if self._pending is not None:
                    self._pending.close()
                    self._pending = None
                self._zygote.close()
                self._zygote = None
                self._fall_back(problem)
                continue
            self._checked = self._ready = True
            return self._zygote

    def _check_request(self) -> tuple:
        return (
            self.options.limits,
            self.protected.read,
            self.protected.write,
            list(protected.RUNTIME_IMPORTS),
        )

    def _check_level(self, zygote: ZygoteProcess, info: dict) -> str:
        """Run the level's self-check; the reason it cannot be used, or ""."""
        level = self.plan.level
        pending, self._pending = self._pending, None
        if pending is not None and pending.zygote is zygote:
            answer = pending.answer()
        else:
            if pending is not None:
                pending.close()
            answer = zygote.self_check(*self._check_request())
        launched = zygote.launched
        off = self.options.limits.layers_off
        self.isolation.update(
            level=level,
            seccomp=bool(info.get("seccomp")) and "seccomp" not in off,
            landlock=int(info.get("landlock") or 0) if "landlock" not in off else 0,
            cgroup=bool(launched.facts.get("cgroup")),
            mount_namespace=bool(launched.facts.get("mount_namespace")),
        )
        if not info.get("seccomp"):
            self.notes.append(f"syscall filter off: {info.get('seccomp_reason') or 'unavailable'}")
        if not info.get("landlock"):
            reason = info.get("landlock_reason") or "unavailable"
            self.notes.append(f"Landlock off: {reason}; writes are limited by permissions only")
        errors = answer.get("import_errors") or {}
        if errors:
            name, error = next(iter(errors.items()))
            return (
                f"student code cannot import the Python runtime (import {name}: {error}); "
                "install Python where other users can read it"
            )
        exposed = [*answer.get("readable", []), *answer.get("writable", [])]
        if level == "process" and self.protected.secrets_exist() and not info.get("seccomp"):
            exposed = exposed or ["the grader's memory (no syscall filter to stop ptrace)"]
        if exposed:
            more = f" and {len(exposed) - 1} more" if len(exposed) > 1 else ""
            if level == "process" and self.options.allow_unisolated:
                self.isolation.update(self_check="failed", exposed=exposed)
                self.notes.append(
                    f"student code runs as the grader's user and could reach {exposed[0]}{more} "
                    "(accepted with --allow-unisolated)"
                )
                self.notes.extend(launched.notes)
                return ""
            return f"student code could reach {exposed[0]}{more}; {_FIXES[level]}"
        self.isolation["self_check"] = "passed"
        self.notes.extend(launched.notes)
        return ""

    def _fall_back(self, reason: str) -> None:
        """Use the next weaker sandbox level, or refuse if there is none."""
        if self._ready:
            raise WorkerError(reason)  # it worked before: the machine, not the level, failed
        level = self.plan.level
        if len(self._plans) < 2:
            skipped = "; ".join(f"{s['level']}: {s['reason']}" for s in self.isolation["skipped"])
            earlier = f" (also tried {skipped})" if skipped else ""
            raise sandbox.SandboxError(f"the {level} level cannot be used: {reason}{earlier}")
        self._plans.pop(0)
        self._skip(level, reason)
        self.plan = self._plans[0]
        self.isolation["level"] = self.plan.level

    def run(self, sub: submission.Submission) -> dict[str, RunOutput]:
        """Run the public cases (feedback shown), then the hidden ones (nothing shown)."""
        limits = self.options.limits
        runner = SubmissionRunner(self.zygote, limits)
        self._runner = runner
        public = [c for c in self.cases if c.visibility == "public"]
        hidden = [c for c in self.cases if c.visibility == "hidden"]
        # One child runs the public cases, then (feedback only) the self-check's
        # probes of failing backwards, then the hidden cases with its output cut off.
        phases = [
            Phase("public", public, True, followup=lambda run: _probe_phase(public, run)),
            Phase("hidden", hidden, False),
        ]
        runs = runner.run_phases(sub.files, [p for p in phases if p.cases])
        feedback.merge_probes(runs)
        return runs

    def run_shown(self, sub: submission.Submission, cases: list[Case]) -> RunOutput:
        """Run ``cases`` on ``sub`` in one child, its output shown (the feedback plots)."""
        return SubmissionRunner(self.zygote, self.options.limits).run(sub.files, cases, show=True)

    def grade(self, path: str | os.PathLike[str], use_pytest: bool = True) -> Report:
        """Grade the submission at ``path`` (see :meth:`grade_submission`)."""
        started = time.perf_counter()
        report = self.grade_submission(submission.load(path), use_pytest)
        report.duration_s = time.perf_counter() - started
        return report

    def grade_submission(self, sub: submission.Submission, use_pytest: bool = True) -> Report:
        """Grade a loaded submission.

        With ``use_pytest`` the checks run as pytest tests and the report is
        built from pytest-json-report's JSON; without, the same check
        functions are called directly (batch grading, where pytest's per-test
        cost would dominate). Both give the same report.
        """
        started = time.perf_counter()
        runs = self.run(sub)
        ctx = GradingContext(submission=sub.name, cases=self.cases, runs=runs, source=sub.source)
        if use_pytest:
            entries = run_checks(ctx, self.specs)
        else:
            entries = [checks.evaluate(spec, ctx).entry() for spec in self.specs]
        # The child's leftovers were being swept while we compared; be sure they are gone.
        self._runner.finish()
        if self.course.credit == course_mod.ALL_OR_NOTHING:
            _say_all_or_nothing(entries, self.course)
        report = Report(
            submission=sub.name,
            tests=entries,
            duration_s=time.perf_counter() - started,
            sandbox=self.plan.level,
            isolation=dict(self.isolation),
            notes=list(self.notes),
            hidden_graded=self.hidden_graded,
            student_output=runs.get("public", RunOutput()).stdout,
            import_error=checks.import_headline(ctx),
            course=self.course_info,
        )
        if self.options.plots_dir:
            from autograder.report import plots

            plots.write_for_report(
                lambda cases: self.run_shown(sub, cases), report, self.options.plots_dir
            )
        return report

    def close(self) -> None:
        """Stop the zygote."""
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _say_all_or_nothing(entries: list, course: course_mod.Course) -> None:
    """Under all-or-nothing credit, each failing test says what its failure costs."""
    for entry in entries:
        if entry.score < entry.max_score - 1e-6:
            entry.output += (
                f"\nAll or nothing: this course gives its {course.total:g} points only when "
                "every test passes, so this test makes the score 0."
            )


def grade(
    path: str | os.PathLike[str],
    options: GradeOptions | None = None,
    launched: sandbox.Launched | None = None,
) -> Report:
    """Grade the submission at ``path`` and return its report.

    Raises :class:`submission.SubmissionError` for unusable input and
    :class:`GraderError` (or ``sandbox.SandboxError``) when grading cannot run.
    The submission is checked before any grading machinery starts.
    """
    started = time.perf_counter()
    try:
        sub = submission.load(path)
    except BaseException:
        if launched is not None:
            ZygoteProcess(launched.plan, launched).close()
        raise
    with Grader(options, launched=launched) as grader:
        report = grader.grade_submission(sub)
    report.duration_s = time.perf_counter() - started
    return report
