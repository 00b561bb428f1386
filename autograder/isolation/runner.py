"""Grader side of the worker: start a zygote, run a submission's cases in a child.

The grader talks to the zygote over a control socket (spawn, kill, exited)
and to each child over its own socket (the job out, results back) plus a
pipe that captures what the student's code prints. Every wait has a limit
on the CPU time of the child's whole process tree (the run's cgroup, or a
walk of /proc), so a neighbour that loads the machine cannot make an honest
submission time out, and a wall-clock backstop for code that sleeps. A child
that hangs, crashes or breaks the protocol loses only the case and the phase
it was in (the forward result of a case travels before its backward starts,
once something went wrong); it is killed with everything it started, and a
fresh child carries on with the remaining cases.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import select
import selectors
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autograder.course.cases import Case
from autograder.isolation import outputs as out
from autograder.isolation.outputs import CaseOutput, PhaseOutput, RunOutput
from autograder.isolation.sandbox import Launched, LaunchPlan, Resources, launch
from autograder.isolation.worker.frames import (
    FrameDecoder,
    ProtocolError,
    encode_frame,
    recv_frame,
    send_frame,
)
from autograder.submission.handin import SubmissionFiles

# A case (or message) may run this many times its CPU allowance in wall-clock time
# before it is stopped anyway: code that sleeps or waits uses no CPU at all.
WALL_FACTOR = 5.0
# The whole submission's wall-clock backstop, as a multiple of its CPU budget
# (short enough that a platform's own job timeout is never reached first).
BUDGET_WALL_FACTOR = 2.0
# The CPU clock is first read this long into a message (most messages are over
# by then); the time before counts as if every core had been busy, so a limit
# may be reached up to this times the number of cores early, never late.
FIRST_CPU_READING = 0.02


class WorkerError(RuntimeError):
    """The worker infrastructure (not the student's code) failed."""


@dataclass
class Limits:
    """Time, memory and output limits of one submission's grading.

    Times are CPU seconds of the child's whole process tree, each with a
    wall-clock backstop (``WALL_FACTOR``, ``BUDGET_WALL_FACTOR``).
    """

    call_timeout: float = 2.0  # one case's phase (forward, or backward)
    import_timeout: float = 10.0  # importing the student's module
    budget: float = 60.0  # the whole submission
    memory_bytes: int = 1 << 30  # address space of the child (and the run's cgroup)
    file_bytes: int = 16 << 20  # largest file the child may write
    open_files: int = 64
    processes: int = 64
    max_output: int = 64 << 10  # captured student output kept (bytes)
    max_frame: int = 32 << 20  # largest result frame accepted
    # Timeouts of one activation's phase after which the phase is not run again.
    timeouts_per_activation: int = 2
    # Isolation layers left off ("landlock", "seccomp"): only for tests and benchmarks
    # that exercise or price one layer alone; the command line never sets it.
    layers_off: tuple[str, ...] = ()

    def rlimits(self) -> dict:
        """The resource limits the child sets on itself before importing student code."""
        return {
            "cpu_s": int(self.budget) + 5,
            "memory_bytes": self.memory_bytes,
            "file_bytes": self.file_bytes,
            "open_files": self.open_files,
            "processes": self.processes,
        }

    def resources(self) -> Resources:
        """What the run's cgroup is sized for."""
        return Resources(memory_bytes=self.memory_bytes, processes=self.processes)

    def wall_budget(self) -> float:
        """The whole submission's wall-clock backstop."""
        return BUDGET_WALL_FACTOR * self.budget


def file_arrays(files: SubmissionFiles) -> tuple[list[str], dict[str, np.ndarray]]:
    """A submission's file names and their bytes as uint8 arrays, for a job frame."""
    names = sorted(files.files)
    arrays = {
        f"file:{i}": np.frombuffer(files.files[n], dtype=np.uint8) for i, n in enumerate(names)
    }
    return names, arrays


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


CORES = _cores()


class CpuMeter:
    """CPU time used by a process tree since :meth:`start`, read as rarely as possible.

    ``clock`` returns the tree's cumulative CPU seconds (or None where it
    cannot be measured: then wall time stands in for CPU time). The first
    reading happens :data:`FIRST_CPU_READING` into the interval; the time
    before it is counted as fully busy on every core, an upper bound.
    """

    def __init__(self, clock: Callable[[], float | None]) -> None:
        self.clock = clock
        self.started = 0.0
        self.reading: tuple[float, float] | None = None
        self.blind = False

    def start(self, now: float, eager: bool = False) -> None:
        """Measure from ``now``; ``eager`` reads the clock at once (where reading is cheap)."""
        self.started = now
        self.reading = None
        self.blind = False
        if eager:
            cpu = self.clock()
            if cpu is None:
                self.blind = True
            else:
                self.reading = (now, cpu)

    def used(self, now: float) -> float:
        """CPU seconds used since the start (an upper bound)."""
        if self.blind:
            return now - self.started
        if self.reading is None:
            if now - self.started < FIRST_CPU_READING:
                return 0.0
            cpu = self.clock()
            if cpu is None:
                self.blind = True
                return now - self.started
            self.reading = (now, cpu)
            return (now - self.started) * CORES
        at, cpu0 = self.reading
        cpu = self.clock()
        if cpu is None:
            self.blind = True
            return now - self.started
        return (at - self.started) * CORES + (cpu - cpu0)

    def next_check(self, now: float, limit: float, used: float) -> float:
        """When the limit could first be reached (CPU grows at most CORES per second)."""
        if self.reading is None and not self.blind:
            return max(now, self.started + FIRST_CPU_READING)
        rate = 1.0 if self.blind else CORES
        return now + max((limit - used) / rate, 0.002)


class ProgressCounter:
    """The grader's view of a child's progress counter (see the worker's ``Progress``)."""

    def __init__(self) -> None:
        try:
            fd = os.memfd_create("autograder-progress", os.MFD_CLOEXEC)
        except (AttributeError, OSError):  # not Linux: an unlinked temporary file
            handle = tempfile.TemporaryFile()  # noqa: SIM115 - its descriptor is kept
            fd = os.dup(handle.fileno())
            handle.close()
        os.ftruncate(fd, 8)
        self.fd = fd
        self.view = mmap.mmap(fd, 8)

    def value(self) -> int:
        """How many phases of cases the child has finished."""
        return struct.unpack_from("<Q", self.view, 0)[0]

    def close(self) -> None:
        """Release the shared page (the child holds its own mapping)."""
        self.view.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SelfCheck:
    """A level's self-check in flight: a child set up like a grading child, asked what it reaches.

    The request is sent at once (the zygote serves it as soon as it is ready),
    so the check runs while the grader prepares; :meth:`answer` waits for it.
    """

    def __init__(self, zygote: ZygoteProcess, limits: Limits, job: dict) -> None:
        self.zygote = zygote
        self.timeout = max(limits.import_timeout, 10.0)
        self.seq = next(_SEQ)
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        progress = ProgressCounter()
        try:
            zygote.spawn(self.seq, limits, [child.fileno(), out_w, progress.fd])
            # The child reads its job when it starts; the socket holds it until then.
            send_frame(self.sock, {"type": "self_check", **job})
        except BaseException:
            self.sock.close()
            raise
        finally:
            child.close()
            for fd in (out_w, out_r):
                os.close(fd)
            progress.close()

    def answer(self) -> dict:
        """The child's answer (raises WorkerError if it gives none)."""
        try:
            self.sock.settimeout(self.timeout)
            meta, _, _ = recv_frame(self.sock, max_payload=0)
        except (OSError, EOFError, ProtocolError) as exc:
            raise WorkerError(f"the sandbox self-check did not answer ({exc})") from None
        finally:
            self.close()
        if meta.get("type") != "self_check":
            raise WorkerError("the sandbox self-check gave no answer")
        return meta

    def close(self) -> None:
        """Drop the check: its child is killed and swept like any other."""
        if self.sock.fileno() < 0:
            return
        self.sock.close()
        with contextlib.suppress(WorkerError, OSError):  # a zygote that died needs nothing
            self.zygote.send({"type": "kill"})
            self.zygote.expect("exited", timeout=10, seq=self.seq)


class ZygoteProcess:
    """A running zygote process and the grader's end of its control socket."""

    def __init__(
        self,
        plan: LaunchPlan,
        launched: Launched | None = None,
        resources: Resources | None = None,
        hidden: list[str] | None = None,
    ) -> None:
        self.plan = plan
        if launched is None:
            try:
                launched = launch(plan, resources, hidden)
            except (OSError, subprocess.SubprocessError) as exc:
                raise WorkerError(f"cannot start the worker ({plan.level}): {exc}") from None
        self.launched = launched
        self.proc = launched.proc
        self.ctl = launched.ctl
        self.ctl.setblocking(False)
        self._decoder = FrameDecoder(max_payload=1 << 16)
        self._queue: list[dict] = []
        self.info: dict | None = None

    def wait_ready(self, timeout: float = 60.0) -> dict:
        """Block until the zygote has imported numpy and says it is ready."""
        if self.info is None:
            try:
                self.info = self.expect("ready", timeout)
            except WorkerError:
                raise WorkerError(
                    f"the {self.plan.level} worker did not start: {self.diagnosis()}"
                ) from None
        return self.info

    def diagnosis(self) -> str:
        """The last line the zygote (or bubblewrap) wrote to stderr."""
        return self.launched.diagnosis()

    def cpu_seconds(self) -> float | None:
        """CPU time of the zygote's whole process tree so far (None: not measurable)."""
        return self.launched.cpu_seconds()

    def _pump(self, timeout: float) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.ctl, selectors.EVENT_READ)
        try:
            if sel.select(timeout):
                try:
                    data = self.ctl.recv(1 << 16)
                except BlockingIOError:
                    return
                except OSError as exc:
                    raise WorkerError(f"worker control channel failed: {exc}") from None
                if not data:
                    raise WorkerError("the worker process exited")
                try:
                    frames = self._decoder.feed(data)
                except ProtocolError as exc:
                    raise WorkerError(f"the worker broke the protocol ({exc})") from None
                for meta, _ in frames:
                    self._queue.append(meta)
        finally:
            sel.close()

    def poll(self) -> list[dict]:
        """Control messages that have arrived, without blocking."""
        self._pump(0)
        messages, self._queue = self._queue, []
        return messages

    def expect(self, kind: str, timeout: float, seq: int | None = None) -> dict:
        """Wait for the next control message of ``kind`` (about child ``seq``), dropping stale ones."""
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self._queue):
                if msg.get("type") == kind and (seq is None or msg.get("seq") == seq):
                    del self._queue[: i + 1]
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError(f"the worker did not answer ({kind})")
            self._pump(remaining)

    def send(self, meta: dict, fds: list[int] | None = None) -> None:
        """Send a control message (blocking)."""
        self.ctl.setblocking(True)
        try:
            send_frame(self.ctl, meta, fds=fds)
        except OSError as exc:
            raise WorkerError(f"worker control channel failed: {exc}") from None
        finally:
            self.ctl.setblocking(False)

    def spawn(self, seq: int, limits: Limits, fds: list[int]) -> None:
        """Ask for a fresh child talking over ``fds``: result socket, output pipe, progress."""
        uid = self.launched.uid
        self.send(
            {
                "type": "spawn",
                "seq": seq,
                "uid": uid,
                "gid": uid,
                "limits": limits.rlimits(),
                "layers_off": list(limits.layers_off),
            },
            fds=fds,
        )

    def self_check(
        self, limits: Limits, read: list[str], write: list[str], imports: list[str]
    ) -> dict:
        """Run a child set up exactly like a grading child and ask what it can reach.

        Returns the child's answer: ``readable``, ``writable`` (subsets of
        ``read`` and ``write``), ``import_errors`` (module -> error) and ``uid``.
        """
        return self.start_self_check(limits, read, write, imports).answer()

    def start_self_check(
        self, limits: Limits, read: list[str], write: list[str], imports: list[str]
    ) -> SelfCheck:
        """Ask for the self-check now (even before the zygote is ready); answer later."""
        return SelfCheck(self, limits, {"read": read, "write": write, "imports": imports})

    def alive(self) -> bool:
        """Whether the zygote process is still running."""
        return self.proc.poll() is None

    def close(self) -> None:
        """Ask the zygote to quit (kill it if it does not), then release its run's resources."""
        with contextlib.suppress(OSError, WorkerError):
            self.send({"type": "quit"})
        clean = True
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            clean = False
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.ctl.close()
        # Exit status 0: the zygote quit after sweeping; anything else may have left
        # processes of the run's uid behind.
        self.launched.close(clean=clean and self.proc.returncode == 0)


