"""One cgroup per grading run: limits that count everything, CPU time of the whole tree.

The grader creates a :class:`RunCgroup` for each run (one ``grade``, or one
slot of ``grade-all``) and starts the worker's zygote inside it through
:meth:`RunCgroup.attach_preexec`, so everything student code starts later is
inside too, whatever its PID namespace, session or uid. The cgroup gives:

* a memory limit that counts every page the run uses, shared memory and tmpfs
  files included (a tmpfs mounted in a user namespace, ``/dev/shm``), and swap
  cannot stretch it (cgroup v1 ``memory.memsw.limit_in_bytes`` where swap
  accounting exists, v2 ``memory.swap.max = 0``);
* a limit on the number of processes and threads (``pids.max``; unlike
  ``RLIMIT_NPROC`` it also holds for root and across uids);
* an equal CPU weight per run, so concurrent runs share the cores fairly
  whatever number of processes each one starts;
* CPU accounting of the whole tree (:meth:`RunCgroup.cpu_seconds`, one read of
  one file), OOM kills and peak memory for the report;
* a clean end: :meth:`RunCgroup.close` kills whatever is left inside and
  removes the cgroup.

Layouts: cgroup v1 with ``memory``, ``pids``, ``cpu`` and ``cpuacct``
hierarchies (each a child of the process's own cgroup in that hierarchy), or
cgroup v2 where the process's own cgroup delegates the ``memory`` and ``pids``
controllers (listed in its ``cgroup.subtree_control``; ``cpu`` too for the
weight). Nothing else is rearranged: where neither holds, or the grader may not
write there (not root and nothing delegated; a read-only ``/sys/fs/cgroup`` as
in Docker), :meth:`RunCgroup.create` raises :class:`CgroupUnavailable` with a
one-line reason, and the caller falls back to rlimits.

Names are ``autograder-<pid>-<start time>-<counter>-<random>-<hint>``: never
shared by two grader processes, and a leftover of a dead grader (its pid gone,
or reused by a process that started at another time) is recognised and removed
by :func:`remove_stale`, which :meth:`RunCgroup.create` calls.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
PREFIX = "autograder-"
# autograder-<pid>-<start time>-<pid namespace>-<number>-<random>[-<hint>]
_NAME = re.compile(r"^autograder-(\d+)-(\d+)-(\d+)-\d+-[0-9a-f]{8}(?:-[A-Za-z0-9_.-]*)?$")
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
V2_REQUIRED = ("memory", "pids")
# cpu.shares (v1) and cpu.weight (v2) defaults: every run the same weight.
V1_CPU_SHARES = 1024
V2_CPU_WEIGHT = 100
# How long close() keeps killing before it gives up on a cgroup.
CLOSE_TIMEOUT = 5.0

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (not root, and nothing delegated)",
    errno.EPERM: "permission denied (not root, and nothing delegated)",
}
_counter = itertools.count()
_counter_lock = threading.Lock()


class CgroupUnavailable(RuntimeError):
    """The grader cannot create cgroups here; the message says why, in one line."""


# ------------------------------------------------------------------ discovery


@dataclass
class _Layout:
    """Where the process's own cgroups are: controller -> directory."""

    version: int
    parents: dict[str, str]
    notes: list[str] = field(default_factory=list)


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount root, mount point, super options) of every cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        fstype, _source, options = [*right.split(), "", "", ""][:3]
        if fstype in ("cgroup", "cgroup2") and len(fields) >= 5:
            found.append(
                (fstype, _unescape(fields[3]), _unescape(fields[4]), set(options.split(",")))
            )
    return found


