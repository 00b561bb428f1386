"""The zygote: imports numpy once, forks one child per run, leaves nothing behind.

The grader starts the zygote (through a sandbox level, ``sandbox.py``) and
talks to it over a control socket: ``spawn`` (with the child's two
descriptors), ``kill``, ``quit``; the zygote answers ``ready``, ``spawned``
and ``exited``. After every child it kills whatever that child started
(the zygote is a child subreaper, or the init of its own PID namespace),
reaps it, deletes the run's files, and at the uid level also removes
everything the run's uid left in world-writable directories.

Standard library and numpy only, plus the sibling modules of this folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
import time

from . import landlock, proctree
from .child import child_main
from .cleanup import kill_uid, remove_owned_by, remove_tree
from .frames import ProtocolError, recv_frame, send_frame
from .linux import PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_PDEATHSIG, prctl
from .proctree import descendants


def _load_filter():
    """The syscall filter, built once before any fork: (filter or None, reason)."""
    try:
        from . import syscall_filter
    except ImportError:
        return None, "the syscall filter module is not installed"
    built = syscall_filter.build()
    return built, "" if built is not None else syscall_filter.unavailable_reason()


class Zygote:
    """Forks children on request and makes sure nothing they start survives them."""

    def __init__(
        self, ctl: socket.socket, pid_namespace: bool, base: str | None = None, uid_sweep=False
    ) -> None:
        self.ctl = ctl
        self.pid_namespace = pid_namespace
        self.uid_sweep = uid_sweep
        self.child: int | None = None
        self.child_uid: int | None = None
        self.seq: int | None = None  # the grader's number for the current child
        self.pidfd: int | None = None
        self.scratch: str | None = None
        # The grader creates (and always removes) the run directory; inside
        # bubblewrap the private /tmp vanishes with the sandbox anyway.
        self.own_base = base is None
        self.base = base or tempfile.mkdtemp(prefix="autograder-zygote-")
        # /proc of another PID namespace would name strangers: walk it only if ours.
        self.has_proc = proctree.proc_is_ours()
        # Orphans of a child are re-parented to us, so sweep() can find them.
        self.subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1)
        # Children may not ptrace us or read our memory.
        prctl(PR_SET_DUMPABLE, 0)
        self.filter, self.filter_reason = _load_filter()
        # Built once here: each child only enforces it (writes only beneath the run
        # directory, which holds nothing but the current child's scratch).
        self.landlock = landlock.abi_version()
        self.landlock_reason = "" if self.landlock else landlock.unavailable_reason()
        self.ruleset = None
        if self.landlock:
            try:
                self.ruleset = landlock.prepare([self.base])
            except OSError as exc:
                self.landlock, self.landlock_reason = 0, f"its ruleset could not be built: {exc}"

    def sweep(self) -> None:
        """Kill every process a child left behind and reap them all.

        Signalled processes take a moment to die; the loop goes on until no
        descendant is left (zombies included), or a few seconds have passed.
        """
        deadline = time.monotonic() + 5.0
        while True:
            signalled = self._signal_leftovers()
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                if not signalled:
                    return  # no children and nothing else to signal: clean
                continue
            if time.monotonic() > deadline:
                return
            time.sleep(0.0002)  # let the signalled processes die

    def _signal_leftovers(self) -> bool:
        """SIGKILL every leftover process; True if there was any."""
        if self.pid_namespace:
            # The init of our own PID namespace: everything else in it goes.
            try:
                os.kill(-1, signal.SIGKILL)
                return True
            except ProcessLookupError:
                return False
        if self.has_proc and self.subreaper:
            pids = descendants(os.getpid())
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            return bool(pids)
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child, signal.SIGKILL)
        return False

    def spawn(self, msg: dict, fds: list[int]) -> None:
        """Fork a child that talks to the grader over the sockets in ``fds``."""
        if self.child is not None:
            self.finish(report=True)
        res_fd, out_fd, progress_fd = fds
        self.scratch = tempfile.mkdtemp(prefix="run-", dir=self.base)
        uid = msg.get("uid")
        self.child_uid = uid if uid is not None and os.geteuid() == 0 else None
        if self.child_uid is not None:
            os.chown(self.scratch, uid, msg.get("gid") or uid)
        spawn = {**msg, "scratch": self.scratch, "sys_path": [p for p in sys.path if p]}
        pid = os.fork()
        if pid == 0:
            self.ctl.close()
            child_main(
                socket.socket(fileno=res_fd), out_fd, spawn, self.filter, progress_fd, self.ruleset
            )
        os.close(res_fd)
        os.close(out_fd)
        os.close(progress_fd)
        self.child = pid
        try:
            self.pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.seq = msg.get("seq")
        send_frame(self.ctl, {"type": "spawned", "pid": pid, "seq": self.seq})

    def finish(self, report: bool) -> None:
        """Kill (if still running) and reap the child, sweep, clean its files."""
        if self.child is None:
            return
        status = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(self.child, 0)
        self._done(status, report)

    def _done(self, status: int | None, report: bool) -> None:
        pid = self.child
        self.child = None
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.sweep()
        self._clean()
        if report:
            info: dict = {"type": "exited", "pid": pid, "seq": self.seq}
            if status is not None:
                if os.WIFSIGNALED(status):
                    info["signal"] = os.WTERMSIG(status)
                else:
                    info["code"] = os.waitstatus_to_exitcode(status)
            send_frame(self.ctl, info)

    def _clean(self) -> None:
        for entry in os.listdir(self.base):
            remove_tree(os.path.join(self.base, entry))
        if self.pid_namespace:
            # A private /tmp: whatever a submission wrote there goes too, except the
            # zygote's own directory and the read-only runtime mounted inside /tmp.
            tmp = tempfile.gettempdir()
            for entry in os.listdir(tmp):
                path = os.path.join(tmp, entry)
                if path != self.base:
                    remove_tree(path)
        if self.uid_sweep and self.child_uid is not None:
            # The run's uid is this run's alone: its files in /tmp, /dev/shm, ... go, and
            # where /proc cannot be walked (so sweep() could not), whatever runs as it.
            if not self.has_proc:
                kill_uid(self.child_uid)
            remove_owned_by(self.child_uid, keep=self.base)

    def poll_child(self) -> None:
        """Notice a child that exited on its own."""
        if self.child is None:
            return
        try:
            pid, status = os.waitpid(self.child, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child, None
        if pid:
            self._done(status, report=True)

    def serve(self) -> None:
        """The zygote's loop: handle grader requests and child exits until told to quit."""
        import selectors

        send_frame(
            self.ctl,
            {
                "type": "ready",
                "pid": os.getpid(),
                "uid": os.geteuid(),
                "subreaper": self.subreaper,
                "pid_namespace": self.pid_namespace,
                "seccomp": self.filter is not None,
                "seccomp_reason": self.filter_reason,
                "landlock": self.landlock,
                "landlock_reason": self.landlock_reason,
            },
        )
        sel = selectors.DefaultSelector()
        sel.register(self.ctl, selectors.EVENT_READ, "ctl")
        while True:
            watched = self.pidfd
            if watched is not None:
                sel.register(watched, selectors.EVENT_READ, "child")
            events = sel.select(timeout=None if watched is not None or self.child is None else 0.05)
            if watched is not None:
                sel.unregister(watched)
            kinds = {key.data for key, _ in events}
            if "child" in kinds or (self.child is not None and watched is None):
                self.poll_child()
            if "ctl" in kinds:
                try:
                    msg, _, fds = recv_frame(self.ctl, max_payload=0, maxfds=3)
                except (EOFError, OSError, ProtocolError):
                    msg, fds = {"type": "quit"}, []
                kind = msg.get("type")
                if kind == "spawn" and len(fds) == 3:
                    self.spawn(msg, fds)
                elif kind == "kill":
                    self.finish(report=True)
                elif kind == "quit":
                    self.finish(report=False)
                    if self.own_base:
                        remove_tree(self.base)
                    return
                else:
                    for fd in fds:
                        os.close(fd)


def main(argv: list[str]) -> None:
    """``--zygote FD [--pid-namespace] [--base DIR] [--uid-sweep]``: serve the grader on FD."""
    fd = int(argv[argv.index("--zygote") + 1])
    base = argv[argv.index("--base") + 1] if "--base" in argv else None
    # Die with the grader; never act on a terminal's signals.
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Pay for the heavy imports once, here, instead of in every child.
    with contextlib.suppress(ImportError):
        import scipy.special  # noqa: F401
    ctl = socket.socket(fileno=fd)
    Zygote(
        ctl, pid_namespace="--pid-namespace" in argv, base=base, uid_sweep="--uid-sweep" in argv
    ).serve()
    # Everything is cleaned up; skip the interpreter's slow teardown of numpy and scipy.
    os._exit(0)
