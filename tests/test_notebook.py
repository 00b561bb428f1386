"""The notebook handout: generated, free of solutions, gradable, and executable in both states.

The execution tests run the notebook top to bottom with nbclient on an
IPython kernel of this very interpreter: the fixture writes a ``python3``
kernelspec pointing at ``sys.executable`` into a temporary JUPYTER_PATH, so
a ``python3`` kernel installed elsewhere on the machine is never picked up.
"""

from __future__ import annotations

import ast
import json
import re
import sys

import pytest
from conftest import FULL_MARKS
from helpers import REFERENCE_SOURCE, notebook

from autograder import cli, files, notebook_check
from autograder.build import handout, notebook_build, stubs
from autograder.course import assignment
from autograder.judge.checks import PASSED
from autograder.submission import notebook_source
from autograder.submission.notebook_source import SKIP_TAG

NOTEBOOK = handout.NOTEBOOK_PATH


def _cells():
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4).cells


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_committed_notebook_is_what_the_generator_writes():
    assert NOTEBOOK.read_text(encoding="utf-8") == notebook_build.notebook_text()


def test_notebook_contains_no_solution_code():
    text = NOTEBOOK.read_text(encoding="utf-8")
    sources = "\n".join(c.source for c in _cells())
    secret = stubs.solution_lines(REFERENCE_SOURCE)
    assert secret
    for line in secret:
        assert line not in sources, line
        assert json.dumps(line)[1:-1] not in text, line


def test_every_activation_has_its_four_cells():
    cells = {c.get("id"): c for c in _cells()}
    stub_classes = {
        n.name: n for n in ast.parse(stubs.stub_text()).body if isinstance(n, ast.ClassDef)
    }
    for spec in assignment.ACTIVATIONS:
        key = spec.name.lower()
        about = cells[f"{key}-about"]
        assert about.cell_type == "markdown"
        assert spec.formula in about.source and spec.derivative in about.source
        plot, code, check = cells[f"{key}-plot"], cells[f"{key}-code"], cells[f"{key}-check"]
        assert SKIP_TAG in _tags(plot) and f'plot_reference("{spec.name}")' in plot.source
        assert SKIP_TAG in _tags(check) and f'check("{spec.name}")' in check.source
        # The stub cell is the stub file's class, untagged: it is the handin.
        assert SKIP_TAG not in _tags(code)
        tree = ast.parse(code.source)
        assert [type(n) for n in tree.body] == [ast.ClassDef]
        assert ast.dump(tree.body[0]) == ast.dump(stub_classes[spec.name])
    assert SKIP_TAG in _tags(cells["setup-checks"])
    assert SKIP_TAG not in _tags(cells["imports"])


def test_intro_explains_the_chain_rule_and_the_jacobian():
    intro = _cells()[0].source
    for needed in ("dLdZ = dLdA * dAdZ", "Jacobian", "element", "Softmax", "PyTorch"):
        assert needed in intro, needed


def test_grading_the_handed_out_notebook_scores_only_identity(grader):
    report = grader.grade(NOTEBOOK, use_pytest=False)
    assert report.score == 4.0
    assert report.activations()["Identity"] == {"score": 4.0, "max_score": 4.0}


# ---------------------------------------------------------------- filled in


def _reference_parts() -> tuple[str, dict[str, str]]:
    """The reference's module-level code (imports, helpers) and its classes, by name."""
    tree = ast.parse(REFERENCE_SOURCE)
    prelude, classes = [], {}
    for node in tree.body[1:]:  # after the module docstring
        segment = ast.get_source_segment(REFERENCE_SOURCE, node)
        if isinstance(node, ast.ClassDef):
            classes[node.name] = segment
        else:
            prelude.append(segment)
    return "\n\n".join(prelude), classes


