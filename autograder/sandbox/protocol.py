"""Wire format between the trusted grader and an untrusted worker (both sides use this file).

Nothing here can execute code when a message is *read*: a frame is a JSON header plus
raw byte buffers, and the decoder only ever builds plain values from them (no pickle,
no ``eval``, no import by name, no user classes).

Frame layout (all integers little-endian)::

    b"AGW1" | u32 header_len | u64 payload_len | header (UTF-8 JSON) | payload (buffers back to back)

The header is ``{"v": <value tree>, "b": [len0, len1, ...]}``; ``b`` lists the byte
lengths of the buffers in the payload, in order, and must add up to ``payload_len``.

Value tree (JSON), one node per Python value::

    null / true / false / "str" / 123 / 1.5   None, bool, str, int, finite float
    {"f": "nan" | "inf" | "-inf"}              non-finite float
    {"l": [...]}  {"t": [...]}                  list, tuple
    {"d": {"key": node, ...}}                   dict with str keys (order kept)
    {"b": i}                                    bytes: buffer i
    {"T": [dtype, shape, i, requires_grad]}     torch.Tensor: raw little-endian buffer i
    {"N": [dtype, shape, i]}                    numpy.ndarray: same
    {"h": [id, type_name]}                      Handle: an object that stays in the worker

Tensor and array dtypes come from a fixed allow-list (``DTYPES``). Decoded tensors are
fresh, contiguous, CPU, plain ``torch.Tensor`` objects (never subclasses) that own their
memory. The decoder checks sizes, nesting depth, node count, dtypes, shapes and buffer
lengths, and raises :class:`ProtocolError` for anything else.

``torch`` and ``numpy`` are imported lazily: encoding checks ``sys.modules`` (a value
cannot be a tensor if torch was never imported), decoding imports them on the first
tensor or array. This keeps the module importable on its own in the worker's
``_ag_worker`` folder (it must not import anything from the ``autograder`` package).
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

MAGIC = b"AGW1"
PREFIX = struct.Struct("<4sIQ")
MAX_HEADER_BYTES = 64 << 20
DEFAULT_MAX_BYTES = 512 << 20  # a whole frame, header and buffers together
MAX_DEPTH = 64
MAX_NODES = 2_000_000
MAX_NDIM = 32

# name -> (numpy dtype string used on the wire, bytes per element)
DTYPES: dict[str, tuple[str, int]] = {
    "float16": ("<f2", 2),
    "float32": ("<f4", 4),
    "float64": ("<f8", 8),
    "bfloat16": ("<u2", 2),  # numpy has no bfloat16: raw 16-bit words, re-viewed in torch
    "int8": ("i1", 1),
    "int16": ("<i2", 2),
    "int32": ("<i4", 4),
    "int64": ("<i8", 8),
    "uint8": ("u1", 1),
    "bool": ("u1", 1),  # validated to hold only 0 and 1
}
ARRAY_DTYPES = tuple(d for d in DTYPES if d != "bfloat16")


class ProtocolError(ValueError):
    """A message that this protocol refuses to encode or decode."""


@dataclass(frozen=True)
class Handle:
    """A reference to an object that lives in a worker (a model, an optimizer, ...).

    Only the worker can use it; the grader passes it back as an argument, calls
    methods on it or reads attributes through the worker.
    """

    id: int
    type_name: str

    def __repr__(self) -> str:
        return f"<worker object #{self.id}: {self.type_name}>"


# --------------------------------------------------------------------------- encoding


class _Encoder:
    """Turns a Python value into (tree, buffers); ``to_handle`` decides what to do with the rest."""

    def __init__(self, to_handle: Callable[[Any], Handle] | None, max_bytes: int) -> None:
        self.to_handle = to_handle
        self.max_bytes = max_bytes
        self.buffers: list[memoryview] = []
        self.total = 0
        self.nodes = 0
        self._np = sys.modules.get("numpy")
        self._torch = sys.modules.get("torch")

    def _buffer(self, data: Any) -> int:
        mv = memoryview(data).cast("B")
        self.total += mv.nbytes
        if self.total > self.max_bytes:
            raise ProtocolError(f"message larger than the limit of {self.max_bytes >> 20} MB")
        self.buffers.append(mv)
        return len(self.buffers) - 1

    def _fallback(self, value: Any, why: str) -> Any:
        if self.to_handle is None:
            raise ProtocolError(f"cannot send a value of type {type(value).__module__}.{type(value).__qualname__}: {why}")
        h = self.to_handle(value)
        return {"h": [int(h.id), str(h.type_name)]}

    def encode(self, value: Any, depth: int = 0) -> Any:
        self.nodes += 1
        if depth > MAX_DEPTH:
            raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels (a cycle?)")
        if self.nodes > MAX_NODES:
            raise ProtocolError(f"value has more than {MAX_NODES} elements")
        if value is None or value is True or value is False:
            return value
        t = type(value)
        if t is str:
            return value
        if t is int:
            return value
        if t is float:
            return value if math.isfinite(value) else {"f": "nan" if value != value else ("inf" if value > 0 else "-inf")}
        if isinstance(value, Handle):
            return {"h": [int(value.id), str(value.type_name)]}
        torch = self._torch or sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            return self._tensor(value, torch)
        np = self._np or sys.modules.get("numpy")
        if np is not None:
            if isinstance(value, np.ndarray):
                return self._ndarray(value, np)
            if isinstance(value, np.generic):
                item = value.item()
                if type(item) in (bool, int, float, str, bytes):
                    return self.encode(item, depth + 1)
                return self._fallback(value, "numpy scalar of an unsupported dtype")
        if t is bytes or t is bytearray or t is memoryview:
            return {"b": self._buffer(bytes(value) if t is memoryview and not value.c_contiguous else value)}
        if t is list or t is tuple or (torch is not None and t is torch.Size):
            items = [self.encode(v, depth + 1) for v in value]
            return {"l": items} if t is list else {"t": items}
        if t is dict:
            if all(type(k) is str for k in value):
                return {"d": {k: self.encode(v, depth + 1) for k, v in value.items()}}
            return self._fallback(value, "dict keys must be str")
        # Subclasses of plain types (IntEnum, OrderedDict, namedtuple, str subclasses...):
        # sent as their plain base value; what comes out is always the plain type.
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return self.encode(int.__index__(value), depth + 1)
        if isinstance(value, float):
            return self.encode(float.__float__(value), depth + 1)
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, depth + 1) for v in value]
            return {"l": items} if isinstance(value, list) else {"t": items}
        if isinstance(value, dict) and all(type(k) is str for k in value):
            return {"d": {k: self.encode(v, depth + 1) for k, v in dict.items(value)}}
        if torch is not None and isinstance(value, (torch.dtype, torch.device)):
            return str(value)
        return self._fallback(value, "not a plain value")

    def _tensor(self, value: Any, torch: Any) -> Any:
        try:
            return self._plain_tensor(value, torch)
        except ProtocolError:
            raise
        except Exception as exc:  # meta/nested/odd tensors: keep them in the worker
            return self._fallback(value, f"tensor not convertible ({type(exc).__name__}: {str(exc)[:100]})")

    def _plain_tensor(self, value: Any, torch: Any) -> Any:
        # Strip subclasses (a lying __eq__ must not survive), autograd, devices and
        # unusual layouts: what goes on the wire is always a plain dense CPU tensor.
        t = value
        if type(t) is not torch.Tensor:
            t = torch.Tensor.as_subclass(t, torch.Tensor)
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.layout != torch.strided:
            try:
                t = t.to_dense()
            except Exception as exc:  # quantized, nested, ...
                return self._fallback(value, f"tensor layout {t.layout} ({exc})")
        name = str(t.dtype).replace("torch.", "")
        if name not in DTYPES:
            return self._fallback(value, f"tensor dtype {name} is not one of {', '.join(DTYPES)}")
        t = t.resolve_conj().resolve_neg().contiguous()
        requires_grad = bool(value.requires_grad) if type(value) is torch.Tensor else False
        shape = [int(s) for s in t.shape]
        flat = t.reshape(-1)
        if name == "bfloat16":
            flat = flat.view(torch.int16)
        elif name == "bool":
            flat = flat.view(torch.uint8)
        arr = flat.numpy()
        if sys.byteorder != "little" and arr.dtype.itemsize > 1:
            arr = arr.byteswap()
        return {"T": [name, shape, self._buffer(arr), requires_grad]}

    def _ndarray(self, value: Any, np: Any) -> Any:
        arr = value
        if type(arr) is not np.ndarray:
            arr = np.asarray(arr).view(np.ndarray)
        kind = arr.dtype
        name = "bool" if kind == np.bool_ else kind.name
        if name not in ARRAY_DTYPES or kind.fields is not None:
            return self._fallback(value, f"array dtype {kind} is not one of {', '.join(ARRAY_DTYPES)}")
        wire = np.dtype(DTYPES[name][0])
        arr = np.ascontiguousarray(arr.astype(wire, copy=False) if name != "bool" else arr.view(np.uint8))
        return {"N": [name, [int(s) for s in arr.shape], self._buffer(arr.reshape(-1))]}


def encode(value: Any, *, to_handle: Callable[[Any], Handle] | None = None,
           max_bytes: int = DEFAULT_MAX_BYTES) -> list[Any]:
    """Encode ``value`` into a frame: a list of byte chunks to write back to back.

    Without ``to_handle`` any value outside the supported set raises ProtocolError; the
    worker passes a function that stores such a value in its object table and returns a
    :class:`Handle` for it.
    """
    enc = _Encoder(to_handle, max_bytes)
    try:
        tree = enc.encode(value)
    except RecursionError:
        raise ProtocolError("value nested too deeply") from None
    header = json.dumps({"v": tree, "b": [b.nbytes for b in enc.buffers]},
                        ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(header) > MAX_HEADER_BYTES:
        raise ProtocolError(f"message header larger than {MAX_HEADER_BYTES >> 20} MB (too many small values)")
    if len(header) + enc.total > max_bytes:
        raise ProtocolError(f"message larger than the limit of {max_bytes >> 20} MB")
    return [PREFIX.pack(MAGIC, len(header), enc.total), header, *enc.buffers]


# --------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"JSON constant {name} is not allowed")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ProtocolError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_prefix(prefix: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[int, int]:
    """Validate the 16-byte frame prefix; returns (header_len, payload_len)."""
    if len(prefix) != PREFIX.size:
        raise ProtocolError("truncated frame prefix")
    magic, header_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {magic!r}")
    if header_len > MAX_HEADER_BYTES or header_len + payload_len > max_bytes:
        raise ProtocolError(f"frame of {header_len + payload_len} bytes exceeds the limit of {max_bytes} bytes")
    return header_len, payload_len


class _Decoder:
    def __init__(self, buffers: list[memoryview], resolve: Callable[[Handle], Any] | None, grad: bool) -> None:
        self.buffers = buffers
        self.resolve = resolve
        self.grad = grad
        self.nodes = 0

    def _buf(self, i: Any) -> memoryview:
        if type(i) is not int or not 0 <= i < len(self.buffers):
            raise ProtocolError(f"bad buffer index {i!r}")
        return self.buffers[i]

    @staticmethod
    def _shape(shape: Any) -> tuple[int, ...]:
        if type(shape) is not list or len(shape) > MAX_NDIM or any(type(s) is not int or s < 0 for s in shape):
            raise ProtocolError(f"bad shape {shape!r}")
        return tuple(shape)

    def _array(self, dtype: Any, shape: Any, index: Any) -> Any:
        import numpy as np

        if dtype not in DTYPES:
            raise ProtocolError(f"dtype {dtype!r} is not allowed")
        shape = self._shape(shape)
        buf = self._buf(index)
        wire, size = DTYPES[dtype]
        count = math.prod(shape)
        if count * size != buf.nbytes:
            raise ProtocolError(f"buffer of {buf.nbytes} bytes does not hold {dtype}{list(shape)}")
        arr = np.frombuffer(buf, dtype=np.dtype(wire), count=count).reshape(shape)
        if dtype == "bool":
            if count and int(arr.max()) > 1:
                raise ProtocolError("bool array holds values other than 0 and 1")
            arr = arr.view(np.bool_)
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=True)  # native order, owns its memory
        return arr

    def decode(self, node: Any, depth: int = 0) -> Any:
        self.nodes += 1
        if depth > MAX_DEPTH:
            raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
        if self.nodes > MAX_NODES:
            raise ProtocolError(f"value has more than {MAX_NODES} elements")
        t = type(node)
        if node is None or t is bool or t is str or t is int or t is float:
            return node
        if t is not dict or len(node) != 1:
            raise ProtocolError(f"bad value node of type {t.__name__}")
        (tag, body), = node.items()
        if tag == "l" and type(body) is list:
            return [self.decode(v, depth + 1) for v in body]
        if tag == "t" and type(body) is list:
            return tuple(self.decode(v, depth + 1) for v in body)
        if tag == "d" and type(body) is dict:
            return {k: self.decode(v, depth + 1) for k, v in body.items()}
        if tag == "f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "b":
            return bytes(self._buf(body))
        if tag == "T" and type(body) is list and len(body) == 4 and type(body[3]) is bool:
            import torch

            dtype = body[0]
            arr = self._array(dtype, body[1], body[2])
            if dtype == "bfloat16":
                tensor = torch.from_numpy(arr.view("<i2")).view(torch.bfloat16)
            else:
                tensor = torch.from_numpy(arr)
            if body[3] and self.grad and tensor.is_floating_point():
                tensor.requires_grad_(True)
            return tensor
        if tag == "N" and type(body) is list and len(body) == 3 and body[0] in ARRAY_DTYPES:
            return self._array(*body)
        if tag == "h" and type(body) is list and len(body) == 2 and type(body[0]) is int and type(body[1]) is str:
            handle = Handle(body[0], body[1][:200])
            return self.resolve(handle) if self.resolve is not None else handle
        raise ProtocolError(f"bad value node with tag {tag!r}")


def decode(header: bytes | memoryview, payload: bytes | bytearray | memoryview,
           resolve: Callable[[Handle], Any] | None = None, grad: bool = False) -> Any:
    """Decode a frame's header and payload into a value; ProtocolError on anything unexpected.

    ``resolve`` maps each :class:`Handle` found in the value (the worker uses it to look
    objects up in its table); without it handles come back as :class:`Handle` objects.
    ``grad`` honours the sender's ``requires_grad`` flag on floating tensors (the worker
    decodes requests that way); the grader decodes replies without it, so tensors it
    receives never carry autograd state.
    """
    try:
        doc = json.loads(bytes(header).decode("utf-8"), parse_constant=_reject_constant,
                         object_pairs_hook=_unique_pairs)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad frame header: {str(exc)[:200]}") from None
    if type(doc) is not dict or set(doc) != {"v", "b"} or type(doc["b"]) is not list:
        raise ProtocolError("bad frame header layout")
    lengths = doc["b"]
    if any(type(n) is not int or n < 0 for n in lengths):
        raise ProtocolError("bad buffer lengths")
    payload = memoryview(payload).cast("B")
    if sum(lengths) != payload.nbytes:
        raise ProtocolError("buffer lengths do not add up to the payload")
    buffers, pos = [], 0
    for n in lengths:
        buffers.append(payload[pos:pos + n])
        pos += n
    try:
        return _Decoder(buffers, resolve, grad).decode(doc["v"])
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("value nested too deeply") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise ProtocolError(f"undecodable value: {type(exc).__name__}: {str(exc)[:200]}") from None


# --------------------------------------------------------------------------- byte streams


def write_frame(fd: int, chunks: Iterable[Any]) -> None:
    """Blocking write of all chunks to ``fd`` (the worker's side)."""
    for chunk in chunks:
        mv = memoryview(chunk).cast("B")
        while mv.nbytes:
            n = os.write(fd, mv)
            mv = mv[n:]


def _read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    mv = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [mv[got:]])
        if k == 0:
            raise EOFError("pipe closed")
        got += k
    return buf


