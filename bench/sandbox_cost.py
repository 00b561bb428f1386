"""Benchmark: what isolating one submission costs at each sandbox level.

Prints, per level, the one-off start of the zygote and the median wall time
of one sandboxed run of a trivial submission (fork, isolation, import, one
case, exit, sweep of leftovers), next to the floors: a bare fork+wait from a
process that has numpy loaded, and a fresh interpreter importing numpy.

    python bench/sandbox_cost.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from autograder import cases as cases_mod
from autograder import sandbox
from autograder.runner import Limits, SubmissionFiles, SubmissionRunner, Zygote

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


def level_cost(plan: sandbox.LaunchPlan, case, runs: int) -> tuple[float, float]:
    t = time.perf_counter()
    zygote = Zygote(plan)
    zygote.wait_ready()
    start = time.perf_counter() - t
    runner = SubmissionRunner(lambda: zygote, Limits())
    samples = []
    try:
        for _ in range(runs):
            t = time.perf_counter()
            out = runner.run(TRIVIAL, [case], show=True)
            samples.append(time.perf_counter() - t)
            assert out.cases[case.id].forward.status == "ok", out
    finally:
        zygote.close()
    return 1000 * start, median_ms(samples)


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
            plan = sandbox.plans(level)[0]
        except sandbox.SandboxError as exc:
            print(f"{level:8s} unavailable: {exc}")
            continue
        start, run = level_cost(plan, case, args.runs)
        process_run = run if level == "process" else process_run
        extra = (
            ""
            if process_run is None or level == "process"
            else f"  (+{run - process_run:.2f} ms over process)"
        )
        print(
            f"{level:8s} zygote start {start:7.1f} ms   one sandboxed run {run:6.2f} ms "
            f"(median of {args.runs}), isolation cost {run - own:6.2f} ms{extra}"
        )


if __name__ == "__main__":
    main()
