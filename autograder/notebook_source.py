"""Turn a Jupyter notebook into the module the worker imports.

Read with nbformat. Code cells are joined in order, except cells tagged
``autograder-skip`` (the notebook handout's plot and check cells). IPython
magics (``%...``, ``%%...``) and shell lines (``!...``) are dropped, never run.
Of what remains, only the top-level definitions are kept: imports,
functions, classes and assignments. Experiments such as
``print(ReLU().forward(Z))`` stay in the notebook and do not run at grading.
"""

from __future__ import annotations

import ast
import warnings

SKIP_TAG = "autograder-skip"
KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


class NotebookError(ValueError):
    """The notebook cannot be read."""


def _drop_magics(source: str) -> str:
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return ""  # a cell magic changes how the whole cell runs: skip the cell
    kept = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or (
            stripped.endswith("?") and not stripped.startswith("#")
        ):
            kept.append("")  # keep line numbers stable for error messages
        else:
            kept.append(line)
    return "\n".join(kept)


def code_cells(data: bytes, name: str = "notebook") -> list[str]:
    """The source of every gradable code cell, magics removed."""
    import nbformat

    try:
        with warnings.catch_warnings():
            # Old or hand-made notebooks lack cell ids; that is no reason to refuse them.
            warnings.simplefilter("ignore")
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotebookError(f"{name} is not a readable Jupyter notebook: {first[:160]}") from None
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        if SKIP_TAG in (cell.get("metadata", {}).get("tags") or []):
            continue
        cells.append(_drop_magics(cell.get("source", "")))
    return cells


def notebook_to_module(data: bytes, name: str = "notebook") -> str:
    """The Python module built from a notebook's definitions."""
    from autograder.submission import SubmissionError

    try:
        cells = code_cells(data, name)
    except NotebookError as exc:
        raise SubmissionError(str(exc)) from None
    parts = [f"# Built by the autograder from {name}: definitions only.\n"]
    for number, source in enumerate(cells, start=1):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            # Keep the cell as is: importing it reports the syntax error and its line.
            parts.append(f"# --- code cell {number}\n{source}\n")
            continue
        kept = [
            ast.get_source_segment(source, node) for node in tree.body if isinstance(node, KEPT)
        ]
        kept = [k for k in kept if k]
        if kept:
            parts.append(f"# --- code cell {number}\n" + "\n\n".join(kept) + "\n")
    return "\n".join(parts)
