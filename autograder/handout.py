"""Generate what students get from the one source of truth.

Derived files, all committed so they can be read, all drift-checked:

* ``handout/mytorch/nn/activation.py``: the stubs (reference minus solutions);
* ``autograder/data/public_cases.json``: public inputs and expected outputs,
  and the outputs of the catalogued mistakes (``mistakes.py``) on them;
* ``autograder/data/plot_reference.json``: reference curves for plots;
* ``handout/activations.ipynb``: the notebook handout (``notebook_build.py``).

``autograder handout`` writes them; ``autograder handout --check`` reports
the ones that differ from what would be written now (CI runs it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from autograder import cases as cases_mod
from autograder import reference, stubs

ROOT = reference.PROJECT_ROOT
HANDOUT = ROOT / "handout"
STUB_PATH = HANDOUT / "mytorch" / "nn" / "activation.py"
NOTEBOOK_PATH = HANDOUT / "activations.ipynb"


def stub_text() -> str:
    """The student stubs, generated from the reference."""
    return stubs.strip_solutions(reference.REFERENCE_PATH.read_text(encoding="utf-8"))


def public_data_text() -> str:
    """The public case data file: inputs, expected outputs, catalogued mistakes."""
    module = reference.load_module(reference.REFERENCE_PATH)
    cases = reference.attach_expected(module, cases_mod.build_cases(("public",)))
    # The catalogue's outputs travel as data: mistakes.py itself stays with the instructor.
    from autograder import mistakes

    mistakes.attach(cases, reference.REFERENCE_PATH.read_text(encoding="utf-8"))
    return cases_mod.dumps_case_data(cases)


def generated_files() -> dict[Path, Callable[[], str]]:
    """Every generated file and the function that produces its text."""
    from autograder import notebook_build, plots

    return {
        STUB_PATH: stub_text,
        cases_mod.PUBLIC_DATA: public_data_text,
        plots.PLOT_DATA: plots.reference_data_text,
        NOTEBOOK_PATH: notebook_build.notebook_text,
    }


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` so that no reader ever sees a partial file.

    ``mode``: the file's permissions (default: the usual ones, 0666 minus the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        if mode is None:
            # mkstemp creates 0600; give the file the usual permissions.
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(check: bool = False) -> list[Path]:
    """Write the generated files (or, with ``check``, only compare).

    Returns the files that were out of date.
    """
    stale = []
    for path, make in generated_files().items():
        text = make()
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                write_atomic(path, text)
    return stale
