"""The tests' side of the grading boundary: what runs as root, in the test process, about the notebook's objects.

THE RULE. The notebook runs only what a test explicitly asks of it: calling the student's functions and methods,
reading, setting and deleting attributes (a test may copy weights into a student's layer), taking a view of one of
its tensors (so that a change in place reaches the student's model). Everything else a test does with a notebook
value (torch functions, which reach a proxy through `__torch_function__`; operators; comparisons and `__eq__`;
tensor methods whose result the test uses; len, iter, bool, float, format) runs here, in the test process, with
this process's own torch, on plain data fetched from the notebook, and is never dispatched back. A change in place
that a test makes to a tensor of the notebook's is computed here too and its result copied there (`assign`).

So what the notebook can choose is only what it answers about its own objects (the data of its tensors, what its
functions return): exactly what an honest notebook chooses by being right or wrong. Whatever it has replaced in its
own process (torch.allclose, Tensor.__eq__, torch.softmax, the tests' files) changes none of the test's arithmetic.

The pieces:
- `Client` talks to sandbox.notebook_side over the wire (sandbox.wire): each request has a time limit (its own, the
  question's share, all calls' together); a request that runs too long is interrupted (SIGINT); one that ignores it
  has its process killed, and every later request fails with the reason (`NotGraded`).
- What comes back is decoded as plain data within a budget charged to the request that asked for it (bytes, an
  upper bound on the values before the JSON is parsed, nesting, element counts, dict and set sizes and hash
  collisions, time, memory): over it, that request raises `ReplyOverBudget` and nothing else fails.
- `RemoteObject` and `RemoteTensor` are the proxies a test holds for the notebook's objects; the test's own tensors,
  arrays and generators are mirrored (what student code does to them in place, and the gradients it puts in them,
  come back); a result that requires grad takes part in the test's autograd (backward runs in the notebook, the
  gradient arrives as data); a model a test defines is sent with dill.
- An exception raised in the notebook comes back as the nearest builtin exception (never a class of the
  notebook's), whose text the grader writes itself: its type from the builtin exception names, its place (cell,
  line, function) only if it fits the cells the grader sent; no text the notebook wrote.
"""
from __future__ import annotations

import builtins
import contextlib
import os
import signal
import socket
import sys
import time

from .wire import MAX_MESSAGE_BYTES, Codec, Connection, OverBudget, ProtocolError, _buffer

INTERRUPT_GRACE_S = 5.0  # how long an interrupted request may take to answer before its process is killed
MAX_HEADER_BYTES = 8 * 2**20  # the JSON part of one reply
MAX_VALUES = 1_000_000  # values one reply may describe (bounded before its JSON is parsed)
DECODE_TIME_S = 10.0  # decoding one reply


class NotGraded(Exception):
    """The notebook's process cannot answer any more (it died, ignored a time limit, or broke the protocol)."""


class ReplyOverBudget(NotGraded):
    """One reply would cost the test process more to decode than it allows: that request fails, nothing else."""


class CallTimeLimitExceeded(Exception):
    """A call from a test into the notebook's code ran longer than the grader allows."""


