"""Building blocks for fixture submissions: the reference, edited one method at a time.

Buggy and hostile submissions are derived from the reference source, so they
stay in step with it: ``replace_method`` swaps one method body,
``append`` adds module-level code, ``write_layout`` lays a source out as a
directory, a single file, an archive or a notebook.
"""

from __future__ import annotations

import ast
import io
import json
import tarfile
import textwrap
import zipfile
from pathlib import Path

from autograder import files

REFERENCE_SOURCE = files.REFERENCE_PATH.read_text(encoding="utf-8")


def _table_configs() -> list[tuple[str, dict]]:
    """(class name, constructor arguments): every activation of the table with its
    defaults and each set of arguments its public and hidden cases use."""
    from autograder.course import assignment
    from autograder.course.hidden_cases import HIDDEN

    configs = []
    for act in assignment.ACTIVATIONS:
        seen: list[dict] = [{}]
        for spec in (*act.public, *HIDDEN.get(act.name, ())):
            if spec.kwargs not in seen:
                seen.append(dict(spec.kwargs))
        configs += [(act.name, kwargs) for kwargs in seen]
    return configs


def _vector(name: str) -> bool:
    from autograder.course import assignment

    return assignment.BY_NAME[name].vector


# Arguments beyond the table's, for the math checks: Softplus's threshold on its own.
EXTRA_CONFIGS = [
    ("Softplus", {"threshold": 10.0}),
    ("Softplus", {"beta": 2.0, "threshold": 10.0}),
]
# Derived from the table, so a new row or a new constructor argument is checked at once.
CONFIGS = _table_configs() + [c for c in EXTRA_CONFIGS if c not in _table_configs()]
CONFIGS.sort(key=lambda c: [n for n, _ in _table_configs()].index(c[0]))  # grouped by class
SCALAR_CONFIGS = [c for c in CONFIGS if not _vector(c[0])]


def replace_method(source: str, cls: str, method: str, body: str) -> str:
    """Replace the body of ``cls.method`` in ``source`` with ``body`` (unindented text)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    start = item.body[0].lineno - 1
                    if (
                        isinstance(item.body[0], ast.Expr)
                        and isinstance(item.body[0].value, ast.Constant)
                        and len(item.body) > 1
                    ):
                        start = item.body[1].lineno - 1  # keep the docstring
                    end = item.end_lineno
                    indent = " " * (item.col_offset + 4)
                    new = textwrap.indent(textwrap.dedent(body).strip("\n"), indent).splitlines()
                    return "\n".join(lines[:start] + new + lines[end:]) + "\n"
    raise KeyError(f"{cls}.{method} not found")


def append(source: str, code: str) -> str:
    """Add module-level code at the end of ``source``."""
    return source.rstrip("\n") + "\n\n\n" + textwrap.dedent(code).strip("\n") + "\n"


def handin_tar(source: str, compress: bool = False) -> bytes:
    """A CMU-style handin.tar (``mytorch/``) holding ``source`` as the activation module."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tar:
        for member, text in (
            ("mytorch/__init__.py", ""),
            ("mytorch/nn/__init__.py", ""),
            ("mytorch/nn/activation.py", source),
        ):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def kinks(name: str, kwargs: dict) -> list[float]:
    """Where each activation's derivative jumps (written independently of the table)."""
    if name in ("ReLU", "LeakyReLU", "ELU", "CELU"):
        return [0.0]
    if name == "ReLU6":
        return [0.0, 6.0]
    if name == "Hardswish":
        return [-3.0, 3.0]
    if name == "Softplus":
        return [kwargs.get("threshold", 20.0) / kwargs.get("beta", 1.0)]
    return []


def write_layout(tmp: Path, source: str, layout: str, name: str = "sub") -> Path:
    """Write ``source`` as a submission of the given layout; return the path to grade.

    Layouts: package (dir/mytorch/nn/activation.py), flat (dir/activation.py),
    file (name.py), tar, tgz, targz, zip, zip-folder (zip with an enclosing
    folder), notebook (name.ipynb with the classes split over cells).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    if layout == "package":
        root = tmp / name
        (root / "mytorch" / "nn").mkdir(parents=True)
        (root / "mytorch" / "nn" / "activation.py").write_text(source)
        (root / "mytorch" / "__init__.py").write_text("")
        (root / "mytorch" / "nn" / "__init__.py").write_text("")
        return root
    if layout == "flat":
        root = tmp / name
        root.mkdir()
        (root / "activation.py").write_text(source)
        return root
    if layout == "file":
        path = tmp / f"{name}.py"
        path.write_text(source)
        return path
    if layout in ("tar", "tgz", "targz"):
        suffix = {"tar": ".tar", "tgz": ".tgz", "targz": ".tar.gz"}[layout]
        path = tmp / f"{name}{suffix}"
        path.write_bytes(handin_tar(source, compress=layout != "tar"))
        return path
    if layout in ("zip", "zip-folder"):
        path = tmp / f"{name}.zip"
        prefix = "handin/" if layout == "zip-folder" else ""
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{prefix}mytorch/nn/activation.py", source)
            zf.writestr(f"{prefix}mytorch/__init__.py", "")
        return path
    if layout == "notebook":
        path = tmp / f"{name}.ipynb"
        path.write_text(json.dumps(notebook(source)))
        return path
    raise ValueError(layout)


def notebook(source: str) -> dict:
    """A notebook holding ``source`` split into cells, plus magics and experiments."""
    import nbformat

    tree = ast.parse(source)
    lines = source.splitlines()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Activations"))
    nb.cells.append(nbformat.v4.new_code_cell("%matplotlib inline\n!pip install numpy"))
    for node in tree.body:
        start = (
            node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
        ) - 1
        cell = "\n".join(lines[start : node.end_lineno])
        nb.cells.append(nbformat.v4.new_code_cell(cell))
        if isinstance(node, ast.ClassDef) and node.name == "ReLU":
            # An experiment cell: must not run at grading.
            nb.cells.append(
                nbformat.v4.new_code_cell(
                    "print(ReLU().forward(np.array([-1.0, 2.0])))\nraise SystemExit"
                )
            )
    return nb
