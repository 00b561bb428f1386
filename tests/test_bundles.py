"""The bundles, built and run the way each platform runs them.

* the student handout: no solution code, no hidden case; works from a fresh
  unpack (``make grade``, ``make handin``, ``make handin-notebook``);
* Gradescope: its /autograder layout emulated in a private mount namespace;
* Autolab: its Makefile run in an empty directory with a handin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from helpers import REFERENCE_SOURCE, append, handin_tar, notebook, replace_method

from autograder import assignment, bundles, cases, handout, reference, stubs
from autograder.hidden_cases import HIDDEN

ROOT = reference.PROJECT_ROOT
STUBS = handout.stub_text()
WRONG_RELU = replace_method(
    REFERENCE_SOURCE, "ReLU", "forward", "self.A = np.zeros_like(Z)\nreturn self.A"
)
SECRET = "SECRET-STUDENT-PRINT-5f3a"


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
    public_data = texts["handout/autograder/data/public_cases.json"]
    assert {r["visibility"] for r in json.loads(public_data)["cases"]} == {"public"}


def test_the_platform_bundles_carry_every_case_as_data(dist):
    for bundle, files in all_bundle_files(dist).items():
        if bundle == "handout":
            continue
        (name,) = [n for n in files if n.endswith("autograder/data/all_cases.json")]
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
    monkeypatch.setattr(handout, "generate", lambda check=False: [handout.STUB_PATH])
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
        module = tar.extractfile("mytorch/nn/activation.py").read().decode()
    assert "class Softmax" in module and "raise SystemExit" not in module
    assert (unpacked / "mytorch" / "nn" / "activation.py.bak").read_text() == STUBS


# ------------------------------------------------------------------ Gradescope, emulated


def _unshare_works() -> str:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to emulate Gradescope's /autograder with a private mount namespace"
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        return "needs unshare and chroot (util-linux, coreutils)"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        return f"unshare -m does not work here: {probe.stderr.decode().strip()[:100]}"
    return ""


UNSHARE_PROBLEM = _unshare_works()
needs_unshare = pytest.mark.skipif(bool(UNSHARE_PROBLEM), reason=UNSHARE_PROBLEM or "ok")

# Inside a private mount namespace: a tmpfs root holding the machine's top-level
# directories (bind mounts) and Gradescope's /autograder, then chroot into it.
GRADESCOPE_SCRIPT = """
set -eu
mount -t tmpfs tmpfs "$NEWROOT"
for entry in /*; do
    name=$(basename "$entry")
    [ "$name" = autograder ] && continue
    if [ -L "$entry" ]; then
        ln -s "$(readlink "$entry")" "$NEWROOT/$name"
    elif [ -d "$entry" ]; then
        mkdir "$NEWROOT/$name"
        mount --rbind "$entry" "$NEWROOT/$name"
    fi
done
mkdir -p "$NEWROOT/autograder/source" "$NEWROOT/autograder/submission" "$NEWROOT/autograder/results"
mount --bind "$SOURCE" "$NEWROOT/autograder/source"
mount --bind "$SUBMISSION" "$NEWROOT/autograder/submission"
mount --bind "$RESULTS" "$NEWROOT/autograder/results"
cp "$SOURCE/run_autograder" "$NEWROOT/autograder/run_autograder"
exec chroot "$NEWROOT" /bin/sh -c 'cd /autograder && ./run_autograder'
"""


def run_gradescope(dist: Path, tmp_path: Path, upload: dict[str, bytes], timeout: float = 300):
    """Run the Gradescope bundle on ``upload`` (relative path -> bytes) in its own /autograder."""
    source, submission, results, newroot = (
        tmp_path / n for n in ("source", "submission", "results", "newroot")
    )
    for d in (source, submission, results, newroot):
        d.mkdir(parents=True)
    with zipfile.ZipFile(dist / "gradescope" / "autograder.zip") as zf:
        for info in zf.infolist():
            zf.extract(info, source)
            os.chmod(source / info.filename, (info.external_attr >> 16) & 0o777)
    for rel, data in upload.items():
        (submission / rel).parent.mkdir(parents=True, exist_ok=True)
        (submission / rel).write_bytes(data)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AUTOGRADER_PYTHON": sys.executable,
        "NEWROOT": str(newroot),
        "SOURCE": str(source),
        "SUBMISSION": str(submission),
        "RESULTS": str(results),
        **{k: v for k, v in os.environ.items() if k == "AUTOGRADER_PLATFORM_TIMEOUT"},
    }
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", GRADESCOPE_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in results.iterdir()) == ["results.json"]
    # Nothing it started outlives it (a hung student process least of all).
    deadline = time.monotonic() + 5
    while survivors(newroot) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors(newroot)
    return json.loads((results / "results.json").read_text()), proc.stdout


def survivors(newroot: Path) -> list[int]:
    """Processes still running inside the emulated Gradescope root."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root") == str(newroot):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def assert_gradescope_valid(doc: dict) -> None:
    assert isinstance(doc["score"], int | float)
    assert doc.get("stdout_visibility") == "hidden"
    for test in doc["tests"]:
        assert {"name", "score", "max_score", "status", "visibility"} <= set(test)
        assert test["visibility"] in ("visible", "after_published")


@needs_unshare
@pytest.mark.slow
def test_gradescope_grades_public_and_hidden_cases(dist, tmp_path):
    doc, stdout = run_gradescope(dist, tmp_path, {"handin.tar": handin_tar(REFERENCE_SOURCE)})
    assert_gradescope_valid(doc)
    assert doc["score"] == 100.0
    hidden = [t for t in doc["tests"] if t["visibility"] == "after_published"]
    assert hidden and all(t["status"] == "passed" for t in hidden)
    assert "graded: 100 points" in stdout


@needs_unshare
@pytest.mark.slow
def test_gradescope_accepts_uploaded_files_and_hides_student_output(dist, tmp_path):
    noisy = replace_method(
        WRONG_RELU,
        "Sigmoid",
        "forward",
        f"print({SECRET!r})\nself.A = 1 / (1 + np.exp(-Z))\nreturn self.A",
    )
    noisy = append(noisy, f"print({SECRET!r})")
    upload = {
        "mytorch/__init__.py": b"",
        "mytorch/nn/__init__.py": b"",
        "mytorch/nn/activation.py": noisy.encode(),
    }
    doc, stdout = run_gradescope(dist, tmp_path, upload)
    assert_gradescope_valid(doc)
    assert 0 < doc["score"] < 100.0
    assert SECRET not in json.dumps(doc) and SECRET not in stdout


@needs_unshare
@pytest.mark.slow
def test_gradescope_keeps_the_expected_values_out_of_the_students_reach(dist, tmp_path):
    # Look the expected outputs up in the bundle's data file instead of computing them.
    cheat = replace_method(
        WRONG_RELU,
        "ReLU",
        "forward",
        """
        import json, pathlib
        try:
            path = pathlib.Path("/autograder/source/autograder/data/all_cases.json")
            for row in json.loads(path.read_text())["cases"]:
                if row["activation"] == "ReLU" and row["Z"]["shape"] == list(Z.shape):
                    z = np.array([float(v) for v in row["Z"]["data"]]).reshape(Z.shape)
                    if np.array_equal(z, Z):
                        a = row["expected"]["A"]
                        self.A = np.array([float(v) for v in a["data"]]).reshape(Z.shape)
                        return self.A
        except OSError:
            pass
        self.A = np.zeros_like(Z)
        return self.A
        """,
    )
    cheater, _ = run_gradescope(dist, tmp_path / "a", {"activation.py": cheat.encode()})
    honest, _ = run_gradescope(dist, tmp_path / "b", {"activation.py": WRONG_RELU.encode()})
    assert cheater["score"] == honest["score"] < 100.0


@needs_unshare
@pytest.mark.slow
@pytest.mark.parametrize(
    "upload, reason",
    [
        ({}, "no activation file found"),
        ({"handin.tar": b"garbage" * 50}, "cannot unpack"),
    ],
    ids=["empty-upload", "broken-archive"],
)
def test_gradescope_unusable_uploads_get_a_valid_zero(dist, tmp_path, upload, reason):
    doc, _ = run_gradescope(dist, tmp_path, upload)
    assert_gradescope_valid(doc)
    assert doc["score"] == 0 and reason in doc["output"]


@needs_unshare
@pytest.mark.slow
def test_gradescope_crash_and_hang_still_give_valid_results(dist, tmp_path, monkeypatch):
    crash = append(REFERENCE_SOURCE, "import os\nos._exit(3)")
    doc, _ = run_gradescope(dist, tmp_path / "crash", {"activation.py": crash.encode()})
    assert_gradescope_valid(doc)
    assert doc["score"] == 0 and doc["tests"]  # graded: every case failed
    # A hang longer than the platform's limit (shortened here): score 0 and the reason.
    monkeypatch.setenv("AUTOGRADER_PLATFORM_TIMEOUT", "3")
    hang = append(REFERENCE_SOURCE, "while True:\n    pass")
    doc, _ = run_gradescope(dist, tmp_path / "hang", {"activation.py": hang.encode()}, timeout=60)
    assert_gradescope_valid(doc)
    assert doc["score"] == 0 and "did not finish within 3 s" in doc["output"]


# ------------------------------------------------------------------ Autolab


def run_autolab(dist: Path, tmp_path: Path, handin: bytes | None, name: str = "handin.tar"):
    """Autolab's way: handin, autograde.tar and the Makefile in an empty directory; `make`."""
    work = tmp_path / "autolab"
    work.mkdir()
    shutil.copy(dist / "autolab" / "autograde.tar", work / "autograde.tar")
    shutil.copy(dist / "autolab" / "autograde-Makefile", work / "Makefile")
    if handin is not None:
        (work / name).write_bytes(handin)
    result = make(cwd=work)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip("\n").splitlines()
    last = json.loads(lines[-1])
    assert set(last["scores"]) == {a.name for a in assignment.ACTIVATIONS}
    return last, result.stdout


@pytest.mark.slow
def test_autolab_scores_one_problem_per_activation(dist, tmp_path):
    last, stdout = run_autolab(dist, tmp_path, handin_tar(REFERENCE_SOURCE))
    assert sum(last["scores"].values()) == 100.0 and last["scoreboard"] == [100.0]
    assert "Total score" in stdout


@pytest.mark.slow
def test_autolab_last_line_cannot_be_forged_by_the_student(dist, tmp_path):
    fake = json.dumps({"scores": {a.name: 99 for a in assignment.ACTIVATIONS}, "scoreboard": [999]})
    forger = append(
        WRONG_RELU,
        f"""
        import atexit, os, sys
        print({fake!r})
        sys.stdout.write({fake!r})  # no newline: glued to whatever comes next
        atexit.register(lambda: os.write(1, ({fake!r} + "\\n").encode()))
        """,
    )
    last, _ = run_autolab(dist, tmp_path, handin_tar(forger))
    assert last["scores"]["ReLU"] == 0 and last["scoreboard"] != [999]
    assert 0 < sum(last["scores"].values()) < 100.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "handin, name, reason",
    [
        (b"garbage" * 50, "handin.tar", "cannot unpack"),
        (None, "handin.tar", "no handin file"),
        (handin_tar(textwrap.dedent("x = 1\n")), "handin.tar", "class Identity was not found"),
    ],
    ids=["broken-archive", "missing", "no-classes"],
)
def test_autolab_a_broken_handin_still_ends_with_a_valid_zero_line(
    dist, tmp_path, handin, name, reason
):
    last, stdout = run_autolab(dist, tmp_path, handin, name)
    assert sum(last["scores"].values()) == 0
    assert reason in stdout
