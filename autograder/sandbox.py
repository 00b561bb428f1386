"""How the worker's zygote is launched: the sandbox levels.

Levels, weakest first:

* ``process``: a separate process with resource limits; everything a child
  starts is killed when its run ends (process group, or on Linux a
  subreaper sweep). Works everywhere, including a student's laptop.
* ``uid``: as ``process``, and the child drops to an unprivileged uid when
  the grader runs as root, so root-only files stay out of reach.

The bubblewrap level (namespaces: no network, a filesystem view without the
solutions, its own PID space) is described in SECURITY.md.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

NOBODY = 65534


@dataclass
class LaunchPlan:
    """How to start the zygote, and what the children do to isolate themselves."""

    level: str
    uid: int | None = None
    gid: int | None = None
    prefix: list[str] = field(default_factory=list)
    pid_namespace: bool = False

    def command(self, python: str, worker: str, fd: int) -> list[str]:
        """The zygote's command line; ``fd`` is its end of the control socket."""
        argv = [*self.prefix, python, "-I", worker, "--zygote", str(fd)]
        if self.pid_namespace:
            argv.append("--pid-namespace")
        return argv

    def environment(self) -> dict[str, str]:
        """A minimal environment: nothing of the grader's leaks to student code."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            # One BLAS thread: less memory per child and fair sharing of the cores.
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        if not self.pid_namespace:
            env["TMPDIR"] = os.environ.get("TMPDIR", "/tmp")
        return env

    def popen_kwargs(self) -> dict:
        """Extra arguments for ``subprocess.Popen``."""
        return {}


def plan(mode: str = "auto", slot: int = 0) -> LaunchPlan:
    """The strongest launch plan available for ``mode`` (auto, strict, process)."""
    if mode == "strict":
        raise SandboxError("the strict sandbox (bubblewrap) is not implemented yet")
    if mode == "process" or not hasattr(os, "geteuid"):
        return LaunchPlan(level="process")
    if os.geteuid() == 0 and sys.platform.startswith("linux"):
        # A distinct uid per parallel slot: children of two slots cannot signal each other.
        uid = NOBODY - 1 - slot if slot else NOBODY
        return LaunchPlan(level="uid", uid=uid, gid=NOBODY)
    return LaunchPlan(level="process")


class SandboxError(RuntimeError):
    """The requested sandbox level cannot be set up on this machine."""
