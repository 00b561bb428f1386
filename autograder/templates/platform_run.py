#!/usr/bin/env python3
"""Grade one submission on a grading platform and always leave a valid result.

Shipped at the root of the Gradescope and Autolab bundles, next to the
``autograder`` package:

    python3 platform_run.py gradescope [--submission DIR] [--results FILE]
    python3 platform_run.py autolab [HANDIN]

The grader runs in a child process with an overall time limit. Whatever
happens to it (an unusable submission, a crash, a hang, a grader that cannot
start), the platform still gets a well-formed result: Gradescope a
``results.json`` with score 0 and the reason, Autolab a last output line
``{"scores": {...}}`` with zeros. Nothing the student's code prints reaches
Gradescope's result, and on Autolab the score line printed last is always
the one checked here. Standard library only: this must work even when the
grader itself does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # holds the autograder package
TIMEOUT_ENV = "AUTOGRADER_PLATFORM_TIMEOUT"
# Overall limits, below the platforms' own defaults (Autolab: 180 s) so we answer first.
DEFAULT_TIMEOUT = {"gradescope": 600.0, "autolab": 150.0}
SUBMISSION_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip", ".ipynb", ".py")
MAX_REASON = 500


def activation_names() -> list[str]:
    """The graded activations (Autolab problems), or [] if the grader cannot even be imported."""
    sys.path.insert(0, str(ROOT))
    try:
        from autograder.assignment import ACTIVATIONS
    except Exception:
        return []
    finally:
        sys.path.remove(str(ROOT))
    return [a.name for a in ACTIVATIONS]


def run_grader(target: Path, fmt: str, output: Path | None, timeout: float) -> tuple[str, str, str]:
    """Run ``autograder grade``; return (stdout, "", "") or ("", "", reason) on failure."""
    # `-m autograder` from ROOT: the bundled package comes first on sys.path.
    argv = [sys.executable, "-m", "autograder", "grade", str(target), "--format", fmt]
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
        return "", "", f"the autograder could not start: {exc}"
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate()
        return "", "", f"grading did not finish within {timeout:g} s"
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace").strip()
    if proc.returncode == 0:
        return stdout, stderr, ""
    last = (stderr.splitlines() or [""])[-1].strip()
    for prefix in ("autograder: error: ", "autograder: "):
        last = last.removeprefix(prefix)
    if proc.returncode < 0:
        reason = f"the autograder stopped unexpectedly (signal {-proc.returncode})"
    elif proc.returncode == 2:
        reason = f"the submission cannot be graded: {last}"
    else:
        reason = f"the autograder could not grade this submission: {last or 'no message'}"
    return "", stderr, reason[:MAX_REASON]


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
                stat = fh.read()
        except OSError:
            continue
        children.setdefault(int(stat[stat.rfind(b")") + 2 :].split()[1]), []).append(int(entry))
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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` without ever leaving a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def valid_gradescope(text: str) -> bool:
    """Whether ``text`` is a results.json Gradescope accepts (score and tests present)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("score"), int | float)
        and isinstance(doc.get("tests"), list)
    )


def gradescope(submission: Path, results: Path, timeout: float) -> int:
    """Grade ``submission`` and write ``results``; always a valid results.json."""
    started = time.monotonic()
    # The report is written in a private directory first and checked before it counts.
    with tempfile.TemporaryDirectory(prefix="autograder-results-") as tmp:
        draft = Path(tmp) / "results.json"
        reason = ""
        if not submission.is_dir():
            reason = "no submission was found"
        else:
            _, _, reason = run_grader(submission_target(submission), "gradescope", draft, timeout)
        if not reason:
            text = draft.read_text(encoding="utf-8") if draft.is_file() else ""
            if valid_gradescope(text):
                write_atomic(results, text)
                print(f"graded: {json.loads(text)['score']:g} points")
                return 0
            reason = "the autograder produced no valid result"
    doc = {
        "score": 0.0,
        "execution_time": round(time.monotonic() - started, 3),
        "output": f"Your submission could not be graded: {reason}\nScore 0.",
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": [],
    }
    write_atomic(results, json.dumps(doc, indent=2) + "\n")
    print(f"not graded: {reason}")
    return 0


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
        if p.is_file() and p.name not in ("autograde.tar", "Makefile", "autograde-Makefile")
    ]
    return others[0] if len(others) == 1 else None


def autolab(handin: str, timeout: float) -> int:
    """Grade the handin; print the report, then the checked score line as the very last line."""
    names = activation_names()
    path = find_handin(handin)
    if path is None:
        stdout, reason = "", f"no handin file ({handin}) was found"
    else:
        stdout, _, reason = run_grader(path.resolve(), "autolab", None, timeout)
    lines = stdout.rstrip("\n").splitlines()
    doc = _score_line(lines[-1], names) if lines and not reason else None
    if doc is None:
        reason = reason or "the autograder produced no valid score line"
        print(f"Your handin could not be graded: {reason}")
        print("Score 0.")
        doc = {"scores": dict.fromkeys(names, 0.0), "scoreboard": [0.0]}
    else:
        print("\n".join(lines[:-1]))
    sys.stdout.flush()
    print(json.dumps(doc))
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
