"""The bundles' contents, and the student handout used the way a student uses it.

* every bundle: no solution code; the handout: no hidden case, its files and
  requirements; the platform bundles: every case as data;
* the handout from a fresh unpack: ``make grade``, ``make handin``,
  ``make handin-notebook``, in a path with spaces too;
* the instructor's Makefile: quoted paths, a first run that says what it does.

The platform bundles run the way Gradescope and Autolab run them in
``test_platforms.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import FULL_MARKS
from helpers import REFERENCE_SOURCE, notebook

from autograder.build import bundles, handout, stubs
from autograder.course import cases
from autograder.course.hidden_cases import HIDDEN
from autograder.files import PROJECT_ROOT

ROOT = PROJECT_ROOT
STUBS = stubs.stub_text()


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """Every bundle, built once into a temporary dist/."""
    root = tmp_path_factory.mktemp("dist")
    assert bundles.main(["all", "--dist", str(root)]) == 0
    return root


def archive_members(path: Path) -> dict[str, bytes]:
    """Every regular file in a .tar, .tar.gz or .zip, by name."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def all_bundle_files(dist: Path) -> dict[str, dict[str, bytes]]:
    return {
        "handout": archive_members(dist / "handout.tar.gz"),
        "gradescope": archive_members(dist / "gradescope" / "autograder.zip"),
        "autolab": archive_members(dist / "autolab" / "autograde.tar")
        | {"autograde-Makefile": (dist / "autolab" / "autograde-Makefile").read_bytes()},
    }


# ------------------------------------------------------------------ contents


def test_no_bundle_carries_solution_code(dist):
    lines = stubs.solution_lines(REFERENCE_SOURCE)
    assert len(lines) > 20  # the scan looks for something real
    for bundle, files in all_bundle_files(dist).items():
        for name, data in files.items():
            text = data.decode("utf-8", errors="replace")
            leaked = [line for line in lines if line in text]
            assert not leaked, (bundle, name, leaked[:3])
        assert not any(name.endswith("hidden_cases.py") for name in files), bundle
        assert not any("solutions/" in name for name in files), bundle


def hidden_cases() -> list[cases.Case]:
    return [c for c in cases.build_cases(("public", "hidden")) if c.visibility == "hidden"]


def test_the_handout_carries_no_hidden_case(dist):
    hidden = hidden_cases()
    assert hidden
    files = archive_members(dist / "handout.tar.gz")
    assert not [n for n in files if n.endswith("all_cases.json")]
    texts = {name: data.decode("utf-8", errors="replace") for name, data in files.items()}
    seeds = {spec.seed for specs in HIDDEN.values() for spec in specs}
    for name, text in texts.items():
        for seed in seeds:
            for spelling in (f"(seed {seed},", f'"seed": {seed}', f"seed={seed}"):
                assert spelling not in text, (spelling, name)
    for case in hidden:
        for name, text in texts.items():
            assert case.id not in text, (case.id, name)
            assert case.description not in text, (case.id, name)
            if case.description.startswith("random") and case.Z.dtype.name == "float64":
                # The hidden inputs themselves, as the data files spell numbers.
                first = json.dumps(float(case.Z.ravel()[0]))
                assert len(first) > 12 and first not in text, (case.id, name)
    public_data = texts["handout/autograder/course/data/public_cases.json"]
    assert {r["visibility"] for r in json.loads(public_data)["cases"]} == {"public"}


def test_the_platform_bundles_carry_every_case_as_data(dist):
    for bundle, files in all_bundle_files(dist).items():
        if bundle == "handout":
            continue
        (name,) = [n for n in files if n.endswith("autograder/course/data/all_cases.json")]
        rows = json.loads(files[name])["cases"]
        ids = {r["id"] for r in rows}
        assert {c.id for c in hidden_cases()} <= ids, bundle
        assert {r["visibility"] for r in rows} == {"public", "hidden"}