def _text(value: object, limit: int = 2000) -> str:
    if not isinstance(value, str):
        return ""
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _info(meta: object) -> dict:
    """The descriptive fields of a worker phase report, type-checked."""
    if not isinstance(meta, dict):
        return {}
    info: dict = {}
    for key in ("type", "dtype", "exception"):
        if isinstance(meta.get(key), str):
            info[key] = meta[key][:60]
    if meta.get("method") in ("forward", "backward"):
        info["method"] = meta["method"]
    if isinstance(meta.get("takes"), str):
        info["takes"] = meta["takes"][:100]
    shape = meta.get("shape")
    if isinstance(shape, list) and all(type(n) is int for n in shape[:8]):
        info["shape"] = shape[:8]
    warnings = meta.get("warnings")
    if isinstance(warnings, list):
        info["warnings"] = [_text(w, 200) for w in warnings[:5] if isinstance(w, str)]
    return info


# What the grader keeps of the class names a worker reports after the import.
MAX_CLASSES = 100
MAX_CLASS_NAME = 60


def _class_names(value: object) -> list[str]:
    """The module's class names from an import frame: plain identifiers only, capped."""
    if not isinstance(value, list):
        return []
    names = [v for v in value[:MAX_CLASSES] if isinstance(v, str) and len(v) <= MAX_CLASS_NAME]
    return [v for v in names if v.isidentifier()]


