"""Benchmark: what Landlock costs the worker's child.

Prints the median of several runs, from a process that has numpy loaded (as
the zygote does):

* ``restrict()`` in a freshly forked child, timed inside the child, with the
  worker's rules (a scratch directory writable) and with a read allow-list
  (``runtime_paths()``) as well;
* fork + restrict + exit + wait, against plain fork + exit + wait, in wall
  time and in the child's CPU time (steadier on a shared machine);
* one ``open()`` + ``close()`` of a file by a restricted and an unrestricted
  process (Landlock checks each open against its rules).

    python bench/landlock_cost.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import struct
import tempfile
import time

import numpy  # noqa: F401  (forks copy a numpy-loaded process, like the zygote's)

from autograder.worker import landlock


def fmt(seconds: float) -> str:
    """Milliseconds, or microseconds below 0.1 ms."""
    if seconds < 1e-4:
        return f"{seconds * 1e6:8.2f} us"
    return f"{seconds * 1e3:8.3f} ms"


def line(label: str, samples: list[float], extra: str = "") -> None:
    print(f"{label:<58}{fmt(statistics.median(samples))}  {extra}".rstrip())


def in_child(work, runs: int) -> list[float]:
    """Fork ``runs`` children; each times ``work()`` (or reports the float it returns)."""
    samples = []
    for _ in range(runs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                t = time.perf_counter()
                value = work()
                seconds = value if isinstance(value, float) else time.perf_counter() - t
                os.write(w, struct.pack("d", seconds))
            finally:
                os._exit(0)
        os.close(w)
        data = os.read(r, 8)
        os.close(r)
        os.waitpid(pid, 0)
        samples.append(struct.unpack("d", data)[0])
    return samples


def fork_exit(before_exit=None) -> float:
    """fork + (before_exit in the child) + exit + wait, timed by the parent."""
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        if before_exit is not None:
            before_exit()
        os._exit(0)
    os.waitpid(pid, 0)
    return time.perf_counter() - t


def paired_fork_exit(runs: int, before_exit) -> tuple[list[float], list[float]]:
    """fork_exit() without and with ``before_exit``, alternated so that load
    from the neighbours falls on both alike."""
    plain, work = [], []
    for _ in range(runs):
        plain.append(fork_exit())
        work.append(fork_exit(before_exit))
    return plain, work


def child_cpu(runs: int, before_exit=None) -> float:
    """CPU seconds (user + system) a forked child spends, on average, from fork to exit.

    On a machine shared with other work, CPU time is steadier than wall time,
    and it is what limits grade-all's throughput.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        fork_exit(before_exit)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / runs


def open_cost(path: str, restrict, calls: int = 20_000) -> float:
    """Seconds per open+close of ``path`` after ``restrict()`` (if any)."""
    if restrict is not None:
        restrict()
    t = time.perf_counter()
    for _ in range(calls):
        os.close(os.open(path, os.O_RDONLY))
    return (time.perf_counter() - t) / calls


def main() -> None:
    """Print the median cost of each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="samples per figure (default 50)")
    args = parser.parse_args()
    abi = landlock.abi_version()
    if abi == 0:
        print(f"Landlock: unavailable ({landlock.unavailable_reason()})")
        return
    print(f"median of {args.runs} runs unless said otherwise; {os.cpu_count()} CPUs; ABI {abi}")
    scratch = tempfile.mkdtemp(prefix="landlock-bench-")
    readable = landlock.runtime_paths()
    try:
        worker = lambda: landlock.restrict([scratch])  # noqa: E731
        with_reads = lambda: landlock.restrict([scratch], readable=readable)  # noqa: E731
        line("restrict() in a forked child (scratch writable)", in_child(worker, args.runs))
        line(
            "restrict() with a read allow-list (runtime_paths())",
            in_child(with_reads, args.runs),
            f"{len(readable)} paths",
        )
        plain, restricted = paired_fork_exit(args.runs, worker)
        line("fork+exit+wait, no Landlock", plain)
        line("fork+restrict+exit+wait", restricted)
        for label, how in (("no Landlock", None), ("restrict()", worker)):
            cpu = [child_cpu(args.runs, how) for _ in range(3)]
            line(f"CPU time of a forked child, {label}", cpu, "(mean of runs, median of 3)")
        target = os.path.join(os.path.dirname(os.__file__), "os.py")
        for label, how in (("unrestricted", None), ("restricted", worker)):
            line(
                f"one open+close, {label} process",
                in_child(lambda how=how: open_cost(target, how), 3),
            )
    finally:
        os.rmdir(scratch)


if __name__ == "__main__":
    main()
