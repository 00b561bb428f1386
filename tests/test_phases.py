"""Each phase of a case stands alone: a hang, crash or missing method costs only its phase.

Attacks and accidents beside their honest twins: the same submission
without the fault must score the forward points the faulty one keeps.
"""

from __future__ import annotations

import os
import stat
import time

import pytest
from conftest import by_name
from helpers import REFERENCE_SOURCE, replace_method, write_layout

from autograder.isolation import outputs as out
from autograder.submission import handin as submission


def remove_method(source: str, cls: str, method: str) -> str:
    """``source`` with ``cls.method`` deleted (the class keeps its other methods)."""
    marker = replace_method(source, cls, method, "return '__REMOVE_ME__'")
    lines = marker.splitlines()
    at = next(i for i, line in enumerate(lines) if "__REMOVE_ME__" in line)
    start = at
    while not lines[start].lstrip().startswith("def "):
        start -= 1
    return "\n".join(lines[:start] + lines[at + 1 :]) + "\n"


def test_a_hang_in_backward_keeps_the_forward_points(grader, tmp_path):
    hanging = replace_method(REFERENCE_SOURCE, "ReLU", "backward", "while True:\n    pass")
    report = grader.grade(write_layout(tmp_path, hanging, "file"), use_pytest=False)
    tests = by_name(report)
    for visibility in ("public", "hidden"):
        forward = tests[f"ReLU forward ({visibility})"]
        assert forward.score == forward.max_score, forward.output
        assert tests[f"ReLU backward ({visibility})"].status == "timeout"
    assert "backward used more than" in tests["ReLU backward (public)"].output
    assert "forward used more than" not in tests["ReLU backward (public)"].output
    # Everything else is untouched.
    others = [t for t in report.tests if t.activation != "ReLU"]
    assert all(t.score == t.max_score for t in others)


def test_a_crash_in_backward_keeps_the_forward_points(grader, tmp_path):
    crashing = replace_method(REFERENCE_SOURCE, "Sigmoid", "backward", "import os\nos._exit(3)")
    honest = grader.grade(write_layout(tmp_path / "twin", REFERENCE_SOURCE, "file"))
    report = grader.grade(write_layout(tmp_path / "bad", crashing, "file"), use_pytest=False)
    tests = by_name(report)
    assert (
        tests["Sigmoid forward (public)"].score == by_name(honest)["Sigmoid forward (public)"].score
    )
    assert tests["Sigmoid forward (hidden)"].score == tests["Sigmoid forward (hidden)"].max_score
    assert tests["Sigmoid backward (public)"].score == 0
    assert "during backward" in tests["Sigmoid backward (public)"].output


def test_a_class_without_backward_keeps_its_forward_points(grader, tmp_path):
    source = remove_method(REFERENCE_SOURCE, "Tanh", "backward")
    sub = submission.load(write_layout(tmp_path, source, "file"))
    runs = grader.run(sub)
    case = runs["public"].cases["Tanh-p1"]
    assert case.forward.status == out.OK
    assert case.backward.status == out.MISSING
    assert case.backward.info.get("method") == "backward"
    report = grader.grade_submission(sub, use_pytest=False)
    tests = by_name(report)
    assert tests["Tanh forward (public)"].score == tests["Tanh forward (public)"].max_score
    assert tests["Tanh forward (hidden)"].score == tests["Tanh forward (hidden)"].max_score
    assert tests["Tanh backward (public)"].score == 0
    # One missing method is not a crash of the worker: every other class is graded.
    assert all(t.score == t.max_score for t in report.tests if t.activation != "Tanh")


def test_a_class_without_forward_is_not_a_crash(grader, tmp_path):
    source = remove_method(REFERENCE_SOURCE, "GELU", "forward")
    runs = grader.run(submission.load(write_layout(tmp_path, source, "file")))
    case = runs["public"].cases["GELU-p1"]
    assert case.forward.status == out.MISSING
    assert case.forward.info.get("method") == "forward"
    assert runs["public"].cases["Swish-p1"].forward.status == out.OK


SOCKET_GARBAGE = """
import os, stat
for fd in os.listdir("/proc/self/fd"):
    try:
        if stat.S_ISSOCK(os.fstat(int(fd)).st_mode):
            # A frame header announcing 5 bytes of JSON that is not JSON.
            os.write(int(fd), b"\\x00\\x00\\x00\\x05\\x00\\x00\\x00\\x00notjs")
    except OSError:
        pass
self.A = Z.copy()
return self.A
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_malformed_frame_does_not_drop_the_good_frames_before_it(grader, tmp_path):
    # Identity runs first: its garbage arrives right behind the child's 'imported' frame.
    hostile = replace_method(REFERENCE_SOURCE, "Identity", "forward", SOCKET_GARBAGE)
    report = grader.grade(write_layout(tmp_path, hostile, "file"), use_pytest=False)
    assert not any("could not be imported" in t.output for t in report.tests)
    identity = [t for t in report.tests if t.activation == "Identity"]
    assert any("broke the protocol" in t.output for t in identity)
    assert all(t.score == t.max_score for t in report.tests if t.activation != "Identity")


def test_the_socket_helper_finds_sockets():
    # The attack above relies on fstat telling sockets apart; make sure it does here.
    import socket

    a, b = socket.socketpair()
    try:
        assert stat.S_ISSOCK(os.fstat(a.fileno()).st_mode)
    finally:
        a.close()
        b.close()


def test_starting_the_worker_is_not_charged_to_the_submission(grader, tmp_path):
    # A slow worker start (a loaded machine, a fallback to a weaker level) happens
    # before the submission's first child: it must not count against its budget.
    from autograder.isolation.runner import Limits, SubmissionRunner

    # Sleeps a little per ReLU case, so the run lasts past its first CPU readings.
    leisurely = replace_method(
        REFERENCE_SOURCE,
        "ReLU",
        "forward",
        "import time\ntime.sleep(0.1)\nself.A = np.maximum(Z, 0)\nreturn self.A",
    )
    sub = submission.load(write_layout(tmp_path, leisurely, "file"))
    public = [c for c in grader.cases if c.visibility == "public"]
    calls = []

    def slow_zygote():
        if not calls:
            time.sleep(1.5)
        calls.append(1)
        return grader.zygote()

    runner = SubmissionRunner(slow_zygote, Limits(call_timeout=1.0, budget=1.0))
    run = runner.run(sub.files, public, show=True)
    assert run.import_status == out.OK, run.import_message
    assert len(run.cases) == len(public)
    assert all(c.forward.status == out.OK for c in run.cases.values()), [
        c.forward.message for c in run.cases.values() if c.forward.status != out.OK
    ][:2]
