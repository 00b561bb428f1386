"""Sandbox uids: one unprivileged uid per grading run, never shared by two at once.

Like the contest sandbox *isolate* (a numbered box per run, reset at init),
a run that needs an unprivileged uid (the ``uid`` and ``bwrap`` levels when
the grader is root) leases one from a range: an exclusive ``flock`` on a
lock file in a root-owned 0700 directory. The kernel drops the lock when the
grader exits, however it exits. Before the lease is handed out, every
process still running as that uid is killed and every file it left in the
world-writable directories is removed, so nothing of an earlier run (even
of a grader killed with SIGKILL) can reach the new one. (A lease released
clean, after its zygote exited having killed and removed everything of its
runs, is marked so and not reset again.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import random
import tempfile
from dataclasses import dataclass

from autograder.isolation.worker.cleanup import kill_uid, remove_owned_by

# Debian reserves 60000-64999 for packages that need a fixed uid and uses none
# of 64000-64999 in practice; uids present in the user database are skipped.
DEFAULT_RANGE = (64000, 64999)
RANGE_ENV = "AUTOGRADER_UID_RANGE"  # "FIRST-LAST"
LOCK_DIRS = ("/run/autograder-uids", os.path.join(tempfile.gettempdir(), "autograder-uids"))


# What a lease's lock file says: released clean, or in use (or its holder died).
CLEAN = b"clean\n"
IN_USE = b"in use\n"


class UidError(RuntimeError):
    """No sandbox uid can be leased here (not root, no lock directory, range exhausted)."""


@dataclass
class UidLease:
    """An unprivileged uid held exclusively by this process until :meth:`release`."""

    uid: int
    fd: int

    @property
    def gid(self) -> int:
        """The group id that goes with the uid (the same number)."""
        return self.uid

    def release(self, clean: bool = True) -> None:
        """Give the uid back (closing the lock file drops the lock).

        ``clean``: nothing of the run is left (its zygote exited after killing
        and removing what its children left); the next holder then skips the
        reset. A grader that dies without releasing leaves the lease marked in
        use, and the next holder resets the uid.
        """
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                if clean:
                    os.ftruncate(self.fd, 0)
                    os.pwrite(self.fd, CLEAN, 0)
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def uid_range() -> tuple[int, int]:
    """The range of sandbox uids: ``AUTOGRADER_UID_RANGE`` or the default."""
    text = os.environ.get(RANGE_ENV, "")
    if text:
        try:
            first, last = (int(x) for x in text.split("-", 1))
        except ValueError:
            raise UidError(f"{RANGE_ENV} must look like 64000-64999, not {text!r}") from None
        if not 0 < first <= last < 2**31:
            raise UidError(f"{RANGE_ENV}={text} is not a range of unprivileged uids")
        return first, last
    return DEFAULT_RANGE


def _lock_dir() -> str:
    """A root-owned 0700 directory for the lock files (created if missing)."""
    problems = []
    for path in LOCK_DIRS:
        with contextlib.suppress(FileExistsError, FileNotFoundError, PermissionError):
            os.mkdir(path, 0o700)
        try:
            info = os.lstat(path)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        # Someone else's directory (or a link) could hand out uids already in use.
        if not (os.path.isdir(path) and not os.path.islink(path)) or info.st_uid != 0:
            problems.append(f"{path} is not a directory owned by root")
            continue
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)
        return path
    raise UidError("no directory for sandbox uid locks (" + "; ".join(problems) + ")")


def _in_user_database(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def acquire() -> UidLease:
    """Lease a free sandbox uid, reset (no process, no file left by an earlier run)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise UidError("sandbox uids need the grader to run as root")
    first, last = uid_range()
    directory = _lock_dir()
    count = last - first + 1
    start = random.randrange(count)  # concurrent graders rarely try the same uid
    for i in range(count):
        uid = first + (start + i) % count
        if _in_user_database(uid):
            continue
        path = os.path.join(directory, str(uid))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                continue
            raise
        # Reset unless the last holder released it clean (killing every process of a
        # uid and sweeping its files costs a few milliseconds on a busy machine).
        if os.pread(fd, len(CLEAN), 0) != CLEAN:
            kill_uid(uid)
            remove_owned_by(uid)
        os.ftruncate(fd, 0)
        os.pwrite(fd, IN_USE, 0)
        return UidLease(uid, fd)
    raise UidError(f"every sandbox uid in {first}-{last} is in use")
