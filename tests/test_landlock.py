"""Landlock on student code (autograder/isolation/worker/landlock.py).

Every scenario runs in a real process tree started here: a parent P (forked
from pytest; as root, and as uid 65534 made dumpable again, like a freshly
started ``make`` or shell of the same user) forks the attacker C. C sends its
stdout to /dev/null (as the worker's child does), calls :func:`restrict` or
not, and attacks P or the files around it; P then reports what happened to it
(its memory marker, whether a SIGTERM arrived) on its stdout, which this test
reads, so a forged line written through ``/proc/<P>/fd/1`` shows up there.

Each attack runs three ways: restricted (denied, no effect), unrestricted (the
honest twin: it works, so the denial is Landlock's and not the uid's or the
file mode's), and restricted without the attack's own part (the target path
granted, signals or abstract sockets unscoped, TCP allowed: the attack works
again). Attacks on another process's ``/proc`` entries have no part of their
own to switch off: any Landlock domain refuses them, the twin is "no domain".
"""

from __future__ import annotations

import contextlib
import ctypes
import encodings.idna  # noqa: F401  (loaded here: uid 65534 may not read the stdlib)
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special

from autograder.isolation.worker import landlock
from autograder.isolation.worker import syscall_filter as sf

ABI = landlock.abi_version()
pytestmark = pytest.mark.skipif(
    ABI == 0, reason=f"Landlock unavailable: {landlock.unavailable_reason()}"
)

NOBODY = 65534
ROOT = os.geteuid() == 0
# As root: as root and as an unprivileged uid. Otherwise: as ourselves.
USERS = ["root", "nobody"] if ROOT else ["self"]
needs_root = pytest.mark.skipif(not ROOT, reason="needs root")
DENIED = {"EACCES", "EPERM"}
# A rename or link that lacks only the "refer" right fails with EXDEV (so that
# tools fall back to copy and remove, which is then denied on its own).
DENIED_MOVE = DENIED | {"EXDEV"}

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE = 4

# A marker in memory: P and C, forked from us, have it at the same address.
MARKER = ctypes.create_string_buffer(b"parent-untouched", 32)
FORGED = b"FORGED-BY-CHILD"
SCORE_LINE = '{"scores": {"Activations": 100.0}}'


# ------------------------------------------------------------------ the tree


@dataclass
class Outcome:
    """What C's attack returned, what C's restrict() applied, and P's side of it."""

    value: object
    applied: dict | None
    parent_out: str
    marker: str
    parent_signalled: bool


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    # A uid change leaves a process non-dumpable; a shell or make of that user is not.
    assert libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0


def _own_stdout(out_w: int, res_w: int) -> None:
    """Make fd 1 a pipe this process created (as a shell pipeline of its user does),
    relayed to ``out_w``: a pipe created by root could not be reopened by another uid."""
    r, w = os.pipe()
    if os.fork() == 0:  # the relay
        try:
            os.close(w)
            os.close(res_w)
            while chunk := os.read(r, 65536):
                os.write(out_w, chunk)
        finally:
            os._exit(0)
    os.close(r)
    os.close(out_w)
    os.dup2(w, 1)
    os.close(w)


def _read_all(fd: int, deadline: float) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError("the process tree did not finish")
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def run(
    attack: Callable[[], object], user: str, restriction: dict | None, timeout: float = 60.0
) -> Outcome:
    """Run ``attack`` in C (restricted by ``restriction`` unless None) below a parent P."""
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # P
        try:
            os.close(out_r)
            os.close(res_r)
            if user == "nobody":
                _drop_to(NOBODY)
            _own_stdout(out_w, res_w)
            got = []
            signal.signal(signal.SIGTERM, lambda *_: got.append(1))
            child = os.fork()
            if child == 0:  # C
                try:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, 1)
                    applied = None
                    if restriction is not None:
                        applied = landlock.restrict(**restriction)
                    try:
                        value = attack()
                    except OSError as exc:
                        value = errno.errorcode.get(exc.errno, str(exc))
                    report = {"value": value, "applied": applied}
                except BaseException as exc:
                    report = {"value": f"crash: {exc!r}", "applied": None}
                try:
                    os.write(res_w, json.dumps(report).encode())
                finally:
                    os._exit(0)
            os.close(res_w)
            os.waitpid(child, 0)
            state = {"marker": MARKER.value.decode(errors="replace"), "signalled": bool(got)}
            os.write(1, b"\n" + json.dumps(state).encode() + b"\n")
        finally:
            os._exit(0)
    os.close(out_w)
    os.close(res_w)
    deadline = time.monotonic() + timeout
    try:
        result = json.loads(_read_all(res_r, deadline))
        out = _read_all(out_r, deadline).decode(errors="replace")
    finally:
        os.close(res_r)
        os.close(out_r)
        with contextlib.suppress(ProcessLookupError):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    text, _, last = out.rstrip("\n").rpartition("\n")
    state = json.loads(last)
    return Outcome(result["value"], result["applied"], text, state["marker"], state["signalled"])


