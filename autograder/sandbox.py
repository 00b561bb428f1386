"""How the worker's zygote is launched: the sandbox levels.

Levels, strongest first (SECURITY.md has the threat model):

* ``bwrap``: the zygote runs inside bubblewrap, as an unprivileged uid, in
  its own user, PID, network, IPC, UTS and mount namespaces. Its filesystem
  view is the Python runtime and system libraries read-only, the worker file
  alone, and a small private ``/tmp``: no solutions, no hidden cases, no other
  submission, no report file, no network (not even loopback to the host).
  Everything a submission starts dies with its run (``kill(-1)`` in the PID
  namespace).
* ``uid``: no namespaces, but the grader is root: each child drops to an
  unprivileged uid (one per parallel slot) before importing student code.
* ``process``: a separate process with resource limits; leftovers are killed
  through a subreaper sweep (Linux) or the process group. Works anywhere,
  including a student's laptop.

Every level also sets resource limits in the child (address space, CPU time,
file size, open files, processes) and caps its captured output.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

NOBODY = 65534
LEVELS = ("bwrap", "uid", "process")
# Where the worker file appears inside the bubblewrap sandbox.
SANDBOX_WORKER = "/opt/autograder/worker.py"
# Size of the sandbox's private /tmp (RAM-backed): submissions' files go there.
SANDBOX_TMP_BYTES = 64 << 20


class SandboxError(RuntimeError):
    """The requested sandbox level cannot be set up on this machine."""


def _environment(tmpdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": tmpdir,
        "TMPDIR": tmpdir,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        # One BLAS thread: less memory per child and fair sharing of the cores.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


@dataclass
class LaunchPlan:
    """How to start the zygote, and what its children do to isolate themselves."""

    level: str
    python: str = sys.executable
    worker: str = ""
    # Uid/gid the children switch to (uid level); None keeps the zygote's.
    uid: int | None = None
    gid: int | None = None
    prefix: list[str] = field(default_factory=list)
    pid_namespace: bool = False
    preexec: Callable[[], None] | None = None
    tmpdir: str = "/tmp"
    note: str = ""

    def command(self, fd: int) -> list[str]:
        """The zygote's command line; ``fd`` is its end of the control socket."""
        argv = [*self.prefix, self.python, "-I", self.worker, "--zygote", str(fd)]
        if self.pid_namespace:
            argv.append("--pid-namespace")
        return argv

    def environment(self) -> dict[str, str]:
        """A minimal environment: nothing of the grader's leaks to student code."""
        return _environment(self.tmpdir)

    def popen_kwargs(self) -> dict:
        """Extra arguments for ``subprocess.Popen``."""
        return {"preexec_fn": self.preexec} if self.preexec else {}


@dataclass
class Launched:
    """A zygote process just started, and the grader's end of its control socket."""

    plan: LaunchPlan
    proc: subprocess.Popen
    ctl: socket.socket
    stderr: IO[bytes]


def launch(plan: LaunchPlan) -> Launched:
    """Start the zygote of ``plan`` (standard library only, so it can start early).

    Raises OSError or ``subprocess.SubprocessError`` if it cannot be started.
    """
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # The zygote's own stderr (bubblewrap's complaints, a crash) for diagnosis.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the zygote
    try:
        proc = subprocess.Popen(
            plan.command(child.fileno()),
            pass_fds=[child.fileno()],
            env=plan.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("AUTOGRADER_DEBUG") else stderr,
            start_new_session=True,
            **plan.popen_kwargs(),
        )
    except BaseException:
        parent.close()
        stderr.close()
        raise
    finally:
        child.close()
    return Launched(plan, proc, parent, stderr)


def _worker_path() -> str:
    return str(Path(__file__).resolve().parent / "worker.py")


def slot_uid(slot: int) -> int:
    """The unprivileged uid of a parallel slot: distinct slots cannot signal each other."""
    return NOBODY - slot


def process_plan() -> LaunchPlan:
    """A plain process (no privilege change, no namespaces)."""
    return LaunchPlan(
        level="process", worker=_worker_path(), tmpdir=os.environ.get("TMPDIR", "/tmp")
    )


