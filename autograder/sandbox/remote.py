"""The tests in one process, the student's code in another: the protocol between them.

otter would run a notebook's tests inside the notebook's own kernel, where student code can change anything a
test relies on (torch.allclose, the test files, the grader's own objects). Here the notebook's process only
*serves* the notebook's objects, and every test runs in the test process (sandbox.test_runner), which the notebook
cannot reach:

- `Server`, in the notebook's process (after its last cell: sandbox.kernel), holds the notebook's functions,
  classes and objects and does what a test asks of them: call, read or set an attribute, index, run a torch
  function on them, run backward.
- `Client`, in the test process, gives a test proxies for them: `RemoteObject`, and `RemoteTensor` for tensors
  that live in the notebook (a module's parameters and buffers, their gradients, views of them), so that a test's
  changes in place reach the notebook's model. What comes back is plain data: None, booleans, numbers, strings,
  bytes, tensors, NumPy arrays, torch sizes, dtypes and devices, and tuples, lists, dicts and sets of these. The
  test process builds them with its own types from a JSON header and raw bytes (`_Codec.decode`) and builds
  nothing else: no pickle, no class of the notebook's. So every verdict is the test's own torch comparing the
  test's own tensors, and no code of the notebook's runs where the tests run. An exception the notebook's code
  raised comes back as the nearest builtin exception, marked `raised_in_notebook` (where, in the notebook).
- The tests' side is the trusted one, so what a test passes goes as data or by (dill) pickle: a model a test
  defines runs in the notebook's process, as it would in-process. A tensor or array it passes is *mirrored*:
  what student code does to it in place, and the gradients backward puts into it, are copied back after each
  request. A result that requires grad takes part in the test's autograd, and backward through it runs in the
  notebook.
- Each request from a test has a time limit, and all of them together another. A request that runs too long is
  interrupted (SIGINT); one that ignores the interruption has its process killed, and every later request fails
  with the reason (`NotGraded`), as does every request once the process has died or broken the protocol.
"""
from __future__ import annotations

import builtins
import json
import math
import operator
import os
import signal
import socket
import struct
import sys
import time
import traceback

MAX_MESSAGE_BYTES = 32 * 2**20  # the most the tests' side accepts in one message from the notebook's process
MAX_DEPTH = 60  # nesting of containers
INTERRUPT_GRACE_S = 5.0  # how long an interrupted request may take to answer before its process is killed
_HEADER = struct.Struct("!QI")  # payload length, JSON header length
_TENSOR_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "uint8", "int8", "int16",
                  "int32", "int64", "bool")


class ProtocolError(Exception):
    """The other side sent something that is not a message of this protocol."""


class NotGraded(Exception):
    """The notebook's process cannot answer any more (it died, ignored a time limit, or broke the protocol)."""


class CallTimeLimitExceeded(Exception):
    """A call from a test into the notebook's code ran longer than the grader allows."""


class StoppedByGrader(BaseException):
    """Raised in the notebook's process when the grader interrupts a request (a BaseException, so that
    `except Exception` in student code does not swallow it)."""