@pytest.fixture
def dirs():
    """A scratch directory and another directory (with a victim file), writable by
    every user the tests run as, under a directory in /tmp."""
    base = tempfile.mkdtemp(prefix="landlock-test-", dir="/tmp")
    os.chmod(base, 0o755)
    paths = {"base": base}
    for name in ("scratch", "other"):
        paths[name] = os.path.join(base, name)
        os.mkdir(paths[name])
    paths["victim"] = os.path.join(paths["other"], "victim.txt")
    paths["mine"] = os.path.join(paths["scratch"], "mine.txt")
    paths["empty"] = os.path.join(paths["other"], "empty")
    paths["tmp_probe"] = os.path.join("/tmp", f"landlock-probe-{os.getpid()}")
    for key, content in (("victim", "original"), ("mine", "mine")):
        with open(paths[key], "w") as fh:
            fh.write(content)
    os.mkdir(paths["empty"])
    if ROOT:
        for root, subdirs, files in os.walk(base):
            for entry in (root, *(os.path.join(root, n) for n in subdirs + files)):
                os.chown(entry, NOBODY, NOBODY)
        os.chown(base, 0, 0)
    yield paths
    shutil.rmtree(base, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths["tmp_probe"])


def restricted(d: dict, *extra: str, **options) -> dict:
    """The restriction the worker applies: only the scratch directory is writable."""
    return {"writable": [d["scratch"], *extra], **options}


# ------------------------------------------------------- writes outside scratch


