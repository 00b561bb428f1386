"""The notebook handout's check and plot cells.

``check("ReLU")`` grades one activation on its public cases from inside a
Jupyter kernel and prints the command line's table and feedback for it;
``check()`` grades them all; ``plot_reference("ReLU")`` draws the function
and its derivative.

What is graded is what the kernel has *run*: the cells in IPython's input
history, turned into a module the way ``notebook_source`` turns a saved
notebook into one (magics dropped, only top-level imports, functions,
classes and assignments kept, later definitions winning as they do in the
kernel). That module goes through the same engine as ``autograder grade``:
it is imported and run in the worker process, never in the kernel, and the
report is built in this process from what came back.

Why the history rather than the ``.ipynb`` file on disk: a kernel does not
reliably know its notebook's path, the file is stale until the student saves
(and under nbclient, which executes a notebook in memory, it may not exist at
all), and the history is exactly what defined the classes the student just
tried. Cells that never ran (a syntax error) are skipped, since they defined
nothing, and imports of the autograder itself (the setup cell) are left out:
the handin must not need it.
"""

from __future__ import annotations

import atexit

from autograder.course import assignment, course_file
from autograder.submission import notebook_source

_GRADER = None
_ALL: tuple[list, list] | None = None


class NotebookCheckError(RuntimeError):
    """The check cannot run here (not in a Jupyter kernel)."""


def kernel_cells() -> list[str]:
    """The raw source of every cell this IPython kernel has run, in order."""
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is None:
        raise NotebookCheckError(
            "check() grades the cells run in a Jupyter notebook; outside one, use "
            "`python3 -m autograder grade activations.ipynb`"
        )
    return [cell for cell in shell.history_manager.input_hist_raw if cell]


def _grader():
    global _GRADER, _ALL
    if _GRADER is None:
        from autograder.engine import GradeOptions, Grader

        _GRADER = Grader(GradeOptions(public_only=True))
        _ALL = (list(_GRADER.cases), list(_GRADER.specs))
        atexit.register(_GRADER.close)
    return _GRADER


def grade_source(text: str, activation: str | None = None):
    """Grade module text on the public cases (of one activation, or all); return the report."""
    from autograder.judge import checks
    from autograder.submission.handin import Submission, SubmissionFiles

    grader = _grader()
    assert _ALL is not None
    cases, specs = _ALL
    if activation is not None:
        cases = [c for c in cases if c.activation == activation]
        specs = checks.test_specs(cases, grader.course)
    files = SubmissionFiles({"activation.py": text.encode()}, "activation.py", "activation")
    sub = Submission("this notebook", "notebook", files)
    # The shared grader (one worker zygote per kernel) graded on a subset of its cases.
    grader.cases, grader.specs = cases, specs
    try:
        return grader.grade_submission(sub, use_pytest=False)
    finally:
        grader.cases, grader.specs = _ALL


def check(activation: str | None = None) -> None:
    """Grade ``activation`` (or every activation) as run in this kernel; print the feedback.

    Never raises: a notebook executed top to bottom goes on to the next cell.
    """
    from autograder.report import render

    try:
        if activation is not None:
            # The course the grader will use (cheap: no worker starts for a typo).
            graded = course_file.in_effect().names
            if activation not in graded:
                if activation in assignment.BY_NAME:
                    what = f"{activation} is not part of this course"
                else:
                    what = f"no activation named {activation!r}"
                print(f"check: {what}; the activations are {', '.join(graded)}.")
                return
        report = grade_source(
            notebook_source.module_from_cells(kernel_cells(), "this notebook", ran=True),
            activation,
        )
    except Exception as exc:  # the notebook must carry on; say why in one line
        print(f"check could not run: {type(exc).__name__}: {exc}")
        return
    print(render.table(report), end="")


def plot_reference(activation: str) -> None:
    """Draw ``activation`` and its derivative (the reference curves) in the notebook."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("Plots need matplotlib (pip install matplotlib); the formulas above say the same.")
        return
    from autograder.report import plots

    try:
        curves = plots.reference_curves([activation])[activation]
    except Exception as exc:
        print(f"plot_reference could not draw {activation}: {type(exc).__name__}: {exc}")
        return
    fig = plt.figure(figsize=(10, 3.4), layout="constrained")
    plots.draw(fig, activation, curves)
    plt.show()