def _phase(meta: object, value: np.ndarray | None, show: bool) -> PhaseOutput:
    if not isinstance(meta, dict):
        return PhaseOutput(out.SKIPPED)
    status = meta.get("status")
    if status not in (out.OK, out.ERROR, out.NOT_IMPLEMENTED, out.MISSING, out.API):
        status = out.ERROR
    array = None if value is None else np.array(value, dtype=np.float64)
    info = _info(meta)
    if not show:
        # Hidden cases: only which method was missing may be told, nothing printed.
        info = {"method": info["method"]} if "method" in info else {}
    return PhaseOutput(
        status=status,
        value=array if status == out.OK else None,
        message=_text(meta.get("message")) if show else "",
        info=info,
    )


def case_output(
    case_id: str,
    meta: dict,
    arrays: dict,
    show: bool,
    n_probes: int,
    partial: CaseOutput | None = None,
) -> CaseOutput:
    """Turn a worker's case frame into a validated :class:`CaseOutput`.

    A frame may carry a whole case, or (careful mode) its ``forward`` part
    and then the ``rest``, which completes ``partial``.
    """
    if meta.get("missing_class"):
        failed = CaseOutput.failed(case_id, out.MISSING, "")
        failed.class_missing = True
        return failed
    init = meta.get("init")
    if isinstance(init, dict) and init.get("status") != out.OK:
        failed = CaseOutput.failed(case_id, _phase(init, None, show).status, "")
        failed.forward = _phase(init, None, show)
        failed.forward.info["constructor"] = True
        return failed
    stored = meta.get("stored_A")
    if meta.get("part") == "rest" and partial is not None:
        output = partial
    else:
        output = CaseOutput(
            id=case_id,
            forward=_phase(meta.get("forward"), arrays.get("A"), show),
            backward=PhaseOutput(out.SKIPPED),
            dLdbeta=PhaseOutput(out.SKIPPED),
            stored_A=stored if stored in ("same", "different", "none", "missing") else None,
            Z_modified=meta.get("Z_modified") is True,
        )
    if meta.get("part") == "forward":
        return output
    output.backward = _phase(meta.get("backward"), arrays.get("dLdZ"), show)
    output.dLdbeta = _phase(meta.get("dLdbeta"), arrays.get("dLdbeta"), show)
    output.dLdA_modified = meta.get("dLdA_modified") is True
    probes: list[np.ndarray | None] = []
    for j in range(n_probes):
        p = arrays.get(f"P{j}")
        probes.append(None if p is None else np.array(p, dtype=np.float64))
    output.probes = probes
    return output


