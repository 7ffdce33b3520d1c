"""The wire format on its own: round trips, bit-exact tensors, and everything the decoder refuses."""
from __future__ import annotations

import json
import math
import os
import struct

import numpy as np
import pytest
import torch

from autograder.sandbox.protocol import (
    MAGIC,
    PREFIX,
    FrameReader,
    Handle,
    ProtocolError,
    decode,
    encode,
    read_frame,
    write_frame,
)


def roundtrip(value, **kw):
    chunks = encode(value, **kw)
    frame = b"".join(bytes(memoryview(c).cast("B")) for c in chunks)
    header_len, payload_len = struct.unpack("<4sIQ", frame[:16])[1:]
    return decode(frame[16:16 + header_len], frame[16 + header_len:])


def raw_frame(tree, buffers=()):
    header = json.dumps({"v": tree, "b": [len(b) for b in buffers]}).encode()
    return header, b"".join(buffers)


def same(a, b) -> bool:
    """Structural equality that also checks types (1 vs 1.0 vs True) and tensors bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and a.view(-1).view(torch.uint8).equal(b.view(-1).view(torch.uint8))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


PLAIN = [
    None, True, False, 0, -7, 2 ** 80, 1.5, -0.0, float("nan"), float("inf"), float("-inf"), 1e-310,
    "", "héllo \u2603 \x00", b"", b"\x00\xffbytes", [], (), {}, [1, (2.0, "x"), {"k": [None]}],
    {"b": 1, "a": 2}, (True, 1, 1.0), Handle(3, "train_torch.VAE"),
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_round_trip(value):
    assert same(roundtrip(value), value)


TENSOR_DTYPES = [torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int8, torch.int16,
                 torch.int32, torch.int64, torch.uint8, torch.bool]


@pytest.mark.parametrize("dtype", TENSOR_DTYPES, ids=str)
def test_tensors_bit_exact(dtype):
    g = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        t = (torch.randn(5, 7, generator=g) * 1000).to(dtype)
        t[0, :4] = torch.tensor([float("nan"), float("inf"), float("-inf"), -0.0]).to(dtype)
    elif dtype == torch.bool:
        t = torch.rand(5, 7, generator=g) > 0.5
    else:
        info = torch.iinfo(dtype)
        t = torch.randint(info.min, info.max, (5, 7), generator=g, dtype=torch.int64).to(dtype)
    for value in (t, t.t(), t[1:, ::2], t[0, 0], t[:0]):  # non-contiguous, 0-dim, empty
        back = roundtrip(value)
        assert type(back) is torch.Tensor and back.is_contiguous() and not back.requires_grad
        assert same(back, value.contiguous())
        back.view(-1)[:1] = 0 if back.numel() else 0  # owns writable memory


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"])
def test_numpy_arrays_round_trip(dtype):
    a = (np.arange(24) % 3 == 0) if dtype == "bool" else (np.arange(24) * 37 - 100).astype(dtype)
    a = a.reshape(2, 3, 4)
    for value in (a, a[:, ::2], a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a):
        back = roundtrip(value)
        assert type(back) is np.ndarray and back.flags.writeable and back.flags.owndata
        assert back.dtype == np.dtype(dtype) and np.array_equal(back, value)


def test_numpy_scalars_become_python_scalars():
    assert same(roundtrip([np.float32(0.5), np.int64(3), np.bool_(True)]), [0.5, 3, True])


def test_tensor_subclass_arrives_plain():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

        __hash__ = torch.Tensor.__hash__

    lying = torch.zeros(3).as_subclass(Liar)
    back = roundtrip(lying)
    assert type(back) is torch.Tensor
    assert not bool((back == torch.ones(3)).all())


def test_requires_grad_only_when_asked():
    x = torch.ones(2, requires_grad=True)
    chunks = encode(x)
    frame = b"".join(bytes(memoryview(c).cast("B")) for c in chunks)
    hl = struct.unpack("<4sIQ", frame[:16])[1]
    assert not decode(frame[16:16 + hl], frame[16 + hl:]).requires_grad
    assert decode(frame[16:16 + hl], frame[16 + hl:], grad=True).requires_grad


def test_unsupported_values_are_refused_or_become_handles():
    for value in (object(), {1: 2}, lambda: 0, torch.zeros(2, dtype=torch.complex64), {1.5, 2}):
        with pytest.raises(ProtocolError):
            encode(value)
    table = []

    def to_handle(obj):
        table.append(obj)
        return Handle(len(table), type(obj).__name__)

    back = roundtrip([object(), {1: 2}, torch.zeros(2, dtype=torch.complex64)], to_handle=to_handle)
    assert [h.type_name for h in back] == ["object", "dict", "Tensor"]


def test_cycles_and_size_limits():
    a = []
    a.append(a)
    with pytest.raises(ProtocolError, match="deeper"):
        encode(a)
    with pytest.raises(ProtocolError, match="larger"):
        encode(torch.zeros(1 << 20), max_bytes=1 << 20)


BAD_TREES = {
    "raw JSON array": ([1, 2], []),
    "unknown tag": ({"x": 1}, []),
    "two keys": ({"l": [], "t": []}, []),
    "bad float tag": ({"f": "1.5"}, []),
    "dtype not allowed": ({"T": ["complex64", [1], 0, False]}, [b"\0" * 8]),
    "object dtype": ({"N": ["object", [1], 0]}, [b"\0" * 8]),
    "size mismatch": ({"T": ["float32", [3], 0, False]}, [b"\0" * 8]),
    "negative dim": ({"T": ["float32", [-1], 0, False]}, [b""]),
    "float dim": ({"T": ["float32", [1.0], 0, False]}, [b"\0" * 4]),
    "too many dims": ({"T": ["uint8", [1] * 40, 0, False]}, [b"\0"]),
    "bad buffer index": ({"b": 3}, [b"x"]),
    "bool with 2": ({"T": ["bool", [2], 0, False]}, [b"\x01\x02"]),
    "bad handle": ({"h": ["1", "x"]}, []),
    "deep nesting": (json.loads("[" * 0 + '{"l":' * 100 + "[]" + "}" * 100), []),
}


@pytest.mark.parametrize("name", list(BAD_TREES))
def test_decoder_refuses(name):
    tree, buffers = BAD_TREES[name]
    header, payload = raw_frame(tree, buffers)
    with pytest.raises(ProtocolError):
        decode(header, payload)


@pytest.mark.parametrize("header", [
    b"not json", b'{"v": NaN, "b": []}', b'{"v": 1, "b": [], "x": 0}', b'{"v": 1, "v": 2, "b": []}',
    b'{"v": 1, "b": [5]}', b'[1]', b'{"v": 1, "b": [-1]}', b"\xff\xfe", b'{"v":' * 5000,
])
def test_decoder_refuses_bad_headers(header):
    with pytest.raises(ProtocolError):
        decode(header, b"")


def test_frames_over_a_pipe_and_prefix_checks():
    r, w = os.pipe()
    value = {"t": torch.arange(10.0), "s": "x" * 1000}
    write_frame(w, encode(value))
    write_frame(w, encode(1))
    header, payload = read_frame(r)
    assert same(decode(header, payload), value)
    reader = FrameReader()
    os.set_blocking(r, False)
    assert reader.pump(r)
    assert decode(*reader.take()) == 1
    os.write(w, PREFIX.pack(b"EVIL", 0, 0))
    with pytest.raises(ProtocolError, match="magic"):
        reader.pump(r)
    os.write(w, PREFIX.pack(MAGIC, 10, 1 << 40))  # asks for 1 TB: refused before allocating
    with pytest.raises(ProtocolError, match="exceeds"):
        FrameReader().pump(r)
    os.close(w)
    os.close(r)
