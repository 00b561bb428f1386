"""Process trees through /proc: find every process below one, whatever it became.

Standard library only: used by the zygote (inside the sandbox) and by the
grader. Everything here returns empty results where /proc does not exist.
"""

from __future__ import annotations

import os


def _parent_links() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return children
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: parse after the last ')'.
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(root_pid: int) -> list[int]:
    """Every process below ``root_pid`` (Linux /proc; empty elsewhere), deepest first.

    Found through parent links, so a process that changed its session, group
    or user is still found.
    """
    children = _parent_links()
    found: list[int] = []
    stack = [root_pid]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found[::-1]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_seconds(root_pid: int) -> float | None:
    """CPU time (user + system) used by ``root_pid`` and everything below it.

    Each live process counts its own time plus that of the children it has
    reaped (cutime, cstime), so every tick is counted once: by the process
    that spent it while it lives, then by whoever reaped it. None where /proc
    is missing or ``root_pid`` is gone.
    """
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        # fields[1] is ppid; utime, stime, cutime, cstime are fields 14-17 of stat(5).
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        stats[int(entry)] = (int(fields[1]), ticks)
    if root_pid not in stats:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total = 0
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        total += stats[pid][1]
        stack.extend(children.get(pid, []))
    return total / _TICK