SIGNAL_NAMES = {
    9: "SIGKILL (killed, maybe by the memory limit)",
    11: "SIGSEGV (segmentation fault)",
    6: "SIGABRT (aborted)",
    24: "SIGXCPU (CPU time limit)",
    25: "SIGXFSZ (file size limit)",
}


def _describe_exit(info: dict | None, oom: bool = False) -> str:
    if not info:
        return "the worker process stopped"
    sig = info.get("signal")
    if isinstance(sig, int):
        if sig == 9 and oom:
            return "the process was killed by the memory limit"
        return f"the process was killed by signal {sig} {SIGNAL_NAMES.get(sig, '')}".rstrip()
    code = info.get("code")
    return f"the process exited with status {code} (os._exit or sys.exit?)"


@dataclass
class Phase:
    """Cases run in one go: public ones (feedback shown) or hidden ones (nothing shown).

    A submission's phases run in the same child, public first; before the
    hidden phase the grader stops reading the child's output and the child
    sends its stdout and stderr to /dev/null, so hidden inputs cannot come
    back as printed text or error messages.
    """

    name: str
    cases: list[Case]
    show: bool
    probes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    # False for feedback-only phases: a crash or hang there costs no points, the
    # phase is simply dropped.
    graded: bool = True
    # Called with this phase's results when it is done; a phase it returns runs
    # next, in the same child (the self-check's probes of failing backwards).
    followup: Callable[[RunOutput], Phase | None] | None = None


# Numbers the children, so a late message about an earlier one is never mistaken.
_SEQ = itertools.count(1)


@dataclass
class Stop:
    """Where and how a child stopped before finishing its cases."""

    phase: str  # the Phase's name
    case: Case | None  # None: somewhere in a batch of cases (rerun them carefully)
    status: str  # timeout | crashed
    message: str
    # The case's forward result, when it arrived before the child stopped in backward.
    partial: CaseOutput | None = None


def _not_run(output: CaseOutput, phases: tuple[str, ...], status: str, message: str) -> None:
    for name in phases:
        setattr(output, name, PhaseOutput(status, message=message))