def test_handout_layout_and_requirements(dist):
    files = archive_members(dist / "handout.tar.gz")
    for rel in bundles.HANDOUT_FILES:
        assert "handout/" + rel in files
    assert files["handout/mytorch/nn/activation.py"].decode() == STUBS
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = [
        line.strip()
        for line in files["handout/requirements.txt"].decode().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert declared == pyproject["project"]["dependencies"]


def test_gradescope_zip_has_its_scripts_at_the_root_and_executable(dist):
    with zipfile.ZipFile(dist / "gradescope" / "autograder.zip") as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for script in ("setup.sh", "run_autograder"):
        assert script in infos
        assert (infos[script].external_attr >> 16) & 0o111
    for name in ("setup.sh", "run_autograder"):
        path = bundles.TEMPLATES / ("gradescope-" + name)
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_archives_are_reproducible(tmp_path, dist):
    assert bundles.main(["all", "--dist", str(tmp_path)]) == 0
    for rel in ("handout.tar.gz", "gradescope/autograder.zip", "autolab/autograde.tar"):
        assert (tmp_path / rel).read_bytes() == (dist / rel).read_bytes(), rel


def test_bundles_refuse_stale_generated_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(handout, "generate", lambda course=None, check=False: [handout.STUB_PATH])
    assert bundles.main(["handout", "--dist", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "out of date" in err and "make handout-files" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the handout, unpacked


def make(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def unpacked(dist, tmp_path):
    with tarfile.open(dist / "handout.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "handout"


@pytest.mark.slow
def test_handout_grades_from_a_fresh_unpack_with_its_own_autograder(unpacked):
    found = subprocess.run(
        [sys.executable, "-c", "import autograder; print(autograder.__file__)"],
        capture_output=True,
        text=True,
        cwd=unpacked,
    ).stdout.strip()
    assert Path(found).resolve() == (unpacked / "autograder" / "__init__.py").resolve()
    result = make("grade", cwd=unpacked)
    assert result.returncode == 0, result.stderr
    assert "Total score" in result.stdout
    assert "Public cases only" in result.stdout
    doc = json.loads(
        subprocess.run(
            [sys.executable, "-m", "autograder", "grade", ".", "--format", "json"],
            capture_output=True,
            text=True,
            cwd=unpacked,
        ).stdout
    )
    assert doc["hidden_graded"] is False
    assert {t["visibility"] for t in doc["tests"]} == {"public"}
    assert doc["score"] == doc["activations"]["Identity"]["score"] > 0


@pytest.mark.slow
def test_handout_make_handin_packs_mytorch_without_caches(unpacked):
    (unpacked / "mytorch" / "nn" / "activation.py").write_text(REFERENCE_SOURCE)
    (unpacked / "mytorch" / "nn" / "__pycache__").mkdir()
    (unpacked / "mytorch" / "nn" / "__pycache__" / "activation.cpython-311.pyc").write_bytes(b"x")
    (unpacked / "mytorch" / "stale.pyc").write_bytes(b"x")
    (unpacked / "mytorch" / ".DS_Store").write_bytes(b"x")
    result = make("handin", cwd=unpacked)
    assert result.returncode == 0, result.stderr
    with tarfile.open(unpacked / "handin.tar") as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert names == ["mytorch/__init__.py", "mytorch/nn/__init__.py", "mytorch/nn/activation.py"]
    graded = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", "handin.tar", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=unpacked,
    )
    doc = json.loads(graded.stdout)
    assert doc["score"] == doc["max_score"] and not doc["hidden_graded"]


@pytest.mark.slow
def test_handout_make_handin_notebook_exports_then_packs(unpacked):
    (unpacked / "activations.ipynb").write_text(json.dumps(notebook(REFERENCE_SOURCE)))
    result = make("handin-notebook", cwd=unpacked)
    assert result.returncode == 0, result.stderr
    with tarfile.open(unpacked / "handin.tar") as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        module = tar.extractfile("mytorch/nn/activation.py").read().decode()
    assert "class Softmax" in module and "raise SystemExit" not in module
    # The previous module is kept, outside the handin.
    assert names == ["mytorch/__init__.py", "mytorch/nn/__init__.py", "mytorch/nn/activation.py"]
    assert (unpacked / "backups" / "activation.py.1").read_text() == STUBS


@pytest.mark.slow
def test_handout_make_handin_leaves_out_backups_of_older_exports(unpacked):
    # An older grader left activation.py.bak next to the module: never packed.
    (unpacked / "mytorch" / "nn" / "activation.py.bak").write_text(STUBS)
    (unpacked / "mytorch" / "nn" / "activation.py~").write_text(STUBS)
    assert make("handin", cwd=unpacked).returncode == 0
    with tarfile.open(unpacked / "handin.tar") as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert names == ["mytorch/__init__.py", "mytorch/nn/__init__.py", "mytorch/nn/activation.py"]


@pytest.mark.slow
def test_handout_make_grade_names_the_folder_and_says_when_to_export(unpacked):
    result = make("grade", cwd=unpacked)
    assert result.returncode == 0, result.stderr
    # `grade .` is named after the folder, not "".
    assert "Autograder report: handout\n" in result.stdout
    assert "make handin-notebook" not in result.stdout
    # Work done in the notebook, not exported yet: the module still holds the stubs.
    notebook_path = unpacked / "activations.ipynb"
    notebook_path.write_text(json.dumps(notebook(REFERENCE_SOURCE)))
    module = unpacked / "mytorch" / "nn" / "activation.py"
    os.utime(module, (1_600_000_000, 1_600_000_000))
    result = make("grade", cwd=unpacked)
    assert result.returncode == 0, result.stderr
    assert "Not implemented yet" in result.stdout
    assert "make handin-notebook" in result.stdout and "grade activations.ipynb" in result.stdout
    # Exported: the module is graded, full marks on the public cases, no reminder.
    assert make("handin-notebook", cwd=unpacked).returncode == 0
    result = make("grade", cwd=unpacked)
    assert "make handin-notebook" not in result.stdout
    assert "Everything passed" in result.stdout


@pytest.mark.slow
def test_handout_works_in_a_path_with_spaces(dist, tmp_path):
    home = tmp_path / "my course work"
    with tarfile.open(dist / "handout.tar.gz") as tar:
        tar.extractall(home, filter="data")
    # A Python whose path has spaces too (a venv in "My Documents", say).
    python = tmp_path / "python with spaces" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    folder = home / "handout"
    (folder / "mytorch" / "nn" / "activation.py").write_text(REFERENCE_SOURCE)
    outputs = {}
    for target in ("grade", "handin"):
        result = subprocess.run(
            ["make", "--no-print-directory", target, f"PYTHON={python}"],
            capture_output=True,
            text=True,
            cwd=folder,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        outputs[target] = result.stdout
    assert "Everything passed" in outputs["grade"]
    assert (folder / "handin.tar").is_file()


def test_handout_offers_the_notebook_requirements_separately(dist):
    files = archive_members(dist / "handout.tar.gz")
    optional = files["handout/requirements-notebook.txt"].decode()
    wanted = {line.split(">")[0].split("=")[0].strip() for line in optional.splitlines()}
    assert {"jupyter", "matplotlib"} <= wanted
    base = files["handout/requirements.txt"].decode()
    assert "jupyter" not in base and "matplotlib" not in base
    readme = files["handout/README.md"].decode()
    assert "pip install -r requirements-notebook.txt" in readme


# ------------------------------------------------------------------ the instructor's Makefile


def top_make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The repository's Makefile, its virtual environment taken as ready (-o)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed-base", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_make_grade_takes_a_submission_path_with_spaces(tmp_path):
    submission = tmp_path / "a path with spaces" / "alice smith.py"
    submission.parent.mkdir()
    submission.write_text(REFERENCE_SOURCE)
    result = top_make("grade", f"SUBMISSION={submission}", "FORMAT=json", f"PY={sys.executable}")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["submission"] == "alice smith" and doc["score"] == FULL_MARKS


def test_first_make_grade_says_what_it_installs(tmp_path):
    # A stand-in Python: `-m venv DIR` makes DIR/bin/python (itself); anything else
    # is echoed, so the order of what make prints can be checked.
    fake = tmp_path / "python3"
    fake.write_text(
        '#!/bin/sh\nif [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python";'
        ' exit 0; fi\necho "ran: $*"\n'
    )
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "grade", f"VENV={venv}", f"PYTHON={fake}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("Setting up") < out.index("ran: -m pip install") < out.index("is ready")
    assert out.index("is ready") < out.index("ran: -m autograder grade")
    # The second run installs nothing and says nothing about it.
    again = subprocess.run(
        ["make", "--no-print-directory", "grade", f"VENV={venv}", f"PYTHON={fake}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "Setting up" not in again.stdout and "ran: -m autograder grade" in again.stdout


# ------------------------------------------------------------------ what the README promises


@pytest.mark.slow
def test_readme_says_how_many_tests_run_with_and_without_pytorch():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"about (\d+) tests with PyTorch installed[^.]*?about (\d+) without", readme)
    assert match, "the README gives both test counts"
    with_torch, without = int(match.group(1)), int(match.group(2))
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    ).stdout
    ids = [line for line in collected.splitlines() if "::" in line]
    torch_ids = [i for i in ids if i.startswith("tests/test_reference_torch.py")]
    # Counts drift as tests are added: the README's round figures hold within 20 %.
    assert abs(len(ids) - len(torch_ids) - without) <= 0.2 * without
    if torch_ids:  # PyTorch installed: the full count can be checked too
        assert abs(len(ids) - with_torch) <= 0.2 * with_torch


# ------------------------------------------------------------------ a course of one's own


def _repository_copy(target: Path) -> Path:
    """A copy of the instructor's repository (what a clone holds) to run commands in."""
    import shutil

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "cache", "all_cases.json")
    for name in ("autograder", "solutions", "handout"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    return target


def _python(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_REFERENCE"}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
        **kwargs,
    )


@pytest.mark.slow
def test_a_course_file_drives_the_handout_and_every_bundle(tmp_path):
    from autograder.course import course_file as course

    repo = _repository_copy(tmp_path / "repo")
    f25 = course.load("cmu-f25")
    assert _python(["-m", "autograder", "course", "init", "cmu-f25"], repo).returncode == 0
    # The committed handout is full's: the drift check says so, the bundles refuse.
    stale = _python(["-m", "autograder", "handout", "--check"], repo)
    assert stale.returncode == 1 and "activation.py" in stale.stdout
    refused = _python(["-m", "autograder.build.bundles", "handout", "--dist", "dist"], repo)
    assert refused.returncode == 2 and "make handout-files" in refused.stderr
    assert _python(["-m", "autograder", "handout"], repo).returncode == 0
    assert _python(["-m", "autograder", "handout", "--check"], repo).returncode == 0
    # Stubs and notebook hold the course's classes only; public data its public cases.
    stub = (repo / "handout" / "mytorch" / "nn" / "activation.py").read_text()
    assert re.findall(r"^class (\w+)", stub, re.M) == list(f25.names)
    nb = json.loads((repo / "handout" / "activations.ipynb").read_text())
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "class Softplus" not in code and "class Swish" in code
    data = json.loads((repo / "autograder" / "course" / "data" / "public_cases.json").read_text())
    assert {r["id"] for r in data["cases"]} == set(f25.case_ids("public"))
    assert (
        repo / "autograder" / "course" / "presets" / "full.toml"
    ).read_text() == course.full_preset_text()
    built = _python(["-m", "autograder.build.bundles", "all", "--dist", "dist"], repo)
    assert built.returncode == 0, built.stderr
    dist = repo / "dist"
    files = all_bundle_files(dist)
    # Each bundle ships the course where its grader finds it.
    assert files["handout"]["handout/course.toml"].decode() == f25.text
    assert files["gradescope"]["course.toml"].decode() == f25.text
    assert files["autolab"]["autograde/course.toml"].decode() == f25.text
    platform = json.loads(files["autolab"]["autograde/platform.json"])
    assert platform["autolab_problems"] == ["Activation"]
    zero = files["autolab"]["autograde-Makefile"].decode()
    assert '{"scores": {"Activation": 0.0}, "scoreboard": [0.0]}' in zero
    rows = json.loads(files["gradescope"]["autograder/course/data/all_cases.json"])["cases"]
    assert {r["id"] for r in rows} == set(f25.case_ids("public")) | set(f25.case_ids("hidden"))
    # The student's copy grades the course's public cases, a correct Fall 2025 handin fully.
    unpacked = tmp_path / "student"
    with tarfile.open(dist / "handout.tar.gz") as tar:
        tar.extractall(unpacked, filter="data")
    handin = ROOT / "tests" / "fixtures" / "real" / "f25_lookalike_swish_prints.py"
    target = unpacked / "handout" / "mytorch" / "nn" / "activation.py"
    target.write_text(handin.read_text())
    graded = _python(["-m", "autograder", "grade", ".", "--format", "json"], unpacked / "handout")
    doc = json.loads(graded.stdout)
    assert doc["course"]["name"] == "cmu-f25" and not doc["hidden_graded"]
    assert (
        doc["score"]
        == doc["max_score"]
        == sum(
            a.test_points(p, "public") + sum(r.points for r in a.rules) * (p == "forward")
            for a in f25.rows()
            for p in a.points
        )
    )


def test_a_student_bundle_never_ships_a_hidden_case_id_of_the_course(tmp_path):
    from autograder.course import course_file as course

    text = (
        course.preset_text("cmu-f23").replace(
            'leave_out = ["large |Z|"]',
            'leave_out = ["large |Z|"]\nexclude = ["Tanh-p2", "Tanh-h1"]',
            1,
        )
        + "# Tanh-h2 is fine as it is\n"
    )
    mine = course.parse(text)
    student = bundles.course_file(mine, student=True).decode()
    assert "Tanh-h1" not in student and "Tanh-h2" not in student and "Tanh-p2" in student
    # It grades the public cases exactly as the instructor's course does.
    again = course.parse(student)
    assert again.public == mine.public and again.rows() == mine.rows()
    assert again.credit == mine.credit and again.autolab_problems() == mine.autolab_problems()
    # The platforms (never seen by students) get the file as written.
    assert bundles.course_file(mine, student=False).decode() == text
    files = {"handout/course.toml": (student.encode(), 0o644)}
    bundles.check_contents(files, student=True)  # passes: nothing hidden
    with pytest.raises(bundles.BundleError, match="hidden case"):
        bundles.check_contents({"handout/course.toml": (text.encode(), 0o644)}, student=True)


def test_bundles_refuse_an_invalid_course_in_one_line(tmp_path, capsys):
    bad = tmp_path / "course.toml"
    bad.write_text("[course]\ntotal = 1\n[activations.Relu]\nforward = { public = 1 }\n")
    dist = tmp_path / "dist"
    assert bundles.main(["all", "--dist", str(dist), "--course", str(bad)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "activations.Relu" in line and "did you mean ReLU?" in line
    assert not dist.exists()
