"""One cgroup per grading run (autograder/isolation/cgroups.py).

Each limit has an attack (the workload goes past the limit and is stopped), its
honest twin (the same workload, smaller, passes under the same limit) and the
attack again with the limit raised out of its way (it succeeds: the limit, not
something else, is what stopped it). Skipped, with the reason, where this
machine cannot create cgroups.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.isolation import cgroups
from autograder.isolation.cgroups import CgroupUnavailable, RunCgroup
from autograder.isolation.worker import proctree


def _probe() -> str:
    try:
        RunCgroup.create(64 << 20, 10, "probe").close()
    except CgroupUnavailable as exc:
        return str(exc)
    return ""


UNAVAILABLE = _probe() if sys.platform.startswith("linux") else "cgroups need Linux"
needs_cgroups = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"no cgroups: {UNAVAILABLE}")

MiB = 1 << 20
PY = [sys.executable, "-I", "-S", "-c"]

ANON = """
import sys
data = b"\\x01" * (int(sys.argv[1]) << 20)  # written, so every page is really used
print("allocated")
"""

WRITER = """
import sys
path, n = sys.argv[1], int(sys.argv[2])
chunk = b"\\x01" * (1 << 20)
written = 0
try:
    with open(path, "wb") as fh:
        for _ in range(n):
            fh.write(chunk)
            fh.flush()
            written += 1
except OSError as exc:
    print("error", exc.errno, written)
    sys.exit(3)
print("wrote", written)
"""

FORKER = """
import os, sys, time
made = 0
for _ in range(int(sys.argv[1])):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.closerange(0, 3)  # let the test read our parent's output to its end
        time.sleep(60)
        os._exit(0)
    made += 1
print(made)
"""

BURNER = """
import os, signal, sys, time
n, seconds = int(sys.argv[1]), float(sys.argv[2])
# Children reaped by the kernel: /proc accounting loses their time, a cgroup does not.
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for _ in range(n):
    if os.fork() == 0:
        os.setsid()
        start = time.process_time()
        while seconds < 0 or time.process_time() - start < seconds:
            pass
        os._exit(0)
try:
    os.wait()  # returns (ECHILD) once every child has exited
except ChildProcessError:
    pass
"""


@pytest.fixture
def make_cgroup():
    """RunCgroup.create, with every cgroup closed at the end of the test."""
    made: list[RunCgroup] = []

    def make(memory_bytes: int = 256 * MiB, pids: int = 100, hint: str = "test") -> RunCgroup:
        cg = RunCgroup.create(memory_bytes, pids, hint)
        made.append(cg)
        return cg

    yield make
    for cg in made:
        cg.close()


def run_in(cg: RunCgroup | None, argv: list[str], timeout: float = 60, **kw):
    """Run ``argv`` to completion inside ``cg`` (attached at launch)."""
    preexec = cg.attach_preexec() if cg is not None else None
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec, **kw
    )


# ------------------------------------------------------------------- memory


@needs_cgroups
def test_memory_limit_stops_anonymous_memory(make_cgroup):
    cg = make_cgroup(64 * MiB)
    assert run_in(cg, [*PY, ANON, "16"]).stdout.strip() == "allocated"  # honest twin
    attack = run_in(cg, [*PY, ANON, "256"])
    assert attack.returncode == -signal.SIGKILL
    assert cg.oom_killed() >= 1
    assert cg.memory_peak() is None or cg.memory_peak() <= 64 * MiB
    roomy = make_cgroup(1024 * MiB)
    assert run_in(roomy, [*PY, ANON, "256"]).stdout.strip() == "allocated"
    assert roomy.oom_killed() == 0


def _shm_write(cg: RunCgroup, mib: int) -> tuple[subprocess.CompletedProcess, int]:
    """Write ``mib`` MiB to a file in /dev/shm from inside ``cg``: result and size written."""
    path = f"/dev/shm/autograder-test-{os.getpid()}-{cg.name[-12:]}"
    try:
        proc = run_in(cg, [*PY, WRITER, path, str(mib)])
        return proc, os.path.getsize(path) if os.path.exists(path) else 0
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@needs_cgroups
@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_memory_limit_counts_dev_shm(make_cgroup):
    """Shared memory is memory: a file in /dev/shm counts against the run's limit."""
    cg = make_cgroup(64 * MiB)
    honest, size = _shm_write(cg, 16)
    assert honest.stdout.strip() == "wrote 16" and size == 16 * MiB
    attack, size = _shm_write(cg, 256)
    assert attack.returncode != 0, attack.stdout
    assert size <= 64 * MiB  # the host kept the rest
    assert cg.memory_peak() is None or cg.memory_peak() <= 64 * MiB
    roomy = make_cgroup(1024 * MiB)
    attack, size = _shm_write(roomy, 256)
    assert attack.stdout.strip() == "wrote 256" and size == 256 * MiB


