"""The worker: the only code that runs in a process with student code.

A *zygote* process imports numpy (and scipy.special when present) once, then
forks one *child* per submission run. The child receives the submission's
files and the case inputs, imports the student's module, runs each case
(``forward`` then ``backward`` on a fresh instance) and streams back plain
numbers. It never sees an expected value: those stay in the grader.

Everything that crosses a process boundary is a frame: two lengths, a JSON
header and raw array bytes whose dtype comes from a short allow-list, so
loading a frame can never execute code (no pickle anywhere). The grader
validates every frame it receives with :class:`FrameDecoder`.

This file imports only the standard library and numpy, so the sandbox can
mount it alone, without the rest of the grader (which holds hidden cases).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

# --------------------------------------------------------------------- frames

HEADER = struct.Struct(">II")  # JSON header length, payload length
MAX_HEADER_BYTES = 1 << 20
MAX_NDIM = 8
# dtypes a frame may carry: plain little-endian numbers only.
ALLOWED_DTYPES = frozenset({"<f8", "<f4", "<f2", "|b1", "|u1", "<i8", "<i4"})


class ProtocolError(Exception):
    """A frame that breaks the protocol (malformed, oversized, wrong dtype)."""


def encode_frame(meta: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Serialize ``meta`` (JSON-able) and named arrays into one frame."""
    specs = []
    chunks = []
    for name, array in (arrays or {}).items():
        a = np.asarray(array)  # (not ascontiguousarray: it turns 0-d into 1-d)
        if a.dtype.str not in ALLOWED_DTYPES:
            a = a.real.astype(np.float64) if a.dtype.kind == "c" else a.astype(np.float64)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        specs.append([name, a.dtype.str, list(a.shape)])
        chunks.append(a.tobytes())
    header = json.dumps({"meta": meta, "arrays": specs}, allow_nan=False).encode()
    payload = b"".join(chunks)
    return HEADER.pack(len(header), len(payload)) + header + payload


def _parse_frame(header: bytes, payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        doc = json.loads(header)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("meta"), dict):
        raise ProtocolError("frame header has no meta object")
    specs = doc.get("arrays")
    if not isinstance(specs, list):
        raise ProtocolError("frame header has no array list")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for spec in specs:
        if not (isinstance(spec, list) and len(spec) == 3):
            raise ProtocolError("malformed array spec")
        name, dtype, shape = spec
        if not isinstance(name, str) or dtype not in ALLOWED_DTYPES:
            raise ProtocolError(f"array dtype {str(dtype)[:20]!r} is not allowed")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_NDIM
            or not all(type(n) is int and 0 <= n < 1 << 31 for n in shape)
        ):
            raise ProtocolError("malformed array shape")
        dt = np.dtype(dtype)
        count = 1
        for n in shape:
            count *= n
        nbytes = count * dt.itemsize
        if offset + nbytes > len(payload):
            raise ProtocolError("array data shorter than its shape says")
        arrays[name] = np.frombuffer(payload, dtype=dt, count=count, offset=offset).reshape(
            tuple(shape)
        )
        offset += nbytes
    if offset != len(payload):
        raise ProtocolError("frame payload longer than its arrays")
    return doc["meta"], arrays


class FrameDecoder:
    """Incremental, validating frame parser for bytes read from a stream."""

    def __init__(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict, dict[str, np.ndarray]]]:
        """Add bytes; return the frames completed by them, in order."""
        self.buffer += data
        frames = []
        while len(self.buffer) >= HEADER.size:
            hlen, plen = HEADER.unpack_from(self.buffer)
            if hlen > MAX_HEADER_BYTES or plen > self.max_payload:
                raise ProtocolError(f"frame too large ({hlen} + {plen} bytes)")
            end = HEADER.size + hlen + plen
            if len(self.buffer) < end:
                break
            header = bytes(self.buffer[HEADER.size : HEADER.size + hlen])
            payload = bytes(self.buffer[HEADER.size + hlen : end])
            del self.buffer[:end]
            frames.append(_parse_frame(header, payload))
        return frames


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_frame(
    sock: socket.socket, max_payload: int = 1 << 30, maxfds: int = 0
) -> tuple[dict, dict[str, np.ndarray], list[int]]:
    """Blocking read of one frame (and any file descriptors sent with it)."""
    fds: list[int] = []
    if maxfds:
        data, fds, _flags, _addr = socket.recv_fds(sock, HEADER.size, maxfds)
        if not data:
            raise EOFError("peer closed the channel")
        data += _recv_exact(sock, HEADER.size - len(data))
    else:
        data = _recv_exact(sock, HEADER.size)
    hlen, plen = HEADER.unpack(data)
    if hlen > MAX_HEADER_BYTES or plen > max_payload:
        raise ProtocolError("frame too large")
    header = _recv_exact(sock, hlen)
    payload = _recv_exact(sock, plen)
    meta, arrays = _parse_frame(header, payload)
    return meta, arrays, list(fds)


def send_frame(
    sock: socket.socket, meta: dict, arrays: dict | None = None, fds: list[int] | None = None
) -> None:
    """Blocking write of one frame, optionally passing file descriptors."""
    data = encode_frame(meta, arrays)
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        data = data[sent:]
    if data:
        sock.sendall(data)