def _own_cgroups(text: str) -> dict[str, str]:
    """Controller (or "" for v2) -> the process's cgroup path, from /proc/self/cgroup."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


def _directory(mount_root: str, mount_point: str, path: str) -> str | None:
    """The directory of cgroup ``path`` under a mount whose root is ``mount_root``."""
    if mount_root == "/":
        rel = path
    elif path == mount_root or path.startswith(mount_root.rstrip("/") + "/"):
        rel = path[len(mount_root) :]
    else:
        return None  # our cgroup is outside what this mount shows
    return os.path.normpath(mount_point + "/" + rel.lstrip("/"))


def _layout() -> _Layout:
    """Find a usable layout, or raise CgroupUnavailable."""
    if not sys.platform.startswith("linux"):
        raise CgroupUnavailable(f"cgroups need Linux (this is {sys.platform})")
    try:
        with open("/proc/self/mountinfo") as fh:
            mounts = _mounts(fh.read())
        with open("/proc/self/cgroup") as fh:
            own = _own_cgroups(fh.read())
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read /proc: {exc.strerror}") from None
    v1: dict[str, str] = {}
    for fstype, root, point, options in mounts:
        if fstype != "cgroup":
            continue
        for controller in V1_CONTROLLERS:
            if controller in options and controller in own and controller not in v1:
                directory = _directory(root, point, own[controller])
                if directory is not None:
                    v1[controller] = directory
    if all(c in v1 for c in V1_CONTROLLERS):
        return _Layout(1, v1)
    v2 = [(root, point) for fstype, root, point, _ in mounts if fstype == "cgroup2"]
    if v2 and "" in own:
        root, point = v2[0]
        directory = _directory(root, point, own[""])
        if directory is not None:
            return _v2_layout(directory)
    if v1:
        missing = ", ".join(c for c in V1_CONTROLLERS if c not in v1)
        raise CgroupUnavailable(f"cgroup v1 controller(s) not mounted: {missing}")
    raise CgroupUnavailable("no cgroup file system is mounted")


def _v2_layout(directory: str) -> _Layout:
    try:
        with open(os.path.join(directory, "cgroup.subtree_control")) as fh:
            enabled = set(fh.read().split())
    except OSError as exc:
        raise CgroupUnavailable(
            f"cannot read {directory}/cgroup.subtree_control: {exc.strerror}"
        ) from None
    missing = [c for c in V2_REQUIRED if c not in enabled]
    if missing:
        raise CgroupUnavailable(
            f"cgroup v2 controller(s) {', '.join(missing)} not delegated to {directory} "
            "(its cgroup.subtree_control)"
        )
    notes = []
    if "cpu" not in enabled:
        notes.append("cpu controller not delegated: runs do not get equal CPU weights")
    return _Layout(2, {"unified": directory}, notes)


# ---------------------------------------------------------------- processes


def pid_namespace() -> int:
    """This process's PID namespace (its inode number; 0 where unknown).

    A cgroup name records it: only a grader of the same PID namespace can tell
    from a pid whether the cgroup's owner is gone (the pid means another
    process, or nothing, anywhere else).
    """
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _start_time(pid: int) -> int | None:
    """A process's start time (clock ticks after boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        os.close(fd)


