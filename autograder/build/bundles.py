"""Build what ships: the student handout and the Gradescope and Autolab autograders.

    python -m autograder.build.bundles handout|gradescope|autolab|all [--dist DIR]
                                 [--sandbox auto|strict|process]

* ``dist/handout.tar.gz``: the stubs, the autograder without the hidden cases
  (it grades the public cases from their data file), the notebook when there
  is one, the student README, Makefile, requirements and CI example.

Every bundle grades one course (``--course``, default the one in effect) and
ships it as ``course.toml`` beside its ``autograder`` package, where the
bundled grader finds it; the student's copy names no hidden case.
* ``dist/gradescope/autograder.zip``: ``setup.sh`` and ``run_autograder`` at
  the root, the autograder and every case's expected values as data.
* ``dist/autolab/autograde.tar`` and ``dist/autolab/autograde-Makefile``.

No bundle carries the reference: the platform bundles ship precomputed
expected values (``autograder/course/data/all_cases.json``), which the grader uses
when the reference is absent. Each platform bundle carries ``platform.json``,
the sandbox policy its runner applies (``--sandbox``): ``auto`` grades at the
strongest level the platform allows and refuses where student code could
read the expected values, ``strict`` accepts bubblewrap only, ``process``
also accepts running student code as the grader's own user (the instructor's
explicit choice; the output then says so). Archives are reproducible (sorted
entries, fixed times and owners) and written atomically.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from autograder.course import course_file as course_mod
from autograder.course import reference
from autograder.build import stubs
from autograder.course.course_file import COURSE_FILE, Course
from autograder.files import PACKAGE_DIR, PROJECT_ROOT, reference_path, write_atomic

ROOT = PROJECT_ROOT
HANDOUT_DIR = ROOT / "handout"
TEMPLATES = PACKAGE_DIR / "build" / "templates"
DIST = ROOT / "dist"
ALL_CASES = "autograder/course/data/all_cases.json"
# Modules never shipped: the hidden rows of the table, and the catalogue of mistakes
# (a line away from a solution). The build also scans every bundle for solution code.
INSTRUCTOR_ONLY = ("course/hidden_cases.py", "judge/mistakes.py")
# Student files taken from handout/ (the notebook only when it exists).
HANDOUT_FILES = (
    "README.md",
    "Makefile",
    "requirements.txt",
    "requirements-notebook.txt",
    ".github/workflows/grade.yml",
    "mytorch/__init__.py",
    "mytorch/nn/__init__.py",
    "mytorch/nn/activation.py",
)
OPTIONAL_HANDOUT_FILES = ("activations.ipynb",)
HANDOUT_PREFIX = "handout/"
# Sandbox policies of the platform bundles (platform.json), strongest first.
SANDBOX_POLICIES = ("auto", "strict", "process")
EXECUTABLE = 0o755
REGULAR = 0o644
# A fixed time for every archive entry (2020-01-01): the same inputs give the same bytes.
EPOCH = 1577836800

Files = dict[str, tuple[bytes, int]]  # archive name -> (content, mode)


class BundleError(Exception):
    """A bundle cannot be built; one line for the user."""


# ------------------------------------------------------------------ contents


def check_generated(course: Course) -> None:
    """Refuse to build from stale generated files (stubs, public case data) of ``course``."""
    from autograder.build import handout

    if reference_path() is None:
        raise BundleError(
            "the reference (solutions/) is not here: build bundles in the instructor's repository"
        )
    stale = handout.generate(course, check=True)
    if stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        raise BundleError(
            f"generated files are out of date for the course {course.name} ({names}): "
            "run `make handout-files` (with the same COURSE)"
        )


def student_data_files(course: Course) -> set[str]:
    """The package's data files students get: the generated ones (public cases, plot data)."""
    from autograder.build import handout

    return {
        path.relative_to(PACKAGE_DIR).as_posix()
        for path in handout.generated_files(course)
        if path.is_relative_to(PACKAGE_DIR)
    }


