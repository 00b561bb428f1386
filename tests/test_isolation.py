"""Isolation below and around bubblewrap: the uid level, self-checks, leftovers, resume.

Each attack sits beside its honest twin; each test fails when the defence it
names is removed (the note of the change that added them says how that was
checked). Attacks are bounded, so a failed defence cannot harm the machine.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TEST_LIMITS, by_name
from helpers import REFERENCE_SOURCE, append, replace_method, write_layout

from autograder import batch
from autograder.engine import CACHE_DIR, GradeOptions, Grader
from autograder.isolation import protected, sandbox, uids
from autograder.isolation.runner import Limits

ROOT = Path(__file__).resolve().parent.parent
root_only = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the uid level needs root"
)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")


def uid_grader(**options) -> Grader:
    return Grader(GradeOptions(sandbox="uid", limits=Limits(**TEST_LIMITS), **options))


# ------------------------------------------------------------------ the uid level


@root_only
def test_concurrent_runs_get_their_own_uids_and_cannot_kill_each_other(tmp_path):
    # The killer signals everything its uid may signal, for a while; the victim, graded
    # at the same time by another grader, sleeps a little in every forward.
    killer = replace_method(
        REFERENCE_SOURCE,
        "Identity",
        "forward",
        """
        import os, signal, time
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        self.A = Z
        return self.A
        """,
    )
    victim = replace_method(
        REFERENCE_SOURCE,
        "Sigmoid",
        "forward",
        "import time\ntime.sleep(0.3)\nself.A = 1 / (1 + np.exp(-Z))\nreturn self.A",
    )
    with uid_grader() as a, uid_grader() as b:
        assert a.zygote().launched.uid != b.zygote().launched.uid
        reports = {}

        def grade_victim() -> None:
            reports["victim"] = b.grade(write_layout(tmp_path / "v", victim, "file"))

        thread = threading.Thread(target=grade_victim)
        thread.start()
        time.sleep(0.2)
        a.grade(write_layout(tmp_path / "k", killer, "file"), use_pytest=False)
        thread.join()
    sigmoid = [t for t in reports["victim"].tests if t.activation == "Sigmoid"]
    assert all(t.score == t.max_score for t in sigmoid), [t.output for t in sigmoid]


LEAVE_FILES = append(
    REFERENCE_SOURCE,
    """
    import os as _os
    _tag = "autograder-leak-" + str(_os.getpid())
    for _top in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            _os.makedirs(_os.path.join(_top, _tag, "nested"), exist_ok=True)
            with open(_os.path.join(_top, _tag + ".txt"), "w") as _fh:
                _fh.write("left behind")
            print("LEFT", _os.path.join(_top, _tag), flush=True)
        except OSError as _exc:
            print("SKIPPED", _top, _exc, flush=True)
    """,
)


@root_only
def test_files_a_run_leaves_in_shared_directories_are_removed(tmp_path):
    # Landlock would stop these writes; this tests the layer beneath it, the sweep.
    limits = Limits(**TEST_LIMITS, layers_off=("landlock",))
    with Grader(GradeOptions(sandbox="uid", limits=limits)) as grader:
        report = grader.grade(write_layout(tmp_path, LEAVE_FILES, "file"), use_pytest=False)
        honest = grader.grade(write_layout(tmp_path / "twin", REFERENCE_SOURCE, "file"))
    left = [
        line.split()[1] for line in report.student_output.splitlines() if line.startswith("LEFT")
    ]
    assert len(left) >= 2  # /tmp and /var/tmp at least
    for path in left:
        assert not os.path.exists(path), path
        assert not os.path.exists(path + ".txt"), path
    assert report.score == honest.score == honest.max_score


STEAL = replace_method(
    REFERENCE_SOURCE,
    "ReLU",
    "forward",
    f"""
    import glob, importlib.util, json, os
    found = []
    targets = [{str(protected.reference_file())!r}, {str(protected.HIDDEN_CASES)!r},
               {str(protected.ALL_CASES)!r}]
    targets += glob.glob({str(CACHE_DIR)!r} + "/*")
    for path in targets:
        try:
            with open(path, "rb") as fh:
                fh.read(1)
            found.append(path)
        except OSError:
            pass
    print("FOUND", json.dumps(found), flush=True)
    self.A = np.maximum(Z, 0)
    return self.A
    """,
)


@root_only
def test_the_uid_level_hides_the_solutions_hidden_cases_and_cache(tmp_path):
    with uid_grader() as grader:
        report = grader.grade(write_layout(tmp_path, STEAL, "file"), use_pytest=False)
    assert report.sandbox == "uid"
    line = next(x for x in report.student_output.splitlines() if x.startswith("FOUND"))
    assert json.loads(line.split(" ", 1)[1]) == []
    assert report.isolation["self_check"] == "passed"


@root_only
def test_honest_code_imports_the_whole_runtime_at_the_uid_level(tmp_path):
    # Modules the zygote never loaded: the runtime must be reachable even where Python
    # lives under a home directory other users cannot enter (pyenv under /root).
    honest = replace_method(
        REFERENCE_SOURCE,
        "Sigmoid",
        "forward",
        "import glob, statistics, unicodedata\nself.A = 1 / (1 + np.exp(-Z))\nreturn self.A",
    )
    with uid_grader() as grader:
        report = grader.grade(write_layout(tmp_path, honest, "file"), use_pytest=False)
    assert report.score == report.max_score, [t.output for t in report.tests if t.score == 0]


def _refuse_namespace(hidden, keep):
    def preexec():
        raise OSError(1, "no mount namespace here")

    return preexec


@root_only
def test_without_its_mount_namespace_the_uid_level_refuses_if_anything_is_reachable(monkeypatch):
    # As in a container without CAP_SYS_ADMIN: only file permissions protect the data.
    # This checkout is world-readable, so the self-check must refuse the level.
    monkeypatch.setattr(sandbox, "_covering", _refuse_namespace)
    if all(not os.access(p, os.R_OK) for p in protected.protected().read):
        pytest.skip("nothing protected is on disk here")
    with pytest.raises(sandbox.SandboxError, match="uid level cannot be used: student code"):
        Grader(GradeOptions(sandbox="uid", limits=Limits(**TEST_LIMITS))).zygote()


@linux_only
def test_the_self_check_sees_what_a_same_user_child_can_read(tmp_path):
    secret = tmp_path / "expected.json"
    secret.write_text("{}")
    outdir = tmp_path / "out"
    outdir.mkdir()
    options = GradeOptions(sandbox="process", allow_unisolated=True, limits=Limits(**TEST_LIMITS))
    with Grader(options) as grader:
        zygote = grader.zygote()
        answer = zygote.self_check(
            grader.options.limits, [str(secret)], [str(outdir)], ["statistics"]
        )
        unfenced = Limits(**TEST_LIMITS, layers_off=("landlock",))
        twin = zygote.self_check(unfenced, [str(secret)], [str(outdir)], ["statistics"])
    assert answer["readable"] == twin["readable"] == [str(secret)]
    assert twin["writable"] == [str(outdir)]
    if zygote.info.get("landlock"):
        assert answer["writable"] == []  # Landlock: writes only beneath the run's directory
    assert answer["import_errors"] == {}
    assert list(outdir.iterdir()) == []  # the write probe left nothing


@linux_only
def test_the_process_level_refuses_protected_data_unless_allowed(tmp_path):
    if not protected.protected().secrets_exist():
        pytest.skip("nothing protected is on disk here")
    with pytest.raises(sandbox.SandboxError, match="--allow-unisolated"):
        Grader(GradeOptions(sandbox="process", limits=Limits(**TEST_LIMITS))).zygote()
    options = GradeOptions(sandbox="process", allow_unisolated=True, limits=Limits(**TEST_LIMITS))
    with Grader(options) as grader:
        report = grader.grade(write_layout(tmp_path, REFERENCE_SOURCE, "file"), use_pytest=False)
    assert report.score == report.max_score
    assert report.isolation["self_check"] == "failed"
    assert any("--allow-unisolated" in note for note in report.notes)


# ------------------------------------------------------------------ the cache and resume


def test_the_expected_value_cache_is_private(grader):
    assert CACHE_DIR.is_dir()
    assert CACHE_DIR.stat().st_mode & 0o777 == 0o700
    files = list(CACHE_DIR.glob("cases-*.json"))
    assert files
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_report_is_reused_only_at_the_same_or_a_stronger_level():
    doc = {batch.HASH_KEY: "sha256:x", "sandbox": "uid"}
    assert batch.reusable(doc, "sha256:x", "uid")
    assert batch.reusable(doc, "sha256:x", "process")
    assert not batch.reusable(doc, "sha256:x", "bwrap")
    assert not batch.reusable(doc, "sha256:y", "uid")
    assert not batch.reusable({batch.HASH_KEY: "sha256:x"}, "sha256:x", "process")


@root_only
@pytest.mark.slow
def test_grade_all_regrades_what_a_weaker_level_graded(tmp_path):
    try:
        sandbox.choose("bwrap")
    except sandbox.SandboxError as exc:
        pytest.skip(f"needs bubblewrap: {exc}")
    subs = tmp_path / "subs"
    write_layout(subs, REFERENCE_SOURCE, "file", name="alice")
    out = tmp_path / "out"
    limits = Limits(**TEST_LIMITS)
    first = batch.grade_all(subs, out, GradeOptions(sandbox="uid", limits=limits), progress=False)
    assert first.outcomes[0].reused is False
    again = batch.grade_all(subs, out, GradeOptions(sandbox="uid", limits=limits), progress=False)
    assert again.outcomes[0].reused is True
    stronger = batch.grade_all(subs, out, GradeOptions(limits=limits), progress=False)
    assert stronger.outcomes[0].reused is False
    assert json.loads((out / "alice.json").read_text())["sandbox"] == "bwrap"


# ------------------------------------------------------------------ interruptions

SLOW_IMPORT = """
import time
time.sleep(30)
"""


def _student_process(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """The student's process under a grader: the deepest process that stays put."""
    from autograder.isolation.worker.proctree import descendants

    deadline = time.monotonic() + timeout
    last, since = 0, time.monotonic()
    while time.monotonic() < deadline and proc.poll() is None:
        tree = descendants(proc.pid)  # deepest first
        pid = tree[0] if tree else 0
        if pid != last:
            last, since = pid, time.monotonic()
        elif pid and time.monotonic() - since > 1.0:
            return pid  # the slow import has been running for a second
        time.sleep(0.05)
    return 0