def _procs(directory: str) -> list[int]:
    try:
        return [int(p) for p in _read(os.path.join(directory, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def _empty_and_remove(directories: list[str], timeout: float = CLOSE_TIMEOUT) -> bool:
    """SIGKILL everything in ``directories`` until none is left, then remove them.

    True when every directory is gone. A process may fork while we kill: the
    loop reads the list again until it stays empty (pids.max bounds the race).
    """
    deadline = time.monotonic() + timeout
    for directory in directories:
        kill = os.path.join(directory, "cgroup.kill")
        if os.path.exists(kill):  # cgroup v2, Linux 5.14+: the kernel kills them all at once
            with contextlib.suppress(OSError):
                _write(kill, "1")
    while True:
        pids = {pid for d in directories for pid in _procs(d)}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if not pids:
            break
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    gone = True
    for directory in directories:
        # Killed processes leave the cgroup a moment after they die.
        while True:
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    gone = False
                    break
                time.sleep(0.001)
    return gone


def remove_stale() -> int:
    """Remove the cgroups left by grader processes that are gone; how many were removed.

    Only cgroups under this process's own cgroups are considered (where
    :meth:`RunCgroup.create` makes them), and only those made in this PID
    namespace (a grader in a container sees the host's pids as strangers). A
    grader is gone when its pid does not exist or belongs to a process that
    started at another time. Whatever still runs inside a stale cgroup is
    killed first.
    """
    try:
        layout = _layout()
    except CgroupUnavailable:
        return 0
    stale: dict[str, list[str]] = {}
    namespace = pid_namespace()
    for parent in set(layout.parents.values()):
        try:
            entries = os.listdir(parent)
        except OSError:
            continue
        for entry in entries:
            match = _NAME.match(entry)
            if (
                match
                and int(match.group(3)) == namespace
                and _start_time(int(match.group(1))) != int(match.group(2))
            ):
                stale.setdefault(entry, []).append(os.path.join(parent, entry))
    return sum(_empty_and_remove(dirs) for dirs in stale.values())


# -------------------------------------------------------------------- a run


class RunCgroup:
    """The cgroup of one grading run (see the module docstring).

    Use :meth:`create`; ``with RunCgroup.create(...) as cg:`` closes it at the end.
    Attributes: ``version`` (1 or 2), ``name``, ``directories`` (controller ->
    directory), ``memory_bytes``, ``pids_max`` and ``notes`` (guarantees that
    are weaker here, one line each, for the report).
    """

    def __init__(
        self, layout: _Layout, name: str, memory_bytes: int, pids: int, notes: list[str]
    ) -> None:
        self.version = layout.version
        self.name = name
        self.directories = {c: os.path.join(p, name) for c, p in layout.parents.items()}
        self.memory_bytes = memory_bytes
        self.pids_max = pids
        self.notes = notes
        self._procs_fds: list[int] = []
        self._cpu_fd: int | None = None
        self._closed = False

    # ---- creation

    @classmethod
    def create(cls, memory_bytes: int, pids: int, name_hint: str = "run") -> RunCgroup:
        """Create the cgroup with its limits, or raise :class:`CgroupUnavailable`.

        ``memory_bytes`` caps all memory of the run (swap cannot extend it);
        ``pids`` caps its processes and threads; ``name_hint`` (letters, digits,
        ``_.-``; other characters are dropped) ends the name, for people reading
        ``/sys/fs/cgroup``.
        """
        if memory_bytes <= 0 or pids <= 0:
            raise ValueError("memory_bytes and pids must be positive")
        layout = _layout()
        remove_stale()
        hint = re.sub(r"[^A-Za-z0-9_.-]", "", name_hint)[:32]
        with _counter_lock:
            number = next(_counter)
        me = os.getpid()
        name = f"{PREFIX}{me}-{_start_time(me)}-{pid_namespace()}-{number}-{os.urandom(4).hex()}"
        name += f"-{hint}" if hint else ""
        run = cls(layout, name, memory_bytes, pids, list(layout.notes))
        made: list[str] = []
        try:
            for directory in dict.fromkeys(run.directories.values()):  # cpu,cpuacct may share one
                try:
                    os.mkdir(directory, 0o755)
                except OSError as exc:
                    reason = _REASONS.get(exc.errno, exc.strerror)
                    raise CgroupUnavailable(
                        f"cannot create a cgroup in {os.path.dirname(directory)}: {reason}"
                    ) from None
                made.append(directory)
            try:
                run._set_limits()
                run._open_files()
            except OSError as exc:
                reason = _REASONS.get(exc.errno, exc.strerror)
                raise CgroupUnavailable(f"cannot set up {exc.filename}: {reason}") from None
        except BaseException:
            run._close_fds()
            _empty_and_remove(made)
            raise
        return run

    def _set_limits(self) -> None:
        d = self.directories
        if self.version == 1:
            _write(f"{d['memory']}/memory.limit_in_bytes", str(self.memory_bytes))
            memsw = f"{d['memory']}/memory.memsw.limit_in_bytes"
            if os.path.exists(memsw):
                _write(memsw, str(self.memory_bytes))
            elif _swap_total() > 0:
                self.notes.append("no swap accounting: swap may extend the memory limit")
            _write(f"{d['pids']}/pids.max", str(self.pids_max))
            _write(f"{d['cpu']}/cpu.shares", str(V1_CPU_SHARES))
            return
        u = d["unified"]
        _write(f"{u}/memory.max", str(self.memory_bytes))
        swap = f"{u}/memory.swap.max"
        if os.path.exists(swap):
            _write(swap, "0")
        elif _swap_total() > 0:
            self.notes.append("no swap accounting: swap may extend the memory limit")
        _write(f"{u}/pids.max", str(self.pids_max))
        if os.path.exists(f"{u}/cpu.weight"):
            _write(f"{u}/cpu.weight", str(V2_CPU_WEIGHT))

    def _open_files(self) -> None:
        # Opened now, by the grader: the preexec function only writes to them, so it
        # does no path lookup in the child and works after a uid change there too.
        for directory in dict.fromkeys(self.directories.values()):
            self._procs_fds.append(
                os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            )
        usage = (
            f"{self.directories['cpuacct']}/cpuacct.usage"
            if self.version == 1
            else f"{self.directories['unified']}/cpu.stat"
        )
        self._cpu_fd = os.open(usage, os.O_RDONLY | os.O_CLOEXEC)

    # ---- attaching

    def attach_preexec(self) -> Callable[[], None]:
        """A function for ``subprocess.Popen(preexec_fn=...)``: moves the child in.

        It runs in the forked child before ``exec`` and moves that process into
        the cgroup of every controller; everything it starts later is inside
        too. Call it before any privilege drop of your own preexec function
        (compose them in that order). If the move fails, it raises and Popen
        fails: a run never starts outside its limits.
        """
        fds = tuple(self._procs_fds)

        def attach() -> None:
            for fd in fds:
                os.write(fd, b"0")  # "0": the writing process itself

        return attach

    def attach(self, pid: int) -> None:
        """Move process ``pid`` (its threads too) into the cgroup."""
        for fd in self._procs_fds:
            os.write(fd, str(pid).encode())

    # ---- reading

    def procs(self) -> list[int]:
        """The processes in the cgroup now (pids as this process sees them)."""
        return sorted({pid for d in set(self.directories.values()) for pid in _procs(d)})

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used by everything that ran in the cgroup.

        Nanosecond accounting by the scheduler, processes that have exited
        included (they leave their time behind, reaped or not). One read of one
        open file.
        """
        if self._cpu_fd is None:
            raise ValueError(f"{self!r} is closed")
        data = os.pread(self._cpu_fd, 4096, 0)
        if self.version == 1:
            return int(data) / 1e9
        for line in data.split(b"\n"):
            if line.startswith(b"usage_usec "):
                return int(line.split()[1]) / 1e6
        return 0.0

    def oom_killed(self) -> int:
        """How many processes the kernel killed for the memory limit."""
        d = self.directories
        path = (
            f"{d['memory']}/memory.oom_control"
            if self.version == 1
            else f"{d['unified']}/memory.events"
        )
        return _counter_in(path, "oom_kill")

    def pids_refused(self) -> int:
        """How many forks (or new threads) the process limit refused."""
        d = self.directories["pids" if self.version == 1 else "unified"]
        return _counter_in(f"{d}/pids.events", "max")

    def memory_peak(self) -> int | None:
        """The largest memory use seen, in bytes; None where the kernel does not keep it."""
        d = self.directories
        path = (
            f"{d['memory']}/memory.max_usage_in_bytes"
            if self.version == 1
            else f"{d['unified']}/memory.peak"
        )
        try:
            return int(_read(path))
        except (OSError, ValueError):
            return None

    # ---- the end

    def close(self) -> None:
        """Kill every process left inside, then remove the cgroup's directories.

        Safe to call twice. Raises OSError if something could not be removed
        within a few seconds (then :func:`remove_stale` retries it later).
        """
        if self._closed:
            return
        self._closed = True
        self._close_fds()
        if not _empty_and_remove(list(dict.fromkeys(self.directories.values()))):
            raise OSError(errno.EBUSY, f"cgroup {self.name} could not be emptied and removed")

    def _close_fds(self) -> None:
        for fd in [*self._procs_fds, self._cpu_fd]:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._procs_fds = []
        self._cpu_fd = None

    def __enter__(self) -> RunCgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunCgroup(v{self.version} {self.name})"


def _counter_in(path: str, key: str) -> int:
    try:
        for line in _read(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _swap_total() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("SwapTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
