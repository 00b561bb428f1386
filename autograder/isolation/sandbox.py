"""How the worker's zygote is launched: the sandbox levels.

Levels, strongest first (SECURITY.md has the threat model and a table of
attacks and the layer that stops each):

* ``bwrap``: the zygote runs inside bubblewrap as the init of its own PID
  namespace (``--as-pid-1``, not dumpable), in new user, network, IPC, UTS
  and mount namespaces, with further user namespaces disabled where
  bubblewrap supports it. Its filesystem view is the system libraries, the
  Python runtime and the worker folder read-only, and a small private
  ``/tmp``: no solutions, no hidden cases, no other submission, no report
  file, no network (not even loopback to the host). As root, it starts as a
  sandbox uid leased for this run alone (``uids.py``).
* ``uid``: the grader is root but bubblewrap is missing: each child drops to
  the run's leased uid; the zygote runs in a private mount namespace where
  the grader's project, the instructor's data and the submissions are
  covered (where the kernel allows one), and everything the uid leaves in
  world-writable directories is removed after each run.
* ``process``: a separate process with resource limits; it can read what the
  grader can, so it grades hidden cases only when the user allows it.

Every level also gets, where the machine allows: the seccomp syscall filter
in the child (``worker/syscall_filter.py``), one cgroup per run with memory,
process and CPU-share limits (``cgroups.py``), and resource limits in the
child. Whether a level really keeps student code away from the expected
values is not assumed: the engine runs the level's self-check first.
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autograder.isolation import uids
from autograder.isolation.worker import BOOTSTRAP, proctree
from autograder.isolation.worker.cleanup import remove_tree

# Strength of each level, for "the same or a stronger level" decisions.
RANK = {"process": 0, "uid": 1, "bwrap": 2}
# Where the worker folder appears inside the bubblewrap sandbox.
SANDBOX_WORKER = "/opt/autograder/isolation/worker"
# Size of the sandbox's private /tmp (RAM-backed): submissions' files go there.
SANDBOX_TMP_BYTES = 64 << 20
# Memory the zygote itself (numpy and scipy loaded) needs inside the run's cgroup,
# on top of the submission's own limit.
ZYGOTE_MEMORY_BYTES = 192 << 20
# Processes beyond the submission's own limit: the zygote and bubblewrap.
ZYGOTE_PROCESSES = 8
# Kept of what the zygote (or bubblewrap) writes to stderr, for diagnosis.
STDERR_KEEP = 4096
RUN_DIR_PREFIX = "autograder-run-"


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


def worker_dir() -> str:
    """The worker folder: the only part of the package the sandbox mounts."""
    return str(Path(__file__).resolve().parent / "worker")


@dataclass
class LaunchPlan:
    """A sandbox level to try, before anything is started."""

    level: str
    python: str = sys.executable
    # bubblewrap's path and the options this bubblewrap supports (bwrap level).
    bwrap: str = ""
    bwrap_options: frozenset[str] = frozenset()


@dataclass
class Resources:
    """What the launch needs of the limits: the run's cgroup sizes."""

    memory_bytes: int = 1 << 30
    processes: int = 64