def _run_dirs() -> set[str]:
    return {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("autograder-run-*")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@linux_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize(
    ("command", "level"),
    [("grade", "process"), ("grade-all", "process"), ("grade", "uid"), ("grade-all", "uid")],
)
def test_an_interrupted_run_leaves_no_directory_or_process(tmp_path, signum, command, level):
    if level == "uid" and os.geteuid() != 0:
        pytest.skip("the uid level needs root")
    subs = tmp_path / "subs"
    write_layout(subs, append(REFERENCE_SOURCE, SLOW_IMPORT), "file")
    argv = [sys.executable, "-m", "autograder", command, str(subs / "sub.py")]
    argv += ["--allow-unisolated", "--sandbox", level]
    if command == "grade-all":
        argv[4:5] = [str(subs), "-o", str(tmp_path / "out"), "--jobs", "1"]
    before = _run_dirs()
    # A file, not a pipe: a process that survived the signal must not block the test.
    errors = tmp_path / "stderr"
    with errors.open("wb") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        student = _student_process(proc)
        assert student, errors.read_text()
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), errors.read_text()
    deadline = time.monotonic() + 5
    while _alive(student) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(student)
    assert _run_dirs() - before == set()


def test_stale_run_directories_of_dead_graders_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"{sandbox.RUN_DIR_PREFIX}{int(dead.stdout)}-abc"
    live = tmp_path / f"{sandbox.RUN_DIR_PREFIX}{os.getpid()}-abc"
    stale.mkdir()
    (stale / "file").write_text("x")
    live.mkdir()
    assert sandbox.remove_stale_run_dirs(str(tmp_path)) == 1
    assert not stale.exists()
    assert live.exists()


