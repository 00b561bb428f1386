#!/usr/bin/env python3
"""Grade one submission on a grading platform, fail closed, and always leave a valid result.

Shipped at the root of the Gradescope and Autolab bundles, next to the
``autograder`` package and ``platform.json`` (the sandbox policy chosen when
the bundle was built):

    python3 platform_run.py gradescope [--submission DIR] [--results FILE]
    python3 platform_run.py autolab [HANDIN]

Before the grader starts, the runner removes what the grader does not need
(Autolab's ``autograde.tar``, once unpacked), makes the bundle private except
the worker package (which the sandbox user must read), and makes itself
non-dumpable. The grader then runs in a child process with an overall time
limit, at the strongest isolation level the machine allows; it refuses
(exit 3) when no acceptable level keeps the expected values, the grader's
files and the results out of the student's reach, and the runner turns that
refusal into a zero-score result telling the instructor what to change.

Whatever happens (an unusable submission, a crash, a hang, a refusal, a
grader that cannot start), the platform still gets a well-formed result:
Gradescope a ``results.json``, Autolab a last output line
``{"scores": {...}, "scoreboard": [...]}`` checked here. Standard library
only: this must work even when the grader itself does not.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # holds the autograder package
CONFIG_FILE = ROOT / "platform.json"
CASE_DATA = ROOT / "autograder" / "course" / "data" / "all_cases.json"
# What the sandbox user must be able to read: the worker package. Nothing else of the bundle.
WORKER_PATH = "autograder/isolation/worker"
# The folders on the way to it: traversable (not listable) by others.
WORKER_PARENTS = ("", "autograder", "autograder/isolation")
TIMEOUT_ENV = "AUTOGRADER_PLATFORM_TIMEOUT"
# Overall limits, below the platforms' own defaults (Autolab: 180 s) so we answer first.
DEFAULT_TIMEOUT = {"gradescope": 600.0, "autolab": 150.0}
SUBMISSION_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip", ".ipynb", ".py")
MAX_REASON = 500
# The grader's exit status and message prefix when it refuses to grade here.
REFUSED = 3
REFUSAL_PREFIX = "autograder: cannot grade here: "
# The job's copy of the bundle on Autolab, and the copy Tango's Docker back end
# leaves in the volume it mounts at /home/mount (a file of the Tango host user).
AUTOLAB_ARCHIVE = "autograde.tar"
TANGO_COPIES = ("/home/mount/autograde.tar",)
SANDBOX_POLICIES = ("auto", "strict", "process")
PR_SET_DUMPABLE = 4

GRADESCOPE_ADVICE = (
    "Gradescope runs the autograder as root, so student code should at least run as a "
    "separate unprivileged user: check that the image was built from this bundle's setup.sh, "
    "that /autograder/venv and the system Python are readable by other users, and that "
    "nothing else was added to the bundle. Rebuilding with `make gradescope SANDBOX=process` "
    "grades anyway, with student code able to read the expected values."
)
UNUSABLE_TEXT = "Your submission could not be graded: {reason}\nScore 0."
REFUSED_TEXT = (
    "Your submission was not graded: this autograder could not run your code safely on "
    "the grading machine. This is a problem of the course's autograder set-up, not of your "
    "code; the course staff can see the details and can regrade it."
)
PROCESS_POLICY_NOTE = (
    "Note: this autograder was built to accept the weakest isolation level (process): "
    "when nothing stronger is available, student code runs as the grader's own user."
)
AUTOLAB_ADVICE = (
    "Use a grading image where bubblewrap can start (install bubblewrap and allow user "
    "namespaces in the container), or let the job run as root so student code can run as "
    "another user. The same-user defence needs every copy of the bundle's data to be "
    "removable or unreadable: make the job's files (autograde.tar and the volume Tango "
    "mounts) unreadable to the grading user, or rebuild with `make autolab SANDBOX=process` "
    "to grade anyway, with student code able to read the expected values."
)


# ------------------------------------------------------------------ set-up


def load_policy() -> str:
    """The sandbox policy chosen at build time (``make ... SANDBOX=...``); auto by default."""
    try:
        policy = json.loads(CONFIG_FILE.read_text(encoding="utf-8")).get("sandbox", "auto")
    except (OSError, ValueError, AttributeError):
        return "auto"
    return policy if policy in SANDBOX_POLICIES else "auto"


def grader_options(platform: str, policy: str, protect: list[Path]) -> list[str]:
    """The isolation options of ``autograder grade`` for this platform and policy."""
    options = ["--sandbox", "strict" if policy == "strict" else "auto"]
    if policy == "process":
        options.append("--allow-unisolated")
    if platform == "autolab":
        # Student code may run as the grader's own user there: load every expected
        # value, delete the data, then check that the child can open none of it.
        options.append("--remove-case-data")
    for path in protect:
        options += ["--protect", str(path)]
    return options


def _chmod(path: Path, mode: int) -> None:
    # A file we do not own keeps its mode; the grader's self-check judges the result.
    with contextlib.suppress(OSError):
        os.chmod(path, mode, follow_symlinks=False)


def secure_bundle(root: Path = ROOT) -> None:
    """Make the bundle private to its owner, except the worker the sandbox user must read.

    Every file becomes owner-only; the folders on the way to the worker
    package stay traversable (not listable) by others so the sandbox user can
    reach it, and it alone is world-readable.
    """
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        private = 0o700 if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0o600
        _chmod(path, private)
    for rel in WORKER_PARENTS:
        _chmod(root / rel, 0o711)
    worker = root / WORKER_PATH
    for path in [worker, *worker.rglob("*")]:
        if not path.is_symlink():
            _chmod(path, 0o755 if path.is_dir() else 0o644)


def make_undumpable() -> None:
    """No core dump, no /proc/<pid>/mem, no ptrace of this process by its own uid (Linux)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def remove_archives(job_dir: Path) -> list[Path]:
    """Delete the job's bundle archive (unpacked already); return copies still readable.

    What cannot be deleted is handed to the grader's self-check (``--protect``):
    if student code could read it, grading is refused.
    """
    left = []
    job_copy = job_dir / AUTOLAB_ARCHIVE
    with contextlib.suppress(FileNotFoundError):
        try:
            job_copy.unlink()
        except OSError:
            left.append(job_copy)
    left += [Path(p) for p in TANGO_COPIES if os.path.lexists(p)]
    return left


