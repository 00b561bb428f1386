"""Benchmark: grading one submission end to end, process start to exit.

Runs ``autograder grade solutions --format json`` several times (the first
run warms the cache of reference outputs) and prints the median, next to the
floor: a fresh interpreter importing numpy and pytest.

    python bench/grade_one.py [--runs 7] [--sandbox auto]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--submission", default="solutions")
    args = parser.parse_args()
    floor = [timed([sys.executable, "-c", "import numpy, pytest"])[0] for _ in range(args.runs)]
    cmd = [
        sys.executable,
        "-m",
        "autograder",
        "grade",
        args.submission,
        "--format",
        "json",
        "--sandbox",
        args.sandbox,
    ]
    timed(cmd)  # warm the reference-output cache and the page cache
    runs = []
    level = "?"
    for _ in range(args.runs):
        seconds, out = timed(cmd)
        runs.append(seconds)
        level = json.loads(out)["sandbox"]
    print(f"floor  python -c 'import numpy, pytest'      median {statistics.median(floor):.3f} s")
    print(
        f"grade  {args.submission} (sandbox {level:7s})        median {statistics.median(runs):.3f} s"
        f"  (min {min(runs):.3f}, max {max(runs):.3f}, {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