# ---------------------------------------------------------------------------------------------------------------
# the wire: a message is its payload length, its JSON header's length, the JSON header, then raw buffers
# ---------------------------------------------------------------------------------------------------------------
class Connection:
    def __init__(self, sock: socket.socket, max_bytes: int | None = MAX_MESSAGE_BYTES):
        self.sock, self.max_bytes = sock, max_bytes
        self._received = bytearray()  # read from the socket, not yet taken as a message (kept across timeouts)

    def send(self, message: dict, buffers: list[bytes]) -> None:
        header = json.dumps({"m": message, "b": [len(b) for b in buffers]}).encode()
        total = 4 + len(header) + sum(len(b) for b in buffers)
        self.sock.sendall(b"".join([_HEADER.pack(total, len(header)), header, *buffers]))

    def receive(self, deadline: float | None = None) -> tuple[dict, list[bytes]]:
        """The next message; socket.timeout once `deadline` (time.monotonic) passes, keeping what arrived for the
        next call; EOFError when the other side is gone."""
        self._fill(_HEADER.size, deadline)
        total, header_length = _HEADER.unpack_from(self._received)
        if self.max_bytes is not None and total > self.max_bytes:
            raise ProtocolError(f"a message of {total / 2**20:.1f} MB, over the {self.max_bytes / 2**20:.0f} MB allowed")
        if not 0 < header_length <= total - 4:
            raise ProtocolError("a malformed message")
        self._fill(_HEADER.size + total - 4, deadline)
        payload = bytes(self._received[_HEADER.size:_HEADER.size + total - 4])
        del self._received[:_HEADER.size + total - 4]
        try:
            header = json.loads(payload[:header_length])
            message, lengths = header["m"], header["b"]
            if type(message) is not dict or type(lengths) is not list or \
                    not all(type(n) is int and n >= 0 for n in lengths):
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise ProtocolError(f"a malformed message header ({type(error).__name__})") from None
        if sum(lengths) != total - 4 - header_length:
            raise ProtocolError("buffer lengths do not add up")
        buffers, offset = [], header_length
        for length in lengths:
            buffers.append(payload[offset:offset + length])
            offset += length
        return message, buffers

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
class _Codec:
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

        with torch._C.DisableTorchFunctionSubclass():  # the data, whatever a tensor subclass says about itself
            data = torch.Tensor.as_subclass(tensor, torch.Tensor).detach()
            if data.layout != torch.strided:
                data = data.to_dense()
            data = data.cpu().resolve_conj().resolve_neg().contiguous()
            dtype = str(data.dtype).removeprefix("torch.")
            if dtype not in _TENSOR_DTYPES:
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
            raise ProtocolError(f"a value nested more than {MAX_DEPTH} levels deep")
        if node is None or type(node) in (bool, int, float, str):
            return node
        dec = lambda item: self.decode(item, buffers, depth + 1)  # noqa: E731
        if type(node) is list:
            return [dec(item) for item in node]
        if type(node) is not dict or type(node.get("$")) is not str:
            raise ProtocolError("a malformed value")
        value = _decode_plain(node["$"], node, buffers, dec)
        return self._decode_tagged(node["$"], node, buffers, dec) if value is _NOT_PLAIN else value

    def _decode_tagged(self, tag: str, node: dict, buffers: list, dec):
        raise ProtocolError(f"a value of kind {tag!r}, which this side does not accept")


_NOT_PLAIN = object()


def _decode_plain(tag: str, node: dict, buffers: list, dec):
    """The plain value `node` describes, built with this process's own types; _NOT_PLAIN for other kinds."""
    import numpy as np
    import torch

    if tag == "tuple":
        return tuple(dec(item) for item in _items(node))
    if tag == "dict":
        result = _dict_kinds().get(node.get("kind"), dict)()
        for key, item in _pairs(node):
            result[dec(key)] = dec(item)
        return result
    if tag in ("set", "frozenset"):
        return (set if tag == "set" else frozenset)(dec(item) for item in _items(node))
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
        return _buffer(buffers, node)
    if tag == "tensor":
        name = node.get("dtype")
        if name not in _TENSOR_DTYPES:
            raise ProtocolError(f"a tensor of dtype {name!r}")
        dtype, shape, data = vars(torch)[name], _shape(node), _buffer(buffers, node)
        stored = torch.uint8 if dtype is torch.bool else dtype  # bytes other than 0 and 1 are no booleans
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
    return _NOT_PLAIN


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