@dataclass
class Launched:
    """A zygote process just started, and what belongs to its run."""

    plan: LaunchPlan
    proc: subprocess.Popen
    ctl: socket.socket
    stderr_fd: int
    lease: uids.UidLease | None = None
    base: str | None = None
    cgroup: object | None = None
    # What this launch has and lacks, as data: {"cgroup": bool, "mount_namespace": bool}.
    facts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _stderr: bytearray = field(default_factory=bytearray)

    @property
    def uid(self) -> int | None:
        """The uid children switch to (uid level); None keeps the zygote's."""
        return self.lease.uid if self.lease is not None and self.plan.level == "uid" else None

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the zygote and everything below it (None: unknown)."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                return self.cgroup.cpu_seconds()
        return proctree.tree_cpu_seconds(self.proc.pid)

    def oom_killed(self) -> int:
        """How many processes the run's memory limit killed so far (0 without a cgroup)."""
        if self.cgroup is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            return int(self.cgroup.oom_killed())
        return 0

    def diagnosis(self) -> str:
        """The last line the zygote (or bubblewrap) wrote to stderr."""
        self._drain_stderr()
        lines = self._stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def _drain_stderr(self) -> None:
        # A capped pipe, read only here: never a file on the host that grows.
        if self.stderr_fd < 0:
            return
        for _ in range(64):
            try:
                data = os.read(self.stderr_fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data:
                return
            self._stderr += data
            del self._stderr[:-STDERR_KEEP]

    def close(self, clean: bool = False) -> None:
        """After the zygote ended: remove the run directory and cgroup, give back the uid.

        ``clean``: the zygote exited by itself, after killing and removing
        everything its children left (the uid then needs no reset).
        """
        if self.stderr_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.stderr_fd)
            self.stderr_fd = -1
        if self.base is not None:
            remove_tree(self.base)
            self.base = None
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.close()
            self.cgroup = None
        if self.lease is not None:
            self.lease.release(clean=clean)
            self.lease = None


# ------------------------------------------------------------------ run directories


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_run_dirs(tmp: str | None = None) -> int:
    """Remove run directories of graders that died without cleaning up (SIGKILL)."""
    tmp = tmp or tempfile.gettempdir()
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(tmp):
            name = entry.name
            if not name.startswith(RUN_DIR_PREFIX):
                continue
            pid_text = name[len(RUN_DIR_PREFIX) :].split("-", 1)[0]
            if not pid_text.isdigit() or _pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid not in (os.geteuid(), 0):
                    continue
            remove_tree(entry.path)
            removed += 1
    return removed


def _run_dir(lease: uids.UidLease | None) -> str:
    """A private 0700 directory for this run's scratch files (owned by its uid)."""
    remove_stale_run_dirs()
    path = tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-")
    if lease is not None:
        os.chown(path, lease.uid, lease.gid)
    return path


# ------------------------------------------------------------------ mounts

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
STAGE_CANDIDATES = ("/mnt", "/media", "/srv", "/opt")
# Never covered at the uid level: the system the runtime needs.
SYSTEM_DIRS = frozenset(
    {"/", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/tmp",
     "/var", "/var/tmp", "/dev", "/proc", "/sys", "/run"}
)  # fmt: skip


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _runtime_paths() -> list[str]:
    """Directories the zygote's Python needs: its installation and its venv."""
    paths = []
    for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        real = os.path.realpath(p)
        for q in (p, real):
            if q not in paths and not q.startswith("/usr/") and q != "/usr":
                paths.append(q)
    return _outermost(paths)


def _outermost(paths: list[str]) -> list[str]:
    """Keep only the outermost of nested paths."""
    return [p for p in paths if not any(p != q and _inside(p, q) for q in paths)]


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _blocking_ancestor(path: str) -> str | None:
    """The outermost directory above ``path`` that other users cannot traverse."""
    current = "/"
    for part in Path(path).parts[1:-1]:
        current = os.path.join(current, part)
        try:
            mode = os.stat(current).st_mode
        except OSError:
            return None
        if not mode & 0o001:
            return current
    return None


def _stage_dir() -> str:
    stage = next((d for d in STAGE_CANDIDATES if os.path.isdir(d)), None)
    if stage is None:
        raise SandboxError("no directory to stage the runtime in (/mnt, /media, /srv, /opt)")
    return stage


def _stage(libc, stage: str, sources: list[str]) -> list[str]:
    """Bind each source under a fresh tmpfs at ``stage``; return the staged paths."""
    _check(libc.mount(b"tmpfs", stage.encode(), b"tmpfs", 0, b"mode=0755,size=64k"))
    staged = []
    for i, src in enumerate(sources):
        target = f"{stage}/{i}"
        if os.path.isdir(src):
            os.mkdir(target)
        else:
            with open(target, "w"):
                pass
        _check(libc.mount(src.encode(), target.encode(), None, MS_BIND | MS_REC, None))
        staged.append(target)
    return staged


