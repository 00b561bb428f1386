"""The sandbox: attacks that only a sandbox stops, each beside its honest twin.

Run against the strict (bubblewrap) level; skipped with the reason when it
cannot be set up (CI installs bubblewrap, so there they run). Every attack is
bounded (counts, sizes, sleeps) so a failed defence cannot harm the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import FULL_MARKS, TEST_LIMITS, by_name
from helpers import append, replace_method, write_layout

from autograder import files
from autograder.build import stubs
from autograder.engine import GradeOptions, Grader
from autograder.isolation import sandbox, uids
from autograder.isolation.runner import Limits

pytestmark = pytest.mark.sandbox

STUBS = stubs.stub_text()
ROOT = str(files.PROJECT_ROOT)


@pytest.fixture(scope="module")
def strict():
    """A grader that refuses to run without the full sandbox."""
    try:
        grader = Grader(GradeOptions(sandbox="strict", limits=Limits(**TEST_LIMITS)))
        grader.zygote()
    except sandbox.SandboxError as exc:
        pytest.skip(f"the strict sandbox is not available here: {exc}")
    yield grader
    grader.close()


def grade_pair(grader, tmp_path, hostile, twin=STUBS):
    bad = grader.grade(write_layout(tmp_path / "hostile", hostile, "file"), use_pytest=False)
    good = grader.grade(write_layout(tmp_path / "twin", twin, "file"), use_pytest=False)
    assert bad.score <= good.score
    for name, totals in bad.activations().items():
        assert totals["score"] <= good.activations()[name]["score"], name
    return bad, good


def relu_attack(body: str) -> str:
    """The stubs, with ReLU.forward running ``body`` (which may set ``found``)."""
    return replace_method(
        STUBS,
        "ReLU",
        "forward",
        textwrap.dedent(body).strip("\n")
        + "\nprint('FINDINGS', found)\n"
        + "self.A = found if isinstance(found, np.ndarray) else np.zeros_like(Z)\nreturn self.A",
    )


STEAL_SOLUTIONS = relu_attack(
    f"""
    import os, sys, importlib.util
    found = []
    guesses = [os.environ.get(k, "") for k in os.environ]
    guesses += [p for p in sys.path]
    here = os.path.dirname(os.path.abspath(__file__))
    for _ in range(8):
        guesses.append(here)
        here = os.path.dirname(here)
    for pid in ("1", str(os.getppid()), "self"):
        for link in ("cwd", "root"):
            try:
                guesses.append(os.readlink(f"/proc/{{pid}}/{{link}}"))
            except OSError:
                pass
    guesses += [{ROOT!r}, "/work", "/root", "/home"]
    for guess in guesses:
        for _ in range(6):
            for rel in ("solutions/mytorch/nn/activation.py", "autograder/course/hidden_cases.py",
                        "autograder/course/data/public_cases.json", "main/solutions/mytorch/nn/activation.py"):
                if os.path.exists(os.path.join(guess, rel)):
                    found.append(os.path.join(guess, rel))
            guess = os.path.dirname(guess)
    try:
        import autograder.course.hidden_cases
        found.append("hidden_cases")
    except Exception:
        pass
    for path in found:
        try:
            spec = importlib.util.spec_from_file_location("stolen", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            found = module.ReLU().forward(Z)
            break
        except Exception:
            continue
    """
)


def test_solutions_hidden_cases_and_grader_code_are_out_of_reach(strict, tmp_path):
    bad, _ = grade_pair(strict, tmp_path, STEAL_SOLUTIONS)
    assert by_name(bad)["ReLU forward (public)"].score == 0
    assert "FINDINGS []" in bad.student_output
    assert ROOT not in bad.student_output


def test_environment_of_the_grader_does_not_reach_student_code(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", "s3cret-value")
    hostile = relu_attack("import os\nfound = sorted(os.environ.items())")
    with Grader(GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True)) as grader:
        report = grader.grade(write_layout(tmp_path, hostile, "file"), use_pytest=False)
    assert "FINDINGS" in report.student_output
    assert "s3cret-value" not in report.student_output
    assert ROOT not in report.student_output


def test_network_is_unreachable_even_on_loopback(strict, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    hostile = relu_attack(
        f"""
        import socket
        found = []
        for host in ("127.0.0.1", "localhost", "::1"):
            try:
                s = socket.create_connection((host, {port}), timeout=0.5)
                s.sendall(b"pwned")
                found.append(host)
            except OSError as exc:
                pass
        """
    )
    try:
        bad, _ = grade_pair(strict, tmp_path, hostile)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert "FINDINGS []" in bad.student_output


def test_student_code_does_not_run_as_root(strict, tmp_path):
    hostile = relu_attack(
        """
        import os
        found = [os.getuid(), os.geteuid()]
        try:
            os.setuid(0)
            found.append("setuid-ok")
        except OSError:
            pass
        """
    )
    bad, _ = grade_pair(strict, tmp_path, hostile)
    line = next(x for x in bad.student_output.splitlines() if x.startswith("FINDINGS"))
    assert "setuid-ok" not in line and "[0," not in line


def _write_attempts(token: str, outside: str) -> str:
    return relu_attack(
        f"""
        import os
        found = []
        for path in ("/tmp/{token}", "../{token}", "../../{token}", {outside!r},
                     "/opt/autograder/{token}", "/usr/{token}"):
            try:
                with open(path, "w") as fh:
                    fh.write("x")
                found.append(path)
            except OSError:
                pass
        """
    )


def test_writes_outside_the_scratch_leave_no_trace(strict, tmp_path):
    token = f"pwned-{os.getpid()}-{time.monotonic_ns()}"
    outside = str(tmp_path / token)
    bad, _ = grade_pair(strict, tmp_path, _write_attempts(token, outside))
    findings = next(x for x in bad.student_output.splitlines() if x.startswith("FINDINGS"))
    assert outside not in findings and "/opt/autograder" not in findings and "/usr/" not in findings
    assert not Path(outside).exists()
    assert not Path("/tmp", token).exists()
    assert not (Path(ROOT) / token).exists()
    # Whatever it wrote inside the sandbox is gone before the next submission runs.
    peek = relu_attack("import os\nfound = sorted(os.listdir('/tmp'))")
    after = strict.grade(write_layout(tmp_path / "next", peek, "file"), use_pytest=False)
    assert token not in after.student_output


def _sandbox_processes(grader) -> list[int]:
    """Host pids in the zygote's PID namespace (bwrap's init and the zygote itself included)."""
    zygote = grader.zygote()
    ns = None
    for pid in [zygote.proc.pid, *_children(zygote.proc.pid)]:
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
            if ns != os.readlink("/proc/self/ns/pid"):
                break
        except OSError:
            continue
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass
    return found


DAEMON = append(
    STUBS,
    """
    import glob as _glob, os as _os, time as _time

    # A daemon that outlives its run and then rewrites the next submission's files,
    # plus a crowd of sleeping children.
    if _os.fork() == 0:
        _os.setsid()
        if _os.fork() == 0:
            _time.sleep(0.3)
            for _path in _glob.glob("/tmp/**/activation.py", recursive=True):
                try:
                    open(_path, "w").write("raise SystemExit('sabotaged')")
                except OSError:
                    pass
            _time.sleep(20)
        _os._exit(0)
    for _ in range(100):
        try:
            if _os.fork() == 0:
                _time.sleep(20)
                _os._exit(0)
        except OSError:
            break
    """,
)


def test_leftover_processes_die_with_their_run(strict, tmp_path):
    baseline = len(_sandbox_processes(strict))
    grade_pair(strict, tmp_path, DAEMON)
    # Nothing of the hostile run survives in the sandbox...
    assert len(_sandbox_processes(strict)) == baseline
    # ...so the daemon never gets to rewrite the next submission.
    time.sleep(0.5)
    later = strict.grade(write_layout(tmp_path / "later", files.REFERENCE_PATH.read_text(), "file"))
    assert later.score == FULL_MARKS


def test_a_fork_bomb_is_bounded_and_cleaned_up(strict, tmp_path):
    hostile = replace_method(
        STUBS,
        "ReLU",
        "forward",
        """
        import os, time
        n = 0
        for _ in range(300):
            try:
                if os.fork() == 0:
                    time.sleep(10)
                    os._exit(0)
                n += 1
            except OSError:
                break
        print("FORKED", n)
        raise NotImplementedError
        """,
    )
    baseline = len(_sandbox_processes(strict))
    bad, _ = grade_pair(strict, tmp_path, hostile)
    counts = [int(x.split()[1]) for x in bad.student_output.splitlines() if x.startswith("FORKED")]
    assert counts and max(counts) < 300
    assert len(_sandbox_processes(strict)) == baseline


def test_filling_the_disk_is_bounded(strict, tmp_path):
    hostile = replace_method(
        STUBS,
        "ReLU",
        "forward",
        """
        import os
        block = b"x" * (1 << 20)
        for i in range(200):
            try:
                with open(f"/tmp/fill-{i}", "wb") as fh:
                    for _ in range(4):
                        fh.write(block)
            except OSError:
                break
        raise NotImplementedError
        """,
    )
    bad, good = grade_pair(strict, tmp_path, hostile)
    assert bad.score == good.score


def test_a_200_mb_print_flood_is_drained_and_capped(strict, tmp_path):
    hostile = replace_method(
        STUBS,
        "ReLU",
        "forward",
        """
        import os, sys
        if not os.environ.get("FLOODED"):
            os.environ["FLOODED"] = "1"
            chunk = "y" * (1 << 20)
            for _ in range(200):
                sys.stdout.write(chunk)
        raise NotImplementedError
        """,
    )
    bad, good = grade_pair(strict, tmp_path, hostile)
    assert bad.score == good.score
    assert len(bad.student_output) <= 64 << 10


def _no_uid_level():
    raise sandbox.SandboxError("the uid level needs the grader to run as root on Linux")


def test_strict_refuses_without_a_level_that_protects_the_expected_values(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    monkeypatch.setattr(sandbox, "_uid_plan", _no_uid_level)
    with pytest.raises(sandbox.SandboxError, match=r"bubblewrap is not installed.*needs .*root"):
        Grader(GradeOptions(sandbox="strict"))


def test_auto_falls_back_and_says_so_when_bubblewrap_fails(monkeypatch, tmp_path):
    # A bwrap that cannot set up namespaces, as on a machine without user namespaces.
    fake_dir = Path(tempfile.mkdtemp(prefix="fake-bwrap-"))
    fake = fake_dir / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    fake_dir.chmod(0o755)
    real_which = shutil.which
    monkeypatch.setattr(
        sandbox.shutil, "which", lambda name: str(fake) if name == "bwrap" else real_which(name)
    )
    try:
        with Grader(GradeOptions(limits=Limits(**TEST_LIMITS), allow_unisolated=True)) as grader:
            report = grader.grade(write_layout(tmp_path, STUBS, "file"), use_pytest=False)
        assert report.score == 4.0
        assert report.sandbox in ("uid", "process")
        assert any("No permissions" in note for note in report.notes)
        assert report.isolation["skipped"][0]["level"] == "bwrap"
        assert "No permissions" in report.isolation["skipped"][0]["reason"]
        monkeypatch.setattr(sandbox, "_uid_plan", _no_uid_level)
        with pytest.raises(sandbox.SandboxError, match="No permissions"):
            Grader(GradeOptions(sandbox="strict")).zygote()
    finally:
        shutil.rmtree(fake_dir)


PID_REPORTING_DAEMONS = append(
    STUBS,
    """
    import os as _os, sys as _sys, time as _time

    # Double-forked daemons and plain children that report their pids, then linger.
    for _ in range(3):
        _r, _w = _os.pipe()
        if _os.fork() == 0:
            _os.setsid()
            if _os.fork() == 0:
                _os.write(_w, str(_os.getpid()).encode())
                _time.sleep(20)
            _os._exit(0)
        _os.close(_w)
        print("DAEMON", _os.read(_r, 32).decode(), flush=True)
    if _os.fork() == 0:
        _time.sleep(20)
        _os._exit(0)
    """,
)


@pytest.mark.parametrize("level", ["process", "uid"])
def test_weaker_levels_still_kill_every_leftover(tmp_path, level):
    if level == "uid" and os.geteuid() != 0:
        pytest.skip("the uid level needs root")
    options = GradeOptions(sandbox=level, limits=Limits(**TEST_LIMITS), allow_unisolated=True)
    with Grader(options) as grader:
        report = grader.grade(
            write_layout(tmp_path, PID_REPORTING_DAEMONS, "file"), use_pytest=False
        )
        pids = [
            int(line.split()[1])
            for line in report.student_output.splitlines()
            if line.startswith("DAEMON")
        ]
        assert len(pids) >= 3
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        if level == "uid":
            assert report.sandbox == "uid"
            uid_line = relu_attack("import os\nfound = [os.getuid()]")
            out = grader.grade(write_layout(tmp_path / "uid", uid_line, "file"), use_pytest=False)
            first, last = uids.uid_range()
            found = int(out.student_output.split("FINDINGS [")[1].split("]")[0])
            assert first <= found <= last


# ------------------------------------------------------------------ pid 1 and namespaces


@pytest.fixture(scope="module")
def bwrap():
    """A grader at exactly the bubblewrap level."""
    try:
        grader = Grader(GradeOptions(sandbox="bwrap", limits=Limits(**TEST_LIMITS)))
        grader.zygote()
    except sandbox.SandboxError as exc:
        pytest.skip(f"the bubblewrap level is not available here: {exc}")
    yield grader
    grader.close()


PTRACE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17

def attach(pid):
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
        return True
    return False
"""