class Client(Codec):
    """The tests' end: proxies for the notebook's objects, mirrors of the tests' own, time limits."""

    def __init__(self, connection: Connection, pid: int, call_limit_s: float = 60.0, total_limit_s: float = 180.0,
                 cells: dict[int, str] | None = None):
        import torch

        self.connection, self.pid = connection, pid
        connection.max_header_bytes, connection.max_values = MAX_HEADER_BYTES, MAX_VALUES  # before a reply is parsed
        self.call_limit_s, self.total_limit_s = call_limit_s, total_limit_s
        self.cells = cells or {}  # the notebook's code cells as the grader sent them: number -> source
        self.used_s = 0.0  # time spent in requests from the tests
        self.question, self.question_limit_s, self.question_used_s = None, None, 0.0  # see begin_question
        self.call_clock = contextlib.nullcontext  # entered around each request (test_runner pauses its own clock)
        self.dead: str | None = None  # why the notebook's process cannot answer any more
        self._proxies: dict[int, RemoteObject] = {}  # handle -> proxy, so one object has one proxy
        self._mirrors: dict[int, list] = {}  # id(grader tensor) -> [tensor, mirror id, (version, requires_grad) sent]
        self._mirror_objects: dict[int, object] = {}  # mirror id -> the grader's tensor, array or generator
        self._anchor = torch.zeros((), requires_grad=True)  # what local autograd reaches backward through
        self._decoded, self._decode_deadline = 0, None

    @classmethod
    def connected(cls, connection: Connection, timeout_s: float, pid: int | None = None, **options) -> "Client":
        """The Client of the notebook's process on `connection`, once it has said hello (within `timeout_s`).

        `pid` is the notebook's process as the one that forked it knows it: the Client signals that process when a
        call runs too long, so a hello naming another one (the supervisor, another grading) is refused. Without
        `pid` (a server this side started itself) the hello's pid is taken."""
        connection.max_bytes = MAX_MESSAGE_BYTES
        try:
            hello, _ = connection.receive(deadline=time.monotonic() + timeout_s)
        except (OSError, EOFError, ProtocolError, OverBudget):  # socket.timeout is an OSError
            raise NotGraded("the notebook's process never started serving the tests") from None
        if hello.get("op") != "hello" or type(hello.get("pid")) is not int or pid not in (None, hello["pid"]):
            raise NotGraded("the notebook's process did not say hello")
        return cls(connection, hello["pid"], **options)

    def namespace(self) -> "RemoteNamespace":
        return RemoteNamespace(self)

    def begin_question(self, question: str | None, limit_s: float | None) -> None:
        """From now on, calls are charged to `question`, which may use `limit_s` seconds of calls (None: no share)."""
        self.question, self.question_limit_s, self.question_used_s = question, limit_s, 0.0

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

    def _limit(self, label: str) -> tuple[float, str]:
        """How long the next request may take, and what to say when it takes longer."""
        total_left = self.total_limit_s - self.used_s
        question_left = float("inf") if self.question_limit_s is None else self.question_limit_s - self.question_used_s
        of_question = f"the tests of {self.question}" if self.question else "the tests"
        if question_left <= 0:
            raise CallTimeLimitExceeded(f"{label} was not run: calls from {of_question} into your code used up the "
                                        f"{self.question_limit_s:g} s allowed for that question")
        if total_left <= 0:
            raise CallTimeLimitExceeded(f"{label} was not run: calls from the tests into your code used up the "
                                        f"{self.total_limit_s:g} s allowed for all of them")
        limit = min(self.call_limit_s, question_left, total_left)
        if limit == self.call_limit_s:
            return limit, f"ran longer than {self.call_limit_s:g} s"
        if limit == question_left:
            return limit, (f"was stopped: calls from {of_question} into your code used up the "
                           f"{self.question_limit_s:g} s allowed for that question")
        return limit, (f"was stopped: calls from the tests into your code used up the {self.total_limit_s:g} s "
                       "allowed for all of them")

    def request(self, message: dict, label: str):
        """Send a request about the notebook's objects and return its answer, or raise what it raised."""
        with self.call_clock():
            return self._request(message, label)

    def _request(self, message: dict, label: str):
        import torch

        if self.dead is not None:
            raise NotGraded(self.dead)
        limit, limit_text = self._limit(label)
        buffers: list = []
        message = dict(message, grad_mode=torch.is_grad_enabled())
        for key in ("args", "kwargs", "value"):
            if key in message:
                message[key] = self.encode(message[key], buffers)
        started = time.monotonic()
        try:
            try:
                self.connection.send(message, buffers)
                reply, reply_buffers = self._wait_reply(started + limit, f"{label}, called by a test, {limit_text}")
            except (OSError, EOFError, ProtocolError) as error:
                self._fail(f"your notebook's process stopped answering while the tests ran ({label}: "
                           f"{type(error).__name__}: {error})")
                raise NotGraded(self.dead) from None
            except OverBudget as error:  # read in full and dropped: the connection is still in step
                raise ReplyOverBudget(f"what your code sent back to a test ({label}) is more than the grader "
                                      f"accepts: {error}") from None
            self._decoded, self._decode_deadline = 0, time.monotonic() + DECODE_TIME_S
            try:
                self._apply_sync(reply.get("sync"), reply_buffers)
                if reply.get("op") == "raise":
                    raised = self._error(reply.get("error"), label)
                else:
                    return self.decode(reply.get("value"), reply_buffers)
            except ProtocolError as error:
                self._fail(f"your notebook's process sent the grader something it does not accept ({error})")
                raise NotGraded(self.dead) from None
            except (OverBudget, MemoryError, RecursionError) as error:
                why = error if isinstance(error, OverBudget) else "more memory than the grader allows for it"
                raise ReplyOverBudget(f"what your code sent back to a test ({label}) costs more to read than the "
                                      f"grader allows: {why}") from None
            raise raised  # what the notebook's code raised (a MemoryError of its own among them): not the reply's cost
        finally:
            spent = time.monotonic() - started
            self.used_s += spent
            self.question_used_s += spent

    def _charge(self) -> None:
        self._decoded += 1
        if not self._decoded & 1023 and self._decode_deadline is not None and time.monotonic() > self._decode_deadline:
            raise OverBudget(f"it took more than {DECODE_TIME_S:g} s to read")

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

    def _error(self, error, label: str) -> Exception:
        """The exception the notebook's code raised, as the nearest builtin exception (never a class of theirs),
        with a text the grader writes: the type from builtin names, the place only where it fits the cells sent."""
        error = error if type(error) is dict else {}
        types = error.get("types") if type(error.get("types")) is list else []
        if error.get("stopped") is True:
            return CallTimeLimitExceeded(f"{label}, called by a test, was stopped by the grader")
        cls = next((_BUILTIN_EXCEPTIONS[name] for name in types if type(name) is str and name in _BUILTIN_EXCEPTIONS),
                   None)
        where = self._place(error.get("where"))
        raised = (cls or RuntimeError)(f"raised in {where}" if where else "raised in your code")
        raised.raised_in_notebook = where  # for a hidden test's message: where, not what
        raised.raised_as = cls.__name__ if cls is not None else "an exception"
        return raised

    def _place(self, where) -> str:
        """'tfidf_l2(), cell 12, line 3' from the notebook's claim, kept only where it fits what the grader knows:
        a cell it sent, a line of that cell, a function name that is an identifier in that cell's source."""
        if type(where) is not dict or type(where.get("cell")) is not int or type(where.get("line")) is not int:
            return ""
        source = self.cells.get(where["cell"])
        if source is None or not 1 <= where["line"] <= max(len(source.splitlines()), 1):
            return ""
        place = f"cell {where['cell']}, line {where['line']}"
        function = where.get("function")
        if type(function) is str and function.isidentifier() and len(function) <= 60 and function in source:
            import re

            if re.search(rf"\b{re.escape(function)}\b", source):
                return f"{function}(), {place}"
        return place

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
            if isinstance(value, RemoteTensorView):  # a view made here: its data
                return self.encode(value._fetch().detach(), buffers)
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
        except (ProtocolError, OverBudget, MemoryError, RecursionError):
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


