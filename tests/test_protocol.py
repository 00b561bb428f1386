"""The worker channel: frames round-trip, and anything malformed is refused."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest

from autograder.isolation.worker.frames import HEADER, FrameDecoder, ProtocolError, encode_frame


def _frame(header: dict | bytes, payload: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return HEADER.pack(len(raw), len(payload)) + raw + payload


def test_round_trip_keeps_values_shapes_and_meta():
    A = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    frame = encode_frame({"type": "case", "id": "x"}, {"A": A, "b": np.array(2.5)})
    decoder = FrameDecoder(max_payload=1 << 20)
    # Fed one byte at a time: frames may arrive in any pieces.
    frames = [f for byte in frame for f in decoder.feed(bytes([byte]))]
    ((meta, arrays),) = frames
    assert meta == {"type": "case", "id": "x"}
    np.testing.assert_array_equal(arrays["A"], A)
    assert arrays["b"].shape == () and float(arrays["b"]) == 2.5


def test_unlisted_dtypes_are_converted_by_the_sender():
    frame = encode_frame({}, {"z": np.array([1 + 2j])})
    ((_, arrays),) = FrameDecoder(1 << 20).feed(frame)
    assert arrays["z"].dtype == np.float64


@pytest.mark.parametrize(
    "header, payload",
    [
        ({"meta": {}, "arrays": [["A", "|O", [1]]]}, b"\0" * 8),
        ({"meta": {}, "arrays": [["A", "<c16", [1]]]}, b"\0" * 16),
        ({"meta": {}, "arrays": [["A", "[('a', 'O')]", [1]]]}, b"\0" * 8),
        ({"meta": {}, "arrays": [["A", "<f8", [2]]]}, b"\0" * 8),
        ({"meta": {}, "arrays": [["A", "<f8", [1]]]}, b"\0" * 16),
        ({"meta": {}, "arrays": [["A", "<f8", [-1]]]}, b""),
        ({"meta": {}, "arrays": [["A", "<f8", [1.5]]]}, b"\0" * 8),
        ({"meta": {}, "arrays": [["A", "<f8", [1] * 9]]}, b"\0" * 8),
        ({"meta": [], "arrays": []}, b""),
        (b"not json", b""),
        (b"[" * 100000 + b"]" * 100000, b""),
    ],
    ids=[
        "object",
        "complex",
        "structured",
        "short",
        "long",
        "negative",
        "float-shape",
        "too-many-dims",
        "meta-not-object",
        "not-json",
        "deep-nesting",
    ],
)
def test_malformed_frames_are_refused(header, payload):
    with pytest.raises(ProtocolError):
        FrameDecoder(1 << 20).feed(_frame(header, payload))


def test_a_pickle_payload_is_data_never_code():
    class Boom:
        def __reduce__(self):
            return (exec, ("import os; os._exit(99)",))

    payload = pickle.dumps(Boom())
    # As an object array it is refused; as bytes it is only ever read as numbers.
    with pytest.raises(ProtocolError):
        FrameDecoder(1 << 20).feed(_frame({"meta": {}, "arrays": [["A", "|O", [1]]]}, payload[:8]))
    n = len(payload)
    ((_, arrays),) = FrameDecoder(1 << 20).feed(
        _frame({"meta": {}, "arrays": [["A", "|u1", [n]]]}, payload)
    )
    assert arrays["A"].dtype == np.uint8 and arrays["A"].tobytes() == payload


def test_oversized_frames_are_refused_before_reading_them():
    decoder = FrameDecoder(max_payload=1000)
    with pytest.raises(ProtocolError, match="too large"):
        decoder.feed(struct.pack(">II", 10, 1 << 30))
    with pytest.raises(ProtocolError, match="too large"):
        FrameDecoder(1000).feed(struct.pack(">II", 1 << 30, 0))
