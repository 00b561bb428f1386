"""A seccomp filter on student code, built with libseccomp through ctypes.

The worker's zygote calls :func:`build` once, before it forks any child: the
filter is compiled there, with libseccomp, into a classic BPF program kept in
memory. Each forked child calls :meth:`SyscallFilter.install` right before it
imports student code; that is one ``seccomp(2)`` call with the ready program
(about 0.1 ms, the kernel checking and compiling it; ``bench/limits_cost.py``
measures it), and the filter then
holds for the child and everything it starts, across ``exec`` too.

The filter is a deny list: every system call is allowed except the groups in
:data:`GROUPS`, which fail with an errno (``EPERM``; ``ENOSYS`` where a caller
is expected to fall back), so honest code that probes a feature degrades
gracefully instead of dying. Each group says why it is there. System calls of
another ABI (on x86_64: ``int 0x80`` i386 calls and x32 calls) would reach the
kernel under other numbers, so they kill the process (libseccomp's bad-architecture
action). System calls libseccomp has no name for (newer than its table, which a deny
list cannot judge) fail with ``ENOSYS``, as on an older kernel.

What honest code loses: nothing numpy, scipy, threads, ``fork``, ``subprocess``
or ``multiprocessing`` with the fork and spawn start methods need. What needs a
new socket fails with PermissionError: the forkserver start method,
``multiprocessing.Manager``, any network access.

What the filter cannot stop: another process's memory and descriptors reached
through ``/proc/<pid>/mem``, ``/proc/<pid>/fd`` or ``/proc/<pid>/root`` are
opened with ``open``, which a filter cannot judge by path; the kernel allows it
under the same check as ``ptrace`` (same uid and a dumpable target, or
CAP_SYS_PTRACE). The defence there is that no dumpable process shares the
student's uid and is reachable (the zygote is non-dumpable; bubblewrap's pid 1
must not be reachable; a uid per run at the uid level).

Where libseccomp is missing (a student's laptop) or the system is not Linux,
:func:`build` returns None and :func:`unavailable_reason` says why: grading
goes on without the filter, and the report should say the filter is off.

This module imports only the standard library: the sandbox mounts it alone,
next to the worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
from dataclasses import dataclass

# ------------------------------------------------------------------ constants

# Kernel ABI (linux/sched.h, linux/seccomp.h, linux/prctl.h, sys/socket.h).
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": CLONE_NEWNS,
    "CLONE_NEWCGROUP": CLONE_NEWCGROUP,
    "CLONE_NEWUTS": CLONE_NEWUTS,
    "CLONE_NEWIPC": CLONE_NEWIPC,
    "CLONE_NEWUSER": CLONE_NEWUSER,
    "CLONE_NEWPID": CLONE_NEWPID,
    "CLONE_NEWNET": CLONE_NEWNET,
    # clone() reads this bit as part of the exit signal (and fails); denied anyway,
    # so the rule stays right if a kernel ever accepts it there.
    "CLONE_NEWTIME": CLONE_NEWTIME,
}
AF_UNIX = 1
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
# personality(0xffffffff) reads the persona and changes nothing. Only that exact
# 64-bit value passes (a sign-extended -1 is refused too: the kernel would read it
# as the query, but a comparison of the full register is the simple, safe rule).
PERSONALITY_QUERY = 0xFFFFFFFF
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
# Do not switch on the speculative-store-bypass mitigation for the filtered process
# (kernels whose spec_store_bypass mode is "seccomp" would, slowing student code):
# it guards code from other code in the same address space, not our boundary.
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4

# libseccomp (seccomp.h).
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_OPTIMIZE = 8
SCMP_CMP_NE = 1
SCMP_CMP_MASKED_EQ = 7
# A call of another ABI (i386 int 0x80, x32) is no honest program's business: kill.
BAD_ARCH_ACTION = SCMP_ACT_KILL_PROCESS
# System call numbers libseccomp has no name for fail with ENOSYS: the gaps in its
# table and this many numbers past its last one (kernels add a handful a year).
FUTURE_SYSCALLS = 64


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)  # SCMP_ACT_ERRNO(code)


# --------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """One system call to deny, perhaps only for some values of one argument.

    ``when`` narrows the rule to ``(index, op, value)`` of the argument at
    ``index``: op ``"has"`` matches when all bits of ``value`` are set,
    ``"ne"`` when the whole 64-bit argument differs from ``value`` (so any
    other value, even one the kernel would truncate to ``value``, is denied:
    the safe side), ``"eq32"`` when its low 32 bits equal ``value`` (for
    ``int`` arguments the kernel truncates: high bits cannot dodge the rule).
    A name unknown on this architecture (a legacy call) is skipped.
    """

    syscall: str | int
    errno: int = errno.EPERM
    when: tuple[int, str, int] | None = None


@dataclass(frozen=True)
class Group:
    """A named group of denied system calls and the reason it is denied."""

    name: str
    reason: str
    rules: tuple[Rule, ...]


def _deny(*names: str, code: int = errno.EPERM) -> tuple[Rule, ...]:
    return tuple(Rule(name, code) for name in names)


GROUPS: tuple[Group, ...] = (
    Group(
        "ptrace",
        "reading or writing another process's memory or descriptors: bubblewrap's init, "
        "a sibling run, the grader itself at the process level (code injection, leaks)",
        _deny(
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "pidfd_getfd",
            "process_madvise",
            "kcmp",
        ),
    ),
    Group(
        "namespaces",
        "a new user namespace grants capabilities (a tmpfs mounted there is memory no limit "
        "counts); new PID or network namespaces escape the sweep and the no-network rule. "
        "clone3 hides its flags in a struct, so it fails with ENOSYS and glibc falls back "
        "to clone, whose flags are checked; plain fork and threads still work",
        (
            *_deny("unshare", "setns"),
            *(Rule("clone", errno.EPERM, (0, "has", bit)) for bit in NAMESPACE_FLAGS.values()),
            Rule("clone3", errno.ENOSYS),
        ),
    ),
    Group(
        "mounts",
        "a mounted tmpfs is memory owned by no process; (re)mounting or changing the root "
        "changes what later runs see. The new mount API (open_tree, fsopen...) does the same",
        _deny(
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "chroot",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ),
    ),
    Group(
        "keyring",
        "kernel keyrings are per-uid state that outlives the process (a message to the next "
        "run at the same uid) and a frequent source of kernel bugs",
        _deny("keyctl", "add_key", "request_key"),
    ),
    Group(
        "bpf",
        "eBPF programs and maps: large kernel attack surface; pinned maps outlive the process",
        _deny("bpf"),
    ),
    Group(
        "perf",
        "performance counters: side channels on other processes, kernel attack surface",
        _deny("perf_event_open"),
    ),
    Group(
        "personality",
        "a persona can switch off address-space randomization or make data executable for "
        "what the process runs next; reading it (personality(0xffffffff)) stays allowed",
        (Rule("personality", errno.EPERM, (0, "ne", PERSONALITY_QUERY)),),
    ),
    Group(
        "userfaultfd",
        "lets a process stall the kernel in the middle of a copy: the usual tool to win "
        "kernel races in exploits",
        _deny("userfaultfd"),
    ),
    Group(
        "io_uring",
        "operations submitted through a ring are not seen by seccomp (a ring can open "
        "sockets), and io_uring is a large kernel attack surface",
        _deny("io_uring_setup", "io_uring_enter", "io_uring_register"),
    ),
    Group(
        "system",
        "administration of the whole machine (modules, kexec, reboot, swap, accounting, "
        "quotas, kernel log, clocks, host name, port I/O, file handles that bypass path "
        "checks): capabilities student code never has at the bwrap and uid levels, but "
        "the process level may run as root",
        _deny(
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "kexec_load",
            "kexec_file_load",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "quotactl",
            "quotactl_fd",
            "syslog",
            "settimeofday",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
            "sethostname",
            "setdomainname",
            "iopl",
            "ioperm",
            "vhangup",
            "open_by_handle_at",
            "fanotify_init",
            "lookup_dcookie",
            "nfsservctl",
            "uselib",
            "_sysctl",
        ),
    ),
    Group(
        "sysv_ipc",
        "System V shared memory, message queues and semaphores, and POSIX message queues, "
        "outlive the process: without an IPC namespace the next run could read them, and a "
        "shared memory segment is memory owned by no process",
        _deny("shmget", "msgget", "semget", "mq_open"),
    ),
    Group(
        "sockets",
        "student code may open no connection to anything: no new socket of any family (a "
        "Unix socket reaches host services by path or abstract name at the uid and process "
        "levels). The worker's own socket is inherited, already connected. "
        "socketpair(AF_UNIX) stays: its two ends reach only each other "
        "(multiprocessing.Pipe uses it)",
        (
            Rule("socket"),
            Rule("socketpair", errno.EPERM, (0, "ne", AF_UNIX)),
        ),
    ),
    Group(
        "tty",
        "typing into a terminal (TIOCSTI) or a virtual console (TIOCLINUX) would run "
        "commands as whoever runs the grader, at the process level (CVE-2017-5226 style; "
        "bubblewrap filters the same)",
        (
            Rule("ioctl", errno.EPERM, (1, "eq32", TIOCSTI)),
            Rule("ioctl", errno.EPERM, (1, "eq32", TIOCLINUX)),
        ),
    ),
)


# ------------------------------------------------------------------- library

_unavailable = ""


def unavailable_reason() -> str:
    """Why the last :func:`build` returned None (one line); empty if it did not."""
    return _unavailable


class _ArgCmp(ctypes.Structure):
    # struct scmp_arg_cmp
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


class _SockFprog(ctypes.Structure):
    # struct sock_fprog: number of instructions, pointer to them.
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


# The soname first: a plain dlopen, no ldconfig subprocess (find_library runs one),
# and it works inside the sandbox where ldconfig may be absent.
LIBRARY_NAMES = ("libseccomp.so.2",)


def _load_library() -> ctypes.CDLL | None:
    for name in LIBRARY_NAMES:
        try:
            return _declare(ctypes.CDLL(name, use_errno=True))
        except (OSError, AttributeError):
            continue
    found = ctypes.util.find_library("seccomp")
    if found:
        try:
            return _declare(ctypes.CDLL(found, use_errno=True))
        except (OSError, AttributeError):
            pass
    return None


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    c = ctypes
    lib.seccomp_version.restype = c.POINTER(_Version)
    lib.seccomp_version.argtypes = ()
    lib.seccomp_init.restype = c.c_void_p
    lib.seccomp_init.argtypes = (c.c_uint32,)
    lib.seccomp_release.restype = None
    lib.seccomp_release.argtypes = (c.c_void_p,)
    lib.seccomp_attr_set.restype = c.c_int
    lib.seccomp_attr_set.argtypes = (c.c_void_p, c.c_int, c.c_uint32)
    lib.seccomp_rule_add_array.restype = c.c_int
    lib.seccomp_rule_add_array.argtypes = (
        c.c_void_p,
        c.c_uint32,
        c.c_int,
        c.c_uint,
        c.POINTER(_ArgCmp),
    )
    lib.seccomp_syscall_resolve_name.restype = c.c_int
    lib.seccomp_syscall_resolve_name.argtypes = (c.c_char_p,)
    lib.seccomp_syscall_resolve_num_arch.restype = c.c_void_p  # malloc'd name, or NULL
    lib.seccomp_syscall_resolve_num_arch.argtypes = (c.c_uint32, c.c_int)
    lib.seccomp_arch_native.restype = c.c_uint32
    lib.seccomp_arch_native.argtypes = ()
    lib.seccomp_export_bpf.restype = c.c_int
    lib.seccomp_export_bpf.argtypes = (c.c_void_p, c.c_int)
    lib.seccomp_load.restype = c.c_int
    lib.seccomp_load.argtypes = (c.c_void_p,)
    return lib


# System calls that every architecture numbers alike (424 and up) and that this
# filter must be able to name: a libseccomp too old to know them would leave a hole.
_REQUIRED = ("clone3", "open_tree", "fsopen", "io_uring_setup", "mount_setattr", "pidfd_getfd")


def _unnamed(lib: ctypes.CDLL, arch: int) -> list[int]:
    """System call numbers libseccomp has no name for on ``arch``, up to FUTURE_SYSCALLS
    past the last one it knows."""
    free = ctypes.CDLL(None).free
    free.argtypes = (ctypes.c_void_p,)
    known = []
    for number in range(1024):
        name = lib.seccomp_syscall_resolve_num_arch(arch, number)
        if name:
            free(name)
            known.append(number)
    if not known:
        return []
    named = set(known)
    return [n for n in range(known[-1] + 1 + FUTURE_SYSCALLS) if n not in named]


# -------------------------------------------------------------------- filter


class SyscallFilter:
    """A compiled filter, ready to load into the calling process.

    ``program`` is the classic BPF program (8 bytes per instruction) that
    libseccomp generated; ``groups`` the names of the denied groups;
    ``version`` libseccomp's version. Keep the object alive in the zygote:
    forked children inherit it and only call :meth:`install`.
    """

    def __init__(
        self, program: bytes, groups: tuple[str, ...], version: str, seccomp_nr: int
    ) -> None:
        self.program = program
        self.groups = groups
        self.version = version
        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = libc.prctl
        self._prctl.restype = ctypes.c_int
        self._prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong) + (
            ctypes.c_ulong,
        ) * 2
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._seccomp_nr = seccomp_nr
        # Everything install() passes to the kernel is prepared here, once.
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.addressof(self._buffer))
        self._fprog_ref = ctypes.byref(self._fprog)

    def install(self) -> None:
        """Load the filter into this process (and all it starts from now on).

        Sets ``no_new_privs`` first (the kernel requires it of a process without
        CAP_SYS_ADMIN; setting it again is harmless). Call it in a single-threaded
        process (a freshly forked child): threads started earlier are synchronized
        (TSYNC) or the call fails. Raises OSError if the filter is not loaded.
        """
        if self._prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot set no_new_privs: {os.strerror(code)}")
        if self._seccomp_nr >= 0:
            rc = self._seccomp(SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_SPEC_ALLOW)
            if rc != 0 and ctypes.get_errno() == errno.EINVAL:
                rc = self._seccomp(SECCOMP_FILTER_FLAG_TSYNC)  # a kernel before 4.17
        else:
            # No seccomp(2) known: the older prctl interface (no TSYNC).
            rc = self._prctl(
                PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self._fprog), 0, 0
            )
        if rc > 0:
            raise OSError(errno.EBUSY, f"seccomp filter not loaded: thread {rc} cannot sync")
        if rc != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"seccomp filter not loaded: {os.strerror(code)}")

    def _seccomp(self, flags: int) -> int:
        return self._syscall(
            ctypes.c_long(self._seccomp_nr),
            ctypes.c_long(SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(flags),
            self._fprog_ref,
        )

    def describe(self) -> str:
        """One line for a report's notes: what is filtered, with which libseccomp."""
        return f"seccomp filter on (libseccomp {self.version}; denied: {', '.join(self.groups)})"


