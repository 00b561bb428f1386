"""The child: the only code that touches a student's objects.

A child is forked from the zygote for one submission run. It isolates itself
(new session, parent-death signal, its own output pipe, every other
descriptor closed, an unprivileged uid where the grader is root, no new
privileges, resource limits, the syscall filter), receives the submission's
files and the case inputs, imports the student's module and runs each case:
the constructor, ``forward`` then ``backward`` on a fresh instance, each
phase reported on its own. It sends back plain numbers as frames and never
sees an expected value: those stay in the grader.

Standard library and numpy only, plus the sibling modules of this folder.
"""

from __future__ import annotations

import contextlib
import inspect
import mmap
import os
import resource
import signal
import socket
import struct
import sys
import tempfile
import traceback
import warnings

import numpy as np

from .frames import encode_frame, recv_frame, send_frame
from .linux import PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, prctl, prefer_oom_kill

_MISSING = object()
MAX_MESSAGE = 2000


def _safe_str(obj: object, limit: int = 300) -> str:
    try:
        text = str(obj)
    except BaseException:  # a hostile __str__
        text = f"<{type(obj).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(obj: object) -> str:
    try:
        return type(obj).__name__
    except BaseException:
        return "object"


def _student_traceback(exc: BaseException, root: str) -> str:
    """A short traceback of the student's own frames only."""
    lines = []
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root)]
        for f in frames[-4:]:
            rel = os.path.relpath(f.filename, root)
            lines.append(f'  File "{rel}", line {f.lineno}, in {f.name}')
            if f.line:
                lines.append(f"    {f.line.strip()}")
    except BaseException:
        pass
    lines.append(f"{_type_name(exc)}: {_safe_str(exc)}")
    text = "\n".join(lines)
    return text[-MAX_MESSAGE:]


# str(dtype) is slow enough to matter at a hundred cases per submission.
_DTYPE_NAMES: dict[np.dtype, str] = {}


def _to_array(value: object) -> tuple[np.ndarray | None, dict]:
    """Convert a student's return value to float64, describing what it was."""
    info: dict = {"type": _type_name(value)}
    if isinstance(value, np.ndarray | np.generic) and not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        return None, info
    try:
        array = np.array(value, copy=True, subok=False)
        dtype = array.dtype
        name = _DTYPE_NAMES.get(dtype)
        if name is None:
            name = _DTYPE_NAMES.setdefault(dtype, str(dtype))
        info["dtype"] = name
        info["shape"] = list(array.shape)
        if dtype.kind not in "biuf":
            return None, info
        return (array if dtype == np.float64 else array.astype(np.float64)), info
    except BaseException as exc:
        info["error"] = _safe_str(exc)
        return None, info


def _scalar_to_array(value: object) -> tuple[np.ndarray | None, dict]:
    """Like :func:`_to_array`, also accepting Python numbers (for dLdbeta)."""
    if isinstance(value, bool | int | float) and not isinstance(value, bool):
        return np.array(float(value)), {"type": _type_name(value), "dtype": "float64", "shape": []}
    return _to_array(value)


def _changed(before: np.ndarray, after: object) -> bool:
    try:
        after = np.asarray(after)
        if after.shape != before.shape:
            return True
        if after.dtype == before.dtype and after.tobytes() == before.tobytes():
            return False  # the common case, decided without numpy ufuncs
        return not np.array_equal(before, after, equal_nan=True)
    except BaseException:
        return True


class _Call:
    """Run one student call, recording its outcome, warnings and exception.

    Warnings are caught by one hook installed for the child's whole life
    (cheaper than a ``catch_warnings`` block around every call).
    """

    def __init__(self, root: str, show: bool) -> None:
        self.root = root
        self.show = show
        self.caught: list = []
        warnings.simplefilter("always")
        warnings.showwarning = self._record

    def _record(self, message, category, filename, lineno, file=None, line=None) -> None:
        if len(self.caught) < 20:
            self.caught.append(message)

    def __call__(self, fn, *args):
        info: dict = {"status": "ok"}
        result = None
        caught = self.caught
        caught.clear()
        try:
            result = fn(*args)
        except NotImplementedError:
            info["status"] = "not_implemented"
        except BaseException as exc:
            info["status"] = "error"
            info["exception"] = _type_name(exc)
            if self.show:
                info["message"] = _student_traceback(exc, self.root)
        if caught and self.show:
            seen = []
            for message in caught:
                text = f"{_type_name(message)}: {_safe_str(message, 120)}"
                if text not in seen:
                    seen.append(text)
            info["warnings"] = seen[:5]
        return result, info


