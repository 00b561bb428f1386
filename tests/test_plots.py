"""Feedback plots: the student's curves come from the worker; matplotlib stays optional."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import REFERENCE_SOURCE, write_layout

from autograder import cli, files
from autograder.course import assignment
from autograder.isolation.runner import SubmissionRunner
from autograder.judge import mistakes
from autograder.report import plots
from autograder.submission import handin as submission

PNG = b"\x89PNG\r\n\x1a\n"


def _buggy(*names: str) -> str:
    source = REFERENCE_SOURCE
    for name in names:
        source = mistakes.BY_NAME[name].source(source)
    return source


def _student_curves(grader, source, tmp_path, names):
    sub = submission.load(write_layout(tmp_path, source, "file"))
    cases = plots.plot_cases(names)
    run = SubmissionRunner(grader.zygote, grader.options.limits).run(sub.files, cases, show=True)
    found = {}
    for case in cases:
        output = run.cases[case.id]
        found[case.activation] = plots.curves(case, output.forward.value, output.backward.value)
    return found


def test_grid_holds_the_kinks_exactly():
    for spec in assignment.ACTIVATIONS:
        z = plots.grid(spec.name)
        assert np.all(np.diff(z) > 0)
        for k in spec.kink_points({}):
            if abs(k) <= 10:
                assert k in z, (spec.name, k)


def test_student_curves_show_the_mistakes(grader, tmp_path):
    source = _buggy("relu-dAdZ-1-at-0", "softmax-diagonal-jacobian")
    yours = _student_curves(grader, source, tmp_path, ["ReLU", "Softmax", "Sigmoid"])
    ref = plots.reference_curves(["ReLU", "Softmax", "Sigmoid"])
    z = ref["ReLU"]["Z"]
    # dLdA = 1 makes backward return dAdZ: 1 at Z = 0 for the bug, 0 for the reference.
    at0 = np.flatnonzero(z == 0.0)[0]
    assert yours["ReLU"]["dAdZ"][at0] == 1.0 and ref["ReLU"]["dAdZ"][at0] == 0.0
    np.testing.assert_allclose(yours["ReLU"]["A"], ref["ReLU"]["A"])
    # Softmax on rows (z, 0): the diagonal-only backward has no off-diagonal term.
    np.testing.assert_allclose(yours["Softmax"]["dAdZ"], ref["Softmax"]["dAdZ"], atol=1e-12)
    assert np.all(yours["Softmax"]["dA0dZ1"] == 0.0)
    np.testing.assert_allclose(
        ref["Softmax"]["dA0dZ1"], -ref["Softmax"]["A"] * (1 - ref["Softmax"]["A"]), atol=1e-12
    )
    # A correct class draws on top of the reference.
    np.testing.assert_allclose(yours["Sigmoid"]["dAdZ"], ref["Sigmoid"]["dAdZ"], rtol=1e-12)


def test_plot_data_file_matches_the_reference(monkeypatch):
    names = [a.name for a in assignment.ACTIVATIONS]
    computed = plots.reference_curves(names)
    monkeypatch.setenv(files.REFERENCE_ENV, "/nonexistent/reference.py")
    assert files.reference_path() is None
    stored = plots.reference_curves(names)
    for name in names:
        assert set(stored[name]) == set(computed[name]), name
        for key, values in computed[name].items():
            np.testing.assert_allclose(stored[name][key], values, rtol=1e-5, atol=1e-12)


def test_plots_for_failing_activations_only(grader, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    source = _buggy("gelu-tanh-approximation", "hardswish-pre-2.7-edges")
    sub = submission.load(write_layout(tmp_path / "sub", source, "file"))
    report = grader.grade_submission(sub, use_pytest=False)
    out = tmp_path / "plots"
    written = plots.write_for_report(lambda cases: grader.run_shown(sub, cases), report, out)
    assert sorted(p.name for p in written) == ["GELU.png", "Hardswish.png"]
    assert sorted(p.name for p in out.iterdir()) == ["GELU.png", "Hardswish.png"]
    for path in written:
        assert path.read_bytes()[:8] == PNG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wrote 2 plot(s)" in err[0]


def test_not_implemented_classes_still_get_a_plot(grader, tmp_path):
    pytest.importorskip("matplotlib")
    sub = submission.load(files.PROJECT_ROOT / "handout")
    written = plots.write_plots(lambda cases: grader.run_shown(sub, cases), ["ReLU"], tmp_path)
    assert [p.name for p in written] == ["ReLU.png"]


def test_cli_without_matplotlib_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    # As if matplotlib were not installed: importing it raises ImportError.
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = write_layout(tmp_path / "sub", _buggy("relu6-no-upper-clip"), "file")
    out = tmp_path / "plots"
    status = cli.main(["grade", str(path), "--public-only", "--plots", str(out)])
    captured = capsys.readouterr()
    assert status == 0
    assert "ReLU6 forward (public)" in captured.out  # the report itself is unharmed
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "matplotlib" in lines[0], captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()


@pytest.mark.slow
def test_cli_writes_plots(tmp_path):
    pytest.importorskip("matplotlib")
    import subprocess

    path = write_layout(tmp_path / "sub", _buggy("softmax-diagonal-jacobian"), "file")
    out = tmp_path / "plots"
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(path), "--plots", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["Softmax.png"]
    assert (out / "Softmax.png").read_bytes()[:8] == PNG
