"""Leaving nothing behind: delete a run's files, and whatever a uid left or still runs.

Standard library only, with no import of the child (which imports numpy):
the grader uses these too, before it imports numpy, while the worker starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat

# World-writable places a child running as another uid may leave files in; at the
# uid level everything its uid owns there is removed after the run.
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
# How deep the removal descends into world-writable directories of others.
SWEEP_DEPTH = 8


def remove_tree(path: str) -> None:
    """Delete ``path`` without leaving its filesystem (mounted runtimes stay).

    A submission may chmod its files to 000; the owner (or root) can always
    unlock them. Symbolic links are removed, never followed.
    """
    try:
        top = os.lstat(os.path.dirname(path) or ".").st_dev
        info = os.lstat(path)
    except OSError:
        return
    if info.st_dev != top:
        return  # a mount point: not ours to delete
    if not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    try:
        entries = os.listdir(path)
    except OSError:
        entries = []
    for entry in entries:
        remove_tree(os.path.join(path, entry))
    with contextlib.suppress(OSError):
        os.rmdir(path)


def remove_owned_by(uid: int, roots: tuple[str, ...] = SHARED_WRITABLE, keep: str = "") -> int:
    """Remove every entry owned by ``uid`` under ``roots``; return how many.

    A process running as ``uid`` can only create entries in directories it
    may write: its own (removed whole) or world-writable ones, so the walk
    descends only into world-writable directories of other owners.
    """
    removed = 0

    def walk(path: str, depth: int) -> None:
        nonlocal removed
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for entry in entries:
            if entry.path == keep:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid == uid:
                remove_tree(entry.path)
                removed += 1
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IWOTH and depth < SWEEP_DEPTH:
                walk(entry.path, depth + 1)

    for root in roots:
        if os.path.isdir(root) and not os.path.islink(root):
            walk(root, 0)
    return removed


def kill_uid(uid: int) -> None:
    """Kill every process running as ``uid`` (needs root).

    A helper process takes the uid and calls ``kill(-1, SIGKILL)``, which
    reaches exactly the processes that uid may signal: its own.
    """
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(1000):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.waitpid(pid, 0)
