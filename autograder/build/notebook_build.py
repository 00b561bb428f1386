"""Generate the notebook handout, ``handout/activations.ipynb``, with nbformat.

The notebook is built from the same source of truth as the stub file: its
code cells are the stubs' own imports and classes (``stubs.stub_text``),
its formulas come from the assignment table, its classes and points from the
course. Per activation of the course it holds

* a Markdown cell: the formula and derivative in LaTeX, the points;
* a plot cell of the target function and its derivative (``plot_reference``);
* the stub class, for the student to fill in;
* a check cell (``check``) grading that class on the public cases, in the
  worker, with the command line's feedback (``notebook_check``).

Plot and check cells are tagged ``autograder-skip``: grading or exporting the
notebook (``notebook_source``) leaves them out, so the handin holds only the
imports and the classes. Cell ids are fixed, so the output is byte-for-byte
reproducible and ``autograder handout --check`` can detect drift.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from autograder.build import stubs
from autograder.course import assignment, course_file
from autograder.submission.notebook_source import SKIP_TAG

if TYPE_CHECKING:
    from autograder.course.course_file import Course

INTRO = r"""# Activation functions for mytorch

In this notebook you write the activation functions of **mytorch**, the small
numpy deep-learning library of the course, one class at a time. Every class
has the same two methods:

* `forward(Z)` takes the pre-activations `Z` (usually of shape `(N, C)`: a batch
  of `N` samples with `C` features each), computes the post-activations `A`,
  stores `A` in `self.A` (plus anything else backward will need) and returns it;
* `backward(dLdA)` takes how the loss changes with `A` and returns `dLdZ`, how
  the loss changes with `Z`.

`Identity` is done for you as an example; the other classes are yours.

### Element-wise activations

Most activations treat every entry of `Z` on its own: $A_{ij} = f(Z_{ij})$.
Changing one entry of `Z` moves only the matching entry of `A`, so the
derivative is element-wise too, and the chain rule needs no matrix product:

$$\frac{\partial L}{\partial Z} = \frac{\partial L}{\partial A} \odot \frac{\partial A}{\partial Z},
\qquad\text{in code: } \texttt{dLdZ = dLdA * dAdZ},$$