def _stored_state(instance: object, returned: object, value: np.ndarray | None) -> str:
    """Whether forward stored its output in ``self.A``: same, different, none, missing."""
    stored = _MISSING
    with contextlib.suppress(BaseException):
        stored = getattr(instance, "A", _MISSING)
    if stored is _MISSING:
        return "missing"
    if stored is returned:
        return "same"
    if stored is None:
        return "none"
    if value is None:
        return "different"
    return "different" if _changed(value, stored) else "same"


class Progress:
    """A counter in memory shared with the grader, advanced after each phase of a case.

    The grader reads it only when it checks the clocks, so cases in a batch
    are timed one by one without a message (and a wake-up) per case. The
    student's code could write it too; that only delays the grader's
    per-case verdict up to the batch's own CPU allowance.
    """

    def __init__(self, fd: int | None) -> None:
        self.count = 0
        self.view = None
        if fd is not None:
            with contextlib.suppress(OSError, ValueError):
                self.view = mmap.mmap(fd, 8)
            os.close(fd)

    def tick(self) -> None:
        """One more phase of a case is done."""
        self.count += 1
        if self.view is not None:
            struct.pack_into("<Q", self.view, 0, self.count)


_NO_PROGRESS = Progress(None)


def _method(instance: object, name: str, call: _Call) -> tuple[object, dict]:
    """Look up ``instance.name``; a class without that method is ``missing``, not a crash."""
    method, info = call(getattr, instance, name)
    if info["status"] == "error" and info.get("exception") == "AttributeError":
        info = {"status": "missing", "method": name}
    return method, info


# Longest parameter list reported for a method that cannot take its input.
MAX_SIGNATURE = 100
# The module's own classes reported after the import (names, for "did you mean").
MAX_CLASSES = 100
MAX_CLASS_NAME = 60


def _api_mismatch(method: object, name: str, info: dict) -> dict:
    """After a TypeError: ``api`` when the method cannot take one positional argument.

    Decided from the signature, never from the exception's text: a ``backward(self)``
    of the Spring 2023 API cannot bind dLdA, while a TypeError raised inside a
    method that takes its input stays an ``error``. Only looked at after a
    TypeError, so correct code pays nothing.
    """
    try:
        signature = inspect.signature(method)
        try:
            signature.bind(None)
        except TypeError:
            takes = str(signature)
            if len(takes) > MAX_SIGNATURE:
                takes = takes[: MAX_SIGNATURE - 4] + "...)"
            return {"status": "api", "method": name, "takes": takes}
    except BaseException:  # no signature (a builtin, a hostile __signature__): as it was
        pass
    return info


def _call_method(instance: object, name: str, arg: np.ndarray, call: _Call) -> tuple[object, dict]:
    """Look up and call ``instance.name(arg)``: missing, of another API, or its outcome."""
    method, info = _method(instance, name, call)
    if info["status"] != "ok":
        return None, info
    result, info = call(method, arg)
    if info["status"] == "error" and info.get("exception") == "TypeError":
        info = _api_mismatch(method, name, info)
    return result, info


def imported_frame(module: object) -> dict:
    """The import result: the module's own top-level class names (capped), for the
    grader's "did you mean GELU?" when a class it grades is not found."""
    names: list[str] = []
    try:
        own = getattr(module, "__name__", None)
        for key, value in list(vars(module).items())[: 10 * MAX_CLASSES]:
            if (
                isinstance(key, str)
                and isinstance(value, type)
                and getattr(value, "__module__", None) == own
                and len(key) <= MAX_CLASS_NAME
            ):
                names.append(key)
                if len(names) >= MAX_CLASSES:
                    break
    except BaseException:  # a hostile module: no names, no hint
        names = []
    return {"type": "imported", "classes": names}