# ------------------------------------------------------------------ the grader


def activation_names() -> list[str]:
    """The Autolab problems of the course: from ``platform.json`` (written by the bundle
    builder, so no grader code runs), else the graded activations of an older bundle, or
    [] if the grader cannot even be imported."""
    try:
        problems = json.loads(CONFIG_FILE.read_text(encoding="utf-8")).get("autolab_problems")
    except (OSError, ValueError, AttributeError):
        problems = None
    if isinstance(problems, list) and problems and all(isinstance(p, str) for p in problems):
        return problems
    sys.path.insert(0, str(ROOT))
    try:
        from autograder.course.assignment import ACTIVATIONS
    except Exception:
        return []
    finally:
        sys.path.remove(str(ROOT))
    return [a.name for a in ACTIVATIONS]


class Outcome:
    """How a grader run ended: its stdout, or why there is no usable result."""

    def __init__(self, stdout: str = "", reason: str = "", refused: bool = False) -> None:
        self.stdout = stdout
        self.reason = reason
        # The grader refused to run student code here (exit 3, "cannot grade here").
        self.refused = refused


def run_grader(
    target: Path, fmt: str, output: Path | None, options: list[str], timeout: float
) -> Outcome:
    """Run ``autograder grade`` on ``target`` and say how it ended."""
    # `-m autograder` from ROOT: the bundled package comes first on sys.path.
    argv = [sys.executable, "-m", "autograder", "grade", str(target), "--format", fmt, *options]
    if output is not None:
        argv += ["-o", str(output)]
    try:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome(reason=f"the autograder could not start: {exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate()
        return Outcome(reason=f"grading did not finish within {timeout:g} s")
    stdout = out.decode("utf-8", errors="replace")
    lines = err.decode("utf-8", errors="replace").strip().splitlines()
    if proc.returncode == 0:
        return Outcome(stdout)
    refusal = [line for line in lines if line.startswith(REFUSAL_PREFIX)]
    if proc.returncode == REFUSED and refusal:
        return Outcome(reason=refusal[-1].removeprefix(REFUSAL_PREFIX)[:MAX_REASON], refused=True)
    last = (lines or [""])[-1].strip()
    for prefix in ("autograder: error: ", "autograder: "):
        last = last.removeprefix(prefix)
    if proc.returncode < 0:
        reason = f"the autograder stopped unexpectedly (signal {-proc.returncode})"
    elif proc.returncode == 2:
        reason = f"the submission cannot be graded: {last}"
    else:
        reason = f"the autograder could not grade this submission: {last or 'no message'}"
    return Outcome(reason=reason[:MAX_REASON])


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (Linux /proc), whatever session or user it moved to."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat_line = fh.read()
        except OSError:
            continue
        parent = int(stat_line[stat_line.rfind(b")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found


def kill_tree(pid: int) -> None:
    """Kill a process and everything it started (a hung student process included)."""
    # Collected first, while the tree is whole: an orphan is hard to find afterwards.
    tree = [pid, *descendants(pid)]
    for target in tree:
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _has_module(root: Path) -> bool:
    return (root / "mytorch" / "nn" / "activation.py").exists() or (root / "activation.py").exists()


def submission_target(directory: Path) -> Path:
    """What to grade in an upload folder: the folder, or the one handin file inside it.

    Students upload either their files (``mytorch/...`` or ``activation.py``,
    possibly inside one folder) or a single handin archive or notebook.
    """
    entries = list(directory.iterdir())
    folders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if _has_module(directory) or (len(folders) == 1 and _has_module(folders[0])):
        return directory
    files = [p for p in entries if p.is_file() and p.name.lower().endswith(SUBMISSION_SUFFIXES)]
    return files[0] if len(files) == 1 else directory


def refusal_message(reason: str, advice: str) -> str:
    """What the instructor reads when the grader refused to run student code here."""
    return (
        f"The autograder refused to grade here: {reason}. The submission scored 0 and its "
        f"code was not run. What to change: {advice}"
    )


def missing_data_reason() -> str:
    """Why the platform bundle cannot grade when its case data is gone ("" when present)."""
    if CASE_DATA.is_file():
        return ""
    return (
        f"the bundle's case data ({CASE_DATA.relative_to(ROOT)}) is missing: "
        "run each job from a freshly unpacked bundle"
    )


# ------------------------------------------------------------------ Gradescope


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` without ever leaving a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def valid_gradescope(text: str) -> dict | None:
    """The results.json document if Gradescope accepts it (score and tests present)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("score"), int | float)
        and isinstance(doc.get("tests"), list)
    ):
        return doc
    return None


def gradescope_zero(reason: str, refused: bool, started: float) -> dict:
    """A valid zero-score results.json for a submission that was not graded."""
    doc: dict = {
        "score": 0.0,
        "output": REFUSED_TEXT if refused else UNUSABLE_TEXT.format(reason=reason),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"graded": False, "refused": refused},
    }
    if refused:
        # Instructors see every test; `hidden` ones never reach students. Zero points
        # keep the student's total visible (it is 0: nothing was graded).
        doc["tests"].append(
            {
                "name": "Autograder set-up (course staff only)",
                "score": 0.0,
                "max_score": 0.0,
                "status": "failed",
                "output": refusal_message(reason, GRADESCOPE_ADVICE),
                "output_format": "text",
                "visibility": "hidden",
            }
        )
    doc["extra_data"]["runner_seconds"] = round(time.monotonic() - started, 3)
    return doc


def gradescope(submission: Path, results: Path, timeout: float) -> int:
    """Grade ``submission`` and write ``results``; always a valid results.json."""
    started = time.monotonic()
    make_undumpable()
    secure_bundle()
    policy = load_policy()
    # The results directory must stay out of student code's reach (checked by the grader).
    options = grader_options("gradescope", policy, [results.parent])
    # Without its case data the grader would fall back to the public cases only.
    outcome = Outcome(reason=missing_data_reason())
    # The report is written in a private directory first and checked before it counts.
    with tempfile.TemporaryDirectory(prefix="autograder-results-") as tmp:
        draft = Path(tmp) / "results.json"
        if outcome.reason:
            pass
        elif not submission.is_dir():
            outcome = Outcome(reason="no submission was found")
        else:
            target = submission_target(submission)
            outcome = run_grader(target, "gradescope", draft, options, timeout)
        if not outcome.reason:
            text = draft.read_text(encoding="utf-8") if draft.is_file() else ""
            doc = valid_gradescope(text)
            if doc is not None:
                if policy == "process":
                    doc["output"] = f"{doc.get('output', '')}\n{PROCESS_POLICY_NOTE}".lstrip()
                write_atomic(results, json.dumps(doc, indent=2) + "\n")
                print(f"graded: {doc['score']:g} points")
                print(f"isolation: {json.dumps((doc.get('extra_data') or {}).get('isolation'))}")
                return 0
            outcome = Outcome(reason="the autograder produced no valid result")
    doc = gradescope_zero(outcome.reason, outcome.refused, started)
    write_atomic(results, json.dumps(doc, indent=2) + "\n")
    if outcome.refused:
        print(refusal_message(outcome.reason, GRADESCOPE_ADVICE))
    print(f"not graded: {outcome.reason}")
    return 0


# ------------------------------------------------------------------ Autolab


def _score_line(line: str, names: list[str]) -> dict | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("scores"), dict):
        return None
    scores = doc["scores"]
    if names and set(scores) != set(names):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in scores.values()):
        return None
    return doc


def find_handin(given: str) -> Path | None:
    """The handin: the given name, else the one other file Autolab copied here."""
    path = Path(given)
    if path.exists():
        return path
    others = [
        p
        for p in Path.cwd().iterdir()
        if p.is_file() and p.name not in (AUTOLAB_ARCHIVE, "Makefile", "autograde-Makefile")
    ]
    return others[0] if len(others) == 1 else None


def end_output_here() -> None:
    """Cut standard output at what this process wrote, when it is a regular file.

    Autolab's driver sends the job's output to a file the grading user owns;
    student code running as that user could write past the end of it, after
    the score line. The score line must stay the last line.
    """
    sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stdout.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))


def autolab(handin: str, timeout: float) -> int:
    """Grade the handin; print the report, then the checked score line as the very last line."""
    protect = remove_archives(Path.cwd())
    make_undumpable()
    secure_bundle()
    names = activation_names()
    policy = load_policy()
    if policy == "process":
        print(PROCESS_POLICY_NOTE)
    path = find_handin(handin)
    if missing_data_reason():
        outcome = Outcome(reason=missing_data_reason())
    elif path is None:
        outcome = Outcome(reason=f"no handin file ({handin}) was found")
    else:
        options = grader_options("autolab", policy, protect)
        outcome = run_grader(path.resolve(), "autolab", None, options, timeout)
    lines = outcome.stdout.rstrip("\n").splitlines()
    doc = _score_line(lines[-1], names) if lines and not outcome.reason else None
    if doc is None:
        if outcome.refused:
            print(refusal_message(outcome.reason, AUTOLAB_ADVICE))
        else:
            reason = outcome.reason or "the autograder produced no valid score line"
            print(f"Your handin could not be graded: {reason}")
        print("Score 0.")
        doc = {"scores": dict.fromkeys(names, 0.0), "scoreboard": [0.0]}
    else:
        print("\n".join(lines[:-1]))
    sys.stdout.flush()
    print(json.dumps(doc))
    end_output_here()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line of the platform runner."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="platform", required=True)
    g = sub.add_parser("gradescope")
    g.add_argument("--submission", default="/autograder/submission")
    g.add_argument("--results", default="/autograder/results/results.json")
    a = sub.add_parser("autolab")
    a.add_argument("handin", nargs="?", default="handin.tar")
    args = parser.parse_args(argv)
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT[args.platform]))
    except ValueError:
        timeout = DEFAULT_TIMEOUT[args.platform]
    if args.platform == "gradescope":
        return gradescope(Path(args.submission), Path(args.results), timeout)
    return autolab(args.handin, timeout)


if __name__ == "__main__":
    raise SystemExit(main())
