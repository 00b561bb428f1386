"""The platform bundles, run the way Gradescope and Autolab (Tango) run them.

Each simulated job runs in its own mount and PID namespace (``unshare``), so
nothing touches the host and everything started inside dies with it:

* Gradescope: a fresh root (``pivot_root``) holding the machine's system
  directories, an empty ``/tmp`` and the bundle's ``/autograder`` (a
  temporary directory: ``source`` from the zip, ``submission``, ``results``);
  ``run_autograder`` runs as root from ``/autograder``.
* Autolab: Tango's layout under a private ``/home``: the job directory
  ``/home/autograde/autolab`` (handin, ``autograde.tar``, the Makefile) owned
  by the grading user, ``make`` run there as that user (or as root) with its
  output in ``/home/autograde/output.log``, as Tango's autodriver does.

"No user namespaces" (Docker's default) is a fake ``bwrap`` mounted over the
real one, printing bubblewrap's own refusal; the instructor's repository
(reference, caches) is hidden in each job, as it is absent on a platform.

Three submissions per set-up: an honest one, the stubs, and a cheater (the
stubs plus a lookup of hidden expected values in every JSON file or tar it
can open: its ancestors' working directories, the paths in every
``/proc/*/cmdline``, ``sys.path``, the bundle and home directories), which
also tries to overwrite the result (Gradescope's results file; Autolab's
output after the score line). Scores, refusals and every field a student
sees before grades are published are checked.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import FULL_MARKS
from helpers import REFERENCE_SOURCE, append, handin_tar

from autograder import files
from autograder.build import bundles, stubs
from autograder.course import assignment, cases, course_file
from autograder.report import render

ROOT = files.PROJECT_ROOT
# The course the bundles are built for: the one in effect (full, in this repository).
COURSE = course_file.in_effect()
STUBS = stubs.stub_text()
RUNNER = bundles.TEMPLATES / "platform_run.py"
# The grading user of the simulated Autolab jobs (Tango's "autograde"): a uid of its own.
AUTOGRADE_UID = 43210
# What bubblewrap prints where the container forbids user namespaces (Docker's default).
BWRAP_REFUSAL = (
    "bwrap: No permissions to creating new namespace, likely because the kernel does not "
    "allow non-privileged user namespaces"
)
FAKE_SCORES = dict.fromkeys(COURSE.autolab_problems(), 99)
WAITS = pytest.mark.slow

# ------------------------------------------------------------------ submissions

CHEAT = r"""
# --- look the hidden expected values up in whatever the grader left in reach ---
import json as _json
import os as _os
import sys as _sys

_TABLE = {}
_SKIP = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc")


def _array(obj):
    data = [float(v) for v in obj["data"]]
    return np.array(data, dtype=np.float64).astype(obj["dtype"]).reshape(obj["shape"])


def _learn(doc):
    for row in doc.get("cases", []) if isinstance(doc, dict) else []:
        try:
            if row["visibility"] != "hidden":
                continue
            Z = _array(row["Z"])
            hit = (_array(row["expected"]["A"]), _array(row["expected"]["dLdZ"]))
        except Exception:
            continue
        _TABLE[(row["activation"], Z.shape, Z.tobytes())] = hit


def _read(path):
    try:
        if path.endswith(".json"):
            with open(path, "rb") as fh:
                _learn(_json.loads(fh.read(64 << 20)))
        elif path.endswith(".tar"):
            import tarfile

            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.endswith(".json"):
                        _learn(_json.loads(tar.extractfile(member).read()))
    except Exception:
        pass


def _ancestors():
    pid, found = _os.getpid(), []
    while pid > 1 and len(found) < 50:
        found.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except Exception:
            break
    return found