@root_only
def test_a_leased_uid_is_reset_before_use():
    # A grader killed with SIGKILL cannot release its lease clean.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        lease = uids.acquire()
        os.write(w, str(lease.uid).encode())
        time.sleep(60)
        os._exit(0)
    os.close(w)
    uid = int(os.read(r, 32))
    os.close(r)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    # A process and a file of that uid, as if left by a grader killed with SIGKILL.
    leftover = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "60"]
    )
    stray = Path("/tmp") / f"autograder-stray-{uid}"
    stray.write_text("x")
    os.chown(stray, uid, uid)
    try:
        time.sleep(0.2)
        os.environ[uids.RANGE_ENV] = f"{uid}-{uid}"
        again = uids.acquire()
        assert again.uid == uid
        again.release()
        assert leftover.wait(timeout=5) == -signal.SIGKILL
        assert not stray.exists()
    finally:
        os.environ.pop(uids.RANGE_ENV, None)
        if leftover.poll() is None:
            leftover.kill()
        stray.unlink(missing_ok=True)


@root_only
def test_two_leases_never_share_a_uid():
    leases = [uids.acquire() for _ in range(5)]
    try:
        assert len({lease.uid for lease in leases}) == 5
    finally:
        for lease in leases:
            lease.release()


def test_uid_is_no_longer_a_slot_number():
    assert not hasattr(sandbox, "slot_uid")
    assert by_name  # the conftest helper stays importable for the tests above