def _run_case(
    module, case: dict, arrays: dict, call: _Call, send_part, progress=_NO_PROGRESS
) -> tuple[dict, dict]:
    """Run one case: constructor, forward, backward (and dLdbeta), then any probes.

    Each phase is reported on its own: a method that is missing, raises or
    returns garbage costs only its phase. ``send_part`` (careful mode) sends
    the forward result before backward starts, so a backward that hangs or
    crashes the process cannot take the forward result with it.
    """
    cid = case["id"]
    meta: dict = {"type": "case", "id": cid}
    out: dict[str, np.ndarray] = {}
    Z0 = np.array(arrays[f"Z:{cid}"])
    dLdA0 = np.array(arrays[f"dLdA:{cid}"])
    cls = getattr(module, case["cls"], _MISSING)
    if cls is _MISSING:
        meta["missing_class"] = True
        return meta, out
    instance, meta["init"] = call(lambda: cls(**case["kwargs"]))
    if meta["init"]["status"] != "ok":
        return meta, out
    skip = case.get("skip", ())
    Z = Z0.copy()
    A, fwd = _call_method(instance, "forward", Z, call)
    meta["forward"] = fwd
    if fwd["status"] == "ok":
        value, desc = _to_array(A)
        fwd.update(desc)
        if value is not None:
            out["A"] = value
        meta["stored_A"] = _stored_state(instance, A, value)
        meta["Z_modified"] = _changed(Z0, Z)
    progress.tick()
    if send_part is not None:
        send_part({**meta, "part": "forward"}, out)
        meta, out = {"type": "case", "id": cid, "part": "rest"}, {}
    if fwd["status"] == "ok" and "backward" not in skip:
        dLdA = dLdA0.copy()
        dLdZ, bwd = _call_method(instance, "backward", dLdA, call)
        meta["backward"] = bwd
        if bwd["status"] == "ok":
            value, desc = _to_array(dLdZ)
            bwd.update(desc)
            if value is not None:
                out["dLdZ"] = value
            meta["dLdA_modified"] = _changed(dLdA0, dLdA)
            if case.get("dLdbeta"):
                beta = _MISSING
                with contextlib.suppress(BaseException):
                    beta = getattr(instance, "dLdbeta", _MISSING)
                if beta is _MISSING:
                    meta["dLdbeta"] = {"status": "missing"}
                else:
                    value, desc = _scalar_to_array(beta)
                    meta["dLdbeta"] = {"status": "ok", **desc}
                    if value is not None:
                        out["dLdbeta"] = value
    probes = []
    for j in range(case.get("probes", 0)):
        P = np.array(arrays[f"P:{cid}:{j}"])
        probe_instance, info = call(lambda: cls(**case["kwargs"]))
        if info["status"] == "ok":
            value, info = call(lambda obj=probe_instance, P=P: obj.forward(P.copy()))
            if info["status"] == "ok":
                value, desc = _to_array(value)
                if value is not None and value.shape == P.shape:
                    out[f"P{j}"] = value
                    probes.append("ok")
                    progress.tick()
                    continue
        probes.append("failed")
        progress.tick()
    if probes:
        meta["probes"] = probes
    return meta, out


def _run_cases(
    sock: socket.socket, module, job: dict, arrays: dict, call: _Call, progress=_NO_PROGRESS
) -> None:
    """Run a job's cases and send their results.

    In batch mode the results of one activation travel together (fewer
    messages, fewer wake-ups); after a crash or a hang the grader asks for
    careful mode: one message per phase of each case, so the case and the
    phase at fault are known.
    """
    batch = bool(job.get("batch"))
    pending: list[bytes] = []
    current = None

    def send_part(meta: dict, out: dict) -> None:
        sock.sendall(encode_frame(meta, out))

    for case in job["cases"]:
        if batch and pending and case["cls"] != current:
            sock.sendall(b"".join(pending))
            pending = []
        current = case["cls"]
        meta, out = _run_case(module, case, arrays, call, None if batch else send_part, progress)
        progress.tick()
        frame = encode_frame(meta, out)
        if batch:
            pending.append(frame)
        else:
            sock.sendall(frame)
    if pending:
        sock.sendall(b"".join(pending))


def _load_module(entry: str, module_name: str, root: str):
    import importlib.util

    path = os.path.join(root, entry)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    if "." in module_name:
        module.__package__ = module_name.rpartition(".")[0]
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _write_files(root: str, names: list[str], arrays: dict) -> None:
    for i, name in enumerate(names):
        # The grader only sends relative, normalized paths; refuse anything else.
        if name.startswith("/") or ".." in name.split("/"):
            continue
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(arrays[f"file:{i}"].tobytes())