def package_files(course: Course, all_cases: bool) -> Files:
    """The autograder package as shipped.

    Every module except the instructor-only ones, its configuration and
    presets, and the generated data files (not the caches, not the bundle
    templates); with ``all_cases``, also every case of the course with its
    expected values (hidden ones included) for the platforms.
    """
    data = student_data_files(course)
    files: Files = {}
    for path in sorted(PACKAGE_DIR.rglob("*")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        if not path.is_file() or path.is_symlink():
            continue
        if "__pycache__" in rel or path.suffix == ".pyc" or rel.startswith("build/templates/"):
            continue
        if rel in INSTRUCTOR_ONLY or (rel.startswith("course/data/") and rel not in data):
            continue
        files[f"autograder/{rel}"] = (path.read_bytes(), REGULAR)
    if all_cases:
        files[ALL_CASES] = (all_case_data(course).encode(), REGULAR)
    return files


def course_file(course: Course, student: bool) -> bytes:
    """The course in effect as the course file a bundle ships at its top (``course.toml``),
    where the bundled grader finds it; a student's copy names no hidden case."""
    text = course.student_text() if student else (course.text or course.to_toml())
    return text.encode()


def check_contents(files: Files, student: bool) -> None:
    """Refuse to ship solution code anywhere, or a hidden case in the student bundle.

    A safety net behind INSTRUCTOR_ONLY: a new module that quotes the reference
    stops the build instead of reaching students.
    """
    from autograder.course import cases as cases_mod

    ref_path = reference_path()
    if ref_path is None:
        raise BundleError("the reference is needed to check what the bundles carry")
    lines = stubs.solution_lines(ref_path.read_text(encoding="utf-8"))
    hidden = [c.id for c in cases_mod.build_cases(("hidden",)) if c.visibility == "hidden"]
    for name, (data, _) in sorted(files.items()):
        text = data.decode("utf-8", errors="replace")
        for line in lines:
            if line in text:
                raise BundleError(f"{name} holds solution code ({line!r}); keep it out of bundles")
        if student:
            for case_id in hidden:
                if case_id in text:
                    raise BundleError(f"{name} mentions the hidden case {case_id}")


def all_case_data(course: Course) -> str:
    """Every case of the course (public and hidden) with its expected values, from the reference."""
    from autograder.course import cases as cases_mod
    from autograder import engine

    ref_path = reference_path()
    if ref_path is None:
        raise BundleError("the reference is needed to compute the expected values")
    cases = cases_mod.select(engine.cached_reference_cases(ref_path), course)
    return cases_mod.dumps_case_data(cases)


def _template(name: str) -> bytes:
    return (TEMPLATES / name).read_bytes()


def requirements() -> bytes:
    """The student-side requirements (the handout's requirements.txt)."""
    return (HANDOUT_DIR / "requirements.txt").read_bytes()


def handout_files(course: Course) -> Files:
    """Everything in the student handout, under ``handout/``."""
    files: Files = {}
    for rel in HANDOUT_FILES + OPTIONAL_HANDOUT_FILES:
        path = HANDOUT_DIR / rel
        if not path.is_file():
            if rel in OPTIONAL_HANDOUT_FILES:
                continue
            raise BundleError(f"{path.relative_to(ROOT)} is missing")
        files[HANDOUT_PREFIX + rel] = (path.read_bytes(), REGULAR)
    files[HANDOUT_PREFIX + COURSE_FILE] = (course_file(course, student=True), REGULAR)
    for name, content in package_files(course, all_cases=False).items():
        files[HANDOUT_PREFIX + name] = content
    return files


def platform_config(sandbox: str, course: Course) -> bytes:
    """``platform.json``: the sandbox policy the platform runner applies, and the Autolab
    problem names its fallback score line fills (the runner reads no grader code)."""
    if sandbox not in SANDBOX_POLICIES:
        raise BundleError(
            f"unknown sandbox policy {sandbox!r}: choose one of {', '.join(SANDBOX_POLICIES)}"
        )
    doc = {"sandbox": sandbox, "autolab_problems": list(course.autolab_problems())}
    return (json.dumps(doc, indent=2) + "\n").encode()


def gradescope_files(course: Course, sandbox: str = "auto") -> Files:
    """The contents of Gradescope's autograder.zip (setup.sh and run_autograder at the root)."""
    files: Files = {
        "setup.sh": (_template("gradescope-setup.sh"), EXECUTABLE),
        "run_autograder": (_template("gradescope-run_autograder"), EXECUTABLE),
        "platform_run.py": (_template("platform_run.py"), EXECUTABLE),
        "platform.json": (platform_config(sandbox, course), REGULAR),
        "requirements.txt": (requirements(), REGULAR),
        COURSE_FILE: (course_file(course, student=False), REGULAR),
    }
    files.update(package_files(course, all_cases=True))
    return files


def zero_score_line(course: Course) -> str:
    """Autolab's score line with every problem at 0 (the fallback of the Makefile)."""
    return json.dumps({"scores": course.autolab_scores({}), "scoreboard": [0.0]})


def autolab_files(course: Course, sandbox: str = "auto") -> tuple[Files, bytes]:
    """The contents of autograde.tar (under ``autograde/``) and the autograde-Makefile."""
    files: Files = {
        "autograde/platform_run.py": (_template("platform_run.py"), EXECUTABLE),
        "autograde/platform.json": (platform_config(sandbox, course), REGULAR),
        "autograde/requirements.txt": (requirements(), REGULAR),
        "autograde/" + COURSE_FILE: (course_file(course, student=False), REGULAR),
    }
    for name, content in package_files(course, all_cases=True).items():
        files["autograde/" + name] = content
    makefile = (
        _template("autolab-Makefile").decode().replace("@ZERO_SCORES@", zero_score_line(course))
    )
    return files, makefile.encode()


# ------------------------------------------------------------------ archives


def _directories(names: list[str]) -> list[str]:
    dirs = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]) + "/")
    return sorted(dirs)