# ------------------------------------------------------------------ time and memory limits

# About 0.5 s of CPU per ReLU case in plain Python (well under the tests' 1 s per phase).
SLOW_BUT_LEGAL = replace_method(
    REFERENCE_SOURCE,
    "ReLU",
    "forward",
    """
    import time
    end = time.process_time() + 0.5
    while time.process_time() < end:
        pass
    self.A = np.maximum(Z, 0)
    return self.A
    """,
)


def _burn() -> None:
    os.setsid()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        pass


@linux_only
@pytest.mark.slow
def test_a_loaded_machine_does_not_make_an_honest_submission_time_out(tmp_path):
    # Four CPU burners on two cores: the honest child gets well under half a core, so
    # each 0.5 s of CPU takes over a second of wall-clock time. Limits count CPU time.
    path = write_layout(tmp_path, SLOW_BUT_LEGAL, "file")
    options = GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True)
    with Grader(options) as grader:
        alone = grader.grade(path, use_pytest=False)
        burners = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                try:
                    _burn()
                finally:
                    os._exit(0)
            burners.append(pid)
        try:
            loaded = grader.grade(path, use_pytest=False)
        finally:
            for pid in burners:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    assert alone.score == alone.max_score
    assert loaded.score == alone.score, [t.output for t in loaded.tests if t.score < t.max_score]


BURN_AT_IMPORT = append(
    REFERENCE_SOURCE,
    """
    import os as _os, time as _time
    for _ in range(20):
        if _os.fork() == 0:
            _os.setsid()
            if _os.fork() == 0:
                _end = _time.monotonic() + 30
                while _time.monotonic() < _end:
                    pass
            _os._exit(0)
    """,
)


@root_only
@pytest.mark.slow
def test_a_neighbour_burning_cpu_in_a_batch_costs_an_honest_submission_nothing(tmp_path):
    subs = tmp_path / "subs"
    write_layout(subs, SLOW_BUT_LEGAL, "file", name="honest")
    write_layout(subs, BURN_AT_IMPORT, "file", name="burner")
    options = GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True)
    alone = batch.grade_all(subs, tmp_path / "alone", options, jobs=1, progress=False)
    together = batch.grade_all(subs, tmp_path / "together", options, jobs=2, progress=False)
    score = {o.submission: o.score for o in alone.outcomes}
    assert score["honest"] == alone.outcomes[0].max_score
    assert {o.submission: o.score for o in together.outcomes}["honest"] == score["honest"]


FILL_SHM = """
import os
written = 0
try:
    for i in range({files}):
        with open(f"/dev/shm/autograder-fill-{{os.getpid()}}-{{i}}", "wb") as fh:
            fh.write(b"x" * (16 << 20))
        written += 1
        print("WROTE", written, flush=True)
except OSError as exc:
    print("STOPPED", exc, flush=True)
"""


@root_only
def test_memory_in_shared_memory_files_counts_against_the_run(tmp_path):
    # A tmpfs file belongs to no process: only the run's cgroup can count it.
    # Landlock would refuse the writes to /dev/shm: this tests the cgroup beneath it.
    limits = Limits(**{**TEST_LIMITS, "memory_bytes": 256 << 20}, layers_off=("landlock",))
    options = GradeOptions(sandbox="uid", limits=limits)
    fill = append(REFERENCE_SOURCE, FILL_SHM.format(files=64))  # 1 GiB
    small = append(REFERENCE_SOURCE, FILL_SHM.format(files=2))  # 32 MiB: the honest twin
    with Grader(options) as grader:
        if not grader.zygote().launched.facts.get("cgroup"):
            pytest.skip("no cgroup here")
        twin = grader.grade(write_layout(tmp_path / "twin", small, "file"), use_pytest=False)
        bad = grader.grade(write_layout(tmp_path / "bad", fill, "file"), use_pytest=False)
    assert twin.score == twin.max_score
    counts = [int(x.split()[1]) for x in bad.student_output.splitlines() if x.startswith("WROTE")]
    # The run's cgroup holds 256 MiB plus the zygote's allowance: never 1 GiB.
    assert max(counts, default=0) * 16 < 640
    assert bad.score < twin.score
    assert not [p for p in Path("/dev/shm").iterdir() if p.name.startswith("autograder-fill-")]


