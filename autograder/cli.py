"""The ``autograder`` command line.

Exit status: 0 when a report was produced (whatever the score), 1 when a
requested check failed (``handout --check``, ``--fail-under``), 2 for unusable
input or usage, 3 when the grader cannot run here (e.g. ``--sandbox strict``
without the sandbox). Errors are one line on stderr, never a traceback
(set ``AUTOGRADER_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from autograder import __version__, files


class UsageError(Exception):
    """Bad arguments; exit status 2."""


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _threshold(text: str) -> tuple[float, bool]:
    """``--fail-under``: points (``60``) or a share of the maximum (``100%``)."""
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a score: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value, percent


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sandbox",
        choices=("auto", "strict", "bwrap", "uid", "process"),
        default="auto",
        help="isolation of student code: the strongest level that passes its self-check "
        "(auto); bwrap or uid, else refuse (strict); or exactly one level",
    )
    p.add_argument(
        "--allow-unisolated",
        action="store_true",
        help="accept the process level even where student code could read the hidden cases "
        "or expected values (it runs as your user); refused without this option",
    )
    p.add_argument(
        "--remove-case-data",
        action="store_true",
        help="delete the bundle's case data (autograder/course/data/all_cases.json) once loaded, before "
        "any student code runs (platform bundles, in single-use containers)",
    )
    p.add_argument(
        "--protect",
        action="append",
        default=[],
        metavar="PATH",
        help="a file student code must not read, or a directory (or file to be) it must not "
        "write; the sandbox's self-check refuses a level that reaches it (repeatable)",
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=None,
        metavar="S",
        help="CPU seconds allowed for one phase of one case (default 2; 5 times as much "
        "wall-clock time for code that sleeps)",
    )
    p.add_argument(
        "--budget",
        type=_positive(float),
        default=None,
        metavar="S",
        help="CPU seconds allowed for one whole submission (default 60; twice as much "
        "wall-clock time)",
    )
    p.add_argument(
        "--memory",
        type=_positive(int),
        default=None,
        metavar="MB",
        help="memory limit of the student's process in MiB (default 1024)",
    )


def _add_course(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--course",
        metavar="PATH|PRESET",
        help="the course: a course file, or a preset (cmu-f23, cmu-s25, cmu-f25, full); "
        "default: course.toml at the top of the repository, else full",
    )


def _course(args: argparse.Namespace):
    """The course of this command (an unusable course file raises CourseError: exit 2)."""
    from autograder.course import course_file

    return course_file.resolve(getattr(args, "course", None), files.PROJECT_ROOT)


def _options(args: argparse.Namespace):
    """The grading options of ``grade`` and ``grade-all`` (the course resolved: CourseError
    for an unusable one)."""
    from autograder.engine import GradeOptions
    from autograder.isolation.runner import Limits

    limits = Limits()
    if args.timeout:
        limits.call_timeout = args.timeout
    if args.budget:
        limits.budget = args.budget
    if args.memory:
        limits.memory_bytes = args.memory << 20
    protect_read, protect_write = _protect(args)
    return GradeOptions(
        public_only=getattr(args, "public_only", False),
        sandbox=args.sandbox,
        limits=limits,
        plots_dir=getattr(args, "plots", None),
        allow_unisolated=args.allow_unisolated,
        remove_case_data=args.remove_case_data,
        protect_read=protect_read,
        protect_write=protect_write,
        course=_course(args),
    )


def _protect(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """``--protect`` paths (files: not readable; directories, new files: not writable),
    plus what this command writes (the report file, grade-all's directories)."""
    read, write = [], []
    for path in args.protect:
        (read if os.path.isfile(path) else write).append(path)
    if getattr(args, "output", None):
        write.append(args.output)
    if getattr(args, "directory", None):
        read.append(args.directory)  # other students' submissions
    return read, write


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="autograder",
        description="Grade mytorch activation functions against the reference.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("grade", help="grade one submission")
    g.add_argument("path", help="directory, .py file, .tar/.tar.gz/.tgz/.zip handin, or .ipynb")
    g.add_argument(
        "--format", choices=("table", "json", "gradescope", "autolab", "junit"), default="table"
    )
    g.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout")
    g.add_argument("--public-only", action="store_true", help="grade the public cases only")
    g.add_argument(
        "--fail-under",
        type=_threshold,
        metavar="SCORE",
        help="exit with status 1 (after writing the report) when the score is below SCORE "
        "points, or below SCORE%% of the maximum (e.g. 100%%)",
    )
    g.add_argument(
        "--plots",
        metavar="DIR",
        help="write a PNG per failing activation: your forward and derivative against the "
        "reference (needs matplotlib)",
    )
    _add_course(g)
    _add_limits(g)

    b = sub.add_parser(
        "grade-all",
        help="grade every submission in a directory: gradebook, reports and class summary",
    )
    b.add_argument(
        "directory",
        metavar="DIR",
        help="one entry per submission: folder, .py, .tar/.tar.gz/.tgz/.zip or .ipynb",
    )
    b.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTDIR",
        help="where to write gradebook.csv, <name>.json per submission and the summary",
    )
    b.add_argument(
        "--jobs",
        type=_positive(int),
        default=None,
        metavar="N",
        help="worker processes grading in parallel (default: the number of cores)",
    )
    b.add_argument("--public-only", action="store_true", help="grade the public cases only")
    b.add_argument(
        "--force",
        action="store_true",
        help="regrade every submission, even those unchanged since their report was written",
    )
    _add_course(b)
    _add_limits(b)

    e = sub.add_parser(
        "export",
        help="write the classes defined in a notebook to mytorch/nn/activation.py (for handin)",
    )
    e.add_argument("notebook", help="the notebook, e.g. activations.ipynb")
    e.add_argument(
        "-o",
        "--output",
        default="mytorch/nn/activation.py",
        metavar="FILE",
        help="where to write the module (default: mytorch/nn/activation.py)",
    )

    h = sub.add_parser("handout", help="regenerate the student stubs and public case data")
    h.add_argument(
        "--check",
        action="store_true",
        help="only report generated files that are out of date (exit 1 if any)",
    )
    _add_course(h)

    c = sub.add_parser("course", help="write a preset as a course file, or show a course")
    csub = c.add_subparsers(dest="course_command", metavar="ACTION", required=True)
    ci = csub.add_parser(
        "init", help="write a preset as an editable course file (never overwrites)"
    )
    ci.add_argument("preset", metavar="PRESET", help="cmu-f23, cmu-s25, cmu-f25 or full")
    ci.add_argument(
        "path", nargs="?", default="course.toml", help="where to write it (default: course.toml)"
    )
    cs = csub.add_parser("show", help="the course in effect (or --course): classes and points")
    _add_course(cs)
    return parser


