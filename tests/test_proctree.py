"""Process trees through /proc (autograder/isolation/worker/proctree.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

import pytest

from autograder.isolation.worker import proctree

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")


def burn(seconds: float) -> None:
    """Use ``seconds`` of CPU time (not wall time: the machine may be busy)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextlib.contextmanager
def forked(body):
    """Run ``body`` in a forked child; yield its pid; kill and reap it afterwards."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    try:
        yield pid
    finally:
        for p in [*proctree.descendants(pid), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_descendants_deepest_first_through_setsid():
    r, w = os.pipe()

    def root():
        child = os.fork()
        if child == 0:
            os.setsid()  # a new session: still found by its parent link
            grandchild = os.fork()
            if grandchild == 0:
                time.sleep(60)
                os._exit(0)
            os.write(w, f"{os.getpid()} {grandchild}\n".encode())
            time.sleep(60)
            os._exit(0)
        time.sleep(60)

    with forked(root) as pid:
        child, grandchild = map(int, os.read(r, 100).split())
        found = proctree.descendants(pid)
        assert found == [grandchild, child]
        assert pid not in found and os.getpid() not in found
        assert proctree.descendants(grandchild) == []
    os.close(r)
    os.close(w)


def test_descendants_of_a_missing_process_is_empty():
    with forked(lambda: None) as pid:
        pass
    assert proctree.descendants(pid) == []
    assert proctree.tree_cpu_seconds(pid) is None


def test_tree_cpu_counts_two_burners_and_not_a_sleeper():
    """Two burners of 0.5 s CPU each: the tree used about 1 s; a sleeper adds nothing."""

    def root():
        kids = []
        for work in (0.5, 0.5, 0.0):
            pid = os.fork()
            if pid == 0:
                burn(work)
                time.sleep(60)  # stay alive: counted through utime
                os._exit(0)
            kids.append(pid)
        time.sleep(60)

    with forked(root) as pid:
        # /proc counts whole clock ticks per process: each burner shows 0.49 or 0.50.
        wait_for(lambda: (proctree.tree_cpu_seconds(pid) or 0) >= 0.98)
        time.sleep(0.2)
        assert 0.98 <= proctree.tree_cpu_seconds(pid) <= 1.1


def test_tree_cpu_counts_reaped_children_once():
    """A child's time moves into its reaper's cutime: counted before and after, once."""
    r, w = os.pipe()

    def root():
        child = os.fork()
        if child == 0:
            grandchild = os.fork()
            if grandchild == 0:
                burn(0.3)
                os._exit(0)
            os.waitpid(grandchild, 0)  # into the child's cutime
            burn(0.2)
            os._exit(0)
        os.read(r, 1)  # let the test look at the zombie first
        os.waitpid(child, 0)  # then into our cutime
        time.sleep(60)

    with forked(root) as pid:
        # The child alone is left, a zombie (its own child reaped).
        wait_for(lambda: [_state(p) for p in proctree.descendants(pid)] == ["Z"])
        as_zombie = proctree.tree_cpu_seconds(pid)
        os.write(w, b"go")
        time.sleep(0.05)
        wait_for(lambda: proctree.descendants(pid) == [])
        after_reaping = proctree.tree_cpu_seconds(pid)
        assert 0.48 <= as_zombie <= 0.6
        assert 0.48 <= after_reaping <= 0.6
        # Moved, not doubled (+0.5) or lost (-0.5). /proc shows each of utime, stime,
        # cutime, cstime in whole ticks, the kernel's sum at reaping is exact: a few
        # ticks of rounding either way.
        assert abs(after_reaping - as_zombie) <= 0.05
    os.close(r)
    os.close(w)


def test_tree_cpu_does_not_count_outside_the_tree():
    with forked(lambda: time.sleep(60)) as idle, forked(lambda: burn(5)) as busy:
        wait_for(lambda: proctree.tree_cpu_seconds(busy) >= 0.3)
        assert proctree.tree_cpu_seconds(idle) < 0.05


def test_documented_hole_auto_reaped_children():
    """The module's docstring says children of a process ignoring SIGCHLD vanish.

    This pins the claim (a cgroup counts them): if it stops being true, the
    docstring must change.
    """

    burnt_r, burnt_w = os.pipe()
    go_r, go_w = os.pipe()

    def root():
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        if os.fork() == 0:
            burn(0.3)
            os.write(burnt_w, b"burnt")
            os.read(go_r, 1)  # exit when the test has looked
            os._exit(0)
        time.sleep(60)

    with forked(root) as pid:
        os.read(burnt_r, 5)
        assert proctree.tree_cpu_seconds(pid) >= 0.29
        os.write(go_w, b"x")
        wait_for(lambda: proctree.descendants(pid) == [])
        assert proctree.tree_cpu_seconds(pid) < 0.05
    for fd in (burnt_r, burnt_w, go_r, go_w):
        os.close(fd)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return ""
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


def test_cost_with_hundreds_of_processes():
    """Cheap enough to poll a few times a second with 300 processes in the tree."""
    proc = subprocess.Popen(
        ["sh", "-c", "for i in $(seq 300); do sleep 60 & done; wait"],
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(proctree.descendants(proc.pid)) >= 300)
        costs = []
        for _ in range(9):
            start = time.perf_counter()
            proctree.tree_cpu_seconds(proc.pid)
            costs.append(time.perf_counter() - start)
        # A few calls a second must cost a small share of one core: under 20 ms each.
        assert statistics.median(costs) < 0.02, costs
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare"
)
@pytest.mark.parametrize("own_proc", [False, True], ids=["foreign-proc", "own-proc"])
def test_a_proc_of_another_pid_namespace_is_never_walked(own_proc):
    # Under `unshare --pid` without a fresh /proc, pid numbers in /proc name strangers:
    # walking them (or signalling them) would reach the wrong processes.
    code = (
        "from autograder.isolation.worker import proctree; import os\n"
        "print(proctree.proc_is_ours(), proctree.descendants(1) == [], "
        "proctree.tree_cpu_seconds(os.getpid()) is None)"
    )
    argv = ["unshare", "--pid", "--fork"]
    if own_proc:
        argv += ["--mount-proc"]
    out = subprocess.run(
        [*argv, sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    # With its own /proc the walk works (pid 1 is the interpreter itself: no children).
    assert out == (["True", "True", "False"] if own_proc else ["False", "True", "True"])
