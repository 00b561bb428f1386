"""Generate what students get from the one source of truth.

Derived files, all committed so they can be read, all drift-checked; all but
the last follow the course in effect (its classes, points and public cases):

* ``handout/mytorch/nn/activation.py``: the stubs (reference minus solutions);
* ``autograder/data/public_cases.json``: public inputs and expected outputs,
  and the outputs of the catalogued mistakes (``mistakes.py``) on them;
* ``autograder/data/plot_reference.json``: reference curves for plots;
* ``handout/activations.ipynb``: the notebook handout (``notebook_build.py``);
* ``autograder/presets/full.toml``: the ``full`` preset, from the table.

``autograder handout`` writes them; ``autograder handout --check`` reports
the ones that differ from what would be written now (CI runs it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autograder import cases as cases_mod
from autograder import reference, stubs

if TYPE_CHECKING:
    from autograder.course import Course

ROOT = reference.PROJECT_ROOT
HANDOUT = ROOT / "handout"
STUB_PATH = HANDOUT / "mytorch" / "nn" / "activation.py"
NOTEBOOK_PATH = HANDOUT / "activations.ipynb"
FULL_PRESET = Path(__file__).resolve().parent / "presets" / "full.toml"


def in_effect() -> Course:
    """The course in effect in this repository: its course.toml, else ``full``."""
    from autograder import course

    return course.find_default(ROOT)


def stub_text(course: Course | None = None) -> str:
    """The student stubs of the course's classes (default: the course in effect)."""
    course = course or in_effect()
    source = reference.REFERENCE_PATH.read_text(encoding="utf-8")
    return stubs.strip_solutions(stubs.keep_classes(source, course.names))


def public_data_text(course: Course | None = None) -> str:
    """The public case data file: the course's public inputs, expected outputs, and the
    catalogued mistakes' outputs on them (default: the course in effect)."""
    course = course or in_effect()
    module = reference.load_module(reference.REFERENCE_PATH)
    cases = reference.attach_expected(module, cases_mod.build_cases(("public",), course))
    # The catalogue's outputs travel as data: mistakes.py itself stays with the instructor.
    from autograder import mistakes

    mistakes.attach(cases, reference.REFERENCE_PATH.read_text(encoding="utf-8"))
    return cases_mod.dumps_case_data(cases)


def generated_files(course: Course | None = None) -> dict[Path, Callable[[], str]]:
    """Every generated file and the function that produces its text for ``course``
    (default: the course in effect). The ``full`` preset comes from the table whatever
    the course.
    """
    course = course or in_effect()
    from autograder import course as course_mod
    from autograder import notebook_build, plots

    return {
        STUB_PATH: lambda: stub_text(course),
        cases_mod.PUBLIC_DATA: lambda: public_data_text(course),
        plots.PLOT_DATA: lambda: plots.reference_data_text(course),
        NOTEBOOK_PATH: lambda: notebook_build.notebook_text(course),
        FULL_PRESET: course_mod.full_preset_text,
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


def generate(course: Course | None = None, check: bool = False) -> list[Path]:
    """Write the generated files of ``course`` (default: the course in effect), or with
    ``check`` only compare.

    Returns the files that were out of date.
    """
    stale = []
    for path, make in generated_files(course).items():
        text = make()
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not check:
                write_atomic(path, text)
    return stale