def _emit(text: str, output: str | None) -> None:
    if output:
        from autograder.files import write_atomic

        write_atomic(Path(output), text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _launch_early(args: argparse.Namespace):
    """Start the worker of ``grade`` before any heavy import: it boots while they run.

    Standard library only (numpy and pytest load afterwards, in parallel with
    the zygote's own imports); None where it cannot start now (the engine then
    starts one itself, or says why not).
    """
    from autograder.isolation import protected, sandbox

    resources = sandbox.Resources()
    if args.memory:
        resources.memory_bytes = args.memory << 20
    with contextlib.suppress(sandbox.SandboxError, OSError, subprocess.SubprocessError):
        cover = protected.protected(*_protect(args)).cover
        return sandbox.launch(sandbox.plan(args.sandbox), resources, cover)
    return None


def cmd_grade(args: argparse.Namespace) -> int:
    """``autograder grade``."""
    from autograder import engine
    from autograder.report import render

    launched = getattr(args, "launched", None)
    if launched is None:
        launched = _launch_early(args)
    try:
        # After the launch: reading the course imports numpy (through the reference's path).
        options = _options(args)
    except BaseException:
        if launched is not None:
            from autograder.isolation.runner import ZygoteProcess

            ZygoteProcess(launched.plan, launched).close()
        raise

    report = engine.grade(args.path, options, launched=launched)
    _note_isolation(report.isolation, options)
    _emit(render.RENDERERS[args.format](report), args.output)
    if args.fail_under is not None:
        value, percent = args.fail_under
        bound = value * report.max_score / 100 if percent else value
        # A small tolerance: the report rounds points to 4 decimals.
        if report.score < bound - 1e-6:
            wanted = f"{value:g}% of {report.max_score:g}" if percent else f"{value:g}"
            print(
                f"autograder: score {report.score:g} / {report.max_score:g} is below "
                f"--fail-under {wanted}",
                file=sys.stderr,
            )
            return 1
    return 0


def _note_isolation(isolation: dict, options) -> None:
    """Say on stderr which stronger levels were skipped and why (where it matters)."""
    if not options.protected().secrets_exist():
        return  # a student's handout: nothing to protect, the report's notes suffice
    for skipped in isolation.get("skipped", []):
        print(
            f"autograder: note: sandbox level {skipped['level']} not used: {skipped['reason']}",
            file=sys.stderr,
        )


def cmd_grade_all(args: argparse.Namespace) -> int:
    """``autograder grade-all``: a directory of submissions -> gradebook, reports, summary."""
    from autograder import batch
    from autograder.engine import GraderError
    from autograder.report import summary

    try:
        result = batch.grade_all(
            args.directory, args.output, _options(args), jobs=args.jobs, force=args.force
        )
    except batch.BatchError as exc:
        raise UsageError(str(exc)) from None
    except batch.BatchGraderError as exc:
        raise GraderError(str(exc)) from None
    sys.stdout.write("\n" + summary.render_text(result.summary) + "\n")
    for path in result.written:
        print(f"wrote {path}")
    for note in result.notes:
        print(note)
    return 0


def cmd_handout(args: argparse.Namespace) -> int:
    """``autograder handout``."""
    from autograder.build import handout

    if files.reference_path() is None:
        raise UsageError(
            "the reference (solutions/) is not here: run this in the instructor's repository"
        )
    stale = handout.generate(_course(args), check=args.check)
    root = handout.ROOT
    for path in stale:
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        print(f"{'out of date' if args.check else 'wrote'}: {rel}")
    if args.check and stale:
        print(
            "run `autograder handout` (or `make handout-files`) to regenerate them", file=sys.stderr
        )
        return 1
    if not stale:
        print("generated files are up to date")
    return 0


BACKUP_DIR = "backups"


def _keep_backup(module: Path, folder: Path) -> Path:
    """Copy ``module`` to the next free ``folder/<name>.N`` (1, 2, ...) and return that path.

    Every generation is kept (a second export must not lose hand-written work),
    and outside ``mytorch/``, so no backup ever goes into the handin.
    """
    folder.mkdir(parents=True, exist_ok=True)
    data = module.read_bytes()
    taken = [
        int(p.name.rsplit(".", 1)[1])
        for p in folder.glob(f"{module.name}.*")
        if p.name.rsplit(".", 1)[1].isdigit()
    ]
    n = max(taken, default=0) + 1
    while True:
        backup = folder / f"{module.name}.{n}"
        try:
            with backup.open("xb") as fh:  # exclusive: never overwrite a backup
                fh.write(data)
        except FileExistsError:
            n += 1
            continue
        return backup


def cmd_export(args: argparse.Namespace) -> int:
    """``autograder export``: notebook definitions -> the module a handin carries."""
    from autograder.files import write_atomic
    from autograder.submission import handin as submission

    path = Path(args.notebook)
    if not path.is_file() or not path.name.endswith(".ipynb"):
        raise UsageError(f"{path} is not a notebook (.ipynb)")
    text = submission.notebook_module(path)
    out = Path(args.output)
    if out.exists() and out.read_text(encoding="utf-8", errors="replace") != text:
        # Next to the notebook, never in the module's folder (which the handin packs).
        backup = _keep_backup(out, path.parent / BACKUP_DIR)
        print(f"kept the previous {out} as {backup}")
    write_atomic(out, text)
    print(f"wrote {out} from {path}")
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    """``autograder course init PRESET [PATH]`` and ``autograder course show``."""
    from autograder.course import course_file

    if args.course_command == "init":
        path = course_file.init(args.preset, args.path)
        print(f"wrote {path} (the preset {args.preset}): edit it, then run `make handout-files`")
        return 0
    sys.stdout.write(_course(args).describe())
    return 0


COMMANDS = {
    "grade": cmd_grade,
    "grade-all": cmd_grade_all,
    "handout": cmd_handout,
    "export": cmd_export,
    "course": cmd_course,
}


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (cleaning up the worker and its files), then exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    # Once is enough: let the cleanup that follows run undisturbed.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread (embedded use)
            previous[sig] = signal.signal(sig, _terminate)
    try:
        return _main(argv)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.command == "grade":
        args.launched = _launch_early(args)
    from autograder.course.course_file import CourseError
    from autograder.engine import GraderError
    from autograder.isolation.runner import WorkerError
    from autograder.isolation.sandbox import SandboxError
    from autograder.submission.handin import SubmissionError

    try:
        return COMMANDS[args.command](args)
    except (SubmissionError, UsageError, CourseError) as exc:
        print(f"autograder: error: {exc}", file=sys.stderr)
        return 2
    except (GraderError, WorkerError, SandboxError) as exc:
        print(f"autograder: cannot grade here: {exc}", file=sys.stderr)
        return 3
    except ModuleNotFoundError as exc:
        print(
            f"autograder: missing dependency {exc.name!r}: install the requirements "
            "(pip install -r requirements.txt, or pip install -e .)",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        print("autograder: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"autograder: stopped by signal {exc.signum}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("AUTOGRADER_DEBUG"):
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"autograder: internal error: {type(exc).__name__}: {first} "
            "(set AUTOGRADER_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 3
