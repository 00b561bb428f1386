"""The frame codec: the only format that crosses between the grader and a worker.

A frame is two lengths, a JSON header and raw array bytes whose dtype comes
from a short allow-list, so decoding a frame can never execute code (no
pickle anywhere). The grader decodes every frame it receives with
:class:`FrameDecoder`, which validates sizes, shapes and dtypes.

Shared by the grader and the worker; standard library and numpy only.
"""

from __future__ import annotations

import json
import socket
import struct

import numpy as np

HEADER = struct.Struct(">II")  # JSON header length, payload length
MAX_HEADER_BYTES = 1 << 20
MAX_NDIM = 8
# dtypes a frame may carry: plain little-endian numbers only.
ALLOWED_DTYPES = frozenset({"<f8", "<f4", "<f2", "|b1", "|u1", "<i8", "<i4"})

Frame = tuple[dict, dict[str, np.ndarray]]


class ProtocolError(Exception):
    """A frame that breaks the protocol (malformed, oversized, wrong dtype).

    ``frames`` holds the well-formed frames that arrived before the bad one,
    so a reader can still act on them.
    """

    def __init__(self, message: str, frames: list[Frame] | None = None) -> None:
        super().__init__(message)
        self.frames: list[Frame] = frames or []


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


def parse_frame(header: bytes, payload: bytes) -> Frame:
    """Decode one frame's JSON header and payload, validating everything."""
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

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames completed by them, in order.

        A bad frame raises :class:`ProtocolError` carrying the good frames
        decoded before it, so none of them is lost.
        """
        self.buffer += data
        frames: list[Frame] = []
        while len(self.buffer) >= HEADER.size:
            hlen, plen = HEADER.unpack_from(self.buffer)
            if hlen > MAX_HEADER_BYTES or plen > self.max_payload:
                raise ProtocolError(f"frame too large ({hlen} + {plen} bytes)", frames)
            end = HEADER.size + hlen + plen
            if len(self.buffer) < end:
                break
            header = bytes(self.buffer[HEADER.size : HEADER.size + hlen])
            payload = bytes(self.buffer[HEADER.size + hlen : end])
            del self.buffer[:end]
            try:
                frames.append(parse_frame(header, payload))
            except ProtocolError as exc:
                raise ProtocolError(str(exc), frames) from None
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
    meta, arrays = parse_frame(header, payload)
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