def _content(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _exists(path: str) -> bool:
    return os.path.lexists(path)


def _write(path: str, mode: str, data: str = "forged") -> str:
    with open(path, mode) as fh:
        fh.write(data)
    return "ok"


def _bind_unix(path: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
    return "ok"


# name: (attack on the paths, did it have an effect?, the path to grant, minimum ABI)
FS_ATTACKS: dict[str, tuple[Callable, Callable, str, int]] = {
    "create": (
        lambda d: _write(os.path.join(d["other"], "new.txt"), "x"),
        lambda d: _exists(os.path.join(d["other"], "new.txt")),
        "other",
        1,
    ),
    "overwrite": (
        lambda d: _write(d["victim"], "r+"),
        lambda d: _content(d["victim"]) != "original",
        "other",
        1,
    ),
    "append": (
        lambda d: _write(d["victim"], "a"),
        lambda d: _content(d["victim"]) != "original",
        "other",
        1,
    ),
    "truncate": (
        lambda d: os.truncate(d["victim"], 0) or "ok",
        lambda d: _content(d["victim"]) == "",
        "other",
        3,
    ),
    "remove": (
        lambda d: os.remove(d["victim"]) or "ok",
        lambda d: not _exists(d["victim"]),
        "other",
        1,
    ),
    "rename_in_place": (
        lambda d: os.rename(d["victim"], os.path.join(d["other"], "renamed")) or "ok",
        lambda d: not _exists(d["victim"]),
        "other",
        1,
    ),
    "move_out_of_scratch": (
        lambda d: os.rename(d["mine"], os.path.join(d["other"], "moved")) or "ok",
        lambda d: _exists(os.path.join(d["other"], "moved")),
        "other",
        2,  # ABI 1 refuses every cross-directory rename, granted or not
    ),
    "move_into_scratch": (
        lambda d: os.rename(d["victim"], os.path.join(d["scratch"], "taken")) or "ok",
        lambda d: not _exists(d["victim"]),
        "other",
        2,
    ),
    "hard_link": (
        lambda d: os.link(d["mine"], os.path.join(d["other"], "link")) or "ok",
        lambda d: _exists(os.path.join(d["other"], "link")),
        "other",
        2,
    ),
    "mkdir": (
        lambda d: os.mkdir(os.path.join(d["other"], "dir")) or "ok",
        lambda d: _exists(os.path.join(d["other"], "dir")),
        "other",
        1,
    ),
    "rmdir": (
        lambda d: os.rmdir(d["empty"]) or "ok",
        lambda d: not _exists(d["empty"]),
        "other",
        1,
    ),
    "symlink": (
        lambda d: os.symlink("/etc/hostname", os.path.join(d["other"], "sym")) or "ok",
        lambda d: _exists(os.path.join(d["other"], "sym")),
        "other",
        1,
    ),
    "mkfifo": (
        lambda d: os.mkfifo(os.path.join(d["other"], "fifo")) or "ok",
        lambda d: _exists(os.path.join(d["other"], "fifo")),
        "other",
        1,
    ),
    "unix_socket_file": (
        lambda d: _bind_unix(os.path.join(d["other"], "sock")),
        lambda d: _exists(os.path.join(d["other"], "sock")),
        "other",
        1,
    ),
    "mknod_char": (
        lambda d: (
            os.mknod(os.path.join(d["other"], "null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            or "ok"
        ),
        lambda d: _exists(os.path.join(d["other"], "null")),
        "other",
        1,
    ),
    "mknod_block": (
        lambda d: (
            os.mknod(os.path.join(d["other"], "blk"), 0o600 | stat.S_IFBLK, os.makedev(7, 0))
            or "ok"
        ),
        lambda d: _exists(os.path.join(d["other"], "blk")),
        "other",
        1,
    ),
    "create_in_tmp": (
        lambda d: _write(d["tmp_probe"], "x"),
        lambda d: _exists(d["tmp_probe"]),
        "/tmp",
        1,
    ),
}


# Device nodes: only root may make them (CAP_MKNOD), so only root's runs try.
ROOT_ONLY = {"mknod_char", "mknod_block"}


def _grant(d: dict, key: str) -> str:
    return d.get(key, key)


def _fs_case(name: str, user: str, min_abi: int = 1) -> None:
    if min_abi > ABI:
        pytest.skip(f"needs Landlock ABI {min_abi}")
    if name in ROOT_ONLY and user != "root":
        pytest.skip("only root can make device nodes")


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("name", sorted(FS_ATTACKS))
def test_writes_outside_scratch_are_denied(dirs, user, name):
    attack, effect, _, abi = FS_ATTACKS[name]
    _fs_case(name, user, abi)
    got = run(lambda: attack(dirs), user, restricted(dirs))
    assert got.value in DENIED_MOVE, got.value
    assert not effect(dirs), f"{name} changed the file system"


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("name", sorted(FS_ATTACKS))
def test_twin_the_same_writes_work_without_landlock(dirs, user, name):
    attack, effect, _, _ = FS_ATTACKS[name]
    _fs_case(name, user)
    got = run(lambda: attack(dirs), user, None)
    assert got.value == "ok"
    assert effect(dirs)


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("name", sorted(FS_ATTACKS))
def test_the_same_writes_work_where_the_path_is_granted(dirs, user, name):
    # The denial comes from the rules, not from Landlock being on at all.
    attack, effect, grant, abi = FS_ATTACKS[name]
    _fs_case(name, user, abi)
    got = run(lambda: attack(dirs), user, restricted(dirs, _grant(dirs, grant)))
    assert got.value == "ok"
    assert effect(dirs)


@pytest.fixture
def terminal():
    """A pseudo-terminal outside any domain, its device openable by every test user."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.chmod(path, 0o666)
    yield master, path
    os.close(master)
    os.close(slave)


def _resize_terminal(path: str) -> str:
    # Opened for reading only (reads are not handled); the ioctl is a device ioctl.
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 7, 77, 0, 0))
    finally:
        os.close(fd)
    return "ok"


def _terminal_size(master: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(master, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


needs_ioctl_dev = pytest.mark.skipif(ABI < 5, reason="device ioctls need ABI 5")


@needs_ioctl_dev
@pytest.mark.parametrize("user", USERS)
def test_devices_opened_after_restriction_take_no_ioctl(dirs, user, terminal):
    master, path = terminal
    assert run(lambda: _resize_terminal(path), user, restricted(dirs)).value == "EACCES"
    assert _terminal_size(master) != (7, 77)


@needs_ioctl_dev
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("how", ["without_landlock", "granted"])
def test_twin_device_ioctls_work_without_the_rule(dirs, user, how, terminal):
    master, path = terminal
    restriction = None if how == "without_landlock" else restricted(dirs, os.path.dirname(path))
    assert run(lambda: _resize_terminal(path), user, restriction).value == "ok"
    assert _terminal_size(master) == (7, 77)


def _honest_scratch_work(d: dict) -> object:
    """Everything honest code may do in its own directory."""
    s = d["scratch"]
    _write(os.path.join(s, "a.txt"), "x", "one")
    _write(os.path.join(s, "a.txt"), "a", " two")
    _write(d["mine"], "w", "rewritten")  # O_TRUNC
    os.truncate(os.path.join(s, "a.txt"), 3)
    os.mkdir(os.path.join(s, "sub"))
    os.rename(os.path.join(s, "a.txt"), os.path.join(s, "b.txt"))
    os.rename(os.path.join(s, "b.txt"), os.path.join(s, "sub", "b.txt"))
    os.link(os.path.join(s, "sub", "b.txt"), os.path.join(s, "c.txt"))
    os.symlink("c.txt", os.path.join(s, "d.txt"))
    os.mkfifo(os.path.join(s, "fifo"))
    _bind_unix(os.path.join(s, "sock"))
    fd, path = tempfile.mkstemp(dir=s)
    os.write(fd, b"temporary")
    os.close(fd)
    os.unlink(path)
    with open(os.devnull, "w") as fh:
        fh.write("silenced")
    for name in ("c.txt", "d.txt", "fifo", "sock", os.path.join("sub", "b.txt")):
        os.unlink(os.path.join(s, name))
    os.rmdir(os.path.join(s, "sub"))
    with open(os.path.join(s, "mine.txt")) as fh:
        return fh.read()


@pytest.mark.parametrize("user", USERS)
def test_honest_writes_in_scratch_work(dirs, user):
    got = run(lambda: _honest_scratch_work(dirs), user, restricted(dirs))
    assert got.value == "rewritten"


@pytest.mark.parametrize("user", USERS)
def test_reading_stays_allowed_everywhere(dirs, user):
    def read_around():
        with open(dirs["victim"]) as fh:
            victim = fh.read()
        with open("/etc/hostname") as fh:
            fh.read()
        with open("/proc/self/status") as fh:
            assert "Name:" in fh.read()
        return [victim, sorted(os.listdir(dirs["other"])), "etc" in os.listdir("/")]

    got = run(read_around, user, restricted(dirs))
    assert got.value == ["original", ["empty", "victim.txt"], True]


# ------------------------------------------------------ the parent's /proc entries


def _write_parent_memory() -> str:
    with open(f"/proc/{os.getppid()}/mem", "r+b", buffering=0) as fh:
        fh.seek(ctypes.addressof(MARKER))
        fh.write(FORGED + b"\0")
    return "ok"


def _write_parent_stdout() -> str:
    with open(f"/proc/{os.getppid()}/fd/1", "w") as fh:
        fh.write(f"FORGED {SCORE_LINE}\n")
    return "ok"


def _read_parent_environ() -> str:
    with open(f"/proc/{os.getppid()}/environ", "rb") as fh:
        return "ok" if b"PATH=" in fh.read() else "empty"


def _ptrace_parent() -> str:
    rc = libc.ptrace(0x4206, os.getppid(), None, None)  # PTRACE_SEIZE
    return "ok" if rc == 0 else errno.errorcode[ctypes.get_errno()]


@pytest.mark.parametrize("user", USERS)
def test_parent_memory_cannot_be_written(dirs, user):
    got = run(_write_parent_memory, user, restricted(dirs))
    assert got.value in DENIED
    assert got.marker == "parent-untouched"


@pytest.mark.parametrize("user", USERS)
def test_twin_parent_memory_is_writable_without_landlock(dirs, user):
    got = run(_write_parent_memory, user, None)
    assert got.value == "ok"
    assert got.marker == FORGED.decode()


@pytest.mark.parametrize("user", USERS)
def test_parent_stdout_cannot_be_opened(dirs, user):
    got = run(_write_parent_stdout, user, restricted(dirs))
    assert got.value in DENIED
    assert "FORGED" not in got.parent_out


@pytest.mark.parametrize("user", USERS)
def test_twin_parent_stdout_is_writable_without_landlock(dirs, user):
    # The Autolab attack: a score line printed by make after the grader exits.
    got = run(_write_parent_stdout, user, None)
    assert got.value == "ok"
    assert f"FORGED {SCORE_LINE}" in got.parent_out


@pytest.mark.parametrize("user", USERS)
def test_parent_environment_cannot_be_read(dirs, user):
    if user == "root":
        # Seen on Linux 6.18: root still reads environ, maps and auxv of a process
        # outside the domain (not mem, fd/*, cwd or root). No defence for root there.
        pytest.skip("root reads /proc/<pid>/environ despite Landlock")
    assert run(_read_parent_environ, user, restricted(dirs)).value in DENIED
    assert run(_read_parent_environ, user, None).value == "ok"  # twin


@pytest.mark.parametrize("user", USERS)
def test_parent_cannot_be_traced(dirs, user):
    assert run(_ptrace_parent, user, restricted(dirs)).value in DENIED
    assert run(_ptrace_parent, user, None).value == "ok"  # twin


# ------------------------------------------------------------------- signals

needs_scopes = pytest.mark.skipif(ABI < 6, reason="signal and socket scopes need ABI 6")


def _signal_parent() -> str:
    os.kill(os.getppid(), 0)
    os.kill(os.getppid(), signal.SIGTERM)
    return "ok"


@needs_scopes
@pytest.mark.parametrize("user", USERS)
def test_processes_outside_cannot_be_signalled(dirs, user):
    got = run(_signal_parent, user, restricted(dirs))
    assert got.value == "EPERM"
    assert not got.parent_signalled


@needs_scopes
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("how", ["without_landlock", "unscoped"])
def test_twin_signals_reach_the_parent_without_the_scope(dirs, user, how):
    restriction = None if how == "without_landlock" else restricted(dirs, scope_signals=False)
    got = run(_signal_parent, user, restriction)
    assert got.value == "ok"
    assert got.parent_signalled


@pytest.mark.parametrize("user", USERS)
def test_own_children_can_still_be_signalled(dirs, user):
    def kill_own_children():
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        proc = subprocess.Popen(["sleep", "30"])
        proc.terminate()
        return [os.WTERMSIG(status), proc.wait()]

    got = run(kill_own_children, user, restricted(dirs))
    assert got.value == [signal.SIGTERM, -signal.SIGTERM]


# ------------------------------------------------------------------- sockets


@pytest.fixture
def abstract_listener():
    """An abstract Unix socket created outside any domain (by this test process)."""
    name = f"\0landlock-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(name)
        s.listen(8)
        yield name


def _connect_unix(name: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(name)
    return "ok"


@needs_scopes
@pytest.mark.parametrize("user", USERS)
def test_abstract_sockets_outside_are_unreachable(dirs, user, abstract_listener):
    got = run(lambda: _connect_unix(abstract_listener), user, restricted(dirs))
    assert got.value == "EPERM"


@needs_scopes
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("how", ["without_landlock", "unscoped"])
def test_twin_abstract_sockets_reachable_without_the_scope(dirs, user, how, abstract_listener):
    restriction = None if how == "without_landlock" else restricted(dirs, scope_abstract_unix=False)
    assert run(lambda: _connect_unix(abstract_listener), user, restriction).value == "ok"


@pytest.mark.parametrize("user", USERS)
def test_own_abstract_sockets_still_work(dirs, user):
    def own_socket():
        name = f"\0landlock-own-{os.getpid()}"
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(name)
            s.listen(1)
            return _connect_unix(name)

    assert run(own_socket, user, restricted(dirs)).value == "ok"


@pytest.fixture
def tcp_listener():
    """A TCP port listening on the loopback interface, outside any domain."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def _tcp_connect(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        return "ok"


def _tcp_bind() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
    return "ok"


@pytest.mark.skipif(ABI < 4, reason="TCP rules need ABI 4")
@pytest.mark.parametrize("user", USERS)
def test_tcp_connect_and_bind_are_denied(dirs, user, tcp_listener):
    assert run(lambda: _tcp_connect(tcp_listener), user, restricted(dirs)).value == "EACCES"
    assert run(_tcp_bind, user, restricted(dirs)).value == "EACCES"


@pytest.mark.skipif(ABI < 4, reason="TCP rules need ABI 4")
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("how", ["without_landlock", "tcp_allowed"])
def test_twin_tcp_works_without_the_rule(dirs, user, how, tcp_listener):
    restriction = None if how == "without_landlock" else restricted(dirs, deny_tcp=False)
    assert run(lambda: _tcp_connect(tcp_listener), user, restriction).value == "ok"
    assert run(_tcp_bind, user, restriction).value == "ok"


# ------------------------------------------------------- honest code still runs


@pytest.mark.parametrize("user", USERS)
def test_numpy_scipy_fork_and_subprocess_work(dirs, user):
    def honest():
        Z = np.linspace(-3.0, 3.0, 7)
        A = scipy.special.expit(Z)
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        done = subprocess.run(["true"], stdout=subprocess.DEVNULL)
        return [
            float(A.sum()),
            float(scipy.special.erf(1.0)),
            os.WEXITSTATUS(status),
            done.returncode,
        ]

    got = run(honest, user, restricted(dirs))
    assert got.value == pytest.approx([3.5, 0.8427007929497149, 7, 0])


HONEST_IMPORTS = textwrap.dedent(
    """
    import glob, statistics, unicodedata
    import numpy as np
    import scipy.special
    Z = np.linspace(-3.0, 3.0, 7)
    print(round(float(scipy.special.expit(Z).sum()), 6), round(float(np.tanh(Z).sum()), 6))
    """
)


def _fresh_interpreter() -> object:
    # Nothing preloaded: every module is read from disk under the restriction.
    done = subprocess.run(
        [sys.executable, "-c", HONEST_IMPORTS], capture_output=True, text=True, timeout=60
    )
    return [done.returncode, done.stdout.strip(), done.stderr[-500:]]


@needs_root  # uid 65534 cannot start this interpreter where it lives under a 0700 home
def test_a_fresh_interpreter_imports_numpy_and_scipy_under_landlock(dirs):
    got = run(_fresh_interpreter, "root", restricted(dirs))
    assert got.value == [0, "3.5 0.0", ""]


@needs_root
def test_with_a_read_allow_list_the_runtime_still_imports(dirs):
    readable = landlock.runtime_paths()
    got = run(_fresh_interpreter, "root", restricted(dirs, readable=readable))
    assert got.value == [0, "3.5 0.0", ""]
    assert got.applied["readable"] == readable


@pytest.mark.parametrize("user", USERS)
def test_with_a_read_allow_list_other_files_are_unreadable(dirs, user):
    def read_other():
        with open(dirs["mine"]) as fh:
            mine = fh.read()
        return [mine, _content(dirs["victim"]), sorted(os.listdir(dirs["scratch"]))]

    readable = [p for p in landlock.runtime_paths() if not dirs["base"].startswith(p + os.sep)]
    got = run(read_other, user, restricted(dirs, readable=readable))
    assert got.value == ["mine", None, ["mine.txt"]]
    assert run(read_other, user, restricted(dirs)).value == ["mine", "original", ["mine.txt"]]


REFERENCE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "solutions")


@pytest.mark.skipif(not os.path.isdir(REFERENCE), reason="no reference solution in this checkout")
def test_with_a_read_allow_list_the_reference_is_unreadable(dirs):
    # The process level's worry: student code with the grader's uid reads its files.
    readable = landlock.runtime_paths()
    if any(REFERENCE.startswith(p + os.sep) for p in readable):
        pytest.skip("the reference lies beneath the runtime here")

    def read_reference():
        return sorted(os.listdir(REFERENCE))

    assert run(read_reference, "root", restricted(dirs, readable=readable)).value == "EACCES"
    assert run(read_reference, "root", restricted(dirs)).value != "EACCES"  # twin


# ------------------------------------------------------ what restrict() reports


def test_restrict_reports_what_it_applied(dirs):
    got = run(lambda: "ok", USERS[0], restricted(dirs))
    applied = got.applied
    assert applied["abi"] == ABI
    assert {"write_file", "make_reg", "remove_file", "make_dir", "make_sym"} <= set(applied["fs"])
    assert not {"read_file", "read_dir", "execute"} & set(applied["fs"])
    assert ("truncate" in applied["fs"]) == (ABI >= 3)
    assert applied["net"] == (["bind_tcp", "connect_tcp"] if ABI >= 4 else [])
    assert sorted(applied["scoped"]) == (["abstract_unix", "signal"] if ABI >= 6 else [])
    assert applied["writable"] == [dirs["scratch"], "/dev/null"]
    assert applied["readable"] is None


@pytest.mark.parametrize("abi", range(1, ABI + 1))
def test_every_older_abi_is_accepted_and_reported_truthfully(dirs, abi):
    """Best effort: restrict() asks an older kernel only for what that ABI knows.

    This kernel accepts older rulesets too, so each ABI's set is tried here; the
    report says what was applied and the behaviour matches it.
    """

    def at_abi():
        landlock._abi = abi  # as if the kernel were that old
        applied = landlock.restrict([dirs["scratch"]])
        try:
            _write(os.path.join(dirs["other"], "new.txt"), "x")
            outside = "ok"
        except OSError as exc:
            outside = errno.errorcode[exc.errno]
        try:
            os.kill(os.getppid(), 0)
            signalled = "ok"
        except OSError as exc:
            signalled = errno.errorcode[exc.errno]
        return [applied, _write(os.path.join(dirs["scratch"], "n"), "x"), outside, signalled]

    applied, inside, outside, signalled = run(at_abi, USERS[0], None).value
    assert applied["abi"] == abi
    assert ("refer" in applied["fs"]) == (abi >= 2)
    assert ("ioctl_dev" in applied["fs"]) == (abi >= 5)
    assert bool(applied["net"]) == (abi >= 4)
    assert [inside, outside] == ["ok", "EACCES"]
    assert signalled == ("EPERM" if "signal" in applied["scoped"] else "ok")


def test_rights_for_an_abi_never_include_newer_bits():
    for abi in range(1, 8):
        fs, net, scoped = landlock.rights_for(abi)
        newer = [n for n, (bit, since) in landlock.FS_RIGHTS.items() if since > abi and fs & bit]
        assert newer == []
        assert (net != 0) == (abi >= 4)
        assert (scoped != 0) == (abi >= 6)


# ------------------------------------------------------------ failing closed


def test_a_missing_writable_path_raises(dirs):
    def missing():
        try:
            landlock.restrict([os.path.join(dirs["base"], "absent")])
        except OSError as exc:
            return [errno.errorcode[exc.errno], "absent" in str(exc)]
        return "restricted"

    assert run(missing, USERS[0], None).value == ["ENOENT", True]


def test_a_second_thread_makes_restrict_refuse(dirs):
    def threaded():
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        try:
            landlock.restrict([dirs["scratch"]])
        except OSError as exc:
            return errno.errorcode[exc.errno]
        finally:
            stop.set()
            thread.join()
        return "restricted"

    assert run(threaded, USERS[0], None).value == "EBUSY"


def test_unknown_architecture_reports_landlock_unavailable(monkeypatch):
    monkeypatch.setattr(landlock, "_abi", None)
    monkeypatch.setattr(landlock.platform, "machine", lambda: "mips64")
    assert landlock.abi_version() == 0
    assert "mips64" in landlock.unavailable_reason()
    applied = landlock.restrict(["/nonexistent"])
    assert applied == {"abi": 0, "reason": landlock.unavailable_reason()}


def test_not_linux_reports_landlock_unavailable(monkeypatch):
    monkeypatch.setattr(landlock, "_abi", None)
    monkeypatch.setattr(landlock.sys, "platform", "darwin")
    assert landlock.abi_version() == 0
    assert landlock.unavailable_reason() == "Landlock needs Linux (this is darwin)"


# --------------------------------------------------------- with the syscall filter

FILTER = sf.build()


@pytest.mark.skipif(FILTER is None, reason=f"no filter: {sf.unavailable_reason()}")
@pytest.mark.parametrize("order", ["landlock_first", "filter_first"])
def test_landlock_and_the_syscall_filter_stack(dirs, order):
    def both():
        if order == "filter_first":
            FILTER.install()
            applied = landlock.restrict([dirs["scratch"]])
        else:
            applied = landlock.restrict([dirs["scratch"]])
            FILTER.install()
        try:
            _write(os.path.join(dirs["other"], "new.txt"), "x")
            return "written"
        except OSError as exc:
            return [applied["abi"], errno.errorcode[exc.errno]]

    assert run(both, USERS[0], None).value == [ABI, "EACCES"]