class SubmissionRunner:
    """Runs one submission's cases on a zygote, restarting children as needed.

    ``get_zygote`` returns a running zygote, starting a new one if the last
    one died (a submission running as the zygote's uid can kill it).
    """

    def __init__(self, get_zygote: Callable[[], ZygoteProcess], limits: Limits) -> None:
        self.get_zygote = get_zygote
        self.zygote: ZygoteProcess | None = None
        self.limits = limits
        self.ungraded: set[str] = set()
        # The child whose end (and sweep of leftovers) was not confirmed yet.
        self.unconfirmed: int | None = None
        # Phases not run again for an activation, with the reason: (activation, phase).
        self.skipped: dict[tuple[str, str], str] = {}
        self.budget = CpuMeter(self._clock)
        # The whole submission's wall-clock backstop; set when its first child starts.
        self.deadline: float | None = None

    def _clock(self) -> float | None:
        return self.zygote.cpu_seconds() if self.zygote is not None else None

    def cheap_clock(self) -> bool:
        """Whether reading the CPU clock costs next to nothing (a cgroup's counter)."""
        return self.zygote is not None and self.zygote.launched.cgroup is not None

    def _start_budget(self, deadline: float | None) -> None:
        # From the first child on: starting (or restarting) the zygote is not the
        # submission's time, and a first CPU reading long after the start would
        # count that whole gap as busy.
        now = time.monotonic()
        self.deadline = deadline if deadline is not None else now + self.limits.wall_budget()
        self.budget.start(now, eager=self.cheap_clock())

    def run(
        self,
        files: SubmissionFiles,
        cases: list[Case],
        show: bool,
        probes: dict[str, list[np.ndarray]] | None = None,
        deadline: float | None = None,
    ) -> RunOutput:
        """Run one list of cases (a single phase)."""
        phase = Phase("run", list(cases), show, probes or {})
        return self.run_phases(files, [phase], deadline)["run"]

    def run_phases(
        self, files: SubmissionFiles, phases: list[Phase], deadline: float | None = None
    ) -> dict[str, RunOutput]:
        """Run every phase's cases, in one child while it behaves; results by phase name.

        ``deadline`` overrides the wall-clock backstop of the whole submission
        (by default ``limits.wall_budget()`` from its first child on); its CPU
        budget is ``limits.budget``.
        """
        shown = [p.show for p in phases]
        if shown != sorted(shown, reverse=True):
            raise ValueError("phases that show output must come before those that do not")
        results = {p.name: RunOutput() for p in phases}
        remaining = {p.name: list(p.cases) for p in phases}
        self.ungraded = {p.name for p in phases if not p.graded}
        self.skipped = {}
        self.deadline = None
        timeouts: dict[tuple[str, str], int] = {}
        zygote_failures = 0
        careful = False  # one message per phase of a case, after something went wrong
        while any(remaining.values()):
            exhausted = self._budget_exhausted()
            if exhausted:
                for name, cases in remaining.items():
                    for case in cases:
                        results[name].cases[case.id] = CaseOutput.failed(
                            case.id, out.TIMEOUT, exhausted
                        )
                break
            self.zygote = self.get_zygote()
            for result in results.values():
                result.sandbox = self.zygote.plan.level
            try:
                if self.deadline is None:
                    self._start_budget(deadline)
                stop = self._child(files, phases, remaining, results, careful)
            except WorkerError as exc:
                # The zygote itself failed (killed by the submission, or confused): replace it,
                # charge the case that was running, and give up after a second time.
                self.zygote.close()
                zygote_failures += 1
                message = f"the grading worker died ({exc})"
                first = next((n for n in remaining if remaining[n]), None)
                if zygote_failures >= 2 or first is None:
                    for name, cases in remaining.items():
                        for case in cases:
                            results[name].cases[case.id] = CaseOutput.failed(
                                case.id, out.CRASHED, message
                            )
                        cases.clear()
                    break
                stop = Stop(first, remaining[first][0], out.CRASHED, message)
            if stop is None:
                continue
            if stop.phase in self.ungraded:
                # Feedback only: give up on it, nothing is charged.
                remaining[stop.phase].clear()
                continue
            case = stop.case
            if case is None:
                # It stopped somewhere inside a batch of results: find out where.
                careful = True
                continue
            # The child stopped on this case: charge the phase it was in, keep the rest.
            if stop.partial is not None and stop.partial.forward.status == out.OK:
                output, phase_name = stop.partial, "backward"
                _not_run(output, ("backward", "dLdbeta"), stop.status, stop.message)
            else:
                output, phase_name = (
                    CaseOutput.failed(case.id, stop.status, stop.message),
                    "forward",
                )
                _not_run(output, ("backward", "dLdbeta"), out.SKIPPED, "")
            results[stop.phase].cases[case.id] = output
            remaining[stop.phase].remove(case)
            if stop.status == out.TIMEOUT:
                key = (case.activation, phase_name)
                timeouts[key] = timeouts.get(key, 0) + 1
                if timeouts[key] >= self.limits.timeouts_per_activation:
                    self._give_up(case.activation, phase_name, timeouts[key], remaining, results)
        return results

    def _budget_exhausted(self) -> str:
        """Why the submission's budget is used up ("" while it is not)."""
        if self.deadline is None:
            return ""
        now = time.monotonic()
        if now >= self.deadline:
            return (
                f"the submission did not finish within {self.limits.wall_budget():g} s "
                "(its total time limit)"
            )
        if self.budget.used(now) >= self.limits.budget:
            return f"the submission used more than {self.limits.budget:g} s of CPU time in total"
        return ""

    def _give_up(
        self, activation: str, phase: str, count: int, remaining: dict, results: dict
    ) -> None:
        """Stop running ``phase`` of ``activation`` after repeated timeouts.

        After forward timeouts the activation's remaining cases are not run;
        after backward timeouts they still run forward (its points are earned
        separately) and only backward is skipped.
        """
        note = f"not run: {activation}.{phase} timed out {count} times"
        if phase == "backward":
            self.skipped[(activation, "backward")] = note
            return
        for name, cases in remaining.items():
            for other in [c for c in cases if c.activation == activation]:
                results[name].cases[other.id] = CaseOutput.failed(other.id, out.TIMEOUT, note)
                _not_run(results[name].cases[other.id], ("backward", "dLdbeta"), out.SKIPPED, "")
                cases.remove(other)

    def _job_frame(
        self, files: SubmissionFiles | None, cases: list[Case], phase: Phase, careful: bool
    ) -> bytes:
        names: list[str] = []
        arrays: dict[str, np.ndarray] = {}
        if files is not None:
            names, arrays = file_arrays(files)
        meta_cases = []
        for case in cases:
            extra = phase.probes.get(case.id, [])
            entry = {
                "id": case.id,
                "cls": case.activation,
                "kwargs": case.kwargs,
                "dLdbeta": "dLdbeta" in case.spec.points,
                "probes": len(extra),
            }
            if (case.activation, "backward") in self.skipped:
                entry["skip"] = ["backward"]
            meta_cases.append(entry)
            arrays[f"Z:{case.id}"] = case.Z
            arrays[f"dLdA:{case.id}"] = case.dLdA
            for j, P in enumerate(extra):
                arrays[f"P:{case.id}:{j}"] = P
        meta = {
            "type": "job",
            "files": names,
            "entry": files.entry if files else "",
            "module": files.module if files else "",
            "cases": meta_cases,
            "show_errors": phase.show,
            "batch": not careful,
        }
        return encode_frame(meta, arrays)

    def _child(self, files, phases, remaining, results, careful) -> Stop | None:
        """One child: run the remaining cases phase by phase; None when all are done."""
        z = self.zygote
        assert z is not None
        res_parent, res_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        progress = ProgressCounter()
        z.poll()  # forget stale control messages of earlier children
        seq = next(_SEQ)
        self.unconfirmed = seq
        try:
            z.spawn(seq, self.limits, [res_child.fileno(), out_w, progress.fd])
        finally:
            res_child.close()
            os.close(out_w)
        talk = _Conversation(self, res_parent, out_r, files, phases, remaining, results, careful)
        talk.progress = progress
        try:
            return talk.run(self.deadline)
        finally:
            talk.close()
            progress.close()

    def kill(self) -> None:
        """Ask the zygote to kill the current child (and everything it started)."""
        with contextlib.suppress(WorkerError):
            self.zygote.send({"type": "kill"})

    def exit_info(self) -> dict | None:
        """The current child's exit report, once it died or was killed and swept."""
        if self.unconfirmed is None or self.zygote is None:
            return None
        seq, self.unconfirmed = self.unconfirmed, None
        try:
            return self.zygote.expect("exited", timeout=10, seq=seq)
        except WorkerError:
            return None

    def finish(self) -> None:
        """Make sure the last child and everything it started are gone."""
        if self.unconfirmed is not None:
            self.kill()
            self.exit_info()