where $\odot$ (numpy's `*`) multiplies entry by entry and `dAdZ` is $f'$
evaluated at the same `Z` that forward saw (often written with the stored `A`,
as in Sigmoid's $A(1-A)$). These classes must work on arrays of any shape.

### Vector activations: Softmax

Softmax turns each row of `Z` into a probability distribution, so each entry
of a row of `A` depends on *every* entry of that row of `Z`. Its derivative
for row $i$ is a $C \times C$ Jacobian matrix, not a single number per entry:

$$J^{(i)}_{mn} = \frac{\partial A_{im}}{\partial Z_{in}} = A_{im}\,(\delta_{mn} - A_{in}),
\qquad \frac{\partial L}{\partial Z_{i}} = \frac{\partial L}{\partial A_{i}}\, J^{(i)},$$

a row vector times a matrix, one row (sample) at a time. The off-diagonal
entries $-A_{im} A_{in}$ matter: keeping only the diagonal $A(1-A)$ is a classic
mistake.

### Conventions

* Values follow PyTorch 2.13 (`torch.nn.functional`), including the value a
  derivative takes exactly at a kink (for example ReLU's at `Z = 0`); the
  docstrings say which.
* Keep the class names and method signatures; do not change `Z` or `dLdA` in
  place; make forward safe for large `|Z|` (no overflow to `inf` or `nan`).

### How to work in this notebook

1. Run the two setup cells below once.
2. For each activation: read its formulas, look at the plot of the function
   you are aiming for, fill in the class, run its cell, then run the **check**
   cell under it. The check grades your class on the public test cases (the
   same cases, points and feedback as `make grade`), in a separate process, and
   says what is wrong and often why.
3. A check grades what you have *run* in this notebook's kernel: after editing
   a class, run its cell again before checking.
4. Cells whose first line says *not part of your handin* (plots and checks,
   tagged `autograder-skip`) are left out when the notebook is graded or
   exported. Add experiment cells freely: only top-level imports, functions,
   classes and assignments are taken, so avoid top-level assignments that
   call your classes.

When you are done, save the notebook and see the last section on handing in.
"""

HANDIN = r"""## Checking everything and handing in

The cell below checks every activation at once (the public cases only; the
course staff also grade hidden cases, so test your classes beyond what the
checks show).

To hand in, **save the notebook**, then in the handout folder run

```sh
make handin-notebook
```

It copies your classes out of the saved notebook into `mytorch/nn/activation.py`
(`python3 -m autograder export activations.ipynb`; a previous, different
`activation.py` is kept as `activation.py.bak`), then writes `handin.tar`, the
file to upload. `python3 -m autograder grade activations.ipynb` grades the saved
notebook itself, as `make grade` grades the folder.
"""

SETUP_CHECKS = """# Not part of your handin: the notebook's check and plot helpers.
from autograder.notebook_check import check, plot_reference"""


def _stub_parts(course: Course) -> tuple[str, dict[str, str]]:
    """The stub file's module-level code (imports) and its classes' source, by name."""

    source = stubs.stub_text(course)
    lines = source.splitlines()
    tree = ast.parse(source)
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the module docstring: the introduction says it for the notebook
    classes: dict[str, str] = {}
    setup: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.ClassDef):
            segment = ast.get_source_segment(source, node)
            assert segment is not None
            classes[node.name] = segment
        else:
            setup.append(node)
    first_class = min((n.lineno for n in body if isinstance(n, ast.ClassDef)), default=0)
    if first_class and any(n.lineno > first_class for n in setup):
        raise ValueError(
            "the stubs have module-level code after a class; the notebook expects it first"
        )
    # The module-level code as written (blank lines between import groups kept).
    text = ""
    if setup:
        text = "\n".join(lines[setup[0].lineno - 1 : setup[-1].end_lineno])
    return text, classes


def _points(spec: assignment.Activation) -> str:
    parts = []
    for phase, points in spec.points.items():
        parts.append(f"{phase} {points.public:g} + {points.hidden:g}")
    for rule in spec.rules:
        parts.append(f"rule ({rule.name}) {rule.points:g}")
    return f"Points (public + hidden): {', '.join(parts)}; {spec.max_score:g} in all."


def _about(number: int, spec: assignment.Activation) -> str:
    kind = "vector activation, row by row" if spec.vector else "element-wise"
    lines = [f"## {number}. {spec.name} ({kind})", ""]
    if spec.formula:
        lines += ["$$" + spec.formula + "$$", ""]
    if spec.derivative:
        lines += ["$$" + spec.derivative + "$$", ""]
    kinks = spec.kink_points({})
    if kinks and not callable(spec.kinks):
        at = ", ".join(f"Z = {k:g}" for k in kinks)
        lines += [
            f"The derivative jumps at {at}: the docstring says which value it takes there.",
            "",
        ]
    if spec.name == "Identity":
        lines += ["Given complete, as an example of the pattern; run its cells as they are.", ""]
    lines.append(_points(spec))
    return "\n".join(lines)


def notebook(course: Course | None = None):  # -> nbformat.NotebookNode
    """The notebook handout of ``course`` (its classes and points; default: the course in
    effect) as an nbformat object."""
    import nbformat
    from nbformat import v4

    course = course or course_file.in_effect()
    setup, classes = _stub_parts(course)
    skip = {"tags": [SKIP_TAG]}

    def md(cell_id: str, text: str):
        cell = v4.new_markdown_cell(text.strip("\n"))
        cell["id"] = cell_id
        return cell

    def code(cell_id: str, text: str, tagged: bool = False):
        cell = v4.new_code_cell(text.strip("\n"), metadata=dict(skip) if tagged else {})
        cell["id"] = cell_id
        return cell

    cells = [
        md("intro", INTRO),
        code("setup-checks", SETUP_CHECKS, tagged=True),
        code("imports", setup),
    ]
    for number, spec in enumerate(course.rows(), start=1):
        key = spec.name.lower()
        cells += [
            md(f"{key}-about", _about(number, spec)),
            code(
                f"{key}-plot",
                f"# Not part of your handin: {spec.name} and its derivative.\n"
                f'plot_reference("{spec.name}")',
                tagged=True,
            ),
            code(f"{key}-code", classes[spec.name]),
            code(
                f"{key}-check",
                f"# Not part of your handin: grade {spec.name} on the public cases.\n"
                f'check("{spec.name}")',
                tagged=True,
            ),
        ]
    cells += [
        md("handin", HANDIN),
        code(
            "check-all",
            "# Not part of your handin: grade every activation on the public cases.\ncheck()",
            tagged=True,
        ),
    ]
    nb = v4.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(nb)
    return nb


def notebook_text(course: Course | None = None) -> str:
    """The notebook handout of ``course`` (default: the course in effect) as .ipynb text."""
    import nbformat

    return nbformat.writes(notebook(course)) + "\n"
