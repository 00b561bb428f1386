"""Landlock on student code: writes only beneath the run's own directory.

Landlock (Linux 5.13 and later) lets an unprivileged process give up access
rights for itself and everything it starts, for good. The worker's child
calls :func:`restrict` once, after it drops its uid and sets no_new_privs and
before the syscall filter and the student's import, and the child then lives
in one Landlock domain:

* **Files**: every write-like access (writing, truncating, creating,
  removing, renaming or linking into a directory, device ioctls) is allowed
  only beneath the given writable paths (the run's scratch directory) and on
  ``/dev/null``. ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are not writable:
  they are shared with concurrent runs and, at the ``process`` level, with the
  grader's own temporary files, and what is written there outlives the run.
  Point ``TMPDIR`` (and ``tempfile.tempdir``) at the scratch directory instead.
  Reads stay allowed everywhere unless ``readable`` is given: then reading and
  executing are allowed only beneath those paths and the writable ones.
  :func:`runtime_paths` lists what this interpreter, numpy and scipy need
  (prefixes, standard library, site-packages, system directories), so at the
  ``process`` level the grader's own files can be made unreadable too; it
  grants site-packages whole, so no grader data may be installed there.
* **Other processes**: any Landlock domain stops its processes from tracing a
  process outside it, and the kernel applies that check (the ``ptrace`` access
  check) when ``/proc/<pid>/mem``, ``fd/*``, ``cwd``, ``root``, ``environ``,
  ``maps`` or ``auxv`` is opened. So even at the ``process`` level, where
  student code has the uid of ``make`` and the grader, it can neither write a
  dumpable parent's memory nor open its stdout through ``/proc/<pid>/fd/1``.
  World-readable entries (``cmdline``, ``status``, the names in ``fd/``) stay
  readable; so do ``environ``, ``maps`` and ``auxv`` for a process running as
  root (seen on Linux 6.18).
* **Signals and abstract sockets** (ABI 6, Linux 6.12): no signal to a process
  outside the domain (the grader, the zygote, ``make``) and no connection to
  an abstract Unix socket created outside it. Processes inside the domain
  (the student's own children) can still be signalled.
* **TCP** (ABI 4, Linux 6.7): no ``bind`` and no ``connect`` on any port.

What honest code loses: writing anywhere but its own directory (the
``tempfile`` default included, unless ``TMPDIR`` points there),
``multiprocessing`` locks, queues and pools (POSIX semaphores are files in
``/dev/shm``), ioctls on devices it opens (a new pseudo-terminal), TCP.
numpy, scipy, threads, ``fork``, ``subprocess`` and reading files work.

What Landlock (ABI 7) does not cover: UDP and connecting to a Unix socket by
its path (the syscall filter denies new sockets), reading world-readable
``/proc`` entries of other processes, and anything a process did before it
was restricted (descriptors it already holds stay usable). A restricted
process can add rules of its own but never lift these.

Best effort across kernels: only the rights the running ABI knows are asked
for (the kernel rejects unknown bits); :func:`restrict` returns what was
applied, as data for the report. Where Landlock does not exist (not Linux, a
kernel before 5.13 or without Landlock enabled, an unknown architecture, a
seccomp profile that denies the calls) :func:`abi_version` is 0,
:func:`unavailable_reason` says why and :func:`restrict` returns
``{"abi": 0, ...}`` without restricting; where the kernel has Landlock and a
step fails, :func:`restrict` raises OSError and the caller must run no student
code.

Python 3.11 has no binding, so the three system calls are made through ctypes
with their raw numbers. This module imports only the standard library: the
sandbox mounts it alone, next to the worker.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import struct
import sys
from collections.abc import Iterable

# ------------------------------------------------------------------ constants

# landlock_create_ruleset, landlock_add_rule, landlock_restrict_self. Since Linux
# 5.1 new system calls share one number on every architecture (the asm-generic
# table and each arch's syscall.tbl), 444-446 here; only alpha (+110) and MIPS
# (+4000/5000/6000 per ABI) differ, and those are left out rather than guessed.
_FIRST_NR = 444
_UNIFIED_ARCHES = frozenset(
    {
        "x86_64",
        "amd64",
        "i386",
        "i486",
        "i586",
        "i686",
        "aarch64",
        "arm64",
        "armv6l",
        "armv7l",
        "armv8l",
        "riscv64",
        "ppc64le",
        "ppc64",
        "s390x",
        "loongarch64",
    }
)

LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
O_PATH = getattr(os, "O_PATH", 0o10000000)

# Filesystem access rights (linux/landlock.h), each with the ABI that added it.
FS_RIGHTS: dict[str, tuple[int, int]] = {
    "execute": (1 << 0, 1),
    "write_file": (1 << 1, 1),
    "read_file": (1 << 2, 1),
    "read_dir": (1 << 3, 1),
    "remove_dir": (1 << 4, 1),
    "remove_file": (1 << 5, 1),
    "make_char": (1 << 6, 1),
    "make_dir": (1 << 7, 1),
    "make_reg": (1 << 8, 1),
    "make_sock": (1 << 9, 1),
    "make_fifo": (1 << 10, 1),
    "make_block": (1 << 11, 1),
    "make_sym": (1 << 12, 1),
    "refer": (1 << 13, 2),  # rename and link across directories
    "truncate": (1 << 14, 3),
    "ioctl_dev": (1 << 15, 5),  # ioctl on a device file opened after restriction
}
NET_RIGHTS: dict[str, tuple[int, int]] = {
    "bind_tcp": (1 << 0, 4),
    "connect_tcp": (1 << 1, 4),
}
SCOPES: dict[str, tuple[int, int]] = {
    "abstract_unix": (1 << 0, 6),
    "signal": (1 << 1, 6),
}

# What restrict() handles: everything that changes a file or a directory. Reads
# are handled only on request (``readable``).
WRITE_RIGHTS = (
    "write_file",
    "remove_dir",
    "remove_file",
    "make_char",
    "make_dir",
    "make_reg",
    "make_sock",
    "make_fifo",
    "make_block",
    "make_sym",
    "refer",
    "truncate",
    "ioctl_dev",
)
READ_RIGHTS = ("read_file", "read_dir", "execute")
# Rights that make sense on a file (not a directory): the kernel rejects others there.
FILE_RIGHTS = ("execute", "write_file", "read_file", "truncate", "ioctl_dev")
# Writable for every run: honest code silences output into /dev/null.
ALWAYS_WRITABLE = ("/dev/null",)
# Where an interpreter and its libraries live on common systems (read-only use).
SYSTEM_READABLE = (
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/dev",
    "/proc",
    "/sys",
)
# struct landlock_ruleset_attr grew a field with ABI 4 (net) and ABI 6 (scoped);
# a kernel reads the size it is given.
_ATTR_SIZE = {1: 8, 2: 8, 3: 8, 4: 16, 5: 16}


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # packed in the kernel's header: 12 bytes
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


# ------------------------------------------------------------------- probing

_libc: ctypes.CDLL | None = None
_abi: int | None = None
_reason = ""


def _syscall_base() -> tuple[int | None, str]:
    """The number of landlock_create_ruleset here, or None and why not."""
    if not sys.platform.startswith("linux"):
        return None, f"Landlock needs Linux (this is {sys.platform})"
    machine = platform.machine()
    if machine not in _UNIFIED_ARCHES:
        return None, f"Landlock's system call numbers are not known for {machine or 'this CPU'}"
    if machine in ("x86_64", "amd64") and struct.calcsize("P") == 4:
        import sysconfig

        if "x32" in (sysconfig.get_config_var("MULTIARCH") or ""):
            return None, "Landlock's system call numbers are not known for the x32 ABI"
    return _FIRST_NR, ""


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        # Resolved here, in the zygote when it asks abi_version(): not in each child.
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.restype = ctypes.c_int
    return _libc


def _call(number: int, *args: object) -> int:
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    return _lib().syscall(ctypes.c_long(number), *cargs)


def abi_version() -> int:
    """The Landlock ABI version of the running kernel, 0 where Landlock is unavailable.

    Asked once per process (forked children inherit the answer).
    """
    global _abi, _reason
    if _abi is not None:
        return _abi
    base, why = _syscall_base()
    if base is None:
        _abi, _reason = 0, why
        return 0
    rc = _call(base, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if rc >= 1:
        _abi, _reason = int(rc), ""
        return _abi
    code = ctypes.get_errno()
    _abi = 0
    if code == errno.ENOSYS:
        _reason = "the kernel has no Landlock (Linux 5.13 or later with CONFIG_SECURITY_LANDLOCK)"
    elif code == errno.EOPNOTSUPP:
        _reason = "Landlock is built into the kernel but not enabled (the lsm= boot parameter)"
    elif code == errno.EPERM:
        _reason = "a seccomp profile around this process denies the Landlock system calls"
    else:
        _reason = f"landlock_create_ruleset: {os.strerror(code) if code else f'returned {rc}'}"
    return 0


def unavailable_reason() -> str:
    """Why :func:`abi_version` is 0, in one line; empty where Landlock is available."""
    abi_version()
    return _reason


def _mask(table: dict[str, tuple[int, int]], names: Iterable[str], abi: int) -> int:
    return sum(table[n][0] for n in names if table[n][1] <= abi)


def _names(table: dict[str, tuple[int, int]], mask: int) -> list[str]:
    return [name for name, (bit, _) in table.items() if mask & bit]


def rights_for(
    abi: int, reads: bool = False, scope_signals: bool = True, scope_abstract_unix: bool = True
) -> tuple[int, int, int]:
    """The (filesystem, network, scope) masks :func:`restrict` asks for at ``abi``.

    Only rights that ``abi`` knows: a kernel rejects the whole ruleset for one
    unknown bit.
    """
    fs = _mask(FS_RIGHTS, WRITE_RIGHTS + (READ_RIGHTS if reads else ()), abi)
    net = _mask(NET_RIGHTS, NET_RIGHTS, abi)
    scopes = [
        name
        for name, wanted in (("signal", scope_signals), ("abstract_unix", scope_abstract_unix))
        if wanted
    ]
    return fs, net, _mask(SCOPES, scopes, abi)


def runtime_paths(packages: Iterable[str] = ("numpy", "scipy")) -> list[str]:
    """Existing paths this interpreter and ``packages`` read from: a ``readable`` list.

    The interpreter's prefixes and its standard-library and site-packages
    directories, each package's directory (and its ``<name>.libs`` of bundled
    shared libraries), and :data:`SYSTEM_READABLE`. Not the rest of
    ``sys.path``: it holds the grader's own directory. Call it before forking
    (it may look packages up on disk).
    """
    import importlib.util
    import site
    import sysconfig

    scheme = sysconfig.get_paths()
    paths = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    paths += [scheme[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in scheme]
    paths += site.getsitepackages()
    user_site = site.getusersitepackages()
    if user_site in sys.path:
        paths.append(user_site)
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            paths += [location, f"{location}.libs"]
    paths += SYSTEM_READABLE
    found: list[str] = []
    for path in paths:
        if path and path not in found and os.path.exists(path):
            found.append(path)
    return found


# ---------------------------------------------------------------- restricting


def _single_threaded() -> bool:
    try:
        # procfs counts a task directory's links as 2 + its threads: one stat, no listing.
        links = os.stat("/proc/self/task").st_nlink
        return links == 3 if links >= 3 else len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return True  # no /proc: nothing to check with


def restrict(
    writable: Iterable[str],
    readable: Iterable[str] | None = None,
    scope_signals: bool = True,
    scope_abstract_unix: bool = True,
    deny_tcp: bool = True,
) -> dict:
    """Put this process, and all it starts from now on, in a new Landlock domain.

    ``writable``: paths (directories or files) beneath which write-like access
    stays allowed; ``/dev/null`` is always added. ``readable``: None keeps reads
    and execution allowed everywhere; a list allows them only beneath those
    paths and the writable ones (a readable path that cannot be opened here is
    left out: it could not be read anyway). ``scope_signals`` / ``scope_abstract_unix``
    (ABI 6 and later): no signal to, no abstract-socket connection with, a
    process outside the domain. ``deny_tcp`` (ABI 4 and later): no TCP bind or
    connect on any port.

    Call it in a single-threaded process (a freshly forked child): Landlock
    restricts the calling thread only. Sets no_new_privs (the kernel requires
    it without CAP_SYS_ADMIN). Returns what was applied, for the report::

        {"abi": 7, "fs": ["write_file", ...], "net": [...], "scoped": [...],
         "writable": [...], "readable": None or [...]}

    or ``{"abi": 0, "reason": ...}`` where Landlock does not exist (nothing
    restricted). Raises OSError where the kernel has Landlock and a step fails
    (a path that does not exist included): the caller must then run no
    student code.
    """
    if abi_version() == 0:
        return {"abi": 0, "reason": _reason}
    ruleset = prepare(writable, readable, scope_signals, scope_abstract_unix, deny_tcp)
    try:
        ruleset.restrict_self()
    finally:
        ruleset.close()
    return ruleset.applied


class Ruleset:
    """A Landlock ruleset built ahead (in the zygote), enforced later (in each child).

    Building it costs most of :func:`restrict`; a child that inherits it only
    sets no_new_privs and makes one ``landlock_restrict_self`` call.
    """

    def __init__(self, fd: int, applied: dict) -> None:
        self.fd = fd
        self.applied = applied

    def restrict_self(self) -> None:
        """Enforce the ruleset on this (single-threaded) process; OSError if it cannot."""
        if not _single_threaded():
            raise OSError(
                errno.EBUSY, "Landlock restricts the calling thread only: other threads run"
            )
        if _lib().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            _raise("prctl(PR_SET_NO_NEW_PRIVS)")
        if _call(_FIRST_NR + 2, self.fd, 0) != 0:
            _raise("landlock_restrict_self")

    def close(self) -> None:
        """Release the ruleset's descriptor (an enforced domain stays)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def prepare(
    writable: Iterable[str],
    readable: Iterable[str] | None = None,
    scope_signals: bool = True,
    scope_abstract_unix: bool = True,
    deny_tcp: bool = True,
) -> Ruleset:
    """Build the ruleset :func:`restrict` would enforce, without enforcing it.

    The same arguments as :func:`restrict`; raises OSError where Landlock is
    missing or a step fails.
    """
    abi = abi_version()
    if abi == 0:
        raise OSError(errno.ENOSYS, f"Landlock is not available: {_reason}")
    reads = readable is not None
    fs, net, scoped = rights_for(abi, reads, scope_signals, scope_abstract_unix)
    if not deny_tcp:
        net = 0
    file_mask = _mask(FS_RIGHTS, FILE_RIGHTS, abi)
    read_mask = _mask(FS_RIGHTS, READ_RIGHTS, abi) if reads else 0
    writable = list(writable)
    readable = list(readable) if reads else []

    nr_create, nr_add = _FIRST_NR, _FIRST_NR + 1
    attr = _RulesetAttr(fs, net, scoped)
    size = _ATTR_SIZE.get(abi, ctypes.sizeof(_RulesetAttr))
    fd = int(_call(nr_create, ctypes.byref(attr), size, 0))
    if fd < 0:
        _raise("landlock_create_ruleset")
    try:
        for path in writable:
            _allow(nr_add, fd, path, fs, file_mask)
        # Where a sandbox has no /dev/null, there is nothing to grant.
        writable += [p for p in ALWAYS_WRITABLE if _allow(nr_add, fd, p, fs, file_mask, True)]
        granted = []
        for path in readable:
            # A path this process cannot open it could not read either: leave it out.
            if _allow(nr_add, fd, path, read_mask, file_mask, missing_ok=True):
                granted.append(path)
    except BaseException:
        os.close(fd)
        raise
    applied = {
        "abi": abi,
        "fs": _names(FS_RIGHTS, fs),
        "net": _names(NET_RIGHTS, net),
        "scoped": _names(SCOPES, scoped),
        "writable": writable,
        "readable": granted if reads else None,
    }
    return Ruleset(fd, applied)


def _allow(
    nr_add: int, ruleset: int, path: str, rights: int, file_mask: int, missing_ok: bool = False
) -> bool:
    """Allow ``rights`` beneath ``path`` (only the file rights if it is not a directory).

    False, with nothing added, where ``missing_ok`` and ``path`` cannot be opened.
    """
    try:
        fd = os.open(path, O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if missing_ok:
            return False
        raise OSError(exc.errno, f"Landlock rule for {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= file_mask
        if rights:
            attr = _PathBeneathAttr(rights, fd)
            if _call(nr_add, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(attr), 0) != 0:
                _raise(f"landlock_add_rule({path})")
        return True
    finally:
        os.close(fd)


def _raise(what: str) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")