# ---------------------------------------------------------------------------------------------------------------
# the notebook's side
# ---------------------------------------------------------------------------------------------------------------
class Server(_Codec):
    """Serves the notebook's objects (`namespace`: its globals) to the grader over `connection`."""

    def __init__(self, namespace: dict, connection: Connection):
        self.namespace, self.connection = namespace, connection
        self.handles: dict[int, object] = {}  # what the grader holds a proxy for
        self._handle_of: dict[int, int] = {}  # id(object) -> handle
        self.mirrors: dict[int, list] = {}  # the grader's tensors, arrays, generators: mirror id -> [object, state]
        self._operand_storages: set[int] = set()  # storages of the tensor handles the request being served names
        self._keep = "call"  # which tensors in a result stay here as handles (see _encode_result)
        self._busy = False

    def serve(self) -> None:
        signal.signal(signal.SIGINT, self._interrupted)
        while True:
            try:
                message, buffers = self.connection.receive()
            except EOFError:
                return
            if message.get("op") == "stop":
                return
            self._answer(message, buffers)

    def _interrupted(self, signum, frame):
        if self._busy:  # only while a request runs; a signal that comes late is ignored
            raise StoppedByGrader("the grader stopped this call: it ran longer than allowed")

    def _answer(self, message: dict, buffers: list) -> None:
        try:
            self._busy = True
            try:
                value, failed = self._dispatch(message, buffers), False
            finally:
                self._busy = False
        except BaseException as error:  # noqa: BLE001 - every error goes back to the test, which it would have reached
            value, failed = error, True
        out: list = []
        if not failed:
            try:
                reply = {"op": "return", "value": self._encode_result(value, message, out)}
            except Exception as error:  # noqa: BLE001 - a result that cannot be sent
                value, failed, out = error, True, []
        if failed:
            reply = {"op": "raise", "error": _describe_error(value)}
        reply["sync"] = self._sync(out)
        self.connection.send(reply, out)

    def _dispatch(self, message: dict, buffers: list):
        import torch

        op = message.get("op")
        self._operand_storages = set()
        decode = lambda field: self.decode(message.get(field), buffers)  # noqa: E731
        with torch.set_grad_enabled(bool(message.get("grad_mode", True))):  # the test's grad mode
            if op == "reset":
                self.handles.clear()
                self._handle_of.clear()
                self.mirrors.clear()
                _seed_everything(int(message.get("seed", 0)))
                return None
            if op == "lookup":
                name = str(message.get("name"))
                return self.namespace[name] if name in self.namespace else _MISSING
            if op == "torch":
                return decode("func")(*decode("args"), **decode("kwargs"))
            target = self._object(message.get("target"))
            if op == "call":
                return target(*decode("args"), **decode("kwargs"))
            if op == "getattr":
                return getattr(target, str(message.get("name")))
            if op == "setattr":
                setattr(target, str(message.get("name")), decode("value"))
                return None
            if op == "delattr":
                delattr(target, str(message.get("name")))
                return None
            if op == "method":
                name = str(message.get("name"))
                operation = _BUILTIN_OPERATIONS.get(name) or (lambda obj, *a, **k: getattr(obj, name)(*a, **k))
                return operation(target, *decode("args"), **decode("kwargs"))
            if op == "value":
                return _Value(target)
            if op == "backward":
                # the same gradients as torch.autograd.backward(target, grad), which imports torch's symbolic shapes
                # and sympy (35 MB) to check the grad's shape, and under the notebook's memory cap could fail to
                grad = decode("value")
                with torch.enable_grad():  # a backward the tests run has grad mode off
                    (target * grad.to(target.dtype)).sum().backward(retain_graph=True)
                return None
            raise ProtocolError(f"unknown request {op!r}")

    def _object(self, handle):
        import torch

        if type(handle) is not int or handle not in self.handles:
            raise ProtocolError("a request about an object the grader no longer holds")
        value = self.handles[handle]
        if isinstance(value, torch.Tensor):
            self._operand_storages.add(_storage(value))
        return value

    # ---- results ----
    def _encode_result(self, value, message: dict, buffers: list):
        if value is _MISSING:
            return {"$": "missing"}
        op = message.get("op")
        # tensors that stay here, where a test may change them in place: attributes (parameters, buffers,
        # gradients), parameters, and what an operation on such a tensor returns that shares its memory (a
        # slice, a view); everything else computed comes back as data
        self._keep = "attr" if op == "getattr" else "view" if op in ("method", "torch") else "call"
        return self.encode(value, buffers)

    def _encode_tensor(self, value, buffers):
        import torch

        if self._keep == "attr" or isinstance(value, torch.nn.Parameter) or \
                (self._keep == "view" and _storage(value) and _storage(value) in self._operand_storages):
            return self._reference(value)
        payload = self._tensor_payload(value, buffers)
        if value.requires_grad:  # the grader's copy takes part in its autograd; backward comes back here
            payload["grad"] = self._handle(value)
        return payload

    def _encode_other(self, value, buffers):
        if isinstance(value, _Value):
            return self._tensor_payload(value.tensor, buffers)
        return self._reference(value)

    def _handle(self, value) -> int:
        handle = self._handle_of.get(id(value))
        if handle is None or self.handles.get(handle) is not value:
            handle = len(self.handles) + 1
            self.handles[handle] = value
            self._handle_of[id(value)] = handle
        return handle

    def _reference(self, value) -> dict:
        import torch

        name = getattr(value, "__qualname__", None)
        about = {"types": _qualified_names(type(value)), "tensor": isinstance(value, torch.Tensor),
                 "name": name if isinstance(name, str) else type(value).__name__}
        return {"$": "ref", "id": self._handle(value), "about": about}

    # ---- what the grader sends ----
    def _decode_tagged(self, tag, node, buffers, dec):
        import torch

        if tag == "ref":
            return self._object(node.get("id"))
        if tag == "pickle":
            import dill

            return dill.loads(_buffer(buffers, node))  # from the grader, which is trusted
        if tag == "mirror":
            return self.mirrors[node["id"]][0]
        if tag == "mtensor":  # a tensor of the grader's, sent for the first time or changed since
            value = _decode_plain("tensor", {**node, "$": "tensor"}, buffers, dec)
            mirror = self.mirrors.get(node["id"])
            if mirror is not None:  # update the copy student code may hold, in place
                with torch.no_grad():
                    mirror[0].data = value
                value = mirror[0]
            if value.is_leaf and value.requires_grad != bool(node.get("requires_grad")):
                value.requires_grad_(bool(node.get("requires_grad")))
            self.mirrors[node["id"]] = [value, _tensor_state(value)]
            return value
        if tag == "marray":
            value = _decode_plain("ndarray", {**node, "$": "ndarray"}, buffers, dec)
            self.mirrors[node["id"]] = [value, value.tobytes()]
            return value
        if tag == "generator":
            generator = torch.Generator()
            generator.set_state(torch.frombuffer(bytearray(_buffer(buffers, node)), dtype=torch.uint8))
            self.mirrors[node["id"]] = [generator, bytes(generator.get_state().numpy())]
            return generator
        raise ProtocolError(f"an unknown value kind {tag!r}")

    def _sync(self, buffers: list) -> list:
        """What changed in the grader's mirrored tensors, arrays and generators since they were sent or last synced."""
        import numpy as np
        import torch

        changes = []
        for mirror_id, mirror in self.mirrors.items():
            value, state = mirror
            change = {}
            if isinstance(value, torch.Tensor):
                now = _tensor_state(value)
                if now[0] != state[0]:
                    change["data"] = self._tensor_payload(value, buffers)
                if now[1:] != state[1:]:
                    change["grad"] = None if value.grad is None else self._tensor_payload(value.grad, buffers)
            elif isinstance(value, np.ndarray):
                now = value.tobytes()
                if now != state:
                    change["data"] = self._encode_array(value, buffers)
            else:  # a generator
                now = bytes(value.get_state().numpy())
                if now != state:
                    buffers.append(now)
                    change["state"] = len(buffers) - 1
            if change:
                mirror[1] = now
                changes.append({"id": mirror_id, **change})
        return changes