def filled_notebook():
    """The notebook with each stub class cell replaced by the reference class."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    prelude, classes = _reference_parts()
    for cell in nb.cells:
        if cell.get("id") == "imports":
            cell.source = prelude
        elif cell.get("id", "").endswith("-code"):
            (node,) = ast.parse(cell.source).body
            cell.source = classes[node.name]
    return nb


def test_filled_notebook_grades_and_exports_to_full_marks(grader, tmp_path):
    import nbformat

    path = tmp_path / "activations.ipynb"
    nbformat.write(filled_notebook(), path)
    report = grader.grade(path, use_pytest=False)
    assert report.score == report.max_score == FULL_MARKS, [
        (t.name, t.output) for t in report.tests if t.status != PASSED
    ]
    # `make handin-notebook`: export, then the exported module grades the same.
    out = tmp_path / "mytorch" / "nn" / "activation.py"
    assert cli.main(["export", str(path), "-o", str(out)]) == 0
    assert grader.grade(out, use_pytest=False).score == FULL_MARKS


def test_export_keeps_every_previous_module_outside_the_handin(tmp_path, capsys):
    import nbformat

    # The handout's layout: the notebook next to mytorch/, whose contents the handin packs.
    module = tmp_path / "mytorch" / "nn" / "activation.py"
    module.parent.mkdir(parents=True)
    module.write_text("# hand-written work\n")
    path = tmp_path / "activations.ipynb"
    first = REFERENCE_SOURCE.replace("class Identity:", "class Identity:  # first", 1)
    second = REFERENCE_SOURCE.replace("class Identity:", "class Identity:  # second", 1)
    for source in (first, second, second):
        nbformat.write(nbformat.from_dict(notebook(source)), path)
        assert cli.main(["export", str(path), "-o", str(module)]) == 0
    backups = tmp_path / "backups"  # the name the handout README gives
    kept = sorted(p.name for p in backups.iterdir())
    # Two changes, two generations; the third export changed nothing and kept nothing.
    assert kept == ["activation.py.1", "activation.py.2"]
    assert (backups / "activation.py.1").read_text() == "# hand-written work\n"
    assert "# first" in (backups / "activation.py.2").read_text()
    assert "# second" in module.read_text()
    assert [p.name for p in module.parent.iterdir()] == ["activation.py"]
    assert "backups/activation.py.2" in capsys.readouterr().out


# ---------------------------------------------------------------- the check cells' module


def test_module_from_cells_keeps_what_the_kernel_defined():
    cells = [
        "from autograder.notebook_check import check, plot_reference",
        "import numpy as np",
        "class ReLU:\n    def forward(self, Z):\n        return 1",
        "class ReLU:\n    def forward(self, Z)\n        return 2",  # a syntax error: never ran
        "%timeit ReLU()\nclass ReLU:\n    def forward(self, Z):\n        return 3",
        'check("ReLU")\nprint(ReLU().forward(1))',
    ]
    text = notebook_source.module_from_cells(cells, "this notebook", ran=True)
    namespace: dict = {}
    exec(compile(text, "<cells>", "exec"), namespace)
    assert namespace["ReLU"]().forward(None) == 3
    assert "import check" not in text and "check(" not in text and "print(" not in text


def test_check_outside_a_kernel_says_so_without_raising(capsys):
    notebook_check.check("ReLU")
    assert "check could not run" in capsys.readouterr().out
    notebook_check.check("NoSuchActivation")
    assert "no activation named" in capsys.readouterr().out


def test_grade_source_restricts_to_one_activation():
    report = notebook_check.grade_source(REFERENCE_SOURCE, "ReLU")
    assert {t.activation for t in report.tests} == {"ReLU"}
    assert {t.visibility for t in report.tests} == {"public"}
    assert report.score == report.max_score
    # The shared grader is back to every public case afterwards.
    full = notebook_check.grade_source(REFERENCE_SOURCE)
    assert {t.activation for t in full.tests} == set(assignment.BY_NAME)


# ---------------------------------------------------------------- executed with nbclient


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A ``python3`` kernelspec for this interpreter, first on JUPYTER_PATH."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (autograder tests)",
                "language": "python",
            }
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        # The kernel is a fresh interpreter: no inherited pytest options or plugins.
        mp.delenv("PYTEST_ADDOPTS", raising=False)
        yield "python3"


def execute(nb, kernel_name: str, cwd):
    from nbclient import NotebookClient

    client = NotebookClient(
        nb, timeout=300, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        assert output.get("output_type") != "error", (cell.get("id"), output.get("evalue"))
        if output.get("output_type") == "stream":
            parts.append(output["text"])
    return "".join(parts)


def _total(text: str) -> tuple[float, float]:
    match = re.search(r"Total score\s+([\d.]+) /\s+([\d.]+)", text)
    assert match, text
    return float(match.group(1)), float(match.group(2))


@pytest.mark.slow
def test_handed_out_notebook_runs_to_the_end_reporting_not_implemented(
    kernel, tmp_path, monkeypatch
):
    import nbformat

    # As in the student bundle: no reference, so checks and plots run from the data files.
    monkeypatch.setenv(files.REFERENCE_ENV, str(tmp_path / "no-reference.py"))
    nb = execute(nbformat.read(NOTEBOOK, as_version=4), kernel, tmp_path)
    cells = {c.get("id"): c for c in nb.cells}
    for spec in assignment.ACTIVATIONS:
        key = spec.name.lower()
        plot = cells[f"{key}-plot"]
        assert any("image/png" in o.get("data", {}) for o in plot.outputs), spec.name
        text = _text(cells[f"{key}-check"])
        if spec.name == "Identity":  # given complete
            public = sum(spec.test_points(phase, "public") for phase in spec.points)
            assert "Everything passed" in text
            assert _total(text) == (public, public)
        else:
            assert "not implemented" in text, (spec.name, text)
            assert _total(text)[0] == 0.0, text
        assert "Traceback" not in text
    assert "Not implemented yet" in _text(cells["check-all"])


@pytest.mark.slow
def test_filled_notebook_checks_report_full_marks(kernel, tmp_path):
    from nbformat import v4

    nb = filled_notebook()
    # Then a student re-defines ReLU with a known mistake and checks again: the
    # check grades what the kernel ran last.
    bug = replace_relu_backward("return dLdA * (self.Z >= 0)")
    nb.cells += [v4.new_code_cell(bug), v4.new_code_cell('check("ReLU")')]
    nb = execute(nb, kernel, tmp_path)
    cells = {c.get("id"): c for c in nb.cells}
    for spec in assignment.ACTIVATIONS:
        text = _text(cells[f"{spec.name.lower()}-check"])
        assert "Everything passed" in text, (spec.name, text)
        got, available = _total(text)
        assert got == available > 0, text
    assert "Everything passed" in _text(cells["check-all"])
    last = _text(nb.cells[-1])
    assert "Likely mistake (relu-dAdZ-1-at-0)" in last, last


def replace_relu_backward(body: str) -> str:
    """A ReLU class cell storing Z, with the given backward body."""
    return (
        "class ReLU:\n"
        "    def forward(self, Z):\n"
        "        self.Z = Z\n"
        "        self.A = np.maximum(Z, 0)\n"
        "        return self.A\n\n"
        "    def backward(self, dLdA):\n"
        f"        {body}\n"
    )
