"""Benchmark: what isolating one submission costs, per level and per layer.

Prints, per level, the one-off start of the zygote and its self-check, and
the median wall time of one sandboxed run of a trivial submission (fork,
isolation, import, one case, exit, sweep of leftovers), next to the floors:
a bare fork+wait from a process that has numpy loaded, and a fresh
interpreter importing numpy. Then the price of each layer on its own: the
syscall filter's install in a forked child, the run's progress counter, the
sweep of a uid's files in the shared directories, the CPU clocks (cgroup and
/proc walk), and a cgroup's creation.

    python bench/sandbox_cost.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from autograder.course import cases as cases_mod
from autograder.isolation import protected, sandbox
from autograder.isolation.runner import (
    Limits,
    ProgressCounter,
    SubmissionRunner,
    ZygoteProcess,
)
from autograder.isolation.worker import proctree, syscall_filter
from autograder.isolation.worker.cleanup import remove_owned_by
from autograder.submission.handin import SubmissionFiles

TRIVIAL = SubmissionFiles(
    {
        "activation.py": b"class Identity:\n    def forward(self, Z):\n        self.A = Z\n        return Z\n"
        b"    def backward(self, dLdA):\n        return dLdA\n"
    },
    "activation.py",
    "activation",
)


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def bare_fork(runs: int) -> float:
    import numpy  # noqa: F401  (the fork copies a numpy-loaded process, like the zygote)

    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        samples.append(time.perf_counter() - t)
    return median_ms(samples)


def fresh_interpreter(runs: int) -> float:
    samples = []
    for _ in range(max(5, runs // 10)):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy"], check=True)
        samples.append(time.perf_counter() - t)
    return median_ms(samples)


def in_process(case, runs: int) -> float:
    """The same work without any isolation: compile and run the module, one case."""
    samples = []
    source = TRIVIAL.files["activation.py"]
    for _ in range(runs):
        t = time.perf_counter()
        namespace: dict = {}
        exec(compile(source, "activation.py", "exec"), namespace)
        obj = namespace["Identity"]()
        obj.forward(case.Z.copy())
        obj.backward(case.dLdA.copy())
        samples.append(time.perf_counter() - t)
    return median_ms(samples)


def level_cost(plan: sandbox.LaunchPlan, case, runs: int) -> tuple[float, float, float, dict]:
    """Zygote start, self-check and one run at ``plan``'s level (ms), and what was on."""
    limits = Limits()
    secrets = protected.protected()
    t = time.perf_counter()
    zygote = ZygoteProcess(plan, None, limits.resources(), secrets.cover)
    info = zygote.wait_ready()
    start = time.perf_counter() - t
    t = time.perf_counter()
    zygote.self_check(limits, secrets.read, secrets.write, list(protected.RUNTIME_IMPORTS))
    check = time.perf_counter() - t
    runner = SubmissionRunner(lambda: zygote, limits)
    samples = []
    layers = {"seccomp": bool(info.get("seccomp")), **zygote.launched.facts}
    try:
        for _ in range(runs):
            t = time.perf_counter()
            out = runner.run(TRIVIAL, [case], show=True)
            samples.append(time.perf_counter() - t)
            assert out.cases[case.id].forward.status == "ok", out
    finally:
        zygote.close()
    return 1000 * start, 1000 * check, median_ms(samples), layers


def timed_ms(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return median_ms(samples)


def layer_costs(runs: int) -> None:
    """The price of each layer measured on its own."""
    built = syscall_filter.build()
    if built is None:
        print(f"syscall filter      unavailable: {syscall_filter.unavailable_reason()}")
    else:

        def forked_install() -> None:
            pid = os.fork()
            if pid == 0:
                try:
                    built.install()
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)

        def forked_plain() -> None:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)

        # Interleaved, so a change of load on the machine hits both sides alike.
        with_filter, without = [], []
        for _ in range(runs):
            with_filter.append(timed_ms(forked_install, 1))
            without.append(timed_ms(forked_plain, 1))
        cost = statistics.median(with_filter) - statistics.median(without)
        print(f"syscall filter      install in a forked child       {cost:7.3f} ms per run")
        from autograder.isolation.worker import landlock

        if landlock.abi_version():
            ruleset = landlock.prepare([tempfile.gettempdir()])

            def forked_restrict() -> None:
                pid = os.fork()
                if pid == 0:
                    try:
                        ruleset.restrict_self()
                    finally:
                        os._exit(0)
                os.waitpid(pid, 0)

            with_rules, without = [], []
            for _ in range(runs):
                with_rules.append(timed_ms(forked_restrict, 1))
                without.append(timed_ms(forked_plain, 1))
            cost = statistics.median(with_rules) - statistics.median(without)
            print(f"Landlock            enforce in a forked child       {cost:7.3f} ms per run")
            ruleset.close()
        else:
            print(f"Landlock            unavailable: {landlock.unavailable_reason()}")

    def counter() -> None:
        ProgressCounter().close()

    print(
        f"progress counter    memfd + mmap per child          {timed_ms(counter, runs):7.3f} ms per run"
    )
    nobody = 65534
    sweep = timed_ms(lambda: remove_owned_by(nobody), runs)
    print(f"uid-level sweep     /tmp, /var/tmp, /dev/shm, ...   {sweep:7.3f} ms per run")
    walk = timed_ms(lambda: proctree.tree_cpu_seconds(os.getpid()), runs)
    print(f"CPU clock, /proc    tree_cpu_seconds (no cgroup)    {walk:7.3f} ms per reading")
    try:
        from autograder.isolation import cgroups

        group = cgroups.RunCgroup.create(1 << 30, 64, "bench")
    except (ImportError, OSError, RuntimeError) as exc:
        print(f"cgroup              unavailable: {exc}")
        return
    try:
        read = timed_ms(group.cpu_seconds, runs)
        print(f"CPU clock, cgroup   cpu_seconds                     {read:7.4f} ms per reading")
    finally:
        group.close()

    def create_close() -> None:
        cgroups.RunCgroup.create(1 << 30, 64, "bench").close()

    print(
        f"cgroup              create + close                  {timed_ms(create_close, 10):7.3f} ms per grader"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    case = next(c for c in cases_mod.load_case_data() if c.activation == "Identity")
    print(f"floor: fork+wait of a numpy-loaded process   {bare_fork(args.runs):7.2f} ms")
    print(f"floor: fresh interpreter importing numpy      {fresh_interpreter(args.runs):7.2f} ms")
    own = in_process(case, args.runs)
    print(f"the submission's own work, in-process          {own:7.2f} ms")
    process_run = None
    for level in ("process", "uid", "bwrap"):
        try:
            plan = sandbox.plan(level)
        except sandbox.SandboxError as exc:
            print(f"{level:8s} unavailable: {exc}")
            continue
        start, check, run, layers = level_cost(plan, case, args.runs)
        process_run = run if level == "process" else process_run
        extra = (
            ""
            if process_run is None or level == "process"
            else f"  (+{run - process_run:.2f} ms over process)"
        )
        on = ", ".join(k for k, v in layers.items() if v) or "no extra layer"
        print(
            f"{level:8s} zygote start {start:7.1f} ms, self-check {check:5.1f} ms   "
            f"one sandboxed run {run:6.2f} ms (median of {args.runs}), "
            f"isolation cost {run - own:6.2f} ms{extra}   [{on}]"
        )
    print()
    layer_costs(args.runs)


if __name__ == "__main__":
    main()