def tar_bytes(files: Files, compress: bool) -> bytes:
    """A reproducible tar (gzip-compressed with ``compress``) of ``files``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [(d, None, EXECUTABLE) for d in _directories(list(files))]
        entries += [(name, data, mode) for name, (data, mode) in files.items()]
        for name, data, mode in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime, info.mode, info.uid, info.gid = EPOCH, mode, 0, 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if not compress:
        return raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=EPOCH) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def zip_bytes(files: Files) -> bytes:
    """A reproducible zip of ``files`` (entries at the root, Unix modes kept)."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            data, mode = files[name]
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return raw.getvalue()


# ------------------------------------------------------------------ builders


def build_handout(course: Course, dist: Path = DIST, sandbox: str = "auto") -> list[Path]:
    """``dist/handout.tar.gz`` (``sandbox`` does not apply: students grade public cases)."""
    check_generated(course)
    target = dist / "handout.tar.gz"
    files = handout_files(course)
    check_contents(files, student=True)
    write_atomic(target, tar_bytes(files, compress=True), mode=REGULAR)
    return [target]


def build_gradescope(course: Course, dist: Path = DIST, sandbox: str = "auto") -> list[Path]:
    """``dist/gradescope/autograder.zip``."""
    check_generated(course)
    target = dist / "gradescope" / "autograder.zip"
    files = gradescope_files(course, sandbox)
    check_contents(files, student=False)
    write_atomic(target, zip_bytes(files), mode=REGULAR)
    return [target]


def build_autolab(course: Course, dist: Path = DIST, sandbox: str = "auto") -> list[Path]:
    """``dist/autolab/autograde.tar`` and ``dist/autolab/autograde-Makefile``."""
    check_generated(course)
    files, makefile = autolab_files(course, sandbox)
    check_contents(files, student=False)
    tar_path = dist / "autolab" / "autograde.tar"
    make_path = dist / "autolab" / "autograde-Makefile"
    write_atomic(tar_path, tar_bytes(files, compress=False), mode=REGULAR)
    write_atomic(make_path, makefile, mode=REGULAR)
    return [tar_path, make_path]


BUILDERS = {"handout": build_handout, "gradescope": build_gradescope, "autolab": build_autolab}


def main(argv: list[str] | None = None) -> int:
    """Command line: build one bundle or all of them."""
    parser = argparse.ArgumentParser(
        prog="python -m autograder.build.bundles", description="Build the handout and platform bundles."
    )
    parser.add_argument("bundle", choices=[*BUILDERS, "all"])
    parser.add_argument(
        "--dist", default=str(DIST), metavar="DIR", help="output directory (default: dist)"
    )
    parser.add_argument(
        "--sandbox",
        default="auto",
        choices=SANDBOX_POLICIES,
        help="isolation the platform bundles accept: auto (the strongest available; refuse "
        "where student code could read the expected values), strict (bubblewrap only) or "
        "process (also run student code as the grader's own user; not recommended)",
    )
    parser.add_argument(
        "--course",
        metavar="PATH|PRESET",
        help="the course the bundles grade (a course file or a preset such as cmu-f25; "
        "default: course.toml at the top of the repository, else full)",
    )
    args = parser.parse_args(argv)
    names = list(BUILDERS) if args.bundle == "all" else [args.bundle]
    try:
        course = course_mod.resolve(args.course, ROOT)
        for name in names:
            for path in BUILDERS[name](course, Path(args.dist), args.sandbox):
                print(f"wrote {path}")
    except (BundleError, OSError, ValueError) as exc:
        # CourseError is a ValueError: one line naming the key.
        print(f"bundles: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
