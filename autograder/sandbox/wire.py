"""The wire between the notebook's process and the test process: plain data as a JSON header and raw bytes.

Shared by both sides of the grading boundary (sandbox.notebook_side, which runs as the notebook's user, and
sandbox.test_side, which runs as root in the test process). A message is its payload length, its JSON header's
length, the JSON header, then raw buffers. A value is plain data only: None, booleans, numbers, strings, bytes,
tensors, NumPy arrays, torch sizes, dtypes and devices, and tuples, lists, dicts and sets of these, each built by the
receiving side with its own types (`decode_plain`); nothing else is built here (no pickle, no class of the sender's).
What each side adds (references to the notebook's objects, mirrors of the tests' tensors, dill for a model a test
defines) is in its own module, and the test side bounds what decoding a reply may cost (test_side.DecodeBudget).
"""
from __future__ import annotations

import json
import math
import socket
import struct
import time

MAX_MESSAGE_BYTES = 32 * 2**20  # the most the tests' side accepts in one message from the notebook's process
MAX_DEPTH = 60  # nesting of containers
_HEADER = struct.Struct("!QI")  # payload length, JSON header length
TENSOR_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "uint8", "int8", "int16",
                 "int32", "int64", "bool")


class ProtocolError(Exception):
    """The other side sent something that is not a message of this protocol."""


class OverBudget(Exception):
    """A message of this protocol that would cost the receiver more than it allows (bytes, values, nesting, time).
    The message has been read in full, so the connection is still in step: only the request it answers fails."""


MAX_DRAINED_BYTES = 256 * 2**20  # a message over the limit but under this is read and dropped (the call fails alone)


# ---------------------------------------------------------------------------------------------------------------
# the wire: a message is its payload length, its JSON header's length, the JSON header, then raw buffers
# ---------------------------------------------------------------------------------------------------------------
class Connection:
    def __init__(self, sock: socket.socket, max_bytes: int | None = MAX_MESSAGE_BYTES,
                 max_header_bytes: int | None = None, max_values: int | None = None):
        self.sock, self.max_bytes = sock, max_bytes
        # bounds checked before the JSON header is parsed: its size, and an upper bound on the values it holds
        self.max_header_bytes, self.max_values = max_header_bytes, max_values
        self._received = bytearray()  # read from the socket, not yet taken as a message (kept across timeouts)
        self._drain_left = 0  # bytes of a message over the limit still to be read and dropped

    def send(self, message: dict, buffers: list[bytes]) -> None:
        header = json.dumps({"m": message, "b": [len(b) for b in buffers]}).encode()
        total = 4 + len(header) + sum(len(b) for b in buffers)
        self.sock.sendall(b"".join([_HEADER.pack(total, len(header)), header, *buffers]))

    def receive(self, deadline: float | None = None) -> tuple[dict, list[bytes]]:
        """The next message; socket.timeout once `deadline` (time.monotonic) passes, keeping what arrived for the
        next call; EOFError when the other side is gone."""
        if self._drain_left:
            self._drain(deadline)
        self._fill(_HEADER.size, deadline)
        total, header_length = _HEADER.unpack_from(self._received)
        too_large = f"a message of {total / 2**20:.1f} MB, over the {(self.max_bytes or 0) / 2**20:.0f} MB allowed"
        if self.max_bytes is not None and total > self.max_bytes:
            if total > MAX_DRAINED_BYTES:
                raise ProtocolError(too_large)
            del self._received[:_HEADER.size]
            self._drain_left = total - 4
            self._drain(deadline)
            raise OverBudget(too_large)
        if not 0 < header_length <= total - 4:
            raise ProtocolError("a malformed message")
        self._fill(_HEADER.size + total - 4, deadline)
        payload = memoryview(bytes(self._received[_HEADER.size:_HEADER.size + total - 4]))
        del self._received[:_HEADER.size + total - 4]
        header_bytes = payload[:header_length]
        if self.max_header_bytes is not None and header_length > self.max_header_bytes:
            raise OverBudget(f"a description of {header_length / 2**20:.1f} MB, over the "
                             f"{self.max_header_bytes / 2**20:g} MB allowed")
        if self.max_values is not None:
            # every JSON value but the first follows one of these bytes (those inside strings only add to the bound)
            bound = sum(header_bytes.obj.count(c, 0, header_length) for c in (b"[", b"{", b",", b":")) + 1
            if bound > self.max_values:
                raise OverBudget(f"up to {bound:,} values, over the {self.max_values:,} allowed")
        try:
            header = json.loads(bytes(header_bytes))
            message, lengths = header["m"], header["b"]
            if type(message) is not dict or type(lengths) is not list or \
                    not all(type(n) is int and n >= 0 for n in lengths):
                raise ValueError
        except RecursionError:
            raise OverBudget(f"a value nested more than {MAX_DEPTH} levels deep") from None
        except MemoryError:
            raise OverBudget("a description too large for the grader's memory") from None
        except (ValueError, KeyError, TypeError) as error:
            raise ProtocolError(f"a malformed message header ({type(error).__name__})") from None
        if sum(lengths) != total - 4 - header_length:
            raise ProtocolError("buffer lengths do not add up")
        buffers, offset = [], header_length
        for length in lengths:
            buffers.append(payload[offset:offset + length])
            offset += length
        return message, buffers

    def _drain(self, deadline: float | None) -> None:
        dropped = min(self._drain_left, len(self._received))
        del self._received[:dropped]
        self._drain_left -= dropped
        while self._drain_left:
            self.sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
            chunk = self.sock.recv(min(self._drain_left, 1 << 20))
            if not chunk:
                raise EOFError("the other process closed the connection")
            self._drain_left -= len(chunk)

    def _fill(self, count: int, deadline: float | None) -> None:
        while len(self._received) < count:
            self.sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
            chunk = self.sock.recv(max(count - len(self._received), 1 << 16))
            if not chunk:
                raise EOFError("the other process closed the connection")
            self._received += chunk