class _Value:
    """A tensor to send as data whatever the rules say (the grader asked for its value)."""

    def __init__(self, tensor):
        self.tensor = tensor


_MISSING = object()


def _storage(tensor) -> int:
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return 0


def _tensor_state(tensor) -> tuple:
    grad = tensor.grad
    return tensor._version, id(grad) if grad is not None else None, grad._version if grad is not None else None


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _describe_error(error: BaseException) -> dict:
    """An exception raised in the notebook's process, as the grader will raise it again."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        message = ""
    where = _student_frame(error.__traceback__)
    if where and not isinstance(error, (StoppedByGrader, StopIteration)):
        message = f"{message} (raised in {where})"
    return {"types": _qualified_names(type(error)), "message": message[:2000], "where": where[:200]}


def _student_frame(tb) -> str:
    """Where in the notebook's own code an error was raised (the innermost such frame), for a message."""
    found = ""
    for frame in traceback.extract_tb(tb):
        if "site-packages" in frame.filename or frame.filename.startswith(os.path.dirname(os.__file__)) or \
                frame.filename.startswith(os.path.dirname(__file__)):
            continue
        place = _locate(frame.filename, frame.lineno) if _locate is not None else None
        found = f"{frame.name[:60]}(), {place}" if place else f"{frame.name[:60]}(), line {frame.lineno} of your notebook"
    return found


# the operations a proxy asks for by name that are not plain method calls
_BUILTIN_OPERATIONS = {
    "__len__": len, "__iter__": iter, "__next__": next, "__bool__": bool, "__repr__": lambda v: repr(v)[:2000],
    "__str__": lambda v: str(v)[:2000], "__format__": lambda v, spec: format(v, spec)[:2000], "__float__": float,
    "__int__": int, "__index__": operator.index, "__complex__": complex, "__dir__": lambda v: sorted(dir(v)),
    "__contains__": operator.contains, "__getitem__": operator.getitem, "__setitem__": operator.setitem,
    "__delitem__": operator.delitem,
}


def serve(namespace: dict, sock: socket.socket, locate=None) -> None:
    """Serve `namespace` on `sock`, connected to the process that runs the tests: say which process this is, then
    answer until told to stop. `locate(filename, line)` names a place in the notebook ("cell 12, line 3"), or None."""
    global _locate
    _locate = locate
    connection = Connection(sock, max_bytes=None)
    connection.send({"op": "hello", "pid": os.getpid()}, [])
    Server(namespace, connection).serve()


_locate = None  # see serve