def build() -> SyscallFilter | None:
    """Compile the filter of :data:`GROUPS`; None where it cannot be built here.

    Call once, in the zygote, before forking. On None, :func:`unavailable_reason`
    gives the reason in one line (not Linux, libseccomp not found or too old, a
    rule libseccomp refused).
    """
    global _unavailable
    _unavailable = ""
    if not sys.platform.startswith("linux"):
        _unavailable = f"seccomp needs Linux (this is {sys.platform})"
        return None
    lib = _load_library()
    if lib is None:
        _unavailable = "libseccomp not found (Debian/Ubuntu package libseccomp2)"
        return None
    v = lib.seccomp_version().contents
    version = f"{v.major}.{v.minor}.{v.micro}"
    for name in _REQUIRED:
        if lib.seccomp_syscall_resolve_name(name.encode()) < 0:
            _unavailable = f"libseccomp {version} is too old: it does not know {name}"
            return None
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        _unavailable = "libseccomp could not create a filter"
        return None
    try:
        program = _compile(lib, ctx)
    except OSError as exc:
        _unavailable = f"libseccomp {version}: {exc.strerror or exc}"
        return None
    finally:
        lib.seccomp_release(ctx)
    seccomp_nr = lib.seccomp_syscall_resolve_name(b"seccomp")
    groups = (*(g.name for g in GROUPS), "unnamed")
    return SyscallFilter(program, groups, version, seccomp_nr)


