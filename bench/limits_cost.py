"""Benchmark: what the run limits cost (seccomp filter, cgroup, process-tree CPU time).

Prints the median of several runs of each step, from a process that has numpy
loaded (as the zygote does):

* the seccomp filter: building it (once per zygote), installing it in a forked
  child (the prebuilt BPF program through seccomp(2), and for comparison
  libseccomp's seccomp_load on a prebuilt context), fork+exit with and without
  it, and its cost per system call;
* a RunCgroup: create+close, and one cpu_seconds() read;
* tree_cpu_seconds() over a small tree and over a few hundred processes.

    python bench/limits_cost.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import struct
import subprocess
import time

import numpy  # noqa: F401  (forks copy a numpy-loaded process, like the zygote's)

from autograder.isolation.cgroups import CgroupUnavailable, RunCgroup
from autograder.isolation.worker import proctree
from autograder.isolation.worker import syscall_filter as sf


def fmt(seconds: float) -> str:
    """Milliseconds, or microseconds below 0.1 ms."""
    if seconds < 1e-4:
        return f"{seconds * 1e6:8.2f} us"
    return f"{seconds * 1e3:8.3f} ms"


def line(label: str, samples: list[float], extra: str = "") -> None:
    print(f"{label:<58}{fmt(statistics.median(samples))}  {extra}".rstrip())


def in_child(work, runs: int) -> list[float]:
    """Fork ``runs`` children; each times ``work()`` and reports the seconds.

    If ``work`` returns a number, that number is reported instead.
    """
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


def fork_exit(runs: int, before_exit=None) -> list[float]:
    """fork + (before_exit in the child) + exit + wait, timed by the parent."""
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            if before_exit is not None:
                before_exit()
            os._exit(0)
        os.waitpid(pid, 0)
        samples.append(time.perf_counter() - t)
    return samples


def fork_exit_in(filt: sf.SyscallFilter | None, runs: int) -> float:
    """Median fork+exit+wait of a process (filtered or not)."""
    if filt is not None:
        filt.install()
    return statistics.median(fork_exit(runs))


def syscall_cost(filt: sf.SyscallFilter | None, calls: int = 200_000) -> float:
    if filt is not None:
        filt.install()
    t = time.perf_counter()
    for _ in range(calls):
        os.getppid()
    return (time.perf_counter() - t) / calls


def bench_filter(runs: int) -> None:
    samples = []
    for _ in range(max(5, runs // 5)):
        t = time.perf_counter()
        filt = sf.build()
        samples.append(time.perf_counter() - t)
    if filt is None:
        print(f"seccomp filter: unavailable ({sf.unavailable_reason()})")
        return
    line(
        "filter build (once per zygote)",
        samples,
        f"{len(filt.program) // 8} BPF instructions, libseccomp {filt.version}",
    )
    line("filter install in a forked child (prebuilt BPF)", in_child(filt.install, runs))
    # The alternative: libseccomp generates the program again in each child.
    lib = sf._load_library()
    ctx = lib.seccomp_init(sf.SCMP_ACT_ALLOW)
    sf._compile(lib, ctx)
    line(
        "  for comparison: seccomp_load(prebuilt context)",
        in_child(lambda: lib.seccomp_load(ctx), runs),
    )
    lib.seccomp_release(ctx)
    line("fork+exit+wait, no filter", fork_exit(runs))
    line("fork+install+exit+wait", fork_exit(runs, filt.install))
    # From inside a forked process, without and with the filter on it.
    for label, f in (("unfiltered", None), ("filtered", filt)):
        inside = in_child(lambda f=f: fork_exit_in(f, runs), 3)
        line(f"fork+exit+wait by a {label} process", inside)
    for label, f in (("unfiltered", None), ("filtered", filt)):
        line(
            f"one system call (getppid) by a {label} process",
            in_child(lambda f=f: syscall_cost(f), 3),
        )


def bench_cgroup(runs: int) -> None:
    try:
        RunCgroup.create(64 << 20, 20, "bench").close()
    except CgroupUnavailable as exc:
        print(f"cgroups: unavailable ({exc})")
        return
    samples = []
    for _ in range(max(5, runs // 2)):
        t = time.perf_counter()
        RunCgroup.create(64 << 20, 20, "bench").close()
        samples.append(time.perf_counter() - t)
    with RunCgroup.create(64 << 20, 20, "bench") as cg:
        line(f"RunCgroup create+close (v{cg.version})", samples)
        reads = []
        for _ in range(runs * 20):
            t = time.perf_counter()
            cg.cpu_seconds()
            reads.append(time.perf_counter() - t)
        line("RunCgroup.cpu_seconds()", reads)


def bench_proctree(runs: int) -> None:
    if proctree.tree_cpu_seconds(os.getpid()) is None:
        print("tree_cpu_seconds: unavailable (no /proc)")
        return
    for count in (3, 300):
        proc = subprocess.Popen(
            ["sh", "-c", f"for i in $(seq {count}); do sleep 60 & done; wait"],
            start_new_session=True,
        )
        try:
            while len(proctree.descendants(proc.pid)) < count:
                time.sleep(0.01)
            total = len(os.listdir("/proc"))
            samples = []
            for _ in range(runs):
                t = time.perf_counter()
                proctree.tree_cpu_seconds(proc.pid)
                samples.append(time.perf_counter() - t)
            line(
                f"tree_cpu_seconds(), {count + 1} in the tree", samples, f"(~{total} /proc entries)"
            )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    """Print the median cost of each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="samples per figure (default 50)")
    args = parser.parse_args()
    print(f"median of {args.runs} runs unless said otherwise; {os.cpu_count()} CPUs")
    bench_filter(args.runs)
    bench_cgroup(args.runs)
    bench_proctree(args.runs)


if __name__ == "__main__":
    main()