TMPFS = """
set -e
mount -t tmpfs -o size=1g none "$1"
if head -c "$2" /dev/zero > "$1/fill"; then echo "filled $2"; else echo "stopped"; fi
"""


def _private_tmpfs(cg: RunCgroup, tmp_path, size: str) -> subprocess.CompletedProcess:
    """The issue's attack: a user namespace, a mount namespace, a tmpfs, and fill it."""
    target = tmp_path / f"mnt-{size}"
    target.mkdir(exist_ok=True)
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", TMPFS, "sh"]
    return run_in(cg, [*argv, str(target), size])


@needs_cgroups
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_memory_limit_counts_a_private_tmpfs(make_cgroup, tmp_path):
    """A tmpfs in a private mount namespace belongs to no process; the cgroup still counts it."""
    cg = make_cgroup(64 * MiB)
    honest = _private_tmpfs(cg, tmp_path, "16M")
    if "Operation not permitted" in honest.stderr:
        pytest.skip(f"user namespaces are not available: {honest.stderr.strip()}")
    assert honest.stdout.strip() == "filled 16M", honest.stderr
    attack = _private_tmpfs(cg, tmp_path, "256M")
    assert "filled" not in attack.stdout
    assert cg.oom_killed() >= 1 or attack.returncode != 0
    assert cg.memory_peak() is None or cg.memory_peak() <= 64 * MiB
    roomy = make_cgroup(1024 * MiB)
    assert _private_tmpfs(roomy, tmp_path, "256M").stdout.strip() == "filled 256M"


@needs_cgroups
def test_swap_cannot_extend_the_limit(make_cgroup):
    cg = make_cgroup(64 * MiB)
    if cg.version == 1:
        memsw = os.path.join(cg.directories["memory"], "memory.memsw.limit_in_bytes")
        if not os.path.exists(memsw):
            pytest.skip("no swap accounting in this kernel")
        assert int(Path(memsw).read_text()) == 64 * MiB
    else:
        swap = os.path.join(cg.directories["unified"], "memory.swap.max")
        if not os.path.exists(swap):
            pytest.skip("no swap accounting in this kernel")
        assert Path(swap).read_text().strip() == "0"


# -------------------------------------------------------------------- pids


@needs_cgroups
def test_fork_bomb_stops_at_pids_max(make_cgroup):
    """pids.max holds for root too (RLIMIT_NPROC does not)."""
    cg = make_cgroup(pids=20)
    assert run_in(cg, [*PY, FORKER, "10"]).stdout.strip() == "10"  # honest twin
    cg.close()
    cg = make_cgroup(pids=20)
    made = int(run_in(cg, [*PY, FORKER, "100"]).stdout)
    assert made <= 19  # the forker itself is one of the 20
    assert cg.pids_refused() >= 1
    roomy = make_cgroup(pids=1000)
    assert run_in(roomy, [*PY, FORKER, "100"]).stdout.strip() == "100"


# --------------------------------------------------------------------- CPU


@needs_cgroups
def test_cpu_seconds_counts_the_whole_tree(make_cgroup):
    """Two burners of 0.5 s CPU (new sessions, auto-reaped): about 1 s; sleeping is free."""
    cg = make_cgroup()
    run_in(cg, [*PY, BURNER, "2", "0.5"])
    # Plus the interpreter's own start (tens of milliseconds).
    assert 1.0 <= cg.cpu_seconds() <= 1.2
    sleeper = make_cgroup()
    run_in(sleeper, ["sleep", "1"])
    assert sleeper.cpu_seconds() < 0.05


@needs_cgroups
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_cpu_and_processes_of_a_pid_namespace_are_inside(make_cgroup):
    """bubblewrap's children have namespace pids: attaching at launch still catches them."""
    cg = make_cgroup()
    bwrap = ["bwrap", "--unshare-pid", "--die-with-parent", "--dev-bind", "/", "/"]
    proc = run_in(cg, [*bwrap, *PY, BURNER, "2", "0.3"])
    if proc.returncode != 0:
        pytest.skip(f"bubblewrap cannot run here: {proc.stderr.strip()[:200]}")
    assert 0.6 <= cg.cpu_seconds() <= 0.8


BUSY = [*PY, BURNER]