def _set_limits(limits: dict) -> None:
    pairs = {
        "cpu_s": resource.RLIMIT_CPU,
        "memory_bytes": resource.RLIMIT_AS,
        "file_bytes": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
        "processes": getattr(resource, "RLIMIT_NPROC", None),
    }
    for key, which in pairs.items():
        value = limits.get(key)
        if value is None or which is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (int(value), int(value)))
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_privileges(uid: int | None, gid: int | None) -> None:
    if uid is None or os.geteuid() != 0:
        return
    gid = uid if gid is None else gid
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _self_check(job: dict) -> dict:
    """What this child, set up exactly like a grading child, can reach.

    The grader lists the paths that must stay out of reach (expected values,
    the reference, hidden cases, caches, results) and modules that must
    import; the answer says which paths could be read or written and which
    imports failed. Nothing is read beyond the first byte.
    """
    readable, writable, import_errors = [], [], {}
    for path in job.get("read", []):
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                with open(path, "rb") as fh:
                    fh.read(1)
            readable.append(path)
        except OSError:
            pass
    for path in job.get("write", []):
        probe = (
            os.path.join(path, f".autograder-probe-{os.getpid()}") if os.path.isdir(path) else path
        )
        existed = os.path.lexists(probe)
        try:
            fd = os.open(probe, os.O_WRONLY | (0 if existed else os.O_CREAT | os.O_EXCL), 0o600)
        except OSError:
            continue
        os.close(fd)
        if not existed:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        writable.append(path)
    import importlib

    for name in job.get("imports", []):
        try:
            importlib.import_module(name)
        except BaseException as exc:
            import_errors[name] = f"{_type_name(exc)}: {_safe_str(exc, 200)}"
    return {
        "type": "self_check",
        "readable": readable,
        "writable": writable,
        "import_errors": import_errors,
        "uid": os.getuid(),
    }


def child_main(
    sock: socket.socket,
    out_fd: int,
    spawn: dict,
    syscall_filter=None,
    progress_fd=None,
    ruleset=None,
) -> None:
    """Entry point of a forked child: set up, run the job, stream results, exit.

    ``ruleset`` (Landlock) and ``syscall_filter`` (seccomp), both built once by
    the zygote, are enforced after the uid change and no_new_privs, and before
    the student's module is imported; a child that was promised either and
    cannot apply it runs no student code.
    """
    code = 0
    try:
        os.setsid()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        progress = Progress(progress_fd)
        keep = {0, 1, 2, sock.fileno()}
        if ruleset is not None:
            keep.add(ruleset.fd)
        for fd in _open_fds():
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        root = spawn["scratch"]
        zygote = os.getppid()
        # Under a cgroup memory limit the child, not the zygote, is the one to go.
        prefer_oom_kill()
        _drop_privileges(spawn.get("uid"), spawn.get("gid"))
        # A uid change clears the parent-death signal (prctl(2)): set it again, and
        # leave at once if the zygote already died in between.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote:
            os._exit(70)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        off = spawn.get("layers_off", ())
        if ruleset is not None:
            # Writes only beneath the run directory; no signal, ptrace or /proc/PID/mem
            # of any process outside. Raises (no student code runs) if it cannot apply.
            if "landlock" not in off:
                ruleset.restrict_self()
            ruleset.close()
        os.environ["TMPDIR"] = root
        tempfile.tempdir = root
        _set_limits(spawn.get("limits", {}))
        if syscall_filter is not None and "seccomp" not in off:
            syscall_filter.install()
        job, arrays, _ = recv_frame(sock)
        os.chdir(root)
        # The grader's and the worker's own directories stay off the student's path.
        sys.path[:] = [root, *spawn.get("sys_path", [])]
        if job.get("type") == "self_check":
            send_frame(sock, _self_check(job))
            return
        _write_files(root, job["files"], arrays)
        sys.argv[:] = ["activation.py"]
        call = _Call(root, bool(job.get("show_errors", True)))
        if not call.show:
            _silence()
        module, info = call(_load_module, job["entry"], job["module"], root)
        if info["status"] != "ok":
            send_frame(sock, {"type": "import_error", **info})
            return
        send_frame(sock, imported_frame(module))
        while True:
            _run_cases(sock, module, job, arrays, call, progress)
            # Everything printed so far is in the pipe before the grader reads 'done'.
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            send_frame(sock, {"type": "done"})
            try:
                job, arrays, _ = recv_frame(sock)
            except EOFError:
                return
            if call.show and not job.get("show_errors", True):
                # Hidden cases next: nothing printed from now on may reach anyone.
                call.show = False
                _silence()
    except BaseException:
        code = 70
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _silence() -> None:
    """Send stdout and stderr to /dev/null, at the descriptor and Python level."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115


def _open_fds() -> list[int]:
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))
