"""The package's layout: its folders, their layering and the keys that must see all of it.

The layering itself is checked by ``lint-imports`` in ``make test``; the tests
here make sure those contracts can fail (each break the layout forbids, put
into a copy of the package, is caught), that the worker loads alone, and that
the caches see every file of every folder.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import batch, engine, files
from autograder.isolation import sandbox
from autograder.isolation.worker import BOOTSTRAP

FOLDERS = ("course", "isolation", "judge", "report", "build", "submission")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy_package(tmp_path: Path) -> Path:
    shutil.copytree(
        files.PACKAGE_DIR, tmp_path / "autograder", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(files.PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_folder_says_what_it_holds_and_what_it_may_import():
    for folder in FOLDERS:
        doc = ast.get_docstring(ast.parse((files.PACKAGE_DIR / folder / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), folder
        listed = {
            p.name
            for p in (files.PACKAGE_DIR / folder).iterdir()
            if p.suffix == ".py" and p.name != "__init__.py"
        }
        assert all(f"``{name}``" in doc for name in listed), (folder, listed)


# Each break the layout forbids, as (file, line added, words of lint-imports' complaint).
BREAKS = {
    "report imports the engine": (
        "report/record.py",
        "from autograder import engine",
        "autograder.report is not allowed to import autograder.engine",
    ),
    "report imports the checks": (
        "report/render.py",
        "from autograder.judge import checks",
        "autograder.report is not allowed to import autograder.judge",
    ),
    "submission imports isolation": (
        "submission/handin.py",
        "from autograder.isolation import runner",
        "autograder.submission is not allowed to import autograder.isolation",
    ),
    "course imports above it": (
        "course/cases.py",
        "from autograder.report import record",
        "autograder.course is not allowed to import autograder.report",
    ),
    "the worker imports the package": (
        "isolation/worker/frames.py",
        "from autograder import files",
        "autograder.isolation.worker is not allowed to import autograder.files",
    ),
    "judging drives the worker": (
        "judge/feedback.py",
        "from autograder.isolation.runner import Phase",
        "autograder.judge is not allowed to import autograder.isolation.runner",
    ),
    "two modules of a folder import each other": (
        "submission/notebook_source.py",
        "from autograder.submission import handin",
        "No cycles are allowed in autograder.submission",
    ),
}


@pytest.mark.slow
@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed here")
@pytest.mark.parametrize("name", list(BREAKS))
def test_the_import_contracts_catch_each_break(tmp_path, name):
    root = _copy_package(tmp_path)
    honest = _lint_imports(root)
    assert honest.returncode == 0, honest.stdout[-2000:]
    path, line, complaint = BREAKS[name]
    target = root / "autograder" / path
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    broken = _lint_imports(root)
    assert broken.returncode != 0
    assert complaint in broken.stdout, broken.stdout[-2000:]


def test_the_worker_folder_loads_alone_and_runs_no_package_code(tmp_path):
    # What the sandbox does: mount the worker folder alone and load it under a private name.
    alone = tmp_path / "w"
    shutil.copytree(sandbox.worker_dir(), alone, ignore=shutil.ignore_patterns("__pycache__"))
    modules = sorted(p.stem for p in alone.glob("*.py") if p.name != "__init__.py")
    program = BOOTSTRAP.split("from _autograder_worker.zygote")[0] + (
        "import importlib, json\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('_autograder_worker.' + name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('autograder', '_autograder_worker'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", program, str(alone)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(ast.literal_eval(result.stdout.strip()))
    assert loaded == {"_autograder_worker"} | {f"_autograder_worker.{m}" for m in modules}


def test_the_expected_value_cache_key_names_files_that_exist():
    for name in engine.CACHE_KEY_FILES:
        assert (files.PACKAGE_DIR / name).is_file(), name


def test_the_expected_value_cache_key_refuses_a_missing_file(monkeypatch):
    # A key that skipped it would serve values computed from other files.
    monkeypatch.setattr(engine, "CACHE_KEY_FILES", (*engine.CACHE_KEY_FILES, "course/gone.py"))
    with pytest.raises(engine.GraderError, match=re.escape("course/gone.py")):
        engine._cache_key()


def test_the_package_files_come_from_every_folder():
    found = {p.relative_to(files.PACKAGE_DIR).as_posix() for p in files.package_files("*.py")}
    assert {"cli.py", "judge/compare.py", "isolation/worker/child.py"} <= found
    assert not any("__pycache__" in name for name in found)


def test_the_batch_key_changes_with_a_file_in_a_subfolder(grader, tmp_path, monkeypatch):
    root = _copy_package(tmp_path)
    monkeypatch.setattr(files, "PACKAGE_DIR", root / "autograder")
    before = batch.grader_identity(grader)
    assert batch.grader_identity(grader) == before
    ini = root / "autograder" / "judge" / "checks.ini"
    ini.write_text(ini.read_text() + "\n")
    after_ini = batch.grader_identity(grader)
    compare = root / "autograder" / "judge" / "compare.py"
    compare.write_text(compare.read_text() + "\n# changed\n")
    assert len({before, after_ini, batch.grader_identity(grader)}) == 3