def _share(groups: list[RunCgroup | None], burners: list[int], seconds: float) -> list[float]:
    """Run burners[i] endless burners in groups[i] at once, on one CPU: CPU each got."""

    def preexec(cg):
        attach = cg.attach_preexec() if cg is not None else None

        def go():
            if attach is not None:
                attach()
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

        return go

    procs = [
        subprocess.Popen([*BUSY, str(n), "-1"], preexec_fn=preexec(cg))
        for cg, n in zip(groups, burners, strict=True)
    ]
    try:
        time.sleep(0.3)  # every burner started
        before = [_used(cg, p) for cg, p in zip(groups, procs, strict=True)]
        time.sleep(seconds)
        after = [_used(cg, p) for cg, p in zip(groups, procs, strict=True)]
    finally:
        for p in procs:
            for pid in [*proctree.descendants(p.pid), p.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            p.wait()
    return [a - b for a, b in zip(after, before, strict=True)]


def _used(cg: RunCgroup | None, proc: subprocess.Popen) -> float:
    return cg.cpu_seconds() if cg is not None else proctree.tree_cpu_seconds(proc.pid)


@needs_cgroups
@pytest.mark.slow
def test_runs_share_the_cpu_fairly_whatever_their_process_count(make_cgroup):
    """Four burners in run A, one in run B, one core: B still gets about half."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs sched_setaffinity")
    a, b = _share([make_cgroup(), make_cgroup()], [4, 1], 1.5)
    assert b >= 0.7 * a, (a, b)
    # Twin without cgroups: B gets about a fifth (one burner of five).
    a, b = _share([None, None], [4, 1], 1.5)
    assert b < 0.5 * a, (a, b)


@needs_cgroups
def test_cpu_seconds_is_one_cheap_read(make_cgroup):
    cg = make_cgroup()
    costs = []
    for _ in range(200):
        start = time.perf_counter()
        cg.cpu_seconds()
        costs.append(time.perf_counter() - start)
    assert statistics.median(costs) < 50e-6, statistics.median(costs)


# ------------------------------------------------------------ two runs apart


@needs_cgroups
def test_two_runs_share_neither_limits_nor_accounting(make_cgroup):
    small = make_cgroup(64 * MiB, pids=20, hint="small")
    large = make_cgroup(512 * MiB, pids=200, hint="large")
    assert small.name != large.name
    assert not set(small.directories.values()) & set(large.directories.values())
    assert run_in(large, [*PY, ANON, "128"]).stdout.strip() == "allocated"
    assert run_in(small, [*PY, ANON, "128"]).returncode == -signal.SIGKILL
    assert (small.oom_killed(), large.oom_killed()) == (1, 0)
    run_in(small, [*PY, BURNER, "1", "0.4"])
    assert small.cpu_seconds() >= 0.4
    assert large.cpu_seconds() < 0.3  # its one allocator only
    assert int(run_in(large, [*PY, FORKER, "40"]).stdout) == 40


# --------------------------------------------------------------- the end


ESCAPER = """
import os, signal, time
# A daemon: new session, double fork, deaf to polite signals.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.closerange(0, 3)
        time.sleep(120)
    os._exit(0)
os.wait()
print("detached")
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


@needs_cgroups
def test_close_kills_everything_and_removes_the_cgroup():
    cg = RunCgroup.create(128 * MiB, 50, "close")
    assert run_in(cg, [*PY, ESCAPER]).stdout.strip() == "detached"
    run_in(cg, [*PY, FORKER, "5"])
    left = cg.procs()
    assert len(left) == 6 and all(_alive(pid) for pid in left)
    cg.close()
    time.sleep(0.05)  # init reaps the killed orphans
    assert not any(_alive(pid) for pid in left)
    assert not any(os.path.exists(d) for d in cg.directories.values())
    cg.close()  # twice is harmless


@needs_cgroups
def test_create_leaves_nothing_when_a_limit_cannot_be_set(monkeypatch):
    made = []
    real_mkdir = os.mkdir

    def mkdir(path, mode=0o777):
        made.append(path)
        real_mkdir(path, mode)

    monkeypatch.setattr(cgroups.os, "mkdir", mkdir)
    with pytest.raises(CgroupUnavailable, match=r"cannot set up .*pids\.max"):
        RunCgroup.create(64 * MiB, 2**63, "toobig")  # pids.max refuses 2**63
    assert made and not any(os.path.exists(p) for p in made)


# ------------------------------------------------------------------- stale


@needs_cgroups
def test_remove_stale_removes_a_dead_graders_cgroup(make_cgroup):
    mine = make_cgroup(hint="mine")  # a live grader's: kept
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a grader that dies without cleaning up
        try:
            cg = RunCgroup.create(64 * MiB, 20, "dead")
            sleeper = subprocess.Popen(
                ["sleep", "120"], preexec_fn=cg.attach_preexec(), start_new_session=True
            )
            os.write(w, f"{cg.name} {sleeper.pid}".encode())
        finally:
            os._exit(0)
    os.close(w)
    name, sleeper = os.read(r, 200).decode().split()
    os.close(r)
    os.waitpid(pid, 0)
    dead = {c: os.path.join(os.path.dirname(d), name) for c, d in mine.directories.items()}
    assert all(os.path.isdir(d) for d in dead.values()) and _alive(int(sleeper))
    # A pid reused by a process that started at another time: stale too.
    ns = cgroups.pid_namespace()
    reused = {
        c: os.path.join(os.path.dirname(d), f"autograder-{os.getpid()}-1-{ns}-0-deadbeef-reused")
        for c, d in mine.directories.items()
    }
    # A grader of another PID namespace (a container): its pid means nothing here, keep it.
    foreign = {
        c: os.path.join(os.path.dirname(d), f"autograder-1-1-{ns + 1}-0-deadbeef-foreign")
        for c, d in mine.directories.items()
    }
    for d in dict.fromkeys([*reused.values(), *foreign.values()]):
        os.mkdir(d)
    try:
        assert cgroups.remove_stale() >= 2
        time.sleep(0.05)
        assert not any(os.path.exists(d) for d in [*dead.values(), *reused.values()])
        assert not _alive(int(sleeper))
        assert all(os.path.isdir(d) for d in mine.directories.values())
        assert all(os.path.isdir(d) for d in foreign.values())
    finally:
        for d in dict.fromkeys(foreign.values()):
            with contextlib.suppress(OSError):
                os.rmdir(d)


# ------------------------------------------------------------ unavailable


@needs_cgroups
def test_not_root_and_nothing_delegated():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                RunCgroup.create(64 * MiB, 20, "nobody").close()
                os.write(w, b"created")
            except CgroupUnavailable as exc:
                os.write(w, str(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    message = os.read(r, 1000).decode()
    os.close(r)
    os.waitpid(pid, 0)
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another uid")
    assert message.startswith("cannot create a cgroup in ")
    assert message.endswith("permission denied (not root, and nothing delegated)")


def test_read_only_cgroup_file_system(monkeypatch, tmp_path):
    """As in Docker: /sys/fs/cgroup is mounted read-only."""
    layout = cgroups._Layout(1, {c: str(tmp_path / c) for c in cgroups.V1_CONTROLLERS})
    monkeypatch.setattr(cgroups, "_layout", lambda: layout)

    def read_only(path, mode=0o777):
        raise OSError(30, "Read-only file system", path)

    monkeypatch.setattr(cgroups.os, "mkdir", read_only)
    with pytest.raises(
        CgroupUnavailable, match=r"^cannot create a cgroup in .*: read-only file system$"
    ):
        RunCgroup.create(64 * MiB, 20)


def test_v2_controllers_not_delegated(tmp_path):
    (tmp_path / "cgroup.subtree_control").write_text("cpu io\n")
    with pytest.raises(CgroupUnavailable, match="memory, pids not delegated to"):
        cgroups._v2_layout(str(tmp_path))
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    layout = cgroups._v2_layout(str(tmp_path))
    assert layout.version == 2 and layout.parents == {"unified": str(tmp_path)}
    assert layout.notes == ["cpu controller not delegated: runs do not get equal CPU weights"]


def test_not_linux(monkeypatch):
    monkeypatch.setattr(cgroups.sys, "platform", "darwin")
    with pytest.raises(CgroupUnavailable, match="need Linux"):
        RunCgroup.create(64 * MiB, 20)


def test_parsing_mountinfo_and_proc_cgroup():
    mountinfo = (
        "31 23 0:28 / /sys/fs/cgroup ro,relatime - tmpfs tmpfs ro,mode=755\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "50 31 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n"
    )
    mounts = cgroups._mounts(mountinfo)
    assert [m[0] for m in mounts] == ["cgroup", "cgroup", "cgroup2", "cgroup2"]
    assert mounts[1][1:3] == ("/docker/abc", "/sys/fs/cgroup/cpu,cpuacct")
    assert {"cpu", "cpuacct"} <= mounts[1][3]
    assert mounts[3][2] == "/mnt/with space"
    own = cgroups._own_cgroups("4:memory:/process_api/h\n1:cpu,cpuacct:/docker/abc/x\n0::/\n")
    assert own == {
        "memory": "/process_api/h",
        "cpu": "/docker/abc/x",
        "cpuacct": "/docker/abc/x",
        "": "/",
    }
    assert (
        cgroups._directory("/docker/abc", "/sys/fs/cgroup/cpu", "/docker/abc/x")
        == "/sys/fs/cgroup/cpu/x"
    )
    assert cgroups._directory("/docker/abc", "/sys/fs/cgroup/cpu", "/other") is None
    assert cgroups._directory("/", "/sys/fs/cgroup/memory", "/") == "/sys/fs/cgroup/memory"


@needs_cgroups
def test_create_and_close_are_quick(make_cgroup):
    costs = []
    for _ in range(5):
        start = time.perf_counter()
        RunCgroup.create(64 * MiB, 20, "quick").close()
        costs.append(time.perf_counter() - start)
    assert statistics.median(costs) < 0.05, costs