def _private_namespace(libc) -> None:
    _check(libc.unshare(CLONE_NEWNS))
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))


def _bwrap_staging(stage: str, sources: list[str]) -> Callable[[], None]:
    """A preexec function: in a private mount namespace, bind each source under ``stage``.

    Run as root before dropping to the sandbox uid, it makes paths that uid
    could not reach (a Python under /root) reachable for bubblewrap, without
    changing anything outside that namespace.
    """

    def preexec() -> None:
        libc = _libc()
        _private_namespace(libc)
        _stage(libc, stage, sources)

    return preexec


def _covering(hidden: list[str], keep: list[str]) -> Callable[[], None]:
    """A preexec function for the uid level: cover ``hidden`` paths, keep ``keep`` reachable.

    In a private mount namespace (root only), each hidden directory, and each
    directory above a kept path that other users cannot traverse (a Python
    under a 0700 home), is covered with an empty tmpfs; hidden files get an
    empty file bound over them; then every kept path under a cover is bound
    back at its own path. Nothing changes outside the namespace.
    """
    covers = []
    for path in hidden:
        if path in SYSTEM_DIRS or not os.path.exists(path):
            continue
        if os.path.isdir(path) and any(_inside(path, k) for k in keep):
            continue  # it would hide part of the runtime; its secret files are listed alone
        covers.append(path)
    for path in keep:
        blocking = _blocking_ancestor(path)
        if blocking is not None and blocking not in SYSTEM_DIRS:
            covers.append(blocking)
    covers = _outermost(sorted(set(covers)))
    rebind = [k for k in keep if any(_inside(k, c) for c in covers)]
    stage = _stage_dir() if rebind else ""

    def preexec() -> None:
        libc = _libc()
        _private_namespace(libc)
        staged = _stage(libc, stage, rebind) if rebind else []
        for path in covers:
            if os.path.isdir(path):
                _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, b"mode=0755,size=64k"))
            else:
                _check(libc.mount(b"/dev/null", path.encode(), None, MS_BIND, None))
        for src, path in zip(staged, rebind, strict=True):
            if os.path.isdir(src):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                with open(path, "a"):
                    pass
            _check(libc.mount(src.encode(), path.encode(), None, MS_BIND | MS_REC, None))
        if staged:
            libc.umount2(stage.encode(), MNT_DETACH)

    return preexec


# ------------------------------------------------------------------ bubblewrap


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


_BWRAP_OPTIONS: dict[str, frozenset[str]] = {}