_MISSING = object()

# the exception classes an error of the notebook's may come back as: Python's own, by their qualified names
_BUILTIN_EXCEPTIONS = {f"builtins.{name}": cls for name, cls in vars(builtins).items()
                       if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins"}


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
    """A proxy for an object of the notebook's: a function, a class, a module, an iterator... Calling it, its
    attributes and its own protocol methods (len, iteration, indexing of a student's class) are requests to the
    notebook: they are the student's code; what they return is plain data or another proxy."""

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


# ---------------------------------------------------------------------------------------------------------------
# tensors that live in the notebook: the rule, for tensors
# ---------------------------------------------------------------------------------------------------------------
class RemoteTensor(RemoteObject):
    """A proxy for a tensor that lives in the notebook's process (a parameter, a buffer, a gradient).

    Its data is fetched and everything a test computes with it is computed here (`_compute_here`), including what
    torch would compute from its data alone: `.shape`, `.dtype`, `.T`, an index, `.view(...)`, `.detach()` (a view
    is a `RemoteTensorView`: the notebook's tensor and the steps that make the view from it, taken here). A change
    in place, to it or through a view of it, is computed here on its data, and the result copied into the notebook's
    tensor. What is asked of the notebook: its data, its autograd state (`.grad`, `.requires_grad`, `.is_leaf`) and
    other attributes of the student's object, setting them, and the copy of a changed value."""

    __slots__ = ()

    def _label(self) -> str:
        return "a tensor of your model"

    @property
    def __class__(self):
        return type(self)

    def _base(self) -> "RemoteTensor":
        return self

    def _from_base(self, data):
        """This tensor from the data of `_base()` (itself for a tensor, the view's steps for a view)."""
        return data

    def _fetch(self):
        """The tensor's data, as a tensor of this process (in the test's autograd when it requires grad)."""
        import torch

        value = self._base()._do("value")
        if not isinstance(value, torch.Tensor):
            raise TypeError("a tensor of your model did not send its data")
        return self._from_base(value)

    def _view(self, step: tuple) -> "RemoteTensorView":
        return RemoteTensorView(self._base(), self._steps() + (step,))

    def _steps(self) -> tuple:
        return ()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return _compute_here(func, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name in _VIEW_ATTRIBUTES:
            return self._view(("attr", name, (), {}))
        if name in _DATA_ATTRIBUTES:
            return getattr(self._fetch(), name)
        if name in _VIEW_METHODS:
            return _Method(self, name, view=True)
        if name == "requires_grad_":
            return self._requires_grad_
        if name in _tensor_methods():  # a method: computed here when it is called
            return _Method(self, name, view=False)
        if self._steps():  # the autograd state of a view made here: its own
            return getattr(self._fetch(), name)
        return self._do("getattr", name=name)

    def _requires_grad_(self, requires_grad=True):
        self._do("setattr", name="requires_grad", value=bool(requires_grad))
        return self

    def __getitem__(self, index):
        return _Method(self, "__getitem__", view=True)(index)

    def __array__(self, dtype=None, copy=None):
        value = self._fetch().detach().numpy()
        return value if dtype is None else value.astype(dtype)

    __hash__ = RemoteObject.__hash__


class RemoteTensorView(RemoteTensor):
    """A view of a tensor of the notebook's (`w[0]`, `w.T`, `w.data`, `w.view(2, -1)`): the notebook's tensor and the
    steps that make the view from it, taken here on its data each time it is used. A change in place through it is
    made here on the whole tensor's data, which is then copied into the notebook's tensor."""

    __slots__ = ("_root", "_view_steps")

    def __init__(self, base: RemoteTensor, steps: tuple):
        super().__init__(base._client, base._id, base._about)
        object.__setattr__(self, "_root", base)
        object.__setattr__(self, "_view_steps", steps)

    def _label(self) -> str:
        return "a view of a tensor of your model"

    def _base(self) -> RemoteTensor:
        return self._root

    def _steps(self) -> tuple:
        return self._view_steps

    def _from_base(self, data):
        import torch

        for kind, name, args, kwargs in self._view_steps:
            data = getattr(data, name) if kind == "attr" else getattr(torch.Tensor, name)(data, *args, **kwargs)
        return data

    def _requires_grad_(self, requires_grad=True):
        return self._fetch().requires_grad_(requires_grad)

    def __setattr__(self, name, value):
        raise AttributeError(f"cannot set {name!r} of a view of a tensor of your model")

    def __delattr__(self, name):
        raise AttributeError(f"cannot delete {name!r} of a view of a tensor of your model")


class _Method:
    """A tensor method of a RemoteTensor, computed here when it is called; a view method given plain sizes and
    indices makes a RemoteTensorView (so that a change in place through it reaches the notebook's tensor)."""

    def __init__(self, tensor: RemoteTensor, name: str, view: bool):
        self.tensor, self.name, self.view = tensor, name, view

    def __call__(self, *args, **kwargs):
        import torch

        if self.view and _plain_index((args, kwargs)):
            if self.name in _VIEWS_OF_MANY:  # a tuple of views
                count = len(_compute_here(getattr(torch.Tensor, self.name), (self.tensor, *args), kwargs))
                return tuple(self.tensor._view(("method", self.name, args, kwargs))._view(("method", "__getitem__", (i,), {}))
                             for i in range(count))
            return self.tensor._view(("method", self.name, args, kwargs))
        return _compute_here(getattr(torch.Tensor, self.name), (self.tensor, *args), kwargs)


def _plain_index(value) -> bool:
    """Whether `value` holds only what indexes or sizes a tensor without naming other data (ints, slices, None,
    Ellipsis, strings, and tuples, lists and dicts of these)."""
    if value is None or value is Ellipsis or type(value) in (bool, int, str):
        return True
    if type(value) is slice:
        return all(_plain_index(part) for part in (value.start, value.stop, value.step))
    if type(value) in (tuple, list) or type(value).__name__ == "Size":
        return all(_plain_index(item) for item in value)
    if type(value) is dict:
        return all(_plain_index(item) for item in value.values())
    return False


def _compute_here(func, args, kwargs):
    """`func` run in this process, on the data of every RemoteTensor among its arguments: the rule. A notebook tensor
    whose data `func` changed in place (itself or through a view) gets the changed data; a result that is such a
    tensor's data, or a view's, is the proxy again (as `x.add_(1)` returns `x`)."""
    fetched: dict[int, tuple] = {}  # id(the notebook's tensor's proxy) -> (proxy, local copy, its version when fetched)
    proxies: dict[int, RemoteTensor] = {}  # id(local tensor) -> the proxy it stands for

    def here(item):
        if isinstance(item, RemoteTensor):
            base = item._base()
            if id(base) not in fetched:
                copy = base._fetch()
                fetched[id(base)] = (base, copy, copy._version)
            local = item._from_base(fetched[id(base)][1])
            proxies.setdefault(id(local), item)
            return local
        if type(item) in (list, tuple):
            return type(item)(here(part) for part in item)
        if type(item) is dict:
            return {key: here(part) for key, part in item.items()}
        return item

    local_args, local_kwargs = here(tuple(args)), here(dict(kwargs or {}))
    result = func(*local_args, **local_kwargs)
    for base, copy, version in fetched.values():
        if copy._version != version:
            base._do("assign", value=copy.detach())

    def back(item):
        if id(item) in proxies:
            return proxies[id(item)]
        if type(item) in (list, tuple):
            return type(item)(back(part) for part in item)
        return item

    return back(result)


# what torch computes from a tensor's data alone: computed here, from the data fetched
_DATA_ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "device", "layout", "is_cuda", "is_sparse", "is_quantized",
                              "is_meta", "itemsize", "nbytes"})