def _roots():
    roots = {_os.path.expanduser("~"), "/autograder", "/home"}
    try:
        roots.add(_os.getcwd())
    except OSError:
        pass
    roots.update(p for p in _sys.path if p and "site-packages" not in p)
    for pid in _ancestors():
        try:
            roots.add(_os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            pass
    for entry in _os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        for arg in args:
            text = arg.decode(errors="replace")
            if text.startswith("/"):
                roots.add(text if _os.path.isdir(text) else _os.path.dirname(text))
    return sorted(r for r in roots if r and r != "/" and not r.startswith(_SKIP))


def _search():
    seen = 0
    for root in _roots():
        for folder, dirs, files in _os.walk(root):
            dirs[:] = [d for d in dirs if d not in ("site-packages", "__pycache__")]
            for name in files:
                seen += 1
                if seen > 20000:
                    return
                _read(_os.path.join(folder, name))


def _overwrite_results():
    fake = _json.dumps({"score": 100.0, "output": "forged", "tests": []})
    line = ("\n" + _json.dumps({"scores": FAKE_SCORES, "scoreboard": [999]}) + "\n").encode()
    for path in ("/autograder/results/results.json", "/autograder/results/forged.json"):
        try:
            with open(path, "w") as fh:
                fh.write(fake)
        except OSError:
            pass
    # Autolab: the job's output file, reached by name or through an ancestor's stdout.
    targets = [_os.path.expanduser("~/output.log")]
    targets += [f"/proc/{pid}/fd/{fd}" for pid in _ancestors() for fd in (1, 2)]
    for target in targets:
        try:
            fd = _os.open(target, _os.O_WRONLY)
        except OSError:
            continue
        try:
            if _os.fstat(fd).st_mode & 0o170000 == 0o100000:
                _os.pwrite(fd, line, _os.fstat(fd).st_size + (1 << 20))
        except OSError:
            pass
        finally:
            _os.close(fd)


def _cheat(name):
    cls = globals()[name]
    forward, backward = cls.forward, cls.backward

    def cheating_forward(self, Z):
        self._hit = _TABLE.get((name, np.shape(Z), np.asarray(Z).tobytes()))
        if self._hit is not None:
            self.A = self._hit[0]
            return self.A
        return forward(self, Z)

    def cheating_backward(self, dLdA):
        if getattr(self, "_hit", None) is not None:
            return self._hit[1]
        return backward(self, dLdA)

    cls.forward, cls.backward = cheating_forward, cheating_backward


for _attempt in (_search, _overwrite_results):
    try:
        _attempt()
    except Exception:
        pass
for _name in NAMES:
    _cheat(_name)
"""


def cheater_source() -> str:
    """The stubs, plus the lookup of hidden expected values and the forged results."""
    names = [name for name in COURSE.names if name != "Identity"]
    header = f"FAKE_SCORES = {FAKE_SCORES!r}\nNAMES = {names!r}\n"
    return append(STUBS, header + CHEAT)


def public_only_source() -> str:
    """The reference on the public inputs, wrong (+1) on every other input.

    Its public results equal the honest submission's; only hidden tests differ.
    """
    digests = sorted(
        hashlib.sha256(c.activation.encode() + c.Z.tobytes()).hexdigest()
        for c in cases.load_case_data()
    )
    return append(
        REFERENCE_SOURCE,
        f"""
        import hashlib as _hashlib

        _PUBLIC = set({digests!r})


        def _public_only(cls):
            forward = cls.forward

            def wrong_elsewhere(self, Z):
                A = forward(self, Z)
                key = _hashlib.sha256(cls.__name__.encode() + np.asarray(Z).tobytes())
                return A if key.hexdigest() in _PUBLIC else A + 1.0

            cls.forward = wrong_elsewhere


        for _cls in {list(COURSE.names)!r}:
            _public_only(globals()[_cls])
        """,
    )


# ------------------------------------------------------------------ the machine


NAMESPACES = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private"]


def as_grading_user() -> list[str]:
    """The command prefix running a program as the simulated grading user."""
    return ["setpriv", f"--reuid={AUTOGRADE_UID}", f"--regid={AUTOGRADE_UID}", "--clear-groups"]


def _root_problem() -> str:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "simulating a platform needs root (mount namespaces, another uid)"
    for tool in ("unshare", "pivot_root", "setpriv", "prlimit", "make"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(
        [*NAMESPACES, "true"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"unshare does not work here: {probe.stderr.decode().strip()[:100]}"
    return ""


def _userns_problem() -> str:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed"
    probe = subprocess.run(
        [*as_grading_user(), bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot start here: {probe.stderr.decode().strip()[:100]}"
    return ""


ROOT_PROBLEM = _root_problem()
USERNS_PROBLEM = "" if ROOT_PROBLEM else _userns_problem()
needs_root = pytest.mark.skipif(bool(ROOT_PROBLEM), reason=ROOT_PROBLEM or "ok")
needs_userns = pytest.mark.skipif(bool(USERNS_PROBLEM), reason=USERNS_PROBLEM or "ok")


def fake_bwrap(directory: Path) -> Path:
    """A ``bwrap`` that refuses like bubblewrap in a container without user namespaces."""
    path = directory / "bwrap"
    path.write_text(f"#!/bin/sh\necho '{BWRAP_REFUSAL}' >&2\nexit 1\n")
    path.chmod(0o755)
    return path


def _hide_repository(then: str = "") -> str:
    """Shell lines hiding the instructor's repository, except the Python environment.

    ``then``: mounts that would cover the environment too (the job's own /tmp,
    where a clone under /tmp keeps its venv); they run while it is set aside.
    The environment is taken from its host path, which the new root may not
    show (Gradescope's root gets a fresh /tmp).
    """
    keep = Path(sys.prefix).resolve()
    stash = keep.is_relative_to(ROOT) or keep.is_relative_to("/tmp")
    lines = ['mkdir -p "$NS/.stash"']
    if stash:
        lines.append(f'mount --bind "{keep}" "$NS/.stash"')
    if then:
        lines.append(then)
    lines += [f'mkdir -p "$NS{ROOT}"', f'mount -t tmpfs -o mode=0755 tmpfs "$NS{ROOT}"']
    if stash:
        lines += [f'mkdir -p "$NS{keep}"', f'mount --move "$NS/.stash" "$NS{keep}"']
    lines.append('rmdir "$NS/.stash" 2>/dev/null || true')
    return "\n".join(lines)


def _expose_python() -> str:
    """Shell lines making the Python runtime reachable by any user, as on a platform image.

    A runtime under a private directory (pyenv under root's 0700 home) is kept,
    alone, on a world-traversable tmpfs over that directory.
    """
    runtime = Path(os.path.realpath(sys.executable))
    closed = [
        p for p in reversed(runtime.parents) if p != Path("/") and not p.stat().st_mode & 0o001
    ]
    if not closed:
        return ""
    top = closed[0]
    keep = top / runtime.relative_to(top).parts[0]
    return "\n".join(
        [
            'mkdir -p "$NS/.python"',
            f'mount --bind "$NS{keep}" "$NS/.python"',
            f'mount -t tmpfs -o mode=0755 tmpfs "$NS{top}"',
            f'mkdir -p "$NS{keep}"',
            f'mount --move "$NS/.python" "$NS{keep}"',
            'rmdir "$NS/.python"',
        ]
    )


# Processes of the job still alive after its entry point returned (the shell is pid 1).
# Shell built-ins only: a command of its own would be one more process.
SURVIVORS = """
survivors() {
    for p in /proc/[0-9]*; do n=${p#/proc/}; [ "$n" = 1 ] || echo "$n"; done
}
i=0
while survivors > "$F" && [ -s "$F" ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done"""


def _prepare(script: str) -> str:
    """A job script with the repository hidden, the Python runtime reachable, survivors listed."""
    # The job's fresh /tmp (Autolab's, mounted in place) goes on while the environment is set aside.
    job_tmp = "mount -t tmpfs -o mode=1777 tmpfs /tmp"
    script = script.replace(f"HIDE_REPOSITORY\n{job_tmp}", _hide_repository(then=job_tmp))
    script = script.replace("HIDE_REPOSITORY", _hide_repository())
    script = script.replace("SURVIVORS_CHECK", SURVIVORS)
    return script.replace("EXPOSE_PYTHON", _expose_python())


def _namespace(script: str, env: dict[str, str], timeout: float = 300) -> None:
    """Run ``script`` as root in new mount and PID namespaces (everything dies with it)."""
    proc = subprocess.run(
        [*NAMESPACES, "sh", "-c", "set -eu\n" + script],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


# ------------------------------------------------------------------ Gradescope

GRADESCOPE = """
NS="$NEWROOT"
mount -t tmpfs -o mode=0755 tmpfs "$NS"
for entry in /*; do
    name=$(basename "$entry")
    case "$name" in autograder|proc|tmp|dev|sys) continue ;; esac
    if [ -L "$entry" ]; then
        ln -s "$(readlink "$entry")" "$NS/$name"
    elif [ -d "$entry" ]; then
        mkdir "$NS/$name"
        mount --rbind "$entry" "$NS/$name"
    fi
done
mkdir "$NS/proc" "$NS/tmp" "$NS/dev" "$NS/sys" "$NS/autograder"
mount -t proc proc "$NS/proc"
mount -t tmpfs -o mode=1777 tmpfs "$NS/tmp"
mount --rbind /dev "$NS/dev"
mount --rbind /sys "$NS/sys"
mount --bind "$AUTOGRADER" "$NS/autograder"
if [ -n "$FAKE_BWRAP" ]; then mount --bind "$FAKE_BWRAP" "$NS/usr/bin/bwrap"; fi
HIDE_REPOSITORY
EXPOSE_PYTHON
cd "$NS"
mkdir .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
cd /autograder
./run_autograder > /autograder/runner-stdout 2>&1
F=/autograder/survivors
SURVIVORS_CHECK
"""


def run_gradescope(
    zip_path: Path,
    work: Path,
    upload: dict[str, bytes],
    userns: bool = False,
    extra_env: dict[str, str] | None = None,
) -> tuple[dict, str]:
    """Gradescope's way: /autograder/source from the zip, run_autograder as root."""
    autograder, newroot = work / "autograder", work / "newroot"
    source, submission = autograder / "source", autograder / "submission"
    for d in (source, submission, newroot):
        d.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, source)
            os.chmod(source / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copy(source / "run_autograder", autograder / "run_autograder")
    for rel, data in upload.items():
        (submission / rel).parent.mkdir(parents=True, exist_ok=True)
        (submission / rel).write_bytes(data)
    env = {
        "NEWROOT": str(newroot),
        "AUTOGRADER": str(autograder),
        "FAKE_BWRAP": "" if userns else str(fake_bwrap(work)),
        "AUTOGRADER_PYTHON": sys.executable,
        **(extra_env or {}),
    }
    _namespace(_prepare(GRADESCOPE), env)
    stdout = (autograder / "runner-stdout").read_text()
    assert (autograder / "survivors").read_text() == "", "processes outlived the job"
    results = autograder / "results"
    assert sorted(p.name for p in results.iterdir()) == ["results.json"], stdout
    return json.loads((results / "results.json").read_text()), stdout


def visible(doc: dict) -> dict:
    """What a student sees of a results.json before grades are published."""
    return {
        "output": doc.get("output", ""),
        "score_shown": not any(t.get("visibility") != "visible" for t in doc["tests"]),
        "tests": [t for t in doc["tests"] if t.get("visibility", "visible") == "visible"],
        "execution_time": doc.get("execution_time"),
    }


def hidden_markers() -> list[str]:
    """Strings that name a hidden case: its id and its description."""
    found = []
    for c in cases.build_cases(("public", "hidden")):
        if c.visibility == "hidden":
            found += [c.id, c.description]
    return found


def assert_nothing_hidden_visible(doc: dict) -> None:
    """No hidden case, hidden test or total score in anything a student sees now."""
    shown = visible(doc)
    text = json.dumps(shown)
    for marker in hidden_markers():
        assert marker not in text, marker
    hidden_names = [t["name"] for t in doc["tests"] if t.get("visibility") != "visible"]
    assert hidden_names and not [n for n in hidden_names if n in text]
    assert not shown["score_shown"] and shown["execution_time"] is None
    public = round(sum(t["score"] for t in shown["tests"]), 4)
    if doc["score"] != public:
        assert f"{doc['score']:g} /" not in shown["output"]


def scores_by_test(doc: dict) -> dict[str, float]:
    """Each test's score by name."""
    return {t["name"]: t["score"] for t in doc["tests"]}


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The platform bundles (default policy, and built with SANDBOX=process)."""
    root = tmp_path_factory.mktemp("dist")
    for policy in ("auto", "process"):
        for bundle in ("gradescope", "autolab"):
            args = [bundle, "--dist", str(root / policy), "--sandbox", policy]
            assert bundles.main(args) == 0
    return root


@pytest.fixture(scope="module")
def stub_score():
    """What the stubs score on every case (Identity is given complete)."""
    return COURSE.row("Identity").max_score


@WAITS
@needs_root
@pytest.mark.slow
@pytest.mark.parametrize(
    "userns",
    [False, pytest.param(True, marks=needs_userns)],
    ids=["root-without-user-namespaces", "root-with-user-namespaces"],
)
def test_gradescope_grades_honestly_and_keeps_the_data_from_a_cheater(
    dist, tmp_path, userns, stub_score
):
    zip_path = dist / "auto" / "gradescope" / "autograder.zip"
    level = "bwrap" if userns else "uid"
    honest, _ = run_gradescope(
        zip_path, tmp_path / "honest", {"handin.tar": handin_tar(REFERENCE_SOURCE)}, userns
    )
    stub, _ = run_gradescope(zip_path, tmp_path / "stub", {"activation.py": STUBS.encode()}, userns)
    cheat, stdout = run_gradescope(
        zip_path, tmp_path / "cheat", {"activation.py": cheater_source().encode()}, userns
    )
    assert honest["score"] == FULL_MARKS
    assert stub["score"] == stub_score
    # Nothing found, nothing forged: the cheater scores exactly what the stubs score.
    assert scores_by_test(cheat) == scores_by_test(stub)
    assert cheat["output"] != "forged" and "forged" not in stdout
    for doc in (honest, stub, cheat):
        isolation = doc["extra_data"]["isolation"]
        assert isolation["level"] == level and isolation["self_check"] == "passed"
        assert f"Isolation of your code: {level}" in doc["output"]
        assert_nothing_hidden_visible(doc)


def test_gradescope_renderer_shows_nothing_hidden_before_publishing(grader, tmp_path):
    # The renderer alone (no platform): same public behaviour, different hidden results.
    honest_path, twin_path = tmp_path / "honest.py", tmp_path / "twin.py"
    honest_path.write_text(REFERENCE_SOURCE)
    twin_path.write_text(public_only_source())
    honest = json.loads(render.gradescope(grader.grade(honest_path, use_pytest=False)))
    twin = json.loads(render.gradescope(grader.grade(twin_path, use_pytest=False)))
    assert twin["score"] < honest["score"] == FULL_MARKS
    assert visible(twin) == visible(honest)
    assert_nothing_hidden_visible(twin)
    # What the student is told: public points, how many hidden tests, the isolation level.
    assert twin["output"].startswith("Public tests: 57 / 57 points.")
    assert "Hidden tests: " in twin["output"] and "when grades are published" in twin["output"]
    assert f"Isolation of your code: {grader.plan.level}" in twin["output"]
    # Public tests come first: the student's numbered list has no gaps.
    kinds = [t["visibility"] for t in twin["tests"]]
    assert kinds == sorted(kinds, key=lambda v: v != "visible")


@WAITS
@needs_root
@pytest.mark.slow
def test_gradescope_shows_nothing_of_the_hidden_tests_before_publishing(dist, tmp_path):
    # Same public behaviour, different hidden results: a student must not tell them apart.
    zip_path = dist / "auto" / "gradescope" / "autograder.zip"
    honest, _ = run_gradescope(
        zip_path, tmp_path / "a", {"activation.py": REFERENCE_SOURCE.encode()}, False
    )
    twin, _ = run_gradescope(
        zip_path, tmp_path / "b", {"activation.py": public_only_source().encode()}, False
    )
    assert twin["score"] < honest["score"] == FULL_MARKS
    assert visible(twin) == visible(honest)
    assert_nothing_hidden_visible(twin)


@needs_root
@pytest.mark.slow
def test_gradescope_bundle_permissions_after_run_autograder(dist, tmp_path):
    # Whatever the grader does, run_autograder and the runner leave the bundle private
    # to root except the worker, which the sandbox user must be able to read.
    zip_path = dist / "auto" / "gradescope" / "autograder.zip"
    run_gradescope(zip_path, tmp_path, {"activation.py": STUBS.encode()}, False)
    source = tmp_path / "autograder" / "source"
    data = source / bundles.ALL_CASES
    assert data.is_file() and data.stat().st_mode & 0o077 == 0
    assert (source / "platform_run.py").stat().st_mode & 0o077 == 0
    worker = source / "autograder" / "isolation" / "worker"
    worker = worker if worker.is_dir() else source / "autograder" / "worker.py"
    assert worker.stat().st_mode & 0o004
    for folder in (source, source / "autograder"):
        assert folder.stat().st_mode & 0o077 == 0o011  # traversable, not listable
    assert (tmp_path / "autograder" / "submission").stat().st_mode & 0o077 == 0


def assert_gradescope_valid(doc: dict) -> None:
    """The results.json fields Gradescope needs, in their allowed values."""
    assert isinstance(doc["score"], int | float)
    assert doc.get("stdout_visibility") == "hidden"
    for test in doc["tests"]:
        assert {"name", "score", "max_score", "status", "visibility"} <= set(test)
        assert test["visibility"] in ("visible", "after_published", "hidden")


@WAITS
@needs_root
@pytest.mark.slow
def test_gradescope_accepts_uploaded_files_and_hides_student_output(dist, tmp_path):
    secret = "SECRET-STUDENT-PRINT-5f3a"
    noisy = append(REFERENCE_SOURCE, f"print({secret!r})")
    upload = {
        "mytorch/__init__.py": b"",
        "mytorch/nn/__init__.py": b"",
        "mytorch/nn/activation.py": noisy.encode(),
    }
    doc, stdout = run_gradescope(dist / "auto" / "gradescope" / "autograder.zip", tmp_path, upload)
    assert_gradescope_valid(doc)
    assert doc["score"] == FULL_MARKS, (
        stdout,
        doc.get("output"),
        [t["output"] for t in doc["tests"]][:3],
    )
    hidden = [t for t in doc["tests"] if t["visibility"] == "after_published"]
    assert hidden and all(t["status"] == "passed" for t in hidden)
    assert secret not in json.dumps(doc) and secret not in stdout


@WAITS
@needs_root
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
    doc, _ = run_gradescope(dist / "auto" / "gradescope" / "autograder.zip", tmp_path, upload)
    assert_gradescope_valid(doc)
    assert doc["score"] == 0 and reason in doc["output"]


@WAITS
@needs_root
@pytest.mark.slow
def test_gradescope_crash_and_hang_still_give_valid_results(dist, tmp_path):
    zip_path = dist / "auto" / "gradescope" / "autograder.zip"
    crash = append(REFERENCE_SOURCE, "import os\nos._exit(3)")
    doc, _ = run_gradescope(zip_path, tmp_path / "crash", {"activation.py": crash.encode()})
    assert_gradescope_valid(doc)
    assert doc["score"] == 0 and doc["tests"]  # graded: every case failed
    # A hang longer than the platform's limit (shortened here): score 0 and the reason.
    hang = append(REFERENCE_SOURCE, "while True:\n    pass")
    doc, _ = run_gradescope(
        zip_path,
        tmp_path / "hang",
        {"activation.py": hang.encode()},
        extra_env={"AUTOGRADER_PLATFORM_TIMEOUT": "3"},
    )
    assert_gradescope_valid(doc)
    assert doc["score"] == 0 and "did not finish within 3 s" in doc["output"]


# ------------------------------------------------------------------ Autolab (Tango)

AUTOLAB = """
NS=""
mount -t tmpfs -o mode=0755 tmpfs /home
mkdir -p /home/autograde/autolab /home/result
mount --bind "$RESULT" /home/result
cp "$JOB"/* /home/autograde/autolab/
if [ -n "$TANGO_COPY" ]; then
    mkdir -p /home/mount
    cp "$JOB/autograde.tar" /home/mount/autograde.tar
    chmod 644 /home/mount/autograde.tar
fi
: > /home/autograde/output.log
if [ "$GRADING_UID" != 0 ]; then chown -R "$GRADING_UID:$GRADING_UID" /home/autograde; fi
if [ -n "$FAKE_BWRAP" ]; then mount --bind "$FAKE_BWRAP" /usr/bin/bwrap; fi
HIDE_REPOSITORY
mount -t tmpfs -o mode=1777 tmpfs /tmp
EXPOSE_PYTHON
mount -t proc proc /proc
cd /home/autograde/autolab
if [ "$GRADING_UID" = 0 ]; then
    HOME=/home/autograde make PYTHON="$PYTHON" > /home/autograde/output.log 2>&1 || true
else
    HOME=/home/autograde prlimit --nproc=100 --fsize=104857600 \\
        setpriv --reuid="$GRADING_UID" --regid="$GRADING_UID" --clear-groups \\
        make PYTHON="$PYTHON" > /home/autograde/output.log 2>&1 || true
fi
F=/home/result/survivors
SURVIVORS_CHECK
cp /home/autograde/output.log /home/result/output.log
ls -A /home/autograde/autolab > /home/result/listing
"""


def run_autolab(
    folder: Path,
    work: Path,
    handin: bytes | None,
    grading_uid: int = AUTOGRADE_UID,
    userns: bool = False,
    tango_copy: bool = False,
) -> tuple[dict, str, list[str]]:
    """Tango's way: the job in ~autograde/autolab, `make` as the grading user (or root).

    Returns the score line, the whole output and what is left in the job directory.
    """
    job, result = work / "job", work / "result"
    job.mkdir(parents=True)
    result.mkdir(mode=0o700)
    shutil.copy(folder / "autograde.tar", job / "autograde.tar")
    shutil.copy(folder / "autograde-Makefile", job / "Makefile")
    if handin is not None:
        (job / "handin.tar").write_bytes(handin)
    env = {
        "JOB": str(job),
        "RESULT": str(result),
        "TANGO_COPY": "1" if tango_copy else "",
        "GRADING_UID": str(grading_uid),
        "FAKE_BWRAP": "" if userns else str(fake_bwrap(work)),
        "PYTHON": sys.executable,
    }
    _namespace(_prepare(AUTOLAB), env)
    output = (result / "output.log").read_text()
    assert (result / "survivors").read_text() == "", "processes outlived the job"
    lines = output.rstrip("\n").splitlines()
    last = json.loads(lines[-1])
    assert set(last) == {"scores", "scoreboard"}, lines[-1]
    assert set(last["scores"]) == set(COURSE.autolab_problems())
    return last, output, (result / "listing").read_text().split()


def total(line: dict) -> float:
    """The total of an Autolab score line."""
    return round(sum(line["scores"].values()), 4)


AUTOLAB_SETUPS = [
    pytest.param(AUTOGRADE_UID, False, "process", id="tango-user-without-user-namespaces"),
    pytest.param(0, False, "uid", id="root-without-user-namespaces"),
    pytest.param(0, True, "bwrap", id="root-with-user-namespaces", marks=needs_userns),
    pytest.param(AUTOGRADE_UID, True, "bwrap", id="user-with-user-namespaces", marks=needs_userns),
]


@WAITS
@needs_root
@pytest.mark.slow
@pytest.mark.parametrize("grading_uid, userns, level", AUTOLAB_SETUPS)
def test_autolab_grades_honestly_and_keeps_the_data_from_a_cheater(
    dist, tmp_path, grading_uid, userns, level, stub_score
):
    folder = dist / "auto" / "autolab"
    honest, out_h, left = run_autolab(
        folder, tmp_path / "h", handin_tar(REFERENCE_SOURCE), grading_uid, userns
    )
    stub, _, _ = run_autolab(folder, tmp_path / "s", handin_tar(STUBS), grading_uid, userns)
    cheat, out_c, _ = run_autolab(
        folder, tmp_path / "c", handin_tar(cheater_source()), grading_uid, userns
    )
    assert total(honest) == FULL_MARKS and honest["scoreboard"] == [FULL_MARKS]
    assert total(stub) == stub_score
    # Nothing found in reach and the forged line cut off: the cheater scores as the stubs.
    assert cheat == stub
    assert "autograde.tar" not in left  # deleted before any student code ran
    for output in (out_h, out_c):
        assert f"sandbox: {level}" in output
        assert "refused" not in output


@WAITS
@needs_root
@pytest.mark.slow
def test_autolab_refuses_when_a_copy_of_the_data_stays_readable(dist, tmp_path):
    # Tango's volume holds a world-readable autograde.tar the job cannot delete: at
    # the process level student code could read it, so the job is refused.
    last, output, _ = run_autolab(
        dist / "auto" / "autolab",
        tmp_path,
        handin_tar(REFERENCE_SOURCE),
        AUTOGRADE_UID,
        userns=False,
        tango_copy=True,
    )
    assert total(last) == 0 and last["scoreboard"] == [0.0]
    assert "refused to grade here" in output and "What to change" in output
    assert "SANDBOX=process" in output
    assert "Total score" not in output  # the submission was not run


@WAITS
@needs_root
@pytest.mark.slow
def test_autolab_built_to_accept_the_process_level_grades_and_says_so(dist, tmp_path):
    last, output, _ = run_autolab(
        dist / "process" / "autolab",
        tmp_path,
        handin_tar(REFERENCE_SOURCE),
        AUTOGRADE_UID,
        userns=False,
        tango_copy=True,
    )
    assert total(last) == FULL_MARKS
    assert "sandbox: process" in output
    assert "accept the weakest isolation level (process)" in output


@needs_root
@pytest.mark.slow
def test_autolab_output_names_no_hidden_case(dist, tmp_path):
    # Autolab shows the whole output at once: hidden tests only as counts.
    _, output, _ = run_autolab(
        dist / "auto" / "autolab", tmp_path, handin_tar(public_only_source()), 0, userns=False
    )
    assert "hidden" in output
    for marker in hidden_markers():
        assert marker not in output, marker


@WAITS
@needs_root
@pytest.mark.slow
def test_autolab_last_line_cannot_be_forged_by_the_students_prints(dist, tmp_path, stub_score):
    fake = json.dumps({"scores": FAKE_SCORES, "scoreboard": [999]})
    forger = append(
        STUBS,
        f"""
        import atexit, os, sys
        print({fake!r})
        sys.stdout.write({fake!r})  # no newline: glued to whatever comes next
        atexit.register(lambda: os.write(1, ({fake!r} + "\\n").encode()))
        """,
    )
    last, _, _ = run_autolab(dist / "auto" / "autolab", tmp_path, handin_tar(forger))
    assert total(last) == stub_score and last["scoreboard"] == [stub_score]


@needs_root
@pytest.mark.slow
@pytest.mark.parametrize(
    "handin, reason",
    [
        pytest.param(b"garbage" * 50, "cannot unpack", marks=WAITS, id="broken-archive"),
        pytest.param(None, "no handin file", id="missing"),  # the grader never starts
        pytest.param(
            handin_tar("x = 1\n"), "class Identity not found", marks=WAITS, id="no-classes"
        ),
    ],
)
def test_autolab_a_broken_handin_still_ends_with_a_valid_zero_line(dist, tmp_path, handin, reason):
    last, output, _ = run_autolab(dist / "auto" / "autolab", tmp_path, handin)
    assert total(last) == 0 and reason in output


# ------------------------------------------------------------------ the runner alone
# platform_run.py next to a stand-in `autograder` package that records how it was
# called and ends as told: the runner's own duties, without the real grader.

FAKE_GRADER = r"""
import json, os, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
record = {"argv": sys.argv[1:], "cwd": os.getcwd(),
          "archive_left": os.path.exists(os.environ["FAKE_JOB"] + "/autograde.tar")}
Path(os.environ["FAKE_RECORD"]).write_text(json.dumps(record))
mode = os.environ.get("FAKE_MODE", "ok")
if mode == "refuse":
    print("autograder: cannot grade here: student code could open " + str(root), file=sys.stderr)
    sys.exit(3)
args = sys.argv[1:]
fmt = args[args.index("--format") + 1]
if fmt == "gradescope":
    out = args[args.index("-o") + 1]
    doc = {"score": 7.0, "output": "Public tests: 7 / 57 points.", "tests": [
        {"name": "t", "score": 7.0, "max_score": 57.0, "visibility": "visible"}],
        "extra_data": {"isolation": {"level": "uid"}}}
    Path(out).write_text(json.dumps(doc))
else:
    print("report")
    print(json.dumps({"scores": {n: 1.0 for n in NAMES}, "scoreboard": [14.0]}))
    if mode == "forge":
        # A student process writing past the end of the job's output file.
        with open(os.environ["FAKE_OUTPUT"], "r+b") as fh:
            fh.seek(1 << 16)
            fh.write(b'\n{"scores": {}, "scoreboard": [999]}\n')
"""


def fake_bundle(folder: Path, policy: str = "auto", course=COURSE) -> Path:
    """platform_run.py, platform.json and a stand-in grader package in ``folder``."""
    package = folder / "autograder"
    (package / "course" / "data").mkdir(parents=True)
    (package / "isolation" / "worker").mkdir(parents=True)
    for init in ("", "course", "isolation", "isolation/worker"):
        (package / init / "__init__.py").write_text("")
    (package / "course" / "data" / "all_cases.json").write_text('{"cases": []}')
    names = list(course.autolab_problems())
    (package / "__main__.py").write_text(f"NAMES = {names!r}\n" + FAKE_GRADER)
    # As a real bundle's table: every activation, whatever the course (an older runner's
    # source of the problem names).
    table = [a.name for a in assignment.ACTIVATIONS]
    (package / "course" / "assignment.py").write_text(
        "class _A:\n    def __init__(self, n):\n        self.name = n\n"
        f"ACTIVATIONS = [_A(n) for n in {table!r}]\n"
    )
    shutil.copy(RUNNER, folder / "platform_run.py")
    (folder / "platform.json").write_bytes(bundles.platform_config(policy, course))
    return folder / "platform_run.py"


def load_runner(folder: Path):
    """The runner module of the bundle in ``folder`` (its ROOT is that folder)."""
    spec = importlib.util.spec_from_file_location(
        f"platform_run_{id(folder)}", folder / "platform_run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_runner(runner: Path, args: list[str], cwd: Path, env: dict[str, str], output: Path):
    """Run the runner with its stdout in ``output`` (a file, as Autolab's driver does)."""
    with output.open("w") as fh:
        proc = subprocess.run(
            [sys.executable, str(runner), *args],
            cwd=cwd,
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    return output.read_text()


@pytest.mark.parametrize("policy", ["auto", "strict", "process"])
def test_runner_passes_the_isolation_options_and_deletes_the_archive_first(tmp_path, policy):
    job = tmp_path / "job"
    runner = fake_bundle(job / "autograde", policy)
    (job / "autograde.tar").write_bytes(b"the bundle")
    (job / "handin.tar").write_bytes(handin_tar(STUBS))
    record = tmp_path / "record.json"
    env = {"FAKE_RECORD": str(record), "FAKE_JOB": str(job)}
    output = run_runner(runner, ["autolab", "handin.tar"], job, env, tmp_path / "out")
    argv = json.loads(record.read_text())
    assert argv["archive_left"] is False and not (job / "autograde.tar").exists()
    options = argv["argv"]
    assert options[options.index("--sandbox") + 1] == ("strict" if policy == "strict" else "auto")
    assert "--remove-case-data" in options
    assert ("--allow-unisolated" in options) == (policy == "process")
    assert ("accept the weakest isolation level" in output) == (policy == "process")
    assert json.loads(output.splitlines()[-1])["scoreboard"] == [14.0]


def test_runner_hands_copies_it_cannot_delete_to_the_self_check(tmp_path, monkeypatch):
    job = tmp_path / "job"
    fake_bundle(job / "autograde")
    platform_run = load_runner(job / "autograde")
    copy = tmp_path / "mount" / "autograde.tar"
    copy.parent.mkdir()
    copy.write_bytes(b"x")
    (job / "autograde.tar").write_bytes(b"x")
    monkeypatch.setattr(platform_run, "TANGO_COPIES", (str(copy),))
    assert platform_run.remove_archives(job) == [copy]
    assert not (job / "autograde.tar").exists()
    options = platform_run.grader_options("autolab", "auto", [copy])
    assert options[-2:] == ["--protect", str(copy)]


def test_runner_turns_a_refusal_into_a_zero_with_what_to_change_autolab(tmp_path):
    job = tmp_path / "job"
    runner = fake_bundle(job / "autograde")
    (job / "handin.tar").write_bytes(handin_tar(STUBS))
    env = {"FAKE_RECORD": str(tmp_path / "r"), "FAKE_JOB": str(job), "FAKE_MODE": "refuse"}
    output = run_runner(runner, ["autolab"], job, env, tmp_path / "out")
    lines = output.rstrip("\n").splitlines()
    assert json.loads(lines[-1]) == {
        "scores": dict.fromkeys(COURSE.autolab_problems(), 0.0),
        "scoreboard": [0.0],
    }
    message = "\n".join(lines[:-1])
    assert "refused to grade here" in message and "student code could open" in message
    assert "What to change" in message and "SANDBOX=process" in message


@pytest.mark.parametrize("preset", ["cmu-f25", "full"])
def test_runner_checks_and_falls_back_to_the_course_problems(tmp_path, preset):
    # The runner reads the course's Autolab problems from platform.json (no grader code):
    # a score line with other names is not accepted, and the zero line uses them.
    from autograder.course import course_file as course

    c = course.load(preset)
    job = tmp_path / "job"
    runner = fake_bundle(job / "autograde", course=c)
    (job / "handin.tar").write_bytes(handin_tar(STUBS))
    env = {"FAKE_RECORD": str(tmp_path / "r"), "FAKE_JOB": str(job)}
    output = run_runner(runner, ["autolab"], job, env, tmp_path / "out")
    assert json.loads(output.splitlines()[-1])["scores"] == dict.fromkeys(c.autolab_problems(), 1.0)
    # A grader printing another course's problems: not a valid line, a zero line instead.
    other = course.load("full" if preset != "full" else "cmu-f25")
    main = job / "autograde" / "autograder" / "__main__.py"
    main.write_text(f"NAMES = {list(other.autolab_problems())!r}\n" + FAKE_GRADER)
    output = run_runner(runner, ["autolab"], job, env, tmp_path / "out2")
    zero = {"scores": dict.fromkeys(c.autolab_problems(), 0.0), "scoreboard": [0.0]}
    assert json.loads(output.splitlines()[-1]) == zero


def test_runner_turns_a_refusal_into_a_zero_with_what_to_change_gradescope(tmp_path):
    bundle = tmp_path / "source"
    runner = fake_bundle(bundle)
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "activation.py").write_text(STUBS)
    results = tmp_path / "results" / "results.json"
    env = {"FAKE_RECORD": str(tmp_path / "r"), "FAKE_JOB": str(tmp_path), "FAKE_MODE": "refuse"}
    args = ["gradescope", "--submission", str(tmp_path / "submission"), "--results", str(results)]
    stdout = run_runner(runner, args, tmp_path, env, tmp_path / "stdout")
    doc = json.loads(results.read_text())
    assert doc["score"] == 0 and doc["extra_data"]["refused"] is True
    # The student reads that nothing was graded and why it is not their fault ...
    assert "not graded" in doc["output"] and "not of your" in doc["output"]
    assert "student code could open" not in doc["output"]
    # ... the course staff what to change, in a test students never see, and in stdout.
    (staff,) = doc["tests"]
    assert staff["visibility"] == "hidden" and staff["max_score"] == 0
    assert "What to change" in staff["output"] and "student code could open" in staff["output"]
    assert "What to change" in stdout
    argv = json.loads((tmp_path / "r").read_text())["argv"]
    assert argv[argv.index("--protect") + 1] == str(results.parent)
    assert "--remove-case-data" not in argv  # Gradescope reruns in the same container (SSH)


def test_runner_cuts_what_student_code_wrote_after_the_score_line(tmp_path):
    job = tmp_path / "job"
    runner = fake_bundle(job / "autograde")
    (job / "handin.tar").write_bytes(handin_tar(STUBS))
    output = tmp_path / "output.log"
    env = {
        "FAKE_RECORD": str(tmp_path / "r"),
        "FAKE_JOB": str(job),
        "FAKE_MODE": "forge",
        "FAKE_OUTPUT": str(output),
    }
    text = run_runner(runner, ["autolab"], job, env, output)
    assert "999" not in text
    assert json.loads(text.splitlines()[-1])["scoreboard"] == [14.0]


def test_runner_refuses_to_grade_without_the_case_data(tmp_path):
    # A second job in the same directory after the data was removed would otherwise
    # grade the public cases only; it is a zero with the reason instead.
    job = tmp_path / "job"
    runner = fake_bundle(job / "autograde")
    (job / "autograde" / "autograder" / "course" / "data" / "all_cases.json").unlink()
    (job / "handin.tar").write_bytes(handin_tar(STUBS))
    env = {"FAKE_RECORD": str(tmp_path / "r"), "FAKE_JOB": str(job)}
    output = run_runner(runner, ["autolab"], job, env, tmp_path / "out")
    assert "case data" in output and "is missing" in output
    assert json.loads(output.splitlines()[-1])["scoreboard"] == [0.0]
    assert not (tmp_path / "r").exists()  # the grader never started


def test_runner_makes_the_bundle_private_except_the_worker(tmp_path):
    bundle = tmp_path / "bundle"
    fake_bundle(bundle)
    for path in bundle.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)
    load_runner(bundle).secure_bundle(bundle)
    mode = {p.relative_to(bundle).as_posix(): p.stat().st_mode & 0o777 for p in bundle.rglob("*")}
    assert mode["autograder/course/data/all_cases.json"] == 0o600
    assert mode["autograder/course/data"] == 0o700
    assert mode["platform.json"] == 0o600
    assert mode["autograder"] == 0o711 and bundle.stat().st_mode & 0o777 == 0o711
    assert mode["autograder/isolation"] == 0o711
    assert (
        mode["autograder/isolation/worker"] == 0o755
        and mode["autograder/isolation/worker/__init__.py"] == 0o644
    )


def test_bundles_carry_their_sandbox_policy(dist):
    for policy in ("auto", "process"):
        with zipfile.ZipFile(dist / policy / "gradescope" / "autograder.zip") as zf:
            problems = list(COURSE.autolab_problems())
            want = {"sandbox": policy, "autolab_problems": problems}
            assert json.loads(zf.read("platform.json")) == want
        with tarfile.open(dist / policy / "autolab" / "autograde.tar") as tar:
            member = tar.extractfile("autograde/platform.json")
            assert json.loads(member.read()) == want