# ------------------------------------------------------------ Linux process controls

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# ------------------------------------------------------------------- the child

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


def _run_case(module, case: dict, arrays: dict, call: _Call) -> tuple[dict, dict]:
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
    Z = Z0.copy()
    A, fwd = call(instance.forward, Z)
    meta["forward"] = fwd
    if fwd["status"] == "ok":
        value, desc = _to_array(A)
        fwd.update(desc)
        if value is not None:
            out["A"] = value
        meta["stored_A"] = _stored_state(instance, A, value)
        meta["Z_modified"] = _changed(Z0, Z)
        dLdA = dLdA0.copy()
        dLdZ, bwd = call(instance.backward, dLdA)
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
            value, info = call(probe_instance.forward, P.copy())
            if info["status"] == "ok":
                value, desc = _to_array(value)
                if value is not None and value.shape == P.shape:
                    out[f"P{j}"] = value
                    probes.append("ok")
                    continue
        probes.append("failed")
    if probes:
        meta["probes"] = probes
    return meta, out


def _run_cases(sock: socket.socket, module, job: dict, arrays: dict, call: _Call) -> None:
    """Run a job's cases and send their results.

    In batch mode the results of one activation travel together (fewer
    messages, fewer wake-ups); after a crash or a hang the grader asks for
    careful mode, one message per case, so the case at fault is known.
    """
    batch = bool(job.get("batch"))
    pending: list[bytes] = []
    current = None
    for case in job["cases"]:
        if batch and pending and case["cls"] != current:
            sock.sendall(b"".join(pending))
            pending = []
        current = case["cls"]
        meta, out = _run_case(module, case, arrays, call)
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


def child_main(sock: socket.socket, out_fd: int, spawn: dict) -> None:
    """Entry point of a forked child: set up, run the job, stream results, exit."""
    code = 0
    try:
        os.setsid()
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        keep = {0, 1, 2, sock.fileno()}
        for fd in _open_fds():
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        root = spawn["scratch"]
        zygote = os.getppid()
        _drop_privileges(spawn.get("uid"), spawn.get("gid"))
        # A uid change clears the parent-death signal (prctl(2)): set it again, and
        # leave at once if the zygote already died in between.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote:
            os._exit(70)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _set_limits(spawn.get("limits", {}))
        job, arrays, _ = recv_frame(sock)
        _write_files(root, job["files"], arrays)
        os.chdir(root)
        sys.path[:] = [root, *spawn.get("sys_path", [])]
        sys.argv[:] = ["activation.py"]
        call = _Call(root, bool(job.get("show_errors", True)))
        if not call.show:
            _silence()
        module, info = call(_load_module, job["entry"], job["module"], root)
        if info["status"] != "ok":
            send_frame(sock, {"type": "import_error", **info})
            return
        send_frame(sock, {"type": "imported"})
        while True:
            _run_cases(sock, module, job, arrays, call)
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


# ------------------------------------------------------------------ the zygote


def descendants(root_pid: int) -> list[int]:
    """Every process below ``root_pid`` (Linux /proc; empty elsewhere), deepest first.

    Found through parent links, so a process that changed its session, group
    or user is still found.
    """
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    stack = [root_pid]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found[::-1]


def _remove_tree(path: str) -> None:
    """Delete ``path`` without leaving its filesystem (mounted runtimes stay).

    A submission may chmod its files to 000; the owner can always unlock them.
    """
    try:
        top = os.lstat(os.path.dirname(path) or ".").st_dev
        info = os.lstat(path)
    except OSError:
        return
    if info.st_dev != top:
        return  # a mount point: not ours to delete
    if not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    try:
        entries = os.listdir(path)
    except OSError:
        entries = []
    for entry in entries:
        _remove_tree(os.path.join(path, entry))
    with contextlib.suppress(OSError):
        os.rmdir(path)


