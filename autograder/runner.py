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
import os
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

    def expect(self, kind: str, timeout: float) -> dict:
        """Wait for the next control message of ``kind``, dropping stale ones."""
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self._queue):
                if msg.get("type") == kind:
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
class _Job:
    cases: list[Case]
    probes: dict[str, list[np.ndarray]] = field(default_factory=dict)


class SubmissionRunner:
    """Runs one submission's cases on a zygote, restarting children as needed.

    ``get_zygote`` returns a running zygote, starting a new one if the last
    one died (a submission running as the zygote's uid can kill it).
    """

    def __init__(self, get_zygote: Callable[[], Zygote], limits: Limits) -> None:
        self.get_zygote = get_zygote
        self.zygote: Zygote | None = None
        self.limits = limits

    def run(
        self,
        files: SubmissionFiles,
        cases: list[Case],
        show: bool,
        probes: dict[str, list[np.ndarray]] | None = None,
        deadline: float | None = None,
    ) -> RunOutput:
        """Run ``cases`` on the submission; ``show`` keeps messages and output."""
        result = RunOutput()
        pending = list(cases)
        probes = probes or {}
        deadline = deadline if deadline is not None else time.monotonic() + self.limits.budget
        timeouts: dict[str, int] = {}
        zygote_failures = 0
        while pending:
            if time.monotonic() >= deadline:
                for case in pending:
                    result.cases[case.id] = CaseOutput.failed(
                        case.id, out.TIMEOUT, "the submission's total time budget ran out"
                    )
                break
            self.zygote = self.get_zygote()
            result.sandbox = self.zygote.plan.level
            try:
                stop = self._spawn_and_run(files, pending, probes, show, deadline, result)
            except WorkerError as exc:
                # The zygote itself failed (killed by the submission, or confused): replace it,
                # charge the case that was running, and give up after a second time.
                self.zygote.close()
                pending[:] = [c for c in pending if c.id not in result.cases]
                zygote_failures += 1
                message = f"the grading worker died ({exc})"
                if zygote_failures >= 2:
                    for case in pending:
                        result.cases[case.id] = CaseOutput.failed(case.id, out.CRASHED, message)
                    pending.clear()
                    break
                stop = (pending[0], out.CRASHED, message) if pending else None
            if stop is None:
                break
            # The child stopped on pending[0]; record it and skip what cannot succeed.
            case, status, message = stop
            result.cases[case.id] = CaseOutput.failed(case.id, status, message)
            pending.remove(case)
            result.events.append(f"{case.id}: {message}")
            if status == out.TIMEOUT:
                timeouts[case.activation] = timeouts.get(case.activation, 0) + 1
                if timeouts[case.activation] >= self.limits.timeouts_per_activation:
                    for other in [c for c in pending if c.activation == case.activation]:
                        result.cases[other.id] = CaseOutput.failed(
                            other.id,
                            out.TIMEOUT,
                            f"not run: {case.activation} timed out "
                            f"{timeouts[case.activation]} times",
                        )
                        pending.remove(other)
        return result

    def _spawn_and_run(self, files, pending, probes, show, deadline, result):
        """One child: returns None when done, or (case, status, message) where it stopped."""
        z = self.zygote
        res_parent, res_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        try:
            z.send(
                {
                    "type": "spawn",
                    "uid": z.plan.uid,
                    "gid": z.plan.gid,
                    "limits": self.limits.rlimits(),
                },
                fds=[res_child.fileno(), out_w],
            )
        finally:
            res_child.close()
            os.close(out_w)
        try:
            z.expect("spawned", timeout=30)
            return self._converse(res_parent, out_r, files, pending, probes, show, deadline, result)
        finally:
            res_parent.close()
            os.close(out_r)

    def _job_frame(self, files, pending, probes, show) -> bytes:
        names, arrays = files.frame_arrays()
        meta_cases = []
        for case in pending:
            extra = probes.get(case.id, [])
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
            "entry": files.entry,
            "module": files.module,
            "cases": meta_cases,
            "show_errors": show,
        }
        return encode_frame(meta, arrays)

    def _converse(self, sock, out_r, files, pending, probes, show, deadline, result):
        limits = self.limits
        z = self.zygote
        job = self._job_frame(files, pending, probes, show)
        decoder = FrameDecoder(max_payload=limits.max_frame)
        sel = selectors.DefaultSelector()
        sock.setblocking(False)
        os.set_blocking(out_r, False)
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "res")
        sel.register(out_r, selectors.EVENT_READ, "out")
        sel.register(z.ctl, selectors.EVENT_READ, "ctl")
        sent = 0
        imported = False
        done = False
        exited: dict | None = None
        position = 0  # index in pending of the case being run
        call_deadline = time.monotonic() + limits.import_timeout
        stop = None
        try:
            while True:
                now = time.monotonic()
                limit = min(call_deadline, deadline)
                if now >= limit:
                    reason = "import" if not imported else "case"
                    stop = self._timeout(
                        reason, pending, position, imported, result, limit == deadline
                    )
                    break
                for key, mask in sel.select(limit - now):
                    if key.data == "out":
                        self._read_output(out_r, result, show)
                    elif key.data == "ctl":
                        for msg in z.poll():
                            if msg.get("type") == "exited":
                                exited = msg
                    elif mask & selectors.EVENT_WRITE and sent < len(job):
                        try:
                            sent += sock.send(job[sent : sent + (1 << 20)])
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            sent = len(job)
                        if sent >= len(job):
                            sel.modify(sock, selectors.EVENT_READ, "res")
                    elif mask & selectors.EVENT_READ:
                        try:
                            data = sock.recv(1 << 20)
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            if exited is None:
                                # Dead, or alive with its socket closed: make sure.
                                self._kill()
                                exited = self._wait_exit()
                            stop = self._died(pending, position, imported, exited, result)
                            raise _Finished
                        for meta, arrays in decoder.feed(data):
                            kind = meta.get("type")
                            if not imported:
                                if kind == "imported":
                                    imported = True
                                elif kind == "import_error":
                                    result.import_status = (
                                        out.NOT_IMPLEMENTED
                                        if meta.get("status") == out.NOT_IMPLEMENTED
                                        else out.ERROR
                                    )
                                    result.import_message = (
                                        _text(meta.get("message")) if show else ""
                                    )
                                    done = True
                                    raise _Finished
                                else:
                                    raise ProtocolError("a result arrived before the import")
                            elif kind == "case":
                                if (
                                    position >= len(pending)
                                    or meta.get("id") != pending[position].id
                                ):
                                    raise ProtocolError("a result for an unexpected case")
                                case = pending[position]
                                result.cases[case.id] = case_output(
                                    case.id, meta, arrays, show, len(probes.get(case.id, []))
                                )
                                position += 1
                            elif kind == "done":
                                if position != len(pending):
                                    raise ProtocolError("done before every case was run")
                                done = True
                                raise _Finished
                            else:
                                raise ProtocolError(f"unexpected message {str(kind)[:20]!r}")
                            call_deadline = time.monotonic() + limits.call_timeout
        except _Finished:
            pass
        except ProtocolError as exc:
            self._kill()
            stop = self._stopped_at(
                pending,
                position,
                imported,
                out.CRASHED,
                f"the worker broke the protocol ({exc})",
                result,
            )
        finally:
            sel.close()
        if exited is None:
            # Every stop path has already asked the zygote to kill the child.
            exited = self._wait_exit()
        self._drain_output(out_r, result, show)
        # Drop the cases that completed; the one it stopped on is handled by run().
        del pending[:position]
        return None if done else stop

    def _stopped_at(self, pending, position, imported, status, message, result):
        if not imported:
            result.import_status = status
            result.import_message = message
            pending.clear()
            return None
        if position >= len(pending):
            return None
        return (pending[position], status, message)

    def _timeout(self, reason, pending, position, imported, result, budget):
        self._kill()
        if budget:
            message = "the submission's total time budget ran out"
        elif reason == "import":
            message = f"importing the file took longer than {self.limits.import_timeout:g} s"
        else:
            message = f"took longer than {self.limits.call_timeout:g} s"
        return self._stopped_at(pending, position, imported, out.TIMEOUT, message, result)

    def _died(self, pending, position, imported, exited, result):
        message = _describe_exit(exited)
        if not imported:
            message = f"the file could not be imported: {message}"
        return self._stopped_at(pending, position, imported, out.CRASHED, message, result)

    def _kill(self) -> None:
        with contextlib.suppress(WorkerError):
            self.zygote.send({"type": "kill"})

    def _wait_exit(self) -> dict | None:
        try:
            return self.zygote.expect("exited", timeout=10)
        except WorkerError:
            return None

    def _read_output(self, fd: int, result: RunOutput, show: bool) -> bool:
        try:
            data = os.read(fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        result.stdout_bytes += len(data)
        room = self.limits.max_output - len(result.stdout)
        if show and room > 0:
            result.stdout += data[:room].decode("utf-8", errors="replace")
        return True

    def _drain_output(self, fd: int, result: RunOutput, show: bool) -> None:
        # Everything the child started is dead by now ("exited" comes after the
        # sweep), so the pipe reaches EOF; the time bound is a second guard.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            sel = selectors.DefaultSelector()
            sel.register(fd, selectors.EVENT_READ)
            ready = sel.select(max(0.0, end - time.monotonic()))
            sel.close()
            if not ready or not self._read_output(fd, result, show):
                return


class _Finished(Exception):
    pass