class _Conversation:
    """The grader's side of one child's life: send jobs, read results, watch the clocks."""

    def __init__(self, runner, sock, out_r, files, phases, remaining, results, careful) -> None:
        self.runner = runner
        self.careful = careful
        self.limits: Limits = runner.limits
        self.sock = sock
        self.out_r: int | None = out_r
        self.files = files
        self.active = [p for p in phases if remaining[p.name]]
        self.remaining = remaining
        self.results = results
        self.sel = selectors.DefaultSelector()
        self.decoder = FrameDecoder(max_payload=self.limits.max_frame)
        self.index = 0  # phase being run
        self.position = 0  # case being run, within that phase's remaining list
        self.partial: CaseOutput | None = None  # forward part of the case being run
        self.imported = False
        self.job = b""
        self.sent = 0
        self.meter = CpuMeter(runner._clock)  # the message: its whole CPU allowance
        self.case_meter = CpuMeter(runner._clock)  # the phase of a case now running
        self.progress: ProgressCounter | None = None
        self.seen = 0  # the progress counter at the last check
        self.oom_before = runner.zygote.launched.oom_killed()

    @property
    def phase(self) -> Phase:
        return self.active[self.index]

    def close(self) -> None:
        self.sel.close()
        self.sock.close()
        self._close_output()

    def _close_output(self) -> None:
        if self.out_r is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.out_r)
            os.close(self.out_r)
            self.out_r = None

    def _start_phase(self, first: bool) -> None:
        phase = self.phase
        if not phase.show:
            # Stop listening before hidden inputs exist in the child: whatever it
            # prints from now on goes nowhere (or kills it, if it kept our pipe).
            self._close_output()
        self.job = self.runner._job_frame(
            self.files if first else None, self.remaining[phase.name], phase, self.careful
        )
        self.sent = 0
        self.position = 0
        self.partial = None
        self.sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _allowance(self) -> float:
        """CPU seconds the next message may take: the import, one phase, or a batch."""
        if not self.imported:
            return self.limits.import_timeout
        if self.careful:
            return self.limits.call_timeout
        cases = self.remaining[self.phase.name][self.position :]
        if not cases:
            return self.limits.call_timeout
        # A batch message carries the rest of the current activation's cases.
        weight = 0.0
        probes = self.phase.probes
        for case in cases:
            if case.activation != cases[0].activation:
                break
            weight += 1.0 + len(probes.get(case.id, ())) / 2
        return self.limits.call_timeout * weight

    def _wall_allowance(self) -> float:
        base = self.limits.import_timeout if not self.imported else self.limits.call_timeout
        return WALL_FACTOR * base

    def run(self, deadline: float) -> Stop | None:
        self.sock.setblocking(False)
        os.set_blocking(self.out_r, False)
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.sel.register(self.out_r, selectors.EVENT_READ)
        self._start_phase(first=True)
        budget = self.runner.budget
        now = time.monotonic()
        self._restart_clocks(now)
        allowance, wall_limit = self._allowance(), now + self._wall_allowance()
        check = self.meter.next_check(now, allowance, 0.0)
        budget_check = budget.next_check(now, self.limits.budget, budget.used(now))
        try:
            while True:
                now = time.monotonic()
                if now >= check and self._progressed():
                    # A phase of a case finished inside a batch: time the next one afresh.
                    self.case_meter.start(now)
                    wall_limit = now + self._wall_allowance()
                if now >= wall_limit:
                    return self._timeout(f"did not finish within {self._wall_allowance():g} s")
                if now >= deadline:
                    return self._timeout("", budget=self.runner._budget_exhausted())
                if now >= check:
                    used = self.meter.used(now)
                    if used >= allowance:
                        return self._timeout(f"used more than {allowance:g} s of CPU time")
                    check = self.meter.next_check(now, allowance, used)
                    if self.imported and not self.careful:
                        step = self.limits.call_timeout
                        used = self.case_meter.used(now)
                        if used >= step:
                            return self._timeout(f"used more than {step:g} s of CPU time")
                        check = min(check, self.case_meter.next_check(now, step, used))
                if now >= budget_check:
                    used = budget.used(now)
                    if used >= self.limits.budget:
                        return self._timeout("", budget=self.runner._budget_exhausted())
                    budget_check = budget.next_check(now, self.limits.budget, used)
                wake = min(wall_limit, deadline, check, budget_check)
                for key, mask in self.sel.select(max(wake - now, 0.0)):
                    if key.fileobj == self.out_r:
                        self._read_output()
                        continue
                    if mask & selectors.EVENT_WRITE and self.sent < len(self.job):
                        self._send_job()
                    if not mask & selectors.EVENT_READ:
                        continue
                    try:
                        data = self.sock.recv(1 << 20)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        return self._died()
                    try:
                        frames = self.decoder.feed(data)
                    except ProtocolError as exc:
                        # Act on the good frames that came before the bad one.
                        for meta, arrays in exc.frames:
                            if self._handle(meta, arrays):
                                return None
                        raise
                    for meta, arrays in frames:
                        if self._handle(meta, arrays):
                            return None
                    now = time.monotonic()
                    self._restart_clocks(now)
                    allowance, wall_limit = self._allowance(), now + self._wall_allowance()
                    check = self.meter.next_check(now, allowance, 0.0)
        except ProtocolError as exc:
            self.runner.kill()
            return self._stopped(out.CRASHED, f"the worker broke the protocol ({exc})")

    def _restart_clocks(self, now: float) -> None:
        eager = self.runner.cheap_clock()
        self.meter.start(now, eager)
        self.case_meter.start(now, eager)
        self._progressed()

    def _progressed(self) -> bool:
        """Whether the child finished another phase of a case since the last look."""
        if self.progress is None:
            return False
        value = self.progress.value()
        moved, self.seen = value != self.seen, value
        return moved

    def _send_job(self) -> None:
        try:
            self.sent += self.sock.send(self.job[self.sent : self.sent + (1 << 20)])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.sent = len(self.job)  # the child is gone; reading will tell
        if self.sent >= len(self.job):
            self.sel.modify(self.sock, selectors.EVENT_READ)

    def _handle(self, meta: dict, arrays: dict) -> bool:
        """Act on one frame; True when every phase is done."""
        kind = meta.get("type")
        phase = self.phase
        cases = self.remaining[phase.name]
        if not self.imported:
            if kind == "imported":
                self.imported = True
                classes = _class_names(meta.get("classes"))
                for p in self.active:
                    self.results[p.name].classes = classes
                return False
            if kind == "import_error":
                status = (
                    out.NOT_IMPLEMENTED if meta.get("status") == out.NOT_IMPLEMENTED else out.ERROR
                )
                for p in self.active:
                    result = self.results[p.name]
                    result.import_status = status
                    result.import_message = _text(meta.get("message")) if p.show else ""
                    self.remaining[p.name].clear()
                self._drain_output()
                return True
            raise ProtocolError("a result arrived before the import")
        if kind == "case":
            if self.position >= len(cases) or meta.get("id") != cases[self.position].id:
                raise ProtocolError("a result for an unexpected case")
            case = cases[self.position]
            part = meta.get("part")
            if part == "rest" and self.partial is None:
                raise ProtocolError("the rest of a case before its forward part")
            n_probes = len(phase.probes.get(case.id, []))
            output = case_output(case.id, meta, arrays, phase.show, n_probes, self.partial)
            if part == "forward":
                self.partial = output
                return False
            skipped = self.runner.skipped.get((case.activation, "backward"))
            if skipped:
                _not_run(output, ("backward", "dLdbeta"), out.TIMEOUT, skipped)
            self.results[phase.name].cases[case.id] = output
            self.partial = None
            self.position += 1
            return False
        if kind == "done":
            if self.position != len(cases):
                raise ProtocolError("done before every case was run")
            self._drain_output()
            cases.clear()
            extra = phase.followup(self.results[phase.name]) if phase.followup else None
            if extra is not None and extra.cases:
                if phase.show < extra.show:
                    raise ValueError("a follow-up may not show output after a silent phase")
                self.active.insert(self.index + 1, extra)
                self.remaining[extra.name] = list(extra.cases)
                self.results[extra.name] = RunOutput(sandbox=self.results[phase.name].sandbox)
                if not extra.graded:
                    self.runner.ungraded.add(extra.name)
            self.index += 1
            if self.index == len(self.active):
                # Let the zygote reap and sweep now, while the grader compares.
                self.runner.kill()
                return True
            self._start_phase(first=False)
            return False
        raise ProtocolError(f"unexpected message {str(kind)[:20]!r}")

    def _where(self) -> str:
        """The step the child was in: the import, or a phase of the current case."""
        if not self.imported:
            return "importing the file"
        if not self.careful:
            return "a batch of cases"
        return "backward" if self.partial is not None else "forward"

    def _stopped(self, status: str, message: str) -> Stop | None:
        """The child stopped on the current case: keep what it finished, report where."""
        self._drain_output()
        phase = self.phase
        cases = self.remaining[phase.name]
        del cases[: self.position]
        if not self.imported:
            for p in self.active:
                result = self.results[p.name]
                result.import_status = status
                result.import_message = message
                self.remaining[p.name].clear()
            return None
        if not cases:
            return None
        if not self.careful:
            # Results come a batch at a time: the case at fault is not known yet.
            return Stop(phase.name, None, status, message)
        return Stop(phase.name, cases[0], status, message, self.partial)

    def _timeout(self, how: str, budget: str = "") -> Stop | None:
        self.runner.kill()
        return self._stopped(out.TIMEOUT, budget or f"{self._where()} {how}")

    def _died(self) -> Stop | None:
        # Dead, or alive with its socket closed: make sure, then ask how it ended.
        self.runner.kill()
        oom = self.runner.zygote.launched.oom_killed() > self.oom_before
        message = f"{_describe_exit(self.runner.exit_info(), oom)} during {self._where()}"
        if not self.imported:
            message = f"the file could not be imported: {message}"
        return self._stopped(out.CRASHED, message)

    def _read_output(self) -> bool:
        if self.out_r is None:
            return False
        try:
            data = os.read(self.out_r, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.out_r)
            return False
        result = self.results[self.phase.name]
        room = self.limits.max_output - len(result.stdout)
        if self.phase.show and room > 0:
            result.stdout += data[:room].decode("utf-8", errors="replace")
        return True

    def _drain_output(self) -> None:
        # The child flushes its output before each 'done', so what it printed is in
        # the pipe now; read what is there without waiting for an end that a
        # lingering process could postpone.
        for _ in range(1 << 12):
            if self.out_r is None or not self._read_output():
                return
            try:
                if not select.select([self.out_r], [], [], 0)[0]:
                    return
            except (OSError, ValueError):
                return