class Zygote:
    """Forks children on request and makes sure nothing they start survives them."""

    def __init__(self, ctl: socket.socket, pid_namespace: bool) -> None:
        self.ctl = ctl
        self.pid_namespace = pid_namespace
        self.child: int | None = None
        self.seq: int | None = None  # the grader's number for the current child
        self.pidfd: int | None = None
        self.scratch: str | None = None
        self.base = tempfile.mkdtemp(prefix="autograder-zygote-")
        # Children that dropped to another uid must still reach their scratch dirs.
        os.chmod(self.base, 0o711)
        self.has_proc = os.path.isdir("/proc/self")
        # Orphans of a child are re-parented to us, so sweep() can find them.
        self.subreaper = _prctl(PR_SET_CHILD_SUBREAPER, 1)
        # Same-uid children may not ptrace us or read our memory.
        _prctl(PR_SET_DUMPABLE, 0)

    def sweep(self) -> None:
        """Kill every process a child left behind and reap them all.

        Signalled processes take a moment to die; the loop goes on until no
        descendant is left (zombies included), or a few seconds have passed.
        """
        deadline = time.monotonic() + 5.0
        while True:
            signalled = self._signal_leftovers()
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                if not signalled:
                    return  # no children and nothing else to signal: clean
                continue
            if time.monotonic() > deadline:
                return
            time.sleep(0.0002)  # let the signalled processes die

    def _signal_leftovers(self) -> bool:
        """SIGKILL every leftover process; True if there was any."""
        if self.pid_namespace:
            # Alone in our PID namespace (bwrap's init aside): signal everything.
            try:
                os.kill(-1, signal.SIGKILL)
                return True
            except ProcessLookupError:
                return False
        if self.has_proc and self.subreaper:
            pids = descendants(os.getpid())
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            return bool(pids)
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child, signal.SIGKILL)
        return False

    def spawn(self, msg: dict, fds: list[int]) -> None:
        """Fork a child that talks to the grader over the sockets in ``fds``."""
        if self.child is not None:
            self.finish(report=True)
        res_fd, out_fd = fds
        self.scratch = tempfile.mkdtemp(prefix="run-", dir=self.base)
        if msg.get("uid") is not None and os.geteuid() == 0:
            os.chown(self.scratch, msg["uid"], msg.get("gid") or msg["uid"])
        spawn = {**msg, "scratch": self.scratch, "sys_path": [p for p in sys.path if p]}
        pid = os.fork()
        if pid == 0:
            self.ctl.close()
            child_main(socket.socket(fileno=res_fd), out_fd, spawn)
        os.close(res_fd)
        os.close(out_fd)
        self.child = pid
        try:
            self.pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.seq = msg.get("seq")
        send_frame(self.ctl, {"type": "spawned", "pid": pid, "seq": self.seq})

    def finish(self, report: bool) -> None:
        """Kill (if still running) and reap the child, sweep, clean its files."""
        if self.child is None:
            return
        status = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(self.child, 0)
        self._done(status, report)

    def _done(self, status: int | None, report: bool) -> None:
        pid = self.child
        self.child = None
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.sweep()
        self._clean()
        if report:
            info: dict = {"type": "exited", "pid": pid, "seq": self.seq}
            if status is not None:
                if os.WIFSIGNALED(status):
                    info["signal"] = os.WTERMSIG(status)
                else:
                    info["code"] = os.waitstatus_to_exitcode(status)
            send_frame(self.ctl, info)

    def _clean(self) -> None:
        for entry in os.listdir(self.base):
            _remove_tree(os.path.join(self.base, entry))
        if self.pid_namespace:
            # A private /tmp: whatever a submission wrote there goes too, except the
            # zygote's own directory and the read-only runtime mounted inside /tmp.
            tmp = tempfile.gettempdir()
            for entry in os.listdir(tmp):
                path = os.path.join(tmp, entry)
                if path != self.base:
                    _remove_tree(path)

    def poll_child(self) -> None:
        """Notice a child that exited on its own."""
        if self.child is None:
            return
        try:
            pid, status = os.waitpid(self.child, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child, None
        if pid:
            self._done(status, report=True)

    def serve(self) -> None:
        """The zygote's loop: handle grader requests and child exits until told to quit."""
        import selectors

        send_frame(
            self.ctl,
            {
                "type": "ready",
                "pid": os.getpid(),
                "uid": os.geteuid(),
                "subreaper": self.subreaper,
                "pid_namespace": self.pid_namespace,
            },
        )
        sel = selectors.DefaultSelector()
        sel.register(self.ctl, selectors.EVENT_READ, "ctl")
        while True:
            watched = self.pidfd
            if watched is not None:
                sel.register(watched, selectors.EVENT_READ, "child")
            events = sel.select(timeout=None if watched is not None or self.child is None else 0.05)
            if watched is not None:
                sel.unregister(watched)
            kinds = {key.data for key, _ in events}
            if "child" in kinds or (self.child is not None and watched is None):
                self.poll_child()
            if "ctl" in kinds:
                try:
                    msg, _, fds = recv_frame(self.ctl, max_payload=0, maxfds=2)
                except (EOFError, OSError, ProtocolError):
                    msg, fds = {"type": "quit"}, []
                kind = msg.get("type")
                if kind == "spawn" and len(fds) == 2:
                    self.spawn(msg, fds)
                elif kind == "kill":
                    self.finish(report=True)
                elif kind == "quit":
                    self.finish(report=False)
                    _remove_tree(self.base)
                    return
                else:
                    for fd in fds:
                        os.close(fd)


def zygote_main(argv: list[str]) -> None:
    """``python worker.py --zygote FD [--pid-namespace]``: serve the grader on FD."""
    fd = int(argv[argv.index("--zygote") + 1])
    # Die with the grader; never act on a terminal's signals.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Pay for the heavy imports once, here, instead of in every child.
    with contextlib.suppress(ImportError):
        import scipy.special  # noqa: F401
    ctl = socket.socket(fileno=fd)
    Zygote(ctl, pid_namespace="--pid-namespace" in argv).serve()
    # Everything is cleaned up; skip the interpreter's slow teardown of numpy and scipy.
    os._exit(0)


if __name__ == "__main__":
    zygote_main(sys.argv)