def test_the_sandbox_init_is_the_zygote_and_out_of_reach(bwrap, tmp_path):
    # bubblewrap's own init ran as the student's uid, dumpable: ptrace it, inject code,
    # and it outlived the run. Now pid 1 is the zygote, not dumpable.
    hostile = relu_attack(
        PTRACE
        + textwrap.dedent(
            """
        found = []
        with open("/proc/1/cmdline", "rb") as fh:
            found.append("python" if b"python" in fh.read() else "not-the-zygote")
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
        found.append(f"others={len(others)}")
        if attach(1):
            found.append("ptrace-1")
        for name in ("mem", "environ"):
            try:
                with open(f"/proc/1/{name}", "rb") as fh:
                    fh.read(1)
                found.append(f"read-{name}")
            except OSError:
                pass
        """
        )
    )
    bad, _ = grade_pair(bwrap, tmp_path, hostile)
    line = next(x for x in bad.student_output.splitlines() if x.startswith("FINDINGS"))
    assert line == "FINDINGS ['python', 'others=0']"


def test_student_code_cannot_ptrace_even_its_own_child(grader, tmp_path):
    # The syscall filter, at whatever level the shared grader runs.
    hostile = relu_attack(
        PTRACE
        + textwrap.dedent(
            """
        import subprocess, time
        found = []
        # A fresh program: dumpable again after exec, unlike a plain fork of ours.
        child = subprocess.Popen(["sleep", "5"])
        time.sleep(0.1)
        if attach(child.pid):
            found.append("ptrace-child")
        child.kill()
        child.wait()
        """
        )
    )
    grader.zygote()
    if not grader.isolation.get("seccomp"):
        pytest.skip("no syscall filter here (libseccomp missing)")
    bad = grader.grade(write_layout(tmp_path, hostile, "file"), use_pytest=False)
    assert "FINDINGS []" in bad.student_output


NAMESPACES = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
found = []
pid = os.fork()
if pid == 0:
    ok = libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0
    if ok and libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"size=1g") == 0:
        os._exit(2)  # a tmpfs outside every limit
    os._exit(1 if ok else 0)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
if code:
    found.append({1: "userns", 2: "userns+tmpfs"}[code])
"""


def test_no_user_namespace_and_no_mount_inside_the_sandbox(bwrap, tmp_path):
    bad, _ = grade_pair(bwrap, tmp_path, relu_attack(NAMESPACES))
    assert "FINDINGS []" in bad.student_output


def test_no_user_namespace_at_any_level(grader, tmp_path):
    grader.zygote()
    if not grader.isolation.get("seccomp"):
        pytest.skip("no syscall filter here (libseccomp missing)")
    bad = grader.grade(write_layout(tmp_path, relu_attack(NAMESPACES), "file"), use_pytest=False)
    assert "FINDINGS []" in bad.student_output
