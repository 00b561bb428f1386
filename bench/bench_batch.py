"""Throughput of batch grading against the usual one-pytest-process-per-submission approach.

    python bench/bench_batch.py [--sizes 100,300,1000] [--runs 3] [--jobs N] [--sample 40]

Generates N synthetic submissions (correct, buggy and slow ones; as handin
``.tar`` files, single ``.py`` files and folders) in a temporary directory,
grades them with ``autograder grade-all`` in a fresh output directory
(several runs, median), and reports submissions per second, wall time and
peak memory of the whole process tree (the grader, its workers, their
zygotes and the student processes), for several N to show the cost is
linear. Then it grades a sample the usual way, one ``python -m pytest``
process per submission importing the student's module, with the same
number of parallel processes, and prints both rates and their ratio.

Instructor side; not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fixture helpers: replace_method

from helpers import handin_tar, replace_method  # noqa: E402

from autograder import batch, files  # noqa: E402
from autograder.course.cases import PUBLIC_DATA  # noqa: E402
from autograder.isolation.worker.proctree import descendants  # noqa: E402

TARGET_RATE = 50.0  # submissions per second
TARGET_MEMORY_MB = 500.0

# ------------------------------------------------------------------ submissions


REFERENCE = files.REFERENCE_PATH.read_text(encoding="utf-8")
BUGS = [
    # A wrong derivative, an unfinished class, a wrong kink, a naive overflow, a typo.
    lambda s: replace_method(s, "Swish", "backward", "return dLdA * 0.5"),
    lambda s: replace_method(s, "ELU", "forward", "raise NotImplementedError"),
    lambda s: replace_method(s, "ReLU", "backward", "return dLdA * (self.A >= 0)"),
    lambda s: replace_method(
        s, "Sigmoid", "forward", "self.A = 1 / (1 + np.exp(-Z))\nreturn self.A"
    ),
    lambda s: replace_method(
        s,
        "Softmax",
        "forward",
        "self.A = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)\nreturn self.A",
    ),
    lambda s: s + "\n\nthis is not python\n",
]
# A slow but correct student: Python loops and a little sleeping in two classes.
SLOW_FORWARD = """
import time
time.sleep(0.002)
flat = [max(float(z), 0.0) for z in np.asarray(Z, dtype=np.float64).ravel()]
self.A = np.array(flat).reshape(np.shape(Z))
return self.A
"""
SLOW_IDENTITY = """
import time
time.sleep(0.002)
self.A = np.array([float(z) for z in np.ravel(Z)]).reshape(np.shape(Z))
return self.A
"""


def make_source(i: int) -> tuple[str, str]:
    """The i-th synthetic submission: (kind, source). 70% correct, 25% buggy, 5% slow."""
    slot = i % 20
    if slot < 14:
        kind, source = "correct", REFERENCE
    elif slot < 19:
        kind, source = "buggy", BUGS[i % len(BUGS)](REFERENCE)
    else:
        kind = "slow"
        source = replace_method(REFERENCE, "ReLU", "forward", SLOW_FORWARD)
        source = replace_method(source, "Identity", "forward", SLOW_IDENTITY)
    # Unique bytes per submission: nothing can be shared or cached between them.
    return kind, source + f"\n# submission {i}\n"


def write_submission(directory: Path, i: int) -> tuple[Path, str]:
    """Write submission ``i`` as a handin .tar, a .py file or a folder (in turn)."""
    kind, source = make_source(i)
    name = f"student{i:05d}"
    form = ("tar", "py", "dir")[i % 3]
    if form == "py":
        path = directory / f"{name}.py"
        path.write_text(source)
    elif form == "dir":
        path = directory / name
        (path / "mytorch" / "nn").mkdir(parents=True)
        (path / "mytorch" / "__init__.py").write_text("")
        (path / "mytorch" / "nn" / "__init__.py").write_text("")
        (path / "mytorch" / "nn" / "activation.py").write_text(source)
    else:
        path = directory / f"{name}.tar"
        path.write_bytes(handin_tar(source))
    return path, kind


def generate(directory: Path, n: int) -> dict[str, int]:
    """N submissions in ``directory``; returns how many of each kind."""
    directory.mkdir(parents=True)
    kinds: dict[str, int] = {}
    for i in range(n):
        _, kind = write_submission(directory, i)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# ------------------------------------------------------------------ memory


def _tree(root: int) -> list[int]:
    return [root, *descendants(root)]


def _memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in KiB; (0, 0) if it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


class MemorySampler(threading.Thread):
    """Samples the summed PSS and RSS of a process tree until stopped; keeps the peaks."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_pss = self.peak_rss = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            pss = rss = 0
            for pid in _tree(self.pid):
                p, r = _memory_kb(pid)
                pss, rss = pss + p, rss + r
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        self.join()


# ------------------------------------------------------------------ runs