def read_frame(fd: int, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[bytes, bytearray]:
    """Blocking read of one frame from ``fd``; returns (header, payload). EOFError at end."""
    header_len, payload_len = parse_prefix(bytes(_read_exact(fd, PREFIX.size)), max_bytes)
    body = _read_exact(fd, header_len + payload_len)
    return bytes(body[:header_len]), memoryview(body)[header_len:]


class FrameReader:
    """Incremental, non-blocking frame reader for the grader side.

    ``pump(fd)`` reads what is available; a complete frame becomes available through
    ``take()``. Memory for a frame is allocated once its prefix has been validated,
    so a worker cannot make the grader allocate more than ``max_bytes``.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._prefix = bytearray()
        self._body: bytearray | None = None
        self._got = 0
        self._header_len = 0
        self._done: tuple[bytes, memoryview] | None = None

    def pump(self, fd: int) -> bool:
        """Read available bytes; returns False at end of stream. Raises ProtocolError."""
        while self._done is None:
            try:
                if self._body is None:
                    chunk = os.read(fd, PREFIX.size - len(self._prefix))
                    if not chunk:
                        return False
                    self._prefix += chunk
                    if len(self._prefix) == PREFIX.size:
                        self._header_len, payload_len = parse_prefix(bytes(self._prefix), self.max_bytes)
                        self._body = bytearray(self._header_len + payload_len)
                        self._got = 0
                        self._prefix = bytearray()
                else:
                    if self._got < len(self._body):
                        k = os.readv(fd, [memoryview(self._body)[self._got:]])
                        if k == 0:
                            return False
                        self._got += k
                if self._body is not None and self._got == len(self._body):
                    body = self._body
                    self._done = (bytes(body[:self._header_len]), memoryview(body)[self._header_len:])
                    self._body = None
            except BlockingIOError:
                return True
        return True

    def take(self) -> tuple[bytes, memoryview] | None:
        done, self._done = self._done, None
        return done

    @property
    def partial(self) -> bool:
        """Whether a frame has begun but not ended."""
        return bool(self._prefix) or self._body is not None