def bwrap_options(bwrap: str) -> frozenset[str]:
    """The options this bubblewrap knows (``--disable-userns`` came in 0.8)."""
    if bwrap not in _BWRAP_OPTIONS:
        try:
            text = subprocess.run(
                [bwrap, "--help"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        _BWRAP_OPTIONS[bwrap] = frozenset(
            word for word in text.split() if word.startswith("--") and len(word) > 2
        )
    return _BWRAP_OPTIONS[bwrap]


def _bwrap_args(plan: LaunchPlan, sources: list[str], targets: list[str]) -> list[str]:
    options = plan.bwrap_options
    args = [
        plan.bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        # The zygote is the namespace's init: no bubblewrap process shares the
        # sandbox with student code (bubblewrap's own init would be reachable).
        "--as-pid-1",
        "--cap-drop", "ALL",
        "--hostname", "sandbox",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(SANDBOX_TMP_BYTES), "--tmpfs", "/tmp",
        *_system_args(),
    ]  # fmt: skip
    if "--disable-userns" in options:
        # No nested user namespace: no private mounts, no memory outside the limits.
        args[2:2] = ["--unshare-user", "--disable-userns"]
    for src, dest in zip(sources, targets, strict=True):
        args += ["--ro-bind", src, dest]
    # Only the private /tmp stays writable: nothing a submission writes elsewhere in
    # the sandbox could survive into the next submission's run.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--"]
    return args


# ------------------------------------------------------------------ choosing levels


def _bwrap_plan() -> LaunchPlan:
    if not sys.platform.startswith("linux"):
        raise SandboxError("the bubblewrap sandbox needs Linux")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
        )
    options = bwrap_options(bwrap)
    if options and "--as-pid-1" not in options:
        raise SandboxError("this bubblewrap is too old (no --as-pid-1); install 0.3 or newer")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        raise SandboxError("setpriv (util-linux) is needed to start bubblewrap unprivileged")
    return LaunchPlan(level="bwrap", bwrap=bwrap, bwrap_options=options)


def _uid_plan() -> LaunchPlan:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        raise SandboxError("the uid level needs the grader to run as root on Linux")
    return LaunchPlan(level="uid")


def _process_plan() -> LaunchPlan:
    return LaunchPlan(level="process")


@dataclass
class Choice:
    """The levels to try for a mode, strongest first, and why stronger ones were skipped."""

    plans: list[LaunchPlan]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def choose(mode: str = "auto") -> Choice:
    """Levels to try in order for ``mode``: ``auto``, ``strict`` or a level name.

    ``auto`` lists every level this machine may support, strongest first,
    and records each level it could not even consider (bubblewrap not
    installed, not root); ``strict`` lists only the levels that can keep the
    expected values from student code (bwrap, uid), which must still pass
    their self-check. The caller falls back when a level fails to start or
    fails its self-check.
    """
    makers = {"bwrap": _bwrap_plan, "uid": _uid_plan, "process": _process_plan}
    if mode in makers:
        return Choice([makers[mode]()])
    if mode not in ("auto", "strict"):
        raise SandboxError(f"unknown sandbox mode {mode!r}")
    levels = ["bwrap", "uid"] + (["process"] if mode == "auto" else [])
    choice = Choice([])
    for level in levels:
        try:
            choice.plans.append(makers[level]())
        except SandboxError as exc:
            choice.skipped.append((level, str(exc)))
    if not choice.plans:
        reasons = "; ".join(f"{level}: {reason}" for level, reason in choice.skipped)
        raise SandboxError(f"no sandbox level that can protect the expected values ({reasons})")
    return choice


def plans(mode: str = "auto") -> list[LaunchPlan]:
    """The launch plans of :func:`choose`, without the reasons."""
    return choose(mode).plans


def plan(mode: str = "auto") -> LaunchPlan:
    """The first (strongest) plan for ``mode``, without trying to start it."""
    return plans(mode)[0]


# ------------------------------------------------------------------ launching


def _cgroup(resources: Resources, launched_facts: dict, notes: list[str]):
    """The run's cgroup, or None (with the reason in ``notes``)."""
    try:
        from autograder.isolation import cgroups
    except ImportError:
        launched_facts["cgroup"] = False
        notes.append("no cgroup limits: the cgroups module is not installed")
        return None
    try:
        group = cgroups.RunCgroup.create(
            memory_bytes=resources.memory_bytes + ZYGOTE_MEMORY_BYTES,
            pids=resources.processes + ZYGOTE_PROCESSES,
            name_hint="autograder",
        )
    except cgroups.CgroupUnavailable as exc:
        launched_facts["cgroup"] = False
        notes.append(f"no cgroup limits ({exc}); memory and processes are limited per process")
        return None
    launched_facts["cgroup"] = True
    return group


def _chain(*functions: Callable[[], None] | None) -> Callable[[], None] | None:
    todo = [f for f in functions if f is not None]
    if not todo:
        return None

    def run() -> None:
        for f in todo:
            f()

    return run


def launch(
    plan: LaunchPlan, resources: Resources | None = None, hidden: list[str] | None = None
) -> Launched:
    """Start the zygote of ``plan`` (standard library only, so it can start early).

    ``hidden``: paths the uid level covers in its private mount namespace
    (the grader's project, the instructor's data, the submissions).
    Raises OSError, ``subprocess.SubprocessError`` or :class:`SandboxError`
    if it cannot be started; everything acquired for it is released then.
    """
    resources = resources or Resources()
    facts: dict = {"cgroup": False, "mount_namespace": False}
    notes: list[str] = []
    lease = base = group = None
    try:
        root = os.geteuid() == 0
        if plan.level == "uid" or (plan.level == "bwrap" and root):
            try:
                lease = uids.acquire()
            except uids.UidError as exc:
                raise SandboxError(str(exc)) from None
        if plan.level != "bwrap":
            base = _run_dir(lease if plan.level == "uid" else None)
        group = _cgroup(resources, facts, notes) if root else None
        if not root:
            notes.append(
                "no cgroup limits (the grader is not root); memory and processes are limited per process"
            )
        attempts = _commands(plan, lease, base, hidden or [], facts)
        last_error: BaseException | None = None
        for argv, preexec, tmpdir, facts_update in attempts:
            try:
                launched = _start(
                    plan, argv, _chain(group and group.attach_preexec(), preexec), tmpdir
                )
            except (OSError, subprocess.SubprocessError) as exc:
                last_error = exc
                continue
            launched.lease, launched.base, launched.cgroup = lease, base, group
            launched.facts = {**facts, **facts_update}
            if plan.level == "uid" and not launched.facts["mount_namespace"]:
                notes.append(
                    "no private mount namespace (the kernel refused one); "
                    "file permissions alone keep the grader's files from student code"
                )
            launched.notes = notes
            return launched
        assert last_error is not None
        raise last_error
    except BaseException:
        if base is not None:
            remove_tree(base)
        if group is not None:
            with contextlib.suppress(OSError):
                group.close()
        if lease is not None:
            lease.release()
        raise


def _commands(plan, lease, base, hidden, facts):
    """The ways to start ``plan``'s zygote, preferred first: (argv, preexec, tmpdir, facts)."""
    worker = worker_dir()
    tail = ["--zygote", "{fd}"]
    python = plan.python
    if plan.level == "bwrap":
        sources = [*_runtime_paths(), worker]
        targets = [*_runtime_paths(), SANDBOX_WORKER]
        prefix: list[str] = []
        preexec = None
        if lease is not None:
            # bwrap started as root would map the sandbox to host root: drop first.
            prefix = [
                shutil.which("setpriv") or "setpriv",
                f"--reuid={lease.uid}", f"--regid={lease.gid}", "--clear-groups", "--",
            ]  # fmt: skip
            stage = _stage_dir()
            preexec = _bwrap_staging(stage, sources)
            sources = [f"{stage}/{i}" for i in range(len(sources))]
        argv = [*prefix, *_bwrap_args(plan, sources, targets), python, "-I", "-c", BOOTSTRAP]
        argv += [SANDBOX_WORKER, *tail, "--pid-namespace"]
        return [(argv, preexec, "/tmp", {"mount_namespace": True})]
    argv = [python, "-I", "-c", BOOTSTRAP, worker, *tail, "--base", base]
    tmpdir = base
    if plan.level == "uid":
        argv.append("--uid-sweep")
        keep = [*_runtime_paths(), worker, base]
        covering = _covering(hidden, keep)
        return [
            (argv, covering, tmpdir, {"mount_namespace": True}),
            (argv, None, tmpdir, {"mount_namespace": False}),
        ]
    return [(argv, None, tmpdir, {"mount_namespace": False})]


def _start(plan: LaunchPlan, argv: list[str], preexec, tmpdir: str) -> Launched:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    err_r, err_w = os.pipe()
    argv = [a.replace("{fd}", str(child.fileno())) for a in argv]
    debug = bool(os.environ.get("AUTOGRADER_DEBUG"))
    try:
        proc = subprocess.Popen(
            argv,
            pass_fds=[child.fileno()],
            env=_environment(tmpdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # A pipe the grader reads, capped: nothing the sandbox writes lands on disk.
            stderr=None if debug else err_w,
            start_new_session=True,
            preexec_fn=preexec,
        )
    except BaseException:
        parent.close()
        os.close(err_r)
        raise
    finally:
        child.close()
        os.close(err_w)
    os.set_blocking(err_r, False)
    return Launched(plan, proc, parent, err_r)


def wait_gone(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``proc`` to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
