"""Generate what students get from the one source of truth.

Derived files, all committed so they can be read, all drift-checked; all but
the last follow the course in effect (its classes, points and public cases):

* ``handout/mytorch/nn/activation.py``: the stubs (reference minus solutions);
* ``autograder/course/data/public_cases.json``: public inputs and expected outputs,
  and the outputs of the catalogued mistakes (``mistakes.py``) on them;
* ``autograder/course/data/plot_reference.json``: reference curves for plots;
* ``handout/activations.ipynb``: the notebook handout (``notebook_build.py``);
* ``autograder/course/presets/full.toml``: the ``full`` preset, from the table.

``autograder handout`` writes them; ``autograder handout --check`` reports
the ones that differ from what would be written now (CI runs it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.course import cases as cases_mod
from autograder.course import course_file, reference
from autograder import files
from autograder.build import stubs
from autograder.files import write_atomic

if TYPE_CHECKING:
    from autograder.course.course_file import Course

ROOT = files.PROJECT_ROOT
HANDOUT = ROOT / "handout"
STUB_PATH = HANDOUT / "mytorch" / "nn" / "activation.py"
NOTEBOOK_PATH = HANDOUT / "activations.ipynb"
FULL_PRESET = files.PACKAGE_DIR / "course" / "presets" / "full.toml"


def public_data_text(course: Course | None = None) -> str:
    """The public case data file: the course's public inputs, expected outputs, and the
    catalogued mistakes' outputs on them (default: the course in effect)."""
    course = course or course_file.in_effect()
    module = reference.load_module(files.REFERENCE_PATH)
    cases = reference.attach_expected(module, cases_mod.build_cases(("public",), course))
    # The catalogue's outputs travel as data: mistakes.py itself stays with the instructor.
    from autograder.judge import mistakes

    mistakes.attach(cases, files.REFERENCE_PATH.read_text(encoding="utf-8"))
    return cases_mod.dumps_case_data(cases)


def generated_files(course: Course | None = None) -> dict[Path, Callable[[], str]]:
    """Every generated file and the function that produces its text for ``course``
    (default: the course in effect). The ``full`` preset comes from the table whatever
    the course.
    """
    course = course or course_file.in_effect()
    from autograder.course import course_file as course_mod
    from autograder.build import notebook_build
    from autograder.report import plots

    return {
        STUB_PATH: lambda: stubs.stub_text(course),
        cases_mod.PUBLIC_DATA: lambda: public_data_text(course),
        plots.PLOT_DATA: lambda: plots.reference_data_text(course),
        NOTEBOOK_PATH: lambda: notebook_build.notebook_text(course),
        FULL_PRESET: course_mod.full_preset_text,
    }


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