# views of a tensor's data: a RemoteTensorView, so that a change in place through it reaches the notebook's tensor
_VIEW_ATTRIBUTES = frozenset({"T", "mT", "H", "mH", "data", "real", "imag"})
_VIEW_METHODS = frozenset({
    "__getitem__", "detach", "view", "t", "transpose", "permute", "narrow", "select", "squeeze", "unsqueeze",
    "expand", "unflatten", "diagonal", "unbind", "split", "chunk", "movedim", "swapaxes", "swapdims", "flatten",
    "reshape", "contiguous", "as_strided", "unfold", "view_as_real"})
_VIEWS_OF_MANY = frozenset({"unbind", "split", "chunk"})

# everything else a test does with such a tensor is computed here, with this process's torch
for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift",
              "matmul"):
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        _dunder = _form.format(_name)
        setattr(RemoteTensor, _dunder, (lambda name: lambda self, *args: _compute_dunder(name, self, args))(_dunder))
for _dunder in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__", "__neg__", "__pos__", "__abs__",
                "__invert__", "__float__", "__int__", "__index__", "__complex__", "__len__", "__bool__", "__setitem__",
                "__contains__", "__repr__", "__str__", "__format__", "__iter__", "__reversed__"):
    setattr(RemoteTensor, _dunder, (lambda name: lambda self, *args: _compute_dunder(name, self, args))(_dunder))


def _compute_dunder(name: str, tensor: RemoteTensor, args: tuple):
    import torch

    method = getattr(torch.Tensor, name, None)
    if method is None:  # e.g. no __rmatmul__ in this torch: the reflected form of the plain one
        plain = getattr(torch.Tensor, "__" + name[3:])
        if name.startswith("__r"):
            return _compute_here(lambda self, other: plain(other, self), (tensor, *args), {})
        method = plain
    return _compute_here(method, (tensor, *args), {})


def _tensor_methods() -> frozenset:
    global _TENSOR_METHODS
    if _TENSOR_METHODS is None:
        import torch

        _TENSOR_METHODS = frozenset(name for name in dir(torch.Tensor) if not name.startswith("__")
                                    and callable(getattr(torch.Tensor, name, None)))
    return _TENSOR_METHODS


_TENSOR_METHODS = None