# ---------------------------------------------------------------------------------------------------------------
# plain data, both ways
# ---------------------------------------------------------------------------------------------------------------
class Codec:
    """Values as JSON-able trees plus raw buffers, and back. `_encode_tensor`, `_encode_other` and `_decode_tagged`
    are each side's rules for tensors and for what is not plain data."""

    def encode(self, value, buffers: list, depth: int = 0):
        import numpy as np
        import torch

        if depth > MAX_DEPTH:
            raise ValueError(f"a value nested more than {MAX_DEPTH} levels deep")
        if value is None or type(value) in (bool, int, str):
            return value
        if type(value) is float:
            return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
        enc = lambda item: self.encode(item, buffers, depth + 1)  # noqa: E731
        if isinstance(value, torch.Tensor):
            return self._encode_tensor(value, buffers)
        if isinstance(value, np.ndarray) or (isinstance(value, np.generic) and type(value).__module__ == "numpy"):
            return self._encode_array(value, buffers)
        if isinstance(value, torch.Size):
            return {"$": "size", "v": [int(n) for n in tuple.__iter__(value)]}
        if isinstance(value, torch.dtype):
            return {"$": "dtype", "v": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"$": "device", "v": str(value)}
        # a subclass of a builtin type becomes the base type holding the same data, read with the base's methods
        if isinstance(value, int):
            return bool(int.__int__(value)) if isinstance(value, bool) else int.__int__(value)
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, float):
            return enc(float.__float__(value))
        if isinstance(value, complex):
            return {"$": "complex", "v": [enc(complex.__getattribute__(value, "real")),
                                          enc(complex.__getattribute__(value, "imag"))]}
        if isinstance(value, (bytes, bytearray)):
            buffers.append(bytes(value))
            return {"$": "bytes", "b": len(buffers) - 1}
        if type(value).__module__ == "torch.return_types":  # named results of torch functions (topk, max, ...)
            return {"$": "return_type", "name": type(value).__name__, "v": [enc(item) for item in tuple.__iter__(value)]}
        if isinstance(value, list):
            return [enc(item) for item in list.__iter__(value)]
        if isinstance(value, tuple):
            return {"$": "tuple", "v": [enc(item) for item in tuple.__iter__(value)]}
        if isinstance(value, dict):
            kind = next((name for name, cls in _dict_kinds().items() if type(value) is cls), "dict")
            return {"$": "dict", "kind": kind, "v": [[enc(k), enc(v)] for k, v in dict.items(value)]}
        if isinstance(value, (set, frozenset)):
            frozen = isinstance(value, frozenset)
            items = frozenset.__iter__(value) if frozen else set.__iter__(value)
            return {"$": "frozenset" if frozen else "set", "v": [enc(item) for item in items]}
        if isinstance(value, slice):
            return {"$": "slice", "v": [enc(value.start), enc(value.stop), enc(value.step)]}
        if value is Ellipsis:
            return {"$": "ellipsis"}
        if isinstance(value, range):
            return {"$": "range", "v": [value.start, value.stop, value.step]}
        return self._encode_other(value, buffers)

    def _encode_tensor(self, value, buffers: list):
        return self._tensor_payload(value, buffers)

    def _encode_other(self, value, buffers: list):
        raise TypeError(f"cannot send a {type(value).__qualname__}")

    @staticmethod
    def _tensor_payload(tensor, buffers: list) -> dict:
        import torch

        # the data, whatever a tensor subclass says about itself; no_grad: a view made in no_grad mode whose base
        # changed since cannot be read with grad mode on (the test's change in place reaches a view of a parameter)
        with torch._C.DisableTorchFunctionSubclass(), torch.no_grad():
            data = torch.Tensor.as_subclass(tensor, torch.Tensor).detach()
            if data.layout != torch.strided:
                data = data.to_dense()
            data = data.cpu().resolve_conj().resolve_neg().contiguous()
            dtype = str(data.dtype).removeprefix("torch.")
            if dtype not in TENSOR_DTYPES:
                raise TypeError(f"cannot send a tensor of dtype {data.dtype}")
            flat = data.reshape(-1)
            buffers.append(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        return {"$": "tensor", "dtype": dtype, "shape": list(data.shape), "b": len(buffers) - 1}

    @staticmethod
    def _encode_array(value, buffers: list) -> dict:
        import numpy as np

        scalar = not isinstance(value, np.ndarray)
        array = np.asarray(value) if scalar else np.ndarray.view(value, np.ndarray)
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        if array.dtype.kind not in "biufc" or array.dtype.fields is not None:
            raise TypeError(f"cannot send a NumPy array of dtype {array.dtype}")
        buffers.append(array.tobytes())
        return {"$": "ndarray", "dtype": array.dtype.str, "shape": list(array.shape), "b": len(buffers) - 1,
                "scalar": scalar}

    def decode(self, node, buffers: list, depth: int = 0):
        if depth > MAX_DEPTH:
            raise OverBudget(f"a value nested more than {MAX_DEPTH} levels deep")
        self._charge()
        if node is None or type(node) in (bool, int, float, str):
            return node
        dec = lambda item: self.decode(item, buffers, depth + 1)  # noqa: E731
        if type(node) is list:
            return [dec(item) for item in node]
        if type(node) is not dict or type(node.get("$")) is not str:
            raise ProtocolError("a malformed value")
        value = decode_plain(node["$"], node, buffers, dec)
        return self._decode_tagged(node["$"], node, buffers, dec) if value is NOT_PLAIN else value

    def _decode_tagged(self, tag: str, node: dict, buffers: list, dec):
        raise ProtocolError(f"a value of kind {tag!r}, which this side does not accept")

    def _charge(self) -> None:
        """Called for every value decoded: where a side bounds what decoding costs it (test_side.Client)."""


NOT_PLAIN = object()


def decode_plain(tag: str, node: dict, buffers: list, dec):
    """The plain value `node` describes, built with this process's own types; NOT_PLAIN for other kinds."""
    import numpy as np
    import torch

    if tag == "tuple":
        return tuple(dec(item) for item in _items(node))
    if tag == "dict":
        pairs = [(dec(key), dec(item)) for key, item in _pairs(node)]
        _check_hashes([key for key, _ in pairs])
        result = _dict_kinds().get(node.get("kind"), dict)()
        for key, item in pairs:
            result[key] = item
        return result
    if tag in ("set", "frozenset"):
        items = [dec(item) for item in _items(node)]
        _check_hashes(items)
        return (set if tag == "set" else frozenset)(items)
    if tag == "float":
        if node.get("v") not in ("nan", "inf", "-inf"):
            raise ProtocolError("a malformed float")
        return float(node["v"])
    if tag == "complex":
        real, imag = (dec(part) for part in _items(node, 2))
        if not all(type(part) in (int, float) for part in (real, imag)):
            raise ProtocolError("a malformed complex number")
        return complex(real, imag)
    if tag == "bytes":
        return bytes(_buffer(buffers, node))
    if tag == "tensor":
        name = node.get("dtype")
        if name not in TENSOR_DTYPES:
            raise ProtocolError(f"a tensor of dtype {name!r}")
        dtype, shape, data = vars(torch)[name], _shape(node), _buffer(buffers, node)
        stored = torch.uint8 if dtype is torch.bool else dtype  # bytes other than 0 and 1 are no booleans
        _check_elements(shape)
        if len(data) != math.prod(shape) * torch.empty((), dtype=stored).element_size():
            raise ProtocolError("a tensor whose data does not match its shape")
        if not data:
            return torch.empty(shape, dtype=dtype)
        tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(stored).reshape(shape)
        return tensor != 0 if dtype is torch.bool else tensor
    if tag == "ndarray":
        try:
            dtype = np.dtype(str(node.get("dtype")))
        except Exception:  # noqa: BLE001 - whatever NumPy says of a string that is no dtype
            raise ProtocolError("a NumPy array of unknown dtype") from None
        if dtype.kind not in "biufc" or dtype.fields is not None or dtype.hasobject or dtype.subdtype is not None:
            raise ProtocolError(f"a NumPy array of dtype {dtype}")
        shape, data = _shape(node), _buffer(buffers, node)
        _check_elements(shape)
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise ProtocolError("an array whose data does not match its shape")
        array = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
        if dtype.kind == "b":
            array = array.view(np.uint8) != 0
        return array[()] if node.get("scalar") is True else array
    if tag == "size":
        sizes = _items(node)
        if not all(type(n) is int for n in sizes):
            raise ProtocolError("a malformed torch.Size")
        return torch.Size(sizes)
    if tag == "dtype":
        value = vars(torch).get(str(node.get("v")))  # vars: no lookup through torch's lazy module __getattr__
        if not isinstance(value, torch.dtype):
            raise ProtocolError("an unknown dtype")
        return value
    if tag == "device":
        try:
            return torch.device(str(node.get("v")))
        except Exception:  # noqa: BLE001 - whatever torch says of a string that is no device
            raise ProtocolError("an unknown device") from None
    if tag == "slice":
        return slice(*(dec(part) for part in _items(node, 3)))
    if tag == "ellipsis":
        return Ellipsis
    if tag == "range":
        parts = _items(node, 3)
        if not all(type(p) is int for p in parts) or parts[2] == 0:
            raise ProtocolError("a malformed range")
        return range(*parts)
    if tag == "return_type":
        cls = vars(torch.return_types).get(str(node.get("name")))
        if not (isinstance(cls, type) and issubclass(cls, tuple)):
            raise ProtocolError("an unknown torch return type")
        return cls([dec(item) for item in _items(node)])
    return NOT_PLAIN


MAX_HASHED_ITEMS = 200_000  # items of one dict or set built from the other side's data
MAX_SAME_HASH = 16  # keys of one dict or set that share a hash (more: a flood built to make building it quadratic)
MAX_ELEMENTS = MAX_MESSAGE_BYTES  # elements a tensor or array may claim (its data must match them, byte for byte)


def _check_hashes(keys: list) -> None:
    """Before a dict or set is built: a bounded size, and no pile of keys on one hash (Python's str hashes are
    salted, but an int is its own hash modulo 2**61 - 1: a flood of colliding keys takes minutes to insert)."""
    if len(keys) > MAX_HASHED_ITEMS:
        raise OverBudget(f"a dict or set of {len(keys):,} items, over the {MAX_HASHED_ITEMS:,} allowed")
    hashes = sorted(map(hash, keys))  # TypeError for an unhashable key: a malformed value
    run = 1
    for before, after in zip(hashes, hashes[1:]):
        run = run + 1 if before == after else 1
        if run > MAX_SAME_HASH:
            raise OverBudget("a dict or set whose keys collide (built to be slow to build)")


def _check_elements(shape: list[int]) -> None:
    if 0 not in shape and math.prod(shape) > MAX_ELEMENTS:
        raise OverBudget(f"a tensor or array that claims {math.prod(shape):,} elements")


def _dict_kinds() -> dict:
    import collections

    return {"dict": dict, "OrderedDict": collections.OrderedDict, "Counter": collections.Counter}


def _items(node: dict, count: int | None = None) -> list:
    items = node.get("v")
    if type(items) is not list or (count is not None and len(items) != count):
        raise ProtocolError("a malformed container")
    return items


def _pairs(node: dict) -> list:
    pairs = _items(node)
    if not all(type(pair) is list and len(pair) == 2 for pair in pairs):
        raise ProtocolError("a malformed dict")
    return pairs


def _shape(node: dict) -> list[int]:
    shape = node.get("shape")
    if type(shape) is not list or len(shape) > 32 or not all(type(n) is int and 0 <= n < 2**40 for n in shape):
        raise ProtocolError("a malformed shape")
    return shape


def _buffer(buffers: list, node: dict) -> bytes:
    index = node.get("b")
    if type(index) is not int or not 0 <= index < len(buffers):
        raise ProtocolError("a reference to a missing buffer")
    return buffers[index]


def _qualified_names(cls: type) -> list[str]:
    return [f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__]


