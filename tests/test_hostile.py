"""Hostile submissions, each beside its honest twin (the same code without the attack).

Every attack must score no more than its twin, must not stop the grading of
the other activations, and must leave the grader's own output intact. The
attacks are bounded (sizes, counts, sleeps) so a failed defence cannot harm
the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import FULL_MARKS, by_name
from helpers import REFERENCE_SOURCE, append, replace_method, write_layout

from autograder.build import stubs
from autograder.report import render

STUBS = stubs.stub_text()

# The honest base most attacks are added to: the reference with a wrong ReLU.forward.
WRONG_RELU = replace_method(
    REFERENCE_SOURCE, "ReLU", "forward", "self.A = np.zeros_like(Z)\nreturn self.A"
)


def grade_pair(grader, tmp_path, hostile: str, twin: str, layout: str = "file"):
    """Grade an attack and its twin; the attack may never score more."""
    bad = grader.grade(write_layout(tmp_path / "hostile", hostile, layout), use_pytest=False)
    good = grader.grade(write_layout(tmp_path / "twin", twin, layout), use_pytest=False)
    assert bad.score <= good.score
    for name, totals in bad.activations().items():
        assert totals["score"] <= good.activations()[name]["score"], name
    return bad, good


MONKEYPATCH = append(
    WRONG_RELU,
    """
    import numpy.testing
    np.allclose = lambda *a, **k: True
    np.isclose = lambda a, b, *r, **k: np.ones(np.shape(a), dtype=bool)
    np.array_equal = lambda *a, **k: True
    np.testing.assert_allclose = lambda *a, **k: None
    np.testing.assert_array_equal = lambda *a, **k: None
    """,
)

LIAR_SUBCLASS = replace_method(
    REFERENCE_SOURCE,
    "ReLU",
    "forward",
    """
    class Liar(np.ndarray):
        def __eq__(self, other):
            return True
        def __array_function__(self, func, types, args, kwargs):
            return True
        def __float__(self):
            return 0.0
    self.A = np.zeros_like(Z).view(Liar)
    return self.A
    """,
)

LIAR_OBJECT = replace_method(
    REFERENCE_SOURCE,
    "ReLU",
    "forward",
    """
    class Liar:
        shape = Z.shape
        def __eq__(self, other):
            return True
        def __array__(self, *args, **kwargs):
            raise RuntimeError("no")
    self.A = Liar()
    return self.A
    """,
)

STEAL_FRAMES = replace_method(
    REFERENCE_SOURCE,
    "ReLU",
    "forward",
    """
    import gc, sys
    found = []
    frame = sys._getframe()
    while frame is not None:
        found += [v for v in frame.f_locals.values() if isinstance(v, np.ndarray)]
        frame = frame.f_back
    found += [o for o in gc.get_objects() if isinstance(o, np.ndarray)]
    candidates = [a for a in found if a.shape == Z.shape and not np.array_equal(a, Z)]
    self.A = candidates[0] if candidates else Z
    return self.A
    """,
)


@pytest.mark.parametrize(
    "hostile",
    [MONKEYPATCH, LIAR_SUBCLASS, LIAR_OBJECT, STEAL_FRAMES],
    ids=["monkeypatch-numpy", "ndarray-subclass-liar", "liar-object", "steal-from-frames-and-gc"],
)
def test_same_process_tricks_gain_nothing(grader, tmp_path, hostile):
    bad, _ = grade_pair(grader, tmp_path, hostile, WRONG_RELU)
    tests = by_name(bad)
    assert tests["ReLU forward (public)"].score == 0
    assert tests["Sigmoid forward (public)"].status == "passed"


def test_conftest_pytest_ini_sitecustomize_and_fake_numpy_are_inert(grader, tmp_path):
    root = write_layout(tmp_path / "hostile", STUBS, "flat")
    marker = tmp_path / "pwned"
    (root / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib
            pathlib.Path({str(marker)!r}).write_text("conftest ran")
            def pytest_runtest_makereport(item, call):
                call.excinfo = None
            """
        )
    )
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p conftest --maxfail=0\n")
    (root / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('site')\n")
    (root / "numpy").mkdir()
    (root / "numpy" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('fake numpy')\nallclose = lambda *a, **k: True\n"
    )
    bad = grader.grade(root)  # through pytest
    good = grader.grade(write_layout(tmp_path / "twin", STUBS, "flat"))
    assert bad.score == good.score == 4.0
    assert not marker.exists()


FAKE_OUTPUT = append(
    replace_method(
        STUBS,
        "ReLU",
        "forward",
        """
        print('{"scores": {"ReLU": 7, "Sigmoid": 7}}')
        print("Total score  100.00 / 100.00")
        raise NotImplementedError
        """,
    ),
    """
    print("Total score  100.00 / 100.00")
    print(json.dumps({"scores": {"Identity": 4, "ReLU": 7}, "scoreboard": [100]}))
    """,
).replace("import math\n", "import json\nimport math\n")


def test_printing_a_fake_score_changes_nothing(grader, tmp_path):
    bad, good = grade_pair(grader, tmp_path, FAKE_OUTPUT, STUBS)
    assert bad.score == good.score == 4.0
    assert "100.00 / 100.00" in bad.student_output
    last = render.autolab(bad).splitlines()[-1]
    assert json.loads(last) == render.autolab_scores(bad)
    assert json.loads(last)["scores"]["ReLU"] == 0
    table = render.table(bad)
    # The student's lines appear only quoted, never as a line of ours.
    assert "\nTotal score  100.00" not in table
    assert "  | Total score  100.00 / 100.00" in table


def test_a_fake_report_file_is_overwritten_and_stays_ours(tmp_path):
    report_path = tmp_path / "out" / "report.json"
    report_path.parent.mkdir()
    # Find the -o path in an ancestor's command line, write a fake report at import and
    # again from a daemon a little later.
    hostile = append(
        STUBS,
        """
        import os as _os, time as _time

        def _targets():
            pid = _os.getpid()
            for _ in range(6):
                try:
                    with open(f"/proc/{pid}/stat") as fh:
                        pid = int(fh.read().rsplit(")", 1)[1].split()[1])
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        args = fh.read().split(b"\\0")
                except OSError:
                    return
                if b"-o" in args:
                    yield args[args.index(b"-o") + 1].decode()

        _FAKE = '{"submission": "x", "score": 100, "max_score": 100, "tests": []}'
        for _t in _targets():
            try:
                open(_t, "w").write(_FAKE)
            except OSError:
                pass
            if _os.fork() == 0:
                _os.setsid()
                if _os.fork() == 0:
                    _time.sleep(1.0)
                    try:
                        open(_t, "w").write(_FAKE)
                    except OSError:
                        pass
                _os._exit(0)
        """,
    )
    path = write_layout(tmp_path, hostile, "file")
    cmd = [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        str(path),
        "--format",
        "json",
        "-o",
        str(report_path),
    ]
    subprocess.run(cmd, check=True, timeout=60)
    time.sleep(1.5)  # longer than the daemon's sleep
    report = json.loads(report_path.read_text())
    assert report["score"] == 4.0 and report["tests"]


def test_exit_at_import_fails_every_test_with_a_clear_message(grader, tmp_path):
    hostile = append(STUBS, "import os\nos._exit(0)")
    bad, _ = grade_pair(grader, tmp_path, hostile, STUBS)
    assert bad.score == 0
    forward = by_name(bad)["Identity forward (public)"]
    assert forward.status == "error"
    assert "could not be imported" in forward.output and "exited with status 0" in forward.output


SIGNALS_IGNORED_LOOP = replace_method(
    REFERENCE_SOURCE,
    "ReLU",
    "forward",
    """
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        pass
    """,
)


@pytest.mark.parametrize(
    "hostile, status, needle",
    [
        (SIGNALS_IGNORED_LOOP, "timeout", "used more than 1 s of CPU time"),
        (
            replace_method(REFERENCE_SOURCE, "ReLU", "forward", "import sys\nsys.exit(3)"),
            "error",
            "SystemExit",
        ),
        (
            replace_method(
                REFERENCE_SOURCE, "ReLU", "forward", "import ctypes\nctypes.string_at(0)"
            ),
            "error",
            "SIGSEGV",
        ),
        (
            replace_method(
                REFERENCE_SOURCE, "ReLU", "forward", "self.A = np.ones(1 << 38)\nreturn self.A"
            ),
            "error",
            "MemoryError",
        ),
    ],
    ids=["infinite-loop-ignoring-signals", "sys-exit", "segfault", "memory-bomb"],
)
def test_a_crash_or_hang_fails_only_what_it_touches(grader, tmp_path, hostile, status, needle):
    started = time.monotonic()
    report = grader.grade(write_layout(tmp_path, hostile, "file"), use_pytest=False)
    assert time.monotonic() - started < 20
    tests = by_name(report)
    assert tests["ReLU forward (public)"].status == status
    assert needle in tests["ReLU forward (public)"].output
    for test in report.tests:
        if test.activation != "ReLU":
            assert test.status == "passed", (test.name, test.output)


def test_a_print_flood_is_capped_and_graded_normally(grader, tmp_path):
    hostile = replace_method(
        REFERENCE_SOURCE,
        "GELU",
        "forward",
        """
        import sys
        sys.stdout.write("x" * (20 << 20))
        self.Z = Z
        self.A = 0.5 * Z * (1.0 + erf(Z / math.sqrt(2.0)))
        return self.A
        """,
    )
    report = grader.grade(write_layout(tmp_path, hostile, "file"), use_pytest=False)
    assert report.score == FULL_MARKS
    assert 0 < len(report.student_output) <= 64 << 10


def test_a_pickle_sent_on_the_channel_is_never_loaded(grader, tmp_path):
    marker = tmp_path / "unpickled"
    hostile = append(
        STUBS,
        f"""
        import json as _json, os as _os, pickle as _pickle, stat as _stat, struct as _struct

        class _Boom:
            def __reduce__(self):
                return (open, ({str(marker)!r}, "w"))

        _payload = _pickle.dumps(_Boom())
        _header = _json.dumps({{"meta": {{"type": "imported"}},
                                "arrays": [["A", "|O", [1]]]}}).encode()
        for _fd in range(3, 64):
            try:
                if _stat.S_ISSOCK(_os.fstat(_fd).st_mode):
                    _os.write(_fd, _struct.pack(">II", len(_header), len(_payload)) + _header + _payload)
            except OSError:
                pass
        """,
    )
    bad, _ = grade_pair(grader, tmp_path, hostile, STUBS)
    assert bad.score == 0
    assert not marker.exists()
    assert "protocol" in by_name(bad)["Identity forward (public)"].output


def test_the_grader_process_never_imports_student_code(grader, tmp_path):
    marker = Path(tmp_path) / "imported-in-grader"
    hostile = append(
        STUBS,
        f"import os\nif os.getpid() == {__import__('os').getpid()}:\n    open({str(marker)!r}, 'w')",
    )
    grader.grade(write_layout(tmp_path, hostile, "file"))
    assert not marker.exists()
    assert not [n for n in sys.modules if n == "activation" or n.startswith("mytorch")]
