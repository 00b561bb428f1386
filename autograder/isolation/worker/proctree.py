"""Process trees through /proc: who is below a process, and how much CPU they used.

For the levels where no cgroup holds a run, the zygote finds what a child left
behind (:func:`descendants`) and charges a child's CPU time
(:func:`tree_cpu_seconds`) by walking parent links in ``/proc``. Both read each
``/proc/<pid>/stat`` once per call. Linux only: elsewhere :func:`descendants`
returns an empty list and :func:`tree_cpu_seconds` None.

This module imports only the standard library: it lives beside the worker.

Why the CPU sum counts each tick once
-------------------------------------
``/proc/<pid>/stat`` gives a process's own user and system time (``utime``,
``stime``, every thread of it, dead threads included) and the times of its
children that it has *waited for* (``cutime``, ``cstime``). The kernel adds a
child's own times plus its ``cutime``/``cstime`` to the parent's
``cutime``/``cstime`` at the moment the parent reaps it, and not before. So at
any instant the time of every process that ever ran in the tree is in exactly
one place: in its own ``utime``/``stime`` while it lives (or is a zombie), then
in the ``cutime``/``cstime`` of the process that reaped it (and, after that one
is reaped, of its reaper, and so on). Summing ``utime + stime + cutime + cstime``
over the root and its living descendants therefore counts each tick once.

Where it undercounts (a cgroup's ``cpuacct`` has none of these holes):

* A child that is *not* waited for adds nothing to anyone's ``cutime``: with
  ``SIGCHLD`` ignored (or ``SA_NOCLDWAIT``) the kernel reaps children at exit
  and their time is lost once they are gone. Short-lived workers of a process
  that ignores SIGCHLD are counted only while they live.
* An orphan is re-parented to the nearest subreaper. If that is above the root
  (the zygote is a subreaper and the root is its child), the orphan leaves the
  root's tree: pass the subreaper as the root, minus its own earlier total,
  to keep it counted.
* ``/proc`` is read one process at a time: a process reaped between the read of
  its own line and its parent's may be counted twice or not at all in that one
  call (the next call is right again). Callers that enforce a budget should keep
  the largest total seen.

Resolution is one clock tick (``SC_CLK_TCK``, usually 10 ms).
"""

from __future__ import annotations

import os

try:
    CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    CLOCK_TICKS = 100


_OURS: dict[int, bool] = {}


def proc_is_ours() -> bool:
    """Whether /proc shows this process's own PID namespace.

    Inside ``unshare --pid`` without a fresh /proc mount, /proc lists the
    parent namespace: pid numbers there name other processes, and walking or
    signalling them would reach strangers. Checked once per process.
    """
    me = os.getpid()
    if me not in _OURS:
        try:
            _OURS[me] = int(os.readlink("/proc/self")) == me
        except (OSError, ValueError):
            _OURS[me] = False
    return _OURS[me]


def _scan() -> dict[int, tuple[int, int]] | None:
    """Every process's parent and CPU ticks (own + reaped children), or None without /proc.

    None too where /proc belongs to another PID namespace (:func:`proc_is_ours`).
    """
    if not proc_is_ours():
        return None
    try:
        proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    table: dict[int, tuple[int, int]] = {}
    try:
        for entry in os.listdir(proc):
            if not entry.isdigit():
                continue
            # Raw descriptors relative to /proc: about half the cost of open() per process.
            try:
                fd = os.open(entry + "/stat", os.O_RDONLY, dir_fd=proc)
            except OSError:
                continue  # gone since the listing
            try:
                stat = os.read(fd, 4096)
            except OSError:
                continue
            finally:
                os.close(fd)
            # The command name may contain spaces and parentheses: split after the last ')'.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) < 15:
                continue
            # fields[0] is the state (field 3 of proc(5)): ppid is field 4, utime..cstime 14..17.
            ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
            table[int(entry)] = (int(fields[1]), ticks)
    finally:
        os.close(proc)
    return table


def _below(table: dict[int, tuple[int, int]], root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = [root_pid]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found[::-1]


def descendants(root_pid: int) -> list[int]:
    """Every process below ``root_pid`` (Linux /proc; empty elsewhere), deepest first.

    Found through parent links, so a process that changed its session, group
    or user is still found; one that was orphaned and re-parented above
    ``root_pid`` is not.
    """
    table = _scan()
    return [] if table is None else _below(table, root_pid)


def tree_cpu_seconds(root_pid: int) -> float | None:
    """CPU seconds (user + system) of ``root_pid`` and every process below it.

    Includes children that were reaped, through ``cutime``/``cstime``; the
    module's docstring explains why each tick is counted once and where the
    sum falls short. None when ``root_pid`` does not exist or there is no /proc.
    """
    table = _scan()
    if table is None or root_pid not in table:
        return None
    ticks = table[root_pid][1] + sum(table[pid][1] for pid in _below(table, root_pid))
    return ticks / CLOCK_TICKS
