"""Turn a Jupyter notebook (or the cells a kernel ran) into the module the worker imports.

Read with nbformat. Code cells are joined in order, except cells tagged
``autograder-skip`` (the notebook handout's plot and check cells). IPython
magics (``%...``, ``%%...``) and shell lines (``!...``) are dropped, never run.
Of what remains, only the top-level definitions are kept: imports,
functions, classes and assignments. Experiments such as
``print(ReLU().forward(Z))`` stay in the notebook and do not run at grading.

A notebook comes from a student, so reading it is bounded: the number of
cells and the size of the code are capped before nbformat validates the
notebook or Python parses a cell, and a cell the parser cannot handle (nested
too deeply) refuses the notebook with one line.
"""

from __future__ import annotations

import ast
import json
import re
import warnings

SKIP_TAG = "autograder-skip"
KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
# nbformat validates every cell (about 60 µs each); a real notebook has tens of cells.
MAX_CELLS = 2000
# The code of all cells together; parsing it costs about 600 bytes of memory per byte.
MAX_CODE_BYTES = 256 << 10


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


def _count_cells(text: str) -> int:
    """How many cells a notebook's JSON holds (version 4, or version 3's worksheets)."""
    nb = json.loads(text)
    if not isinstance(nb, dict):
        return 0
    cells = nb.get("cells")
    count = len(cells) if isinstance(cells, list) else 0
    worksheets = nb.get("worksheets")
    if isinstance(worksheets, list):
        for sheet in worksheets:
            inner = sheet.get("cells") if isinstance(sheet, dict) else None
            count += len(inner) if isinstance(inner, list) else 0
    return count


def _unreadable(name: str, why: str) -> NotebookError:
    return NotebookError(f"{name} is not a readable Jupyter notebook: {why[:160]}")


def code_cells(data: bytes, name: str = "notebook") -> list[str]:
    """The source of every gradable code cell, magics removed."""
    import nbformat

    try:
        text = data.decode("utf-8")
        # Counted before nbformat validates: its cost grows with every cell.
        count = _count_cells(text)
        if count > MAX_CELLS:
            raise NotebookError(f"{name} holds {count} cells; the limit is {MAX_CELLS}")
        with warnings.catch_warnings():
            # Old or hand-made notebooks lack cell ids; that is no reason to refuse them.
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except NotebookError:
        raise
    except Exception as exc:  # nbformat raises several unrelated types; also RecursionError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _unreadable(name, first) from None
    cells = []
    for cell in nb.get("cells") or []:
        # nbformat does not always refuse a notebook its schema forbids: check each type.
        metadata = cell.get("metadata") if isinstance(cell, dict) else None
        tags = metadata.get("tags", []) if isinstance(metadata, dict) else None
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if not isinstance(tags, list) or not isinstance(source, str):
            raise _unreadable(name, "a cell is not shaped as the notebook format says")
        if cell.get("cell_type") != "code" or SKIP_TAG in tags:
            continue
        cells.append(_drop_magics(source))
    size = sum(len(cell.encode("utf-8", "replace")) for cell in cells)
    if size > MAX_CODE_BYTES:
        raise NotebookError(
            f"the code cells of {name} hold {size} bytes; the limit is {MAX_CODE_BYTES}"
        )
    for number, cell in enumerate(cells, start=1):
        if "\0" in cell:
            raise NotebookError(f"code cell {number} of {name} holds a NUL character")
    return cells


# Lines as Python's parser counts them: \r\n, \r or \n end a line (a form feed does not).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _segments(source: str, nodes: list[ast.stmt]) -> list[str]:
    """The source text of each node, like ``ast.get_source_segment``.

    That function splits the whole source again for every node, which is
    quadratic in a cell with many statements; this splits it once.
    """
    lines = [line.encode() for line in _LINE.findall(source)]
    found = []
    for node in nodes:
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        start, end = node.col_offset, node.end_col_offset
        if first == last:
            text = lines[first][start:end]
        else:
            text = lines[first][start:] + b"".join(lines[first + 1 : last]) + lines[last][:end]
        found.append(text.decode())
    return found


def _imports_autograder(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "autograder" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "autograder"
    return False


def module_from_cells(cells: list[str], name: str, ran: bool = False) -> str:
    """The Python module built from the definitions of ``cells``, in order.

    ``ran``: the cells are what a kernel has run (the notebook's check cells),
    not a saved notebook's. A cell that does not parse then never ran, so it
    is skipped, and imports of the autograder (the setup cell) are left out:
    the handin must not need it. In a saved notebook such a cell is kept as
    is, so that importing the module reports the syntax error and its line.
    """
    label = "input" if ran else "code cell"
    header = "the cells run in the notebook's kernel" if ran else name
    parts = [f"# Built by the autograder from {header}: definitions only.\n"]
    for number, raw in enumerate(cells, start=1):
        source = _drop_magics(raw)  # idempotent: a saved notebook's cells come without them
        try:
            tree = ast.parse(source)
        except SyntaxError:
            if not ran:
                parts.append(f"# --- {label} {number}\n{source}\n")
            continue
        except (RecursionError, MemoryError):
            # Python's parser gives up on deeply nested code in these two ways.
            raise NotebookError(
                f"{label} {number} of {name} is nested too deeply to read"
            ) from None
        nodes = [
            node
            for node in tree.body
            if isinstance(node, KEPT) and not (ran and _imports_autograder(node))
        ]
        kept = [k for k in _segments(source, nodes) if k]
        if kept:
            parts.append(f"# --- {label} {number}\n" + "\n\n".join(kept) + "\n")
    return "\n".join(parts)


def notebook_to_module(data: bytes, name: str = "notebook") -> str:
    """The Python module built from a saved notebook's definitions (:class:`NotebookError`
    with one line if the notebook cannot be read)."""
    return module_from_cells(code_cells(data, name), name)