def _compile(lib: ctypes.CDLL, ctx: int) -> bytes:
    """Add every rule to ``ctx`` and export the BPF program (raises OSError)."""

    def check(rc: int, what: str) -> None:
        if rc < 0:
            raise OSError(-rc, f"{what}: {os.strerror(-rc)}")

    check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, BAD_ARCH_ACTION), "bad-arch action")
    # A binary tree of system call numbers: a few comparisons per call instead of
    # one per rule (libseccomp 2.5 and later; older ones keep the linear list).
    lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
    for group in GROUPS:
        for rule in group.rules:
            _add(lib, ctx, rule, check)
    # Calls the kernel has and libseccomp cannot name yet (open_tree_attr, ...):
    # a deny list cannot judge them, so they look absent, as on an older kernel.
    for number in _unnamed(lib, lib.seccomp_arch_native()):
        _add(lib, ctx, Rule(number, errno.ENOSYS), check)
    fd = _scratch_fd()
    try:
        check(lib.seccomp_export_bpf(ctx, fd), "export")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _scratch_fd() -> int:
    """A file descriptor of an anonymous file (in memory where the kernel can)."""
    try:
        return os.memfd_create("seccomp-filter", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # pragma: no cover - Linux before 3.17
        import tempfile

        fd, path = tempfile.mkstemp()
        os.unlink(path)
        return fd


def _add(lib: ctypes.CDLL, ctx: int, rule: Rule, check) -> None:
    if isinstance(rule.syscall, int):
        number = rule.syscall
    else:
        number = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
        if number < 0:
            return  # not on this architecture (a legacy call) or a pseudo-call
    action = _errno_action(rule.errno)
    if rule.when is None:
        check(lib.seccomp_rule_add_array(ctx, action, number, 0, None), f"rule {rule.syscall}")
        return
    index, op, value = rule.when
    if op == "has":
        cmp = _ArgCmp(index, SCMP_CMP_MASKED_EQ, value, value)
    elif op == "ne":
        cmp = _ArgCmp(index, SCMP_CMP_NE, value, 0)
    elif op == "eq32":
        cmp = _ArgCmp(index, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, value)
    else:
        raise ValueError(f"unknown comparison {op!r}")
    check(
        lib.seccomp_rule_add_array(ctx, action, number, 1, ctypes.byref(cmp)),
        f"rule {rule.syscall}",
    )