@linux_only
def test_the_zygotes_stderr_is_a_capped_pipe_never_a_file(monkeypatch):
    # bubblewrap's init once wrote 100 MiB to a stderr that was a file on the host.
    monkeypatch.delenv("AUTOGRADER_DEBUG", raising=False)
    launched = sandbox.launch(sandbox.plan("process"))
    try:
        assert stat.S_ISFIFO(os.fstat(launched.stderr_fd).st_mode)
        zygote_err = os.readlink(f"/proc/{launched.proc.pid}/fd/2")
        assert zygote_err.startswith("pipe:")
        with open(f"/proc/{launched.proc.pid}/fd/2", "wb") as err:
            err.write(b"x" * (32 << 10) + b"\nlast line\n")
        assert launched.diagnosis() == "last line"
        assert len(launched._stderr) <= sandbox.STDERR_KEEP
    finally:
        launched.proc.kill()
        launched.proc.wait()
        launched.close()


# ------------------------------------------------------------------ same-user processes

REACH_OUT = """
import os, signal
found = []
try:
    with open("/proc/{pid}/mem", "r+b") as fh:
        found.append("mem")
except OSError:
    pass
try:
    with open("/proc/{pid}/fd/1", "w") as fh:
        fh.write('{{"scores": {{}}}}')
        found.append("stdout")
except OSError:
    pass
try:
    os.kill({pid}, signal.SIGTERM)
    found.append("signal")
except OSError:
    pass
"""


@linux_only
@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "honest-twin-without"])
def test_student_code_cannot_reach_a_same_user_process(tmp_path, landlock):
    # At the process level (Autolab) make and sh run as the student's uid and are
    # dumpable: their memory and stdout must stay out of reach, and so must signals.
    from autograder.isolation.worker import landlock as ll

    if not ll.abi_version():
        pytest.skip(f"no Landlock here: {ll.unavailable_reason()}")
    victim = subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE)
    try:
        hostile = replace_method(
            REFERENCE_SOURCE,
            "ReLU",
            "forward",
            REACH_OUT.format(pid=victim.pid)
            + "\nprint('FINDINGS', found)\nself.A = np.maximum(Z, 0)\nreturn self.A",
        )
        off = () if landlock else ("landlock",)
        limits = Limits(**TEST_LIMITS, layers_off=off)
        options = GradeOptions(sandbox="process", allow_unisolated=True, limits=limits)
        with Grader(options) as grader:
            report = grader.grade(write_layout(tmp_path, hostile, "file"), use_pytest=False)
        line = next(x for x in report.student_output.splitlines() if x.startswith("FINDINGS"))
        if landlock:
            assert line == "FINDINGS []"
            assert victim.poll() is None
        else:
            assert "mem" in line and "signal" in line  # what Landlock stops, without it
    finally:
        victim.kill()
        victim.wait()


def test_the_class_summary_states_the_level_that_graded(tmp_path):
    subs = tmp_path / "subs"
    write_layout(subs, REFERENCE_SOURCE, "file", name="alice")
    options = GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True)
    result = batch.grade_all(subs, tmp_path / "out", options, progress=False)
    level = result.outcomes[0].sandbox
    assert level in sandbox.RANK
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert f"Sandbox level that graded them: {level} 1." in text


def test_the_early_launch_sizes_the_run_like_the_default_limits():
    # The command line starts the worker before it imports the limits (numpy): the
    # two defaults must agree, or the early worker's cgroup would be the wrong size.
    assert sandbox.Resources() == Limits().resources()


@root_only
def test_a_lease_released_clean_is_not_reset_again():
    lease = uids.acquire()
    uid = lease.uid
    lease.release(clean=True)
    stray = Path("/tmp") / f"autograder-stray-{uid}"
    stray.write_text("x")
    os.chown(stray, uid, uid)
    try:
        os.environ[uids.RANGE_ENV] = f"{uid}-{uid}"
        again = uids.acquire()
        again.release(clean=False)
        assert stray.exists()  # no reset after a clean release: nothing to reset
        again = uids.acquire()
        again.release()
        assert not stray.exists()  # after one that was not clean: reset
    finally:
        os.environ.pop(uids.RANGE_ENV, None)
        stray.unlink(missing_ok=True)