# ---------------------------------------------------------------------------------------------------------------
# the tests' side (sandbox.test_runner)
# ---------------------------------------------------------------------------------------------------------------
class Client(_Codec):
    """The tests' end: proxies for the notebook's objects, mirrors of the tests' own, time limits."""

    def __init__(self, connection: Connection, pid: int, call_limit_s: float = 60.0, total_limit_s: float = 180.0):
        import torch

        self.connection, self.pid = connection, pid
        self.call_limit_s, self.total_limit_s = call_limit_s, total_limit_s
        self.used_s = 0.0  # time spent in requests from the tests
        self.dead: str | None = None  # why the notebook's process cannot answer any more
        self._proxies: dict[int, RemoteObject] = {}  # handle -> proxy, so one object has one proxy
        self._mirrors: dict[int, list] = {}  # id(grader tensor) -> [tensor, mirror id, (version, requires_grad) sent]
        self._mirror_objects: dict[int, object] = {}  # mirror id -> the grader's tensor, array or generator
        self._anchor = torch.zeros((), requires_grad=True)  # what local autograd reaches backward through

    @classmethod
    def connected(cls, connection: Connection, timeout_s: float, pid: int | None = None, **options) -> "Client":
        """The Client of the notebook's process on `connection`, once it has said hello (within `timeout_s`).

        `pid` is the notebook's process as the one that forked it knows it: the Client signals that process when a
        call runs too long, so a hello naming another one (the supervisor, another grading) is refused. Without
        `pid` (a server this side started itself) the hello's pid is taken."""
        connection.max_bytes = MAX_MESSAGE_BYTES
        try:
            hello, _ = connection.receive(deadline=time.monotonic() + timeout_s)
        except (OSError, EOFError, ProtocolError):  # socket.timeout is an OSError
            raise NotGraded("the notebook's process never started serving the tests") from None
        if hello.get("op") != "hello" or type(hello.get("pid")) is not int or pid not in (None, hello["pid"]):
            raise NotGraded("the notebook's process did not say hello")
        return cls(connection, hello["pid"], **options)

    def namespace(self) -> "RemoteNamespace":
        return RemoteNamespace(self)

    def reset(self, seed: int = 0) -> None:
        """Forget the last test's objects (on both sides) and seed the notebook's random generators."""
        self._proxies.clear()
        self._mirrors.clear()
        self._mirror_objects.clear()
        try:
            self.request({"op": "reset", "seed": seed}, "the preparation of this test")
        except CallTimeLimitExceeded as error:  # the time is used up (or the notebook made seeding hang)
            raise NotGraded(str(error)) from None

    def stop(self) -> None:
        if self.dead is None:
            try:
                self.connection.send({"op": "stop"}, [])
            except OSError:
                pass
            self.dead = "the grader has stopped asking"
        self.connection.sock.close()

    def request(self, message: dict, label: str):
        """Send a request about the notebook's objects and return its answer, or raise what it raised."""
        import torch

        if self.dead is not None:
            raise NotGraded(self.dead)
        left = self.total_limit_s - self.used_s
        if left <= 0:
            raise CallTimeLimitExceeded(f"{label} was not run: calls from the tests into your code used up the "
                                        f"{self.total_limit_s:g} s allowed for all of them")
        limit = min(self.call_limit_s, left)
        limit_text = (f"ran longer than {self.call_limit_s:g} s" if limit == self.call_limit_s else
                      f"was stopped: calls from the tests into your code used up the {self.total_limit_s:g} s "
                      "allowed for all of them")
        buffers: list = []
        message = dict(message, grad_mode=torch.is_grad_enabled())
        for key in ("args", "kwargs", "value", "func"):
            if key in message:
                message[key] = self.encode(message[key], buffers)
        started = time.monotonic()
        try:
            self.connection.send(message, buffers)
            reply, reply_buffers = self._wait_reply(started + limit, f"{label}, called by a test, {limit_text}")
        except (OSError, EOFError, ProtocolError) as error:
            self._fail(f"your notebook's process stopped answering while the tests ran ({label}: "
                       f"{type(error).__name__}: {error})")
            raise NotGraded(self.dead) from None
        finally:
            self.used_s += time.monotonic() - started
        try:
            self._apply_sync(reply.get("sync"), reply_buffers)
            if reply.get("op") == "raise":
                raise self._error(reply.get("error"), label)
            return self.decode(reply.get("value"), reply_buffers)
        except ProtocolError as error:
            self._fail(f"your notebook's process sent the grader something it does not accept ({error})")
            raise NotGraded(self.dead) from None

    def _wait_reply(self, deadline: float, too_long: str):
        """The reply to the request just sent, within the time limit: past it, the request is interrupted; if it
        does not answer within INTERRUPT_GRACE_S after that, its process is killed."""
        interrupted = False
        while True:
            try:
                reply, buffers = self.connection.receive(deadline=deadline)
            except socket.timeout:
                if not interrupted:
                    interrupted, deadline = True, time.monotonic() + INTERRUPT_GRACE_S
                    try:
                        os.kill(self.pid, signal.SIGINT)
                    except ProcessLookupError:
                        pass
                    continue
                self._fail(f"{too_long} and ignored the grader's interruption; the grader stopped your notebook's process")
                raise NotGraded(self.dead) from None
            if reply.get("op") not in ("return", "raise"):
                raise ProtocolError(f"unexpected message {reply.get('op')!r}")
            if interrupted and reply["op"] == "raise":
                raise CallTimeLimitExceeded(f"{too_long}; the grader stopped it")
            return reply, buffers

    def _fail(self, reason: str) -> None:
        self.dead = reason
        try:
            os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _error(error, label: str) -> Exception:
        """The exception the notebook's code raised, as the nearest builtin exception (never a class of theirs)."""
        error = error if type(error) is dict else {}
        types = error.get("types") if type(error.get("types")) is list else []
        message = str(error.get("message", ""))[:2000]
        if f"{__name__}.StoppedByGrader" in types:
            return CallTimeLimitExceeded(f"{label}, called by a test, was stopped by the grader")
        cls = next((vars(builtins)[name[9:]] for name in types if isinstance(name, str) and name.startswith("builtins.")
                    and isinstance(vars(builtins).get(name[9:]), type) and issubclass(vars(builtins)[name[9:]], Exception)),
                   RuntimeError)
        try:
            raised = cls(message)
        except Exception:  # noqa: BLE001 - an exception class that takes other arguments
            raised = RuntimeError(message)
        raised.raised_in_notebook = str(error.get("where", ""))[:200]  # for a hidden test's message: where, not what
        return raised

    # ---- what the grader sends ----
    def encode(self, value, buffers, depth=0):
        import numpy as np

        if isinstance(value, np.ndarray):  # mirrored: changes in place come back
            mirror_id = self._new_mirror(value)
            return {**self._encode_array(value, buffers), "$": "marray", "id": mirror_id}
        return super().encode(value, buffers, depth)

    def _encode_tensor(self, value, buffers):
        """A tensor of the grader's, mirrored: sent once, then named, until it changes here."""
        mirror = self._mirrors.get(id(value))
        state = (value._version, value.requires_grad)
        if mirror is not None and mirror[2] == state:
            return {"$": "mirror", "id": mirror[1]}
        mirror_id = mirror[1] if mirror is not None else self._new_mirror(value)
        self._mirrors[id(value)] = [value, mirror_id, state]  # holds the tensor: its id stays its own
        return {**self._tensor_payload(value, buffers), "$": "mtensor", "id": mirror_id,
                "requires_grad": bool(value.requires_grad)}

    def _encode_other(self, value, buffers):
        import dill
        import torch

        if isinstance(value, RemoteObject):
            if value._client is not self:
                raise TypeError("a proxy from another grading session")
            return {"$": "ref", "id": value._id}
        if isinstance(value, torch.Generator):  # mirrored: what the notebook's code draws advances it here too
            buffers.append(bytes(value.get_state().numpy()))
            return {"$": "generator", "id": self._new_mirror(value), "b": len(buffers) - 1}
        try:  # a model or a function a test defines, a torch module: the notebook's process gets a copy
            buffers.append(dill.dumps(value, recurse=True))
        except Exception as error:  # noqa: BLE001 - whatever cannot be pickled
            raise TypeError(f"the grader cannot pass a {type(value).__qualname__} to the notebook's code ({error})") from None
        return {"$": "pickle", "b": len(buffers) - 1}

    def _new_mirror(self, value) -> int:
        mirror_id = len(self._mirror_objects) + 1
        self._mirror_objects[mirror_id] = value
        return mirror_id

    def _apply_sync(self, changes, buffers: list) -> None:
        """Copy into the grader's tensors, arrays and generators what the notebook's code did to them."""
        import numpy as np
        import torch

        if changes is None:
            return
        if type(changes) is not list or not all(type(change) is dict for change in changes):
            raise ProtocolError("malformed changes")
        for change in changes:
            local = self._mirror_objects.get(change.get("id"))
            try:
                if isinstance(local, torch.Tensor):
                    if "data" in change:
                        data = self.decode(change["data"], buffers)
                        if not isinstance(data, torch.Tensor):
                            raise ProtocolError("a change that is not a tensor")
                        with torch.no_grad():
                            if data.shape == local.shape and data.dtype == local.dtype:
                                local.copy_(data)
                            else:
                                local.data = data
                    if "grad" in change:
                        grad = self.decode(change["grad"], buffers)
                        if grad is not None and not isinstance(grad, torch.Tensor):
                            raise ProtocolError("a gradient that is not a tensor")
                        local.grad = grad
                    if id(local) in self._mirrors:
                        self._mirrors[id(local)][2] = (local._version, local.requires_grad)
                elif isinstance(local, np.ndarray) and "data" in change:
                    data = self.decode(change["data"], buffers)
                    if not isinstance(data, np.ndarray):
                        raise ProtocolError("a change that is not an array")
                    if data.shape == local.shape:
                        local[...] = data
                elif isinstance(local, torch.Generator) and "state" in change:
                    local.set_state(torch.frombuffer(bytearray(_buffer(buffers, {"b": change["state"]})),
                                                     dtype=torch.uint8))
            except (RuntimeError, TypeError, ValueError) as error:  # a gradient of the wrong size, a broken state...
                raise ProtocolError(f"a change that does not fit ({error})") from None

    # ---- what the notebook's process sends ----
    def decode(self, node, buffers, depth=0):
        import torch

        try:
            value = super().decode(node, buffers, depth)
        except ProtocolError:
            raise
        except Exception as error:  # noqa: BLE001 - data no honest server sends (an unhashable key, ...)
            raise ProtocolError(f"a malformed value ({type(error).__name__})") from None
        if type(node) is dict and node.get("$") == "tensor" and "grad" in node and torch.is_grad_enabled():
            if type(node["grad"]) is not int:
                raise ProtocolError("a malformed gradient reference")
            return _remote_backward().apply(self._anchor, self, node["grad"], [value])
        return value

    def _decode_tagged(self, tag, node, buffers, dec):
        if tag == "ref":
            handle, about = node.get("id"), node.get("about")
            if type(handle) is not int or type(about) is not dict:
                raise ProtocolError("a malformed reference")
            if handle not in self._proxies:
                base = RemoteTensor if about.get("tensor") is True else RemoteObject
                self._proxies[handle] = _proxy_class(base, about)(self, handle, about)
            return self._proxies[handle]
        if tag == "missing":
            return _MISSING
        raise ProtocolError(f"a value of kind {tag!r}, which the grader does not accept")


