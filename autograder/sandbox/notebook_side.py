"""The notebook's side of the grading boundary: what runs as the notebook's user, after its last cell.

`serve` (called by sandbox.kernel) answers the test process's requests about the notebook's objects: look up a
global, call a function or method of the student's, read, set or delete an attribute, take a view of one of its
tensors (an index, `.T`, `.detach()`: so that a test's change in place reaches the student's layer), copy data the
test computed into one of its tensors (`assign`), send a tensor's value, run backward from a value it computed.
Nothing else: it never runs a torch function, an operator or a comparison for a test (the rule at the top of
sandbox.test_side). Nothing here is trusted: the notebook can replace any of it, and then it changes only its own
answers, which the test side decodes as plain data within a budget and never executes.

What it sends of an exception is data for the grader to check, not text to show: the names of its classes and, for
the innermost frame of the notebook's own code, a cell number, a line and a function name (sandbox.test_side
keeps them only if they fit the cells the grader sent).
"""
from __future__ import annotations

import operator
import os
import re
import signal
import socket
import traceback

from .wire import Codec, Connection, ProtocolError, decode_plain, _buffer, _qualified_names


class StoppedByGrader(BaseException):
    """Raised in the notebook's process when the grader interrupts a request (a BaseException, so that
    `except Exception` in student code does not swallow it)."""


class Server(Codec):
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
            if op == "assign":  # data the test computed (a change in place), into the student's tensor
                value = decode("value")
                if not isinstance(value, torch.Tensor) or not isinstance(target, torch.Tensor):
                    raise TypeError("only a tensor can be assigned to a tensor")
                with torch.no_grad():
                    if value.shape == target.shape:
                        target.copy_(value)
                    else:
                        target.data = value.to(target.dtype)
                return None
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
        self._keep = "attr" if op == "getattr" else "view" if op == "method" else "call"
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
            payload = self._tensor_payload(value.tensor, buffers)
            if value.tensor.requires_grad:  # what the test computes from it takes part in autograd, back to here
                payload["grad"] = self._handle(value.tensor)
            return payload
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
            value = decode_plain("tensor", {**node, "$": "tensor"}, buffers, dec)
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
            value = decode_plain("ndarray", {**node, "$": "ndarray"}, buffers, dec)
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
    """An exception raised in the notebook's process, as data for the grader to check (no text of it is shown)."""
    return {"types": _qualified_names(type(error)), "stopped": isinstance(error, StoppedByGrader),
            "where": None if isinstance(error, (StoppedByGrader, StopIteration)) else _student_frame(error.__traceback__)}


_PLACE = re.compile(r"cell (\d+), line (\d+)$")


def _student_frame(tb) -> dict | None:
    """The innermost frame of the notebook's own code: its cell, line and function, as numbers and a name."""
    found = None
    for frame in traceback.extract_tb(tb):
        if "site-packages" in frame.filename or frame.filename.startswith(os.path.dirname(os.__file__)) or \
                frame.filename.startswith(os.path.dirname(__file__)):
            continue
        place = _locate(frame.filename, frame.lineno) if _locate is not None else None
        matched = _PLACE.match(place) if isinstance(place, str) else None
        if matched:
            found = {"cell": int(matched.group(1)), "line": int(matched.group(2)), "function": frame.name[:100]}
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