def uid_plan(slot: int = 0) -> LaunchPlan:
    """Children drop from root to an unprivileged uid (needs root)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise SandboxError("the uid level needs the grader to run as root")
    plan = process_plan()
    plan.level = "uid"
    plan.uid = plan.gid = slot_uid(slot)
    return plan


# ------------------------------------------------------------------ bubblewrap

CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
STAGE_CANDIDATES = ("/mnt", "/media", "/srv", "/opt")


def _runtime_paths() -> list[str]:
    """Directories the zygote's Python needs: its installation and its venv."""
    paths = []
    for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        real = os.path.realpath(p)
        for q in (p, real):
            if q not in paths and not q.startswith("/usr/") and q != "/usr":
                paths.append(q)
    # Keep only the outermost of nested paths.
    return [p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths)]


def _system_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"):
        if os.path.exists(etc):
            args += ["--ro-bind", etc, etc]
    return args


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _stage_mounts(stage: str, sources: list[str]) -> Callable[[], None]:
    """A preexec function: in a private mount namespace, bind each source under ``stage``.

    Run as root before dropping to the sandbox uid, it makes paths that uid
    could not reach (a Python under /root) reachable for bubblewrap, without
    changing anything outside that namespace.
    """

    def preexec() -> None:
        libc = _libc()

        def check(result: int) -> None:
            if result != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))

        check(libc.unshare(CLONE_NEWNS))
        check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
        check(libc.mount(b"tmpfs", stage.encode(), b"tmpfs", 0, b"mode=0755,size=64k"))
        for i, src in enumerate(sources):
            target = f"{stage}/{i}"
            if os.path.isdir(src):
                os.mkdir(target)
            else:
                with open(target, "w"):
                    pass
            check(libc.mount(src.encode(), target.encode(), None, MS_BIND | MS_REC, None))

    return preexec


def bwrap_plan(slot: int = 0) -> LaunchPlan:
    """The full sandbox: bubblewrap namespaces as an unprivileged uid."""
    if not sys.platform.startswith("linux"):
        raise SandboxError("the bubblewrap sandbox needs Linux")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
        )
    root = os.geteuid() == 0
    sources = [*_runtime_paths(), _worker_path()]
    targets = [*_runtime_paths(), SANDBOX_WORKER]
    prefix: list[str] = []
    preexec = None
    uid = os.geteuid()
    if root:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise SandboxError("setpriv (util-linux) is needed to start bubblewrap unprivileged")
        uid = slot_uid(slot)
        # bwrap started as root would map the sandbox to host root: drop first.
        prefix = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        stage = next((d for d in STAGE_CANDIDATES if os.path.isdir(d)), None)
        if stage is None:
            raise SandboxError("no directory to stage the runtime in (/mnt, /media, /srv, /opt)")
        preexec = _stage_mounts(stage, sources)
        sources = [f"{stage}/{i}" for i in range(len(sources))]
    args = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--hostname", "sandbox",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(SANDBOX_TMP_BYTES), "--tmpfs", "/tmp",
        *_system_args(),
    ]  # fmt: skip
    for src, dest in zip(sources, targets, strict=True):
        args += ["--ro-bind", src, dest]
    # Only the private /tmp stays writable: nothing a submission writes elsewhere in
    # the sandbox could survive into the next submission's run.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--"]
    return LaunchPlan(
        level="bwrap",
        worker=SANDBOX_WORKER,
        prefix=prefix + args,
        pid_namespace=True,
        preexec=preexec,
        tmpdir="/tmp",
        note=f"bubblewrap as uid {uid}",
    )


def plans(mode: str = "auto", slot: int = 0) -> list[LaunchPlan]:
    """Launch plans to try in order for ``mode``: auto, strict, or a level name.

    ``auto`` lists every level this machine may support, strongest first (the
    caller falls back when one fails to start); ``strict`` is bubblewrap only.
    """
    if mode == "strict":
        return [bwrap_plan(slot)]
    if mode in ("bwrap", "uid"):
        return [bwrap_plan(slot) if mode == "bwrap" else uid_plan(slot)]
    if mode == "process":
        return [process_plan()]
    if mode != "auto":
        raise SandboxError(f"unknown sandbox mode {mode!r}")
    found: list[LaunchPlan] = []
    for make in (bwrap_plan, uid_plan):
        with contextlib.suppress(SandboxError):
            found.append(make(slot))
    found.append(process_plan())
    return found


def plan(mode: str = "auto", slot: int = 0) -> LaunchPlan:
    """The first (strongest) plan for ``mode``, without trying to start it."""
    return plans(mode, slot)[0]
