"""Grader side of the worker: start a zygote, run a submission's cases in a child.

The grader talks to the zygote over a control socket (spawn, kill, exited)
and to each child over its own socket (the job out, results back) plus a
pipe that captures what the student's code prints. Every read has a
deadline; a child that hangs, crashes or lies about the protocol loses the
case it was on, is killed together with everything it started, and a fresh
child carries on with the remaining cases.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import selectors
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autograder import outputs as out
from autograder.cases import Case
from autograder.outputs import CaseOutput, PhaseOutput, RunOutput
from autograder.sandbox import Launched, LaunchPlan, launch
from autograder.worker import FrameDecoder, ProtocolError, encode_frame, send_frame


class WorkerError(RuntimeError):
    """The worker infrastructure (not the student's code) failed."""


@dataclass
class Limits:
    """Time, memory and output limits of one submission's grading."""

    call_timeout: float = 2.0  # seconds for one case (forward + backward)
    import_timeout: float = 10.0  # seconds to import the student's module
    budget: float = 60.0  # seconds for the whole submission
    memory_bytes: int = 1 << 30  # address space of the child
    file_bytes: int = 16 << 20  # largest file the child may write
    open_files: int = 64
    processes: int = 64
    max_output: int = 64 << 10  # captured student output kept (bytes)
    max_frame: int = 32 << 20  # largest result frame accepted
    # Timeouts in one activation after which its remaining cases are skipped.
    timeouts_per_activation: int = 2

    def rlimits(self) -> dict:
        """The resource limits the child sets on itself before importing student code."""
        return {
            "cpu_s": int(self.budget) + 5,
            "memory_bytes": self.memory_bytes,
            "file_bytes": self.file_bytes,
            "open_files": self.open_files,
            "processes": self.processes,
        }


@dataclass
class SubmissionFiles:
    """The files of one submission as the worker will lay them out."""

    files: dict[str, bytes]
    entry: str  # path of the activation module among ``files``
    module: str  # the name it is imported under

    def frame_arrays(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """File names and their bytes as uint8 arrays, for a job frame."""
        names = sorted(self.files)
        arrays = {
            f"file:{i}": np.frombuffer(self.files[n], dtype=np.uint8) for i, n in enumerate(names)
        }
        return names, arrays


class Zygote:
    """A running zygote process and the grader's end of its control socket."""

    def __init__(self, plan: LaunchPlan, launched: Launched | None = None) -> None:
        self.plan = plan
        if launched is None:
            try:
                launched = launch(plan)
            except (OSError, subprocess.SubprocessError) as exc:
                raise WorkerError(f"cannot start the worker ({plan.level}): {exc}") from None
        self.proc = launched.proc
        self.ctl = launched.ctl
        self._stderr = launched.stderr
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
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            lines = self._stderr.read()[-2000:].decode(errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        return "no message"

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
                for meta, _ in self._decoder.feed(data):
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

    def alive(self) -> bool:
        """Whether the zygote process is still running."""
        return self.proc.poll() is None

    def close(self) -> None:
        """Ask the zygote to quit; kill it if it does not."""
        with contextlib.suppress(OSError, WorkerError):
            self.send({"type": "quit"})
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.ctl.close()
        self._stderr.close()


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
    shape = meta.get("shape")
    if isinstance(shape, list) and all(type(n) is int for n in shape[:8]):
        info["shape"] = shape[:8]
    warnings = meta.get("warnings")
    if isinstance(warnings, list):
        info["warnings"] = [_text(w, 200) for w in warnings[:5] if isinstance(w, str)]
    return info


def _phase(meta: object, value: np.ndarray | None, show: bool) -> PhaseOutput:
    if not isinstance(meta, dict):
        return PhaseOutput(out.SKIPPED)
    status = meta.get("status")
    if status not in (out.OK, out.ERROR, out.NOT_IMPLEMENTED, out.MISSING):
        status = out.ERROR
    array = None if value is None else np.array(value, dtype=np.float64)
    return PhaseOutput(
        status=status,
        value=array if status == out.OK else None,
        message=_text(meta.get("message")) if show else "",
        info=_info(meta) if show else {},
    )


def case_output(case_id: str, meta: dict, arrays: dict, show: bool, n_probes: int) -> CaseOutput:
    """Turn a worker's case frame into a validated :class:`CaseOutput`."""
    if meta.get("missing_class"):
        return CaseOutput.failed(case_id, out.MISSING, "")
    init = meta.get("init")
    if isinstance(init, dict) and init.get("status") != out.OK:
        failed = CaseOutput.failed(case_id, _phase(init, None, show).status, "")
        failed.forward = _phase(init, None, show)
        failed.forward.info["constructor"] = True
        return failed
    forward = _phase(meta.get("forward"), arrays.get("A"), show)
    backward = _phase(meta.get("backward"), arrays.get("dLdZ"), show)
    dLdbeta = _phase(meta.get("dLdbeta"), arrays.get("dLdbeta"), show)
    stored = meta.get("stored_A")
    probes: list[np.ndarray | None] = []
    for j in range(n_probes):
        p = arrays.get(f"P{j}")
        probes.append(None if p is None else np.array(p, dtype=np.float64))
    return CaseOutput(
        id=case_id,
        forward=forward,
        backward=backward,
        dLdbeta=dLdbeta,
        stored_A=stored if stored in ("same", "different", "none", "missing") else None,
        Z_modified=meta.get("Z_modified") is True,
        dLdA_modified=meta.get("dLdA_modified") is True,
        probes=probes,
    )


def _describe_exit(info: dict | None) -> str:
    if not info:
        return "the worker process stopped"
    sig = info.get("signal")
    if isinstance(sig, int):
        names = {
            9: "SIGKILL (killed, maybe by the memory limit)",
            11: "SIGSEGV (segmentation fault)",
            6: "SIGABRT (aborted)",
            24: "SIGXCPU (CPU time limit)",
            25: "SIGXFSZ (file size limit)",
        }
        return f"the process was killed by signal {sig} {names.get(sig, '')}".rstrip()
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

# Where a child stopped: (phase name, case, status, message); case None means
# somewhere in a batch of cases (rerun them one message at a time).
Stop = tuple[str, Case | None, str, str]


class SubmissionRunner:
    """Runs one submission's cases on a zygote, restarting children as needed.

    ``get_zygote`` returns a running zygote, starting a new one if the last
    one died (a submission running as the zygote's uid can kill it).
    """

    def __init__(self, get_zygote: Callable[[], Zygote], limits: Limits) -> None:
        self.get_zygote = get_zygote
        self.zygote: Zygote | None = None
        self.limits = limits
        self.ungraded: set[str] = set()
        # The child whose end (and sweep of leftovers) was not confirmed yet.
        self.unconfirmed: int | None = None

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
        """Run every phase's cases, in one child while it behaves; results by phase name."""
        shown = [p.show for p in phases]
        if shown != sorted(shown, reverse=True):
            raise ValueError("phases that show output must come before those that do not")
        results = {p.name: RunOutput() for p in phases}
        remaining = {p.name: list(p.cases) for p in phases}
        self.ungraded = {p.name for p in phases if not p.graded}
        deadline = deadline if deadline is not None else time.monotonic() + self.limits.budget
        timeouts: dict[str, int] = {}
        zygote_failures = 0
        careful = False  # one message per case, after something went wrong
        while any(remaining.values()):
            if time.monotonic() >= deadline:
                for name, cases in remaining.items():
                    for case in cases:
                        results[name].cases[case.id] = CaseOutput.failed(
                            case.id, out.TIMEOUT, "the submission's total time budget ran out"
                        )
                break
            self.zygote = self.get_zygote()
            for result in results.values():
                result.sandbox = self.zygote.plan.level
            try:
                stop = self._child(files, phases, remaining, results, deadline, careful)
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
                stop = (first, remaining[first][0], out.CRASHED, message)
            if stop is None:
                continue
            name, case, status, message = stop
            if name in self.ungraded:
                # Feedback only: give up on it, nothing is charged.
                remaining[name].clear()
                continue
            if case is None:
                # It stopped somewhere inside a batch of results: find out where.
                careful = True
                continue
            # The child stopped on this case; record it and skip what cannot succeed.
            results[name].cases[case.id] = CaseOutput.failed(case.id, status, message)
            remaining[name].remove(case)
            results[name].events.append(f"{case.id}: {message}")
            if status == out.TIMEOUT:
                timeouts[case.activation] = timeouts.get(case.activation, 0) + 1
                if timeouts[case.activation] >= self.limits.timeouts_per_activation:
                    note = f"not run: {case.activation} timed out {timeouts[case.activation]} times"
                    for other_name, cases in remaining.items():
                        for other in [c for c in cases if c.activation == case.activation]:
                            results[other_name].cases[other.id] = CaseOutput.failed(
                                other.id, out.TIMEOUT, note
                            )
                            cases.remove(other)
        return results

    def _job_frame(
        self, files: SubmissionFiles | None, cases: list[Case], phase: Phase, careful: bool
    ) -> bytes:
        names: list[str] = []
        arrays: dict[str, np.ndarray] = {}
        if files is not None:
            names, arrays = files.frame_arrays()
        meta_cases = []
        for case in cases:
            extra = phase.probes.get(case.id, [])
            meta_cases.append(
                {
                    "id": case.id,
                    "cls": case.activation,
                    "kwargs": case.kwargs,
                    "dLdbeta": "dLdbeta" in case.spec.points,
                    "probes": len(extra),
                }
            )
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

    def _child(self, files, phases, remaining, results, deadline, careful) -> Stop | None:
        """One child: run the remaining cases phase by phase; None when all are done."""
        z = self.zygote
        assert z is not None
        res_parent, res_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        z.poll()  # forget stale control messages of earlier children
        seq = next(_SEQ)
        self.unconfirmed = seq
        try:
            z.send(
                {
                    "type": "spawn",
                    "seq": seq,
                    "uid": z.plan.uid,
                    "gid": z.plan.gid,
                    "limits": self.limits.rlimits(),
                },
                fds=[res_child.fileno(), out_w],
            )
        finally:
            res_child.close()
            os.close(out_w)
        talk = _Conversation(self, res_parent, out_r, files, phases, remaining, results, careful)
        try:
            return talk.run(deadline)
        finally:
            talk.close()

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
    """The grader's side of one child's life: send jobs, read results, watch the clock."""

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
        self.imported = False
        self.job = b""
        self.sent = 0

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
        self.sel.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def run(self, deadline: float) -> Stop | None:
        self.sock.setblocking(False)
        os.set_blocking(self.out_r, False)
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.sel.register(self.out_r, selectors.EVENT_READ)
        self._start_phase(first=True)
        call_deadline = time.monotonic() + self.limits.import_timeout
        try:
            while True:
                now = time.monotonic()
                limit = min(call_deadline, deadline)
                if now >= limit:
                    return self._timeout(limit == deadline)
                for key, mask in self.sel.select(limit - now):
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
                    for meta, arrays in self.decoder.feed(data):
                        finished = self._handle(meta, arrays)
                        if finished:
                            return None
                    call_deadline = time.monotonic() + self.limits.call_timeout
        except ProtocolError as exc:
            self.runner.kill()
            return self._stopped(out.CRASHED, f"the worker broke the protocol ({exc})")

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
            n_probes = len(phase.probes.get(case.id, []))
            self.results[phase.name].cases[case.id] = case_output(
                case.id, meta, arrays, phase.show, n_probes
            )
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
            return (phase.name, None, status, message)
        return (phase.name, cases[0], status, message)

    def _timeout(self, budget: bool) -> Stop | None:
        self.runner.kill()
        if budget:
            message = "the submission's total time budget ran out"
        elif not self.imported:
            message = f"importing the file took longer than {self.limits.import_timeout:g} s"
        else:
            message = f"took longer than {self.limits.call_timeout:g} s"
        return self._stopped(out.TIMEOUT, message)

    def _died(self) -> Stop | None:
        # Dead, or alive with its socket closed: make sure, then ask how it ended.
        self.runner.kill()
        message = _describe_exit(self.runner.exit_info())
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
        result.stdout_bytes += len(data)
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