def _remote_backward():
    """The autograd function through which the grader's backward reaches a value computed in the notebook."""
    global _REMOTE_BACKWARD
    if _REMOTE_BACKWARD is None:
        import torch

        class RemoteBackward(torch.autograd.Function):
            @staticmethod
            def forward(ctx, anchor, client, handle, holder):
                ctx.client, ctx.handle = client, handle
                return holder[0]

            @staticmethod
            def backward(ctx, grad):
                ctx.client.request({"op": "backward", "target": ctx.handle, "value": grad}, "backward()")
                return None, None, None, None

        _REMOTE_BACKWARD = RemoteBackward
    return _REMOTE_BACKWARD


_REMOTE_BACKWARD = None


def _proxy_class(base: type, about: dict) -> type:
    """A subclass of `base` named as the object's own class, so that a test's `type(x).__name__` reads as it would
    in-process ("MyAttention", "Parameter")."""
    types = about.get("types")
    name = str(types[0]).rpartition(".")[2] if type(types) is list and types else base.__name__
    if not name.isidentifier():
        name = base.__name__
    key = (base, name)
    if key not in _PROXY_CLASSES:
        _PROXY_CLASSES[key] = type(name, (base,), {"__slots__": (), "__module__": "the notebook"})
    return _PROXY_CLASSES[key]


