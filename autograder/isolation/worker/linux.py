"""Linux process controls the worker uses on itself (prctl, OOM score).

Each function is a no-op returning False where the call does not exist
(macOS, Windows): there the worker runs at the ``process`` level only.
"""

from __future__ import annotations

import contextlib
import sys

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

LINUX = sys.platform.startswith("linux")
_libc = None


def _c():
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``; True when it succeeded."""
    if not LINUX:
        return False
    try:
        return _c().prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def prefer_oom_kill() -> bool:
    """Make this process (and what it starts) the memory-limit killer's first choice.

    Raising one's own OOM score needs no privilege; it keeps the zygote alive
    when a submission exhausts its cgroup's memory.
    """
    if not LINUX:
        return False
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")
        return True
    return False