def grade_all(directory: Path, outdir: Path, jobs: int, extra: list[str]) -> dict:
    """One ``autograder grade-all`` run; wall time and peak memory of its process tree."""
    argv = [sys.executable, "-m", "autograder", "grade-all", str(directory), "-o", str(outdir)]
    argv += ["--jobs", str(jobs), *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = MemorySampler(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"grade-all failed ({proc.returncode}): {err.decode()[-500:]}")
    return {"wall": wall, "pss_mb": sampler.peak_pss / 1024, "rss_mb": sampler.peak_rss / 1024}


BASELINE_TEST = '''
"""The usual approach: a pytest file importing the student's module."""
import importlib.util, json, os, pathlib, tarfile, tempfile

import numpy as np
import pytest

ACTIVATIONS = ("ReLU", "Sigmoid", "Tanh", "Softmax")


def _module():
    path = pathlib.Path(os.environ["SUBMISSION"])
    if path.suffix == ".tar":
        tmp = tempfile.mkdtemp()
        with tarfile.open(path) as tar:
            tar.extractall(tmp, filter="data")
        path = pathlib.Path(tmp)
    if path.is_dir():
        path = path / "mytorch" / "nn" / "activation.py"
    spec = importlib.util.spec_from_file_location("activation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _array(obj):
    return np.array([float(v) for v in obj["data"]]).reshape(obj["shape"])


CASES = [c for c in json.loads(pathlib.Path(os.environ["CASES"]).read_text())["cases"]
         if c["activation"] in ACTIVATIONS]


@pytest.fixture(scope="module")
def module():
    return _module()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(module, case):
    obj = getattr(module, case["activation"])(**case["kwargs"])
    A = obj.forward(_array(case["Z"]))
    np.testing.assert_allclose(A, _array(case["expected"]["A"]), rtol=1e-5, atol=1e-6)
    dLdZ = obj.backward(_array(case["dLdA"]))
    np.testing.assert_allclose(dLdZ, _array(case["expected"]["dLdZ"]), rtol=1e-5, atol=1e-6)
'''


def baseline(paths: list[Path], jobs: int, workdir: Path) -> float:
    """Grade ``paths`` one pytest process each, ``jobs`` at a time; return the wall time."""
    test_file = workdir / "test_submission.py"
    test_file.write_text(BASELINE_TEST)
    env = {**os.environ, "CASES": str(PUBLIC_DATA), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

    def one(path: Path) -> int:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
            cwd=workdir,
            env={**env, "SUBMISSION": str(path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        ).returncode

    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        codes = list(pool.map(one, paths))
    wall = time.perf_counter() - started
    if not any(code == 0 for code in codes):
        raise SystemExit("the baseline's pytest runs all failed: check the baseline test file")
    return wall


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100,300,1000", help="submission counts (default 100,300,1000)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per size; the median counts")
    parser.add_argument("--jobs", type=int, default=batch.default_jobs(), help="parallel workers")
    parser.add_argument("--sample", type=int, default=40, help="submissions graded by the baseline")
    parser.add_argument("--sandbox", default="auto", choices=("auto", "strict", "process"))
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    extra = ["--sandbox", args.sandbox]

    work = Path(tempfile.mkdtemp(prefix="autograder-bench-"))
    try:
        print(
            f"cores: {os.cpu_count()}, jobs: {args.jobs}, sandbox: {args.sandbox}, "
            f"runs per size: {args.runs}, load average before: {os.getloadavg()[0]:.2f}"
        )
        rows = []
        for n in sizes:
            directory = work / f"subs-{n}"
            kinds = generate(directory, n)
            runs = []
            for r in range(args.runs):
                outdir = work / f"out-{n}-{r}"
                runs.append(grade_all(directory, outdir, args.jobs, extra))
                if r < args.runs - 1:
                    shutil.rmtree(outdir)
            wall = statistics.median(x["wall"] for x in runs)
            pss = max(x["pss_mb"] for x in runs)
            rss = max(x["rss_mb"] for x in runs)
            level = json.loads(
                next((work / f"out-{n}-{args.runs - 1}").glob("student*.json")).read_text()
            )["sandbox"]
            rows.append((n, wall, pss, rss))
            walls = ", ".join(f"{x['wall']:.2f}" for x in runs)
            print(
                f"N={n:5d} ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}; sandbox {level}): "
                f"median wall {wall:6.2f} s over {args.runs} runs "
                f"[{walls}], {n / wall:6.1f} submissions/s, "
                f"{1000 * wall / n:5.1f} ms each, peak memory {pss:.0f} MB PSS ({rss:.0f} MB RSS summed)",
                flush=True,
            )
        if len(rows) > 1:
            # Least squares wall = fixed + N * marginal: linear cost shows as a steady marginal.
            ns, walls = [r[0] for r in rows], [r[1] for r in rows]
            mean_n, mean_w = statistics.fmean(ns), statistics.fmean(walls)
            marginal = sum((n - mean_n) * (w - mean_w) for n, w in zip(ns, walls, strict=True))
            marginal /= sum((n - mean_n) ** 2 for n in ns)
            fixed = mean_w - marginal * mean_n
            print(
                f"fit: wall = {fixed:.2f} s + N x {1000 * marginal:.1f} ms "
                f"(steady state {1 / marginal:.1f} submissions/s)"
            )
        largest = sizes[-1]
        directory = work / f"subs-{largest}"
        rerun = grade_all(directory, work / f"out-{largest}-{args.runs - 1}", args.jobs, extra)
        print(f"re-run of N={largest} with nothing changed (content hashes): {rerun['wall']:.2f} s")

        sample = sorted(directory.iterdir())[: args.sample]
        base_wall = baseline(sample, args.jobs, work)
        base_rate = len(sample) / base_wall
        n, wall, pss, rss = rows[-1]
        rate = n / wall
        print(
            f"baseline (one `python -m pytest` process per submission, {args.jobs} at a time, "
            f"{len(sample)} submissions): {base_wall:.2f} s, {base_rate:.1f} submissions/s, "
            f"{1000 * base_wall / len(sample):.0f} ms each"
        )
        print(f"grade-all: {rate:.1f} submissions/s = {rate / base_rate:.1f} x the baseline")
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"largest single process (getrusage RUSAGE_CHILDREN maxrss): {children:.0f} MB")
        met_rate = rate >= TARGET_RATE
        met_memory = pss < TARGET_MEMORY_MB
        print(
            f"target >= {TARGET_RATE:g} submissions/s: {'met' if met_rate else 'NOT met'}; "
            f"peak memory < {TARGET_MEMORY_MB:g} MB: {'met' if met_memory else 'NOT met'}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