_PROXY_CLASSES: dict = {}


class RemoteNamespace:
    """The notebook's globals, as otter's test runner reads them (`.get(name, default)`)."""

    def __init__(self, client: Client):
        self._client = client

    def get(self, name: str, default=None):
        value = self._client.request({"op": "lookup", "name": name}, f"looking up '{name}'")
        return default if value is _MISSING else value

    def __getitem__(self, name: str):
        value = self.get(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return value


class RemoteObject:
    """A proxy for an object of the notebook's: a function, a class, a module, an iterator..."""

    __slots__ = ("_client", "_id", "_about")

    def __init__(self, client: Client, handle: int, about: dict):
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_id", handle)
        object.__setattr__(self, "_about", about)

    def _label(self) -> str:
        name = str(self._about.get("name", "?"))[:80]
        kinds = self._about.get("types") or [""]
        return f"{name}()" if kinds[0] in ("builtins.function", "builtins.type", "builtins.method") else f"your {name}"

    def _do(self, op: str, **fields):
        return self._client.request({"op": op, "target": self._id, **fields}, self._label())

    @property
    def __class__(self):
        """For isinstance: the first of torch's own module classes the object is an instance of (nn.Linear,
        nn.Sequential, nn.Module for a module of the notebook's), else the proxy's class."""
        for name in self._about.get("types") or []:
            cls = _torch_module_class(str(name))
            if cls is not None:
                return cls
        return type(self)

    def __call__(self, *args, **kwargs):
        return self._do("call", args=list(args), kwargs=kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            if name in ("__name__", "__qualname__") and self._about.get("name"):
                return str(self._about["name"])
            raise AttributeError(name)
        return self._do("getattr", name=name)

    def __setattr__(self, name, value):
        self._do("setattr", name=name, value=value)

    def __delattr__(self, name):
        self._do("delattr", name=name)

    def __hash__(self):
        return object.__hash__(self)

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def __reduce__(self):
        raise TypeError("a proxy of the notebook's object cannot be pickled")


def _remote_operation(name: str):
    def operation(self, *args, **kwargs):
        return self._do("method", name=name, args=list(args), kwargs=kwargs)
    operation.__name__ = name
    return operation


for _name in ("__len__", "__iter__", "__next__", "__contains__", "__bool__", "__getitem__", "__setitem__",
              "__delitem__", "__dir__", "__repr__", "__str__", "__format__"):
    setattr(RemoteObject, _name, _remote_operation(_name))


def _torch_module_class(qualified: str):
    """torch's own nn.Module subclass of that name, if it is already imported (nothing is imported or looked up
    through a module's __getattr__); else None."""
    import torch

    module_name, _, qualname = qualified.rpartition(".")
    module = sys.modules.get(module_name)
    if module is None or module_name.split(".")[0] != "torch" or "." in qualname:
        return None
    cls = vars(module).get(qualname)
    return cls if isinstance(cls, type) and issubclass(cls, torch.nn.Module) else None


class RemoteTensor(RemoteObject):
    """A proxy for a tensor that lives in the notebook's process (a parameter, a buffer, a gradient, a view of one):
    what a test does to it happens there; torch functions given one run there."""

    __slots__ = ()

    def _label(self) -> str:
        return "a tensor of your model"

    @property
    def __class__(self):
        return type(self)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        client = _find_client(args, kwargs)
        return client.request({"op": "torch", "func": func, "args": list(args), "kwargs": kwargs or {}},
                              f"torch's {getattr(func, '__name__', 'function')} on a tensor of your model")

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name in _tensor_methods():  # a method: no round trip until it is called
            return _RemoteMethod(self, name)
        return self._do("getattr", name=name)

    def __array__(self, dtype=None, copy=None):
        value = self._do("value").numpy()
        return value if dtype is None else value.astype(dtype)

    def __iter__(self):
        return iter(self._do("value"))

    __hash__ = RemoteObject.__hash__


class _RemoteMethod:
    def __init__(self, tensor: RemoteTensor, name: str):
        self.tensor, self.name = tensor, name

    def __call__(self, *args, **kwargs):
        return self.tensor._do("method", name=self.name, args=list(args), kwargs=kwargs)


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift"):
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        setattr(RemoteTensor, _form.format(_name), _remote_operation(_form.format(_name)))
for _name in ("__matmul__", "__rmatmul__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__neg__",
              "__pos__", "__abs__", "__invert__", "__float__", "__int__", "__index__", "__complex__", "__len__",
              "__bool__", "__getitem__", "__setitem__", "__contains__", "__repr__", "__str__", "__format__"):
    setattr(RemoteTensor, _name, _remote_operation(_name))


def _find_client(args, kwargs) -> Client:
    stack = [args, kwargs or {}]
    while stack:
        item = stack.pop()
        if isinstance(item, RemoteObject):
            return item._client
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    raise TypeError("no proxy among the arguments")


def _tensor_methods() -> frozenset:
    global _TENSOR_METHODS
    if _TENSOR_METHODS is None:
        import torch

        _TENSOR_METHODS = frozenset(name for name in dir(torch.Tensor) if not name.startswith("__")
                                    and callable(getattr(torch.Tensor, name, None)))
    return _TENSOR_METHODS


_TENSOR_METHODS = None
