"""sandbox.wire, notebook_side and test_side: the tests in the test process, student code in another one.

The notebook side runs in a separate process (tests/remote_masters.py forks one per namespace); the tests' side is
this process. The masters' own tests run this way in every
test_aN module (`test_graded_in_another_process_alike`); here: the rules of the protocol, one at a time.
"""
import json
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from autograder.sandbox import test_side, wire
from remote_masters import remote_namespace
from test_adversarial_boundary import LYING_RESULTS

NOTEBOOK = '''
import time
import numpy as np
import torch
import torch.nn as nn

class Head(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 1)
        self.register_buffer("scale", torch.ones(dim))

    def forward(self, x):
        return self.out(self.proj(x) * self.scale).squeeze(-1)

def double_in_place(x):
    x *= 2
    return x.sum()

def mean(x):
    return x.mean()

def shuffle_array(a):
    a[...] = a[::-1].copy()
    return len(a)

def draw(generator, n):
    return torch.randint(0, 1000, (n,), generator=generator)

def run(model, x):
    return model(x)

def fails(kind):
    if kind == "value":
        raise ValueError("a value error from the notebook")
    class Custom(KeyError):
        pass
    raise Custom("a custom error")

def out_of_memory():
    raise MemoryError()

def endless():
    while True:
        time.sleep(0.01)

def stubborn():
    while True:
        try:
            while True:
                time.sleep(0.01)
        except BaseException:
            pass

def liars():
    return build_vocabulary([], 1), tfidf_l2(torch.ones(2, 3), None), np.float32(2.5), True

def plain():
    from collections import Counter, OrderedDict
    return {"ints": [1, 2**70, -3], "float": float("nan"), "str": "é", "bytes": b"\\x00\\xff", "tuple": (1, (2, 3)),
            "set": {1, 2}, "frozen": frozenset({"a"}), "complex": 1 - 2j, "none": None, "size": torch.Size([2, 3]),
            "dtype": torch.bfloat16, "device": torch.device("cpu"), "slice": slice(1, None, 2), "range": range(3),
            "counter": Counter("aab"), "ordered": OrderedDict(b=1, a=2), "array": np.arange(6).reshape(2, 3),
            "bool_tensor": torch.tensor([True, False]), "half": torch.ones(2, dtype=torch.float16),
            "empty": torch.zeros(0, 4), "topk": torch.topk(torch.tensor([3.0, 1.0, 2.0]), 2)}

def patch_everything():
    """Everything a test might compute with a tensor of this notebook's, replaced in this process by a liar."""
    torch.allclose = torch.equal = lambda *args, **kwargs: True
    torch.softmax = lambda x, *args, **kwargs: x
    torch.nn.functional.softmax = lambda x, *args, **kwargs: x
    torch.Tensor.__eq__ = lambda self, other: torch.ones(self.shape, dtype=torch.bool)
    torch.Tensor.__add__ = lambda self, other: self
    torch.Tensor.__getitem__ = lambda self, index: torch.zeros(())
    torch.Tensor.sum = lambda self, *args, **kwargs: torch.tensor(0.0)
    torch.Tensor.t = lambda self: self
    torch.Tensor.T = property(lambda self: self)
    torch.Tensor.__format__ = lambda self, spec: "0"
    torch.Tensor.__len__ = lambda self: 1
    torch.Tensor.__bool__ = lambda self: True

def patch_torch():
    torch.allclose = lambda *args, **kwargs: True
    torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
    return torch.zeros(2)
''' + LYING_RESULTS  # build_vocabulary: a dict whose == is always true; tfidf_l2: a tensor whose allclose lies


@pytest.fixture(scope="module")
def client():
    with remote_namespace(None, NOTEBOOK, call_limit_s=2, total_limit_s=1000) as client:
        yield client


@pytest.fixture
def notebook(client):
    client.reset()
    return client.namespace()


def test_plain_data_comes_back_as_the_graders_own_types(notebook):
    from collections import Counter, OrderedDict

    value = notebook["plain"]()
    assert value["ints"] == [1, 2**70, -3] and np.isnan(value["float"]) and value["str"] == "é"
    assert value["bytes"] == b"\x00\xff" and value["tuple"] == (1, (2, 3)) and value["set"] == {1, 2}
    assert value["frozen"] == frozenset({"a"}) and value["complex"] == 1 - 2j and value["none"] is None
    assert type(value["size"]) is torch.Size and value["size"] == (2, 3) and value["dtype"] is torch.bfloat16
    assert value["device"] == torch.device("cpu") and value["slice"] == slice(1, None, 2) and value["range"] == range(3)
    assert type(value["counter"]) is Counter and value["counter"] == Counter("aab")
    assert type(value["ordered"]) is OrderedDict and list(value["ordered"]) == ["b", "a"]
    assert np.array_equal(value["array"], np.arange(6).reshape(2, 3))
    assert value["bool_tensor"].dtype == torch.bool and value["bool_tensor"].tolist() == [True, False]
    assert value["half"].dtype == torch.float16 and value["empty"].shape == (0, 4)
    assert value["topk"].values.tolist() == [3.0, 2.0] and value["topk"].indices.tolist() == [0, 2]


def test_lying_subclasses_arrive_as_their_plain_data(notebook):
    always_equal, agreeable, scalar, flag = notebook["liars"]()
    assert type(always_equal) is dict and always_equal != {"a": 1}
    assert type(agreeable) is torch.Tensor and not torch.allclose(agreeable, torch.ones(2, 3))
    assert type(scalar) is np.float32 and scalar == 2.5 and flag is True


def test_patching_torch_in_the_notebook_changes_nothing_here(notebook):
    zeros = notebook["patch_torch"]()
    assert not torch.allclose(zeros, torch.ones(2)) and not (zeros == torch.ones(2)).all()


def test_what_a_test_computes_with_a_notebooks_tensor_is_computed_here():
    """THE RULE (sandbox.test_side): the notebook has replaced, in its own process, every function the test uses on
    its tensor; each way in (a torch function through __torch_function__, an operator, ==, a tensor method, an
    attribute read, a view, len/bool/format) still gives the test's own answer. (Before, each was dispatched to the
    notebook, and the patched function answered.)"""
    with remote_namespace(None, NOTEBOOK, call_limit_s=5) as client:  # its own: the patches stay there
        client.reset()
        notebook = client.namespace()
        head = notebook["Head"](4)
        weights = torch.arange(16.0).reshape(4, 4)
        with torch.no_grad():
            head.proj.weight.copy_(weights)
        notebook["patch_everything"]()
        w = head.proj.weight
        assert not torch.allclose(w, torch.eye(4)) and not torch.equal(w, torch.eye(4)), "torch functions"
        assert torch.allclose(torch.softmax(w, dim=-1).sum(-1), torch.ones(4)), "torch functions"
        assert torch.allclose(torch.nn.functional.softmax(w, dim=-1).sum(-1), torch.ones(4)), "torch.nn.functional"
        assert torch.equal(w + 1, weights + 1) and torch.equal(1 + w, weights + 1), "operators"
        assert not (w == torch.eye(4)).all() and not (torch.eye(4) == w).all(), "=="
        assert w.sum().item() == weights.sum().item() and float(w[1, 2]) == 6.0, "tensor methods, indexing"
        assert torch.equal(w.T, weights.T) and torch.equal(w.t(), weights.T) and w.shape == (4, 4), "attribute reads"
        assert len(w) == 4 and format(w[0, 1], ".1f") == "1.0" and not bool(w[0, 0]), "len, format, bool"
        assert torch.equal(head.proj.weight.data, weights), "views"
        with torch.no_grad():  # changes in place still reach the notebook's tensor, through views too
            w[0].zero_()
            w[1:3] *= 2
            w.T[3].fill_(-1.0)
        expected = weights.clone()
        expected[0] = 0
        expected[1:3] *= 2
        expected[:, 3] = -1
        assert torch.equal(w.detach().clone(), expected)


def test_modules_are_proxies_whose_parameters_change_in_place(notebook):
    head = notebook["Head"](4)
    assert isinstance(head, torch.nn.Module) and isinstance(head.proj, torch.nn.Linear)
    assert not isinstance(head, torch.nn.Linear) and not isinstance(head.proj, torch.Tensor)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {
        "scale": (4,), "proj.weight": (4, 4), "proj.bias": (4,), "out.weight": (1, 4), "out.bias": (1,)}
    x = torch.randn(3, 4)
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(4))
        head.proj.bias.zero_()
        head.proj.weight[1:3] *= 2  # a view of a parameter: the change reaches the notebook's tensor
        head.scale.fill_(0.5)  # a buffer
        head.out.weight.fill_(1.0)
        head.out.bias.zero_()
        expected = (x * torch.tensor([1.0, 2.0, 2.0, 1.0]) * 0.5).sum(-1)
        assert torch.allclose(head(x), expected, atol=1e-6)
        assert torch.allclose(x @ head.proj.weight.T, x * torch.tensor([1.0, 2.0, 2.0, 1.0]))  # torch ops on proxies
    head.out = torch.nn.Identity()  # a module of torch's own goes by copy
    with torch.no_grad():
        assert head(x).shape == (3, 4)
    assert type(head).__name__ == "Head" and type(head.proj.weight).__name__ == "Parameter", "named as in-process"
    assert sum(p.numel() for p in head.parameters()) == 4 * 4 + 4


def test_autograd_reaches_the_notebooks_parameters(notebook):
    head = notebook["Head"](3)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(head(torch.ones(2, 3)), torch.ones(2))
    assert loss.requires_grad
    loss.backward()
    grad = head.out.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with torch.no_grad():
        before = head.out.weight.sum().item()
        for parameter in head.parameters():
            if parameter.grad is not None:
                parameter -= 0.5 * parameter.grad
    assert head.out.weight.sum().item() != before


def test_what_the_notebook_does_to_the_graders_tensors_comes_back(notebook):
    x = torch.ones(3)
    assert notebook["double_in_place"](x) == 6.0
    assert x.tolist() == [2.0, 2.0, 2.0], "a change in place must reach the test's tensor"
    y = torch.arange(4.0, requires_grad=True)
    notebook["mean"](y).backward()
    assert y.grad is not None and torch.allclose(y.grad, torch.full((4,), 0.25)), "gradients must reach the test's leaf"
    a = np.arange(5)
    notebook["shuffle_array"](a)
    assert a.tolist() == [4, 3, 2, 1, 0]


def test_a_generator_is_used_there_and_advanced_here(notebook):
    mine, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(notebook["draw"](theirs, 5), torch.randint(0, 1000, (5,), generator=mine))
    assert torch.equal(notebook["draw"](theirs, 5), torch.randint(0, 1000, (5,), generator=mine)), \
        "the generator's state must come back after the call"
    assert torch.equal(theirs.get_state(), mine.get_state())


def test_a_model_a_test_defines_runs_in_the_notebook(notebook):
    class Doubler(torch.nn.Module):  # local: not importable, goes by dill
        factor = 2

        def forward(self, x):
            return x * self.factor

    assert notebook["run"](Doubler(), torch.ones(2)).tolist() == [2.0, 2.0]


def test_errors_come_back_as_builtin_exceptions(notebook):
    with pytest.raises(ValueError) as caught:
        notebook["fails"]("value")
    assert "a value error from the notebook" not in str(caught.value), "no text of the notebook's becomes the grader's"
    with pytest.raises(KeyError) as caught:
        notebook["fails"]("custom")
    assert type(caught.value) is KeyError, "never a class defined by the notebook"
    with pytest.raises(AttributeError):
        notebook["Head"](2).no_such_attribute
    assert getattr(notebook["Head"](2), "no_such_attribute", None) is None
    assert notebook.get("no_such_name") is None


def test_an_endless_call_is_stopped_and_the_next_one_runs(notebook):
    start = time.monotonic()
    with pytest.raises(test_side.CallTimeLimitExceeded, match=r"endless\(\), called by a test, ran longer than 2 s"):
        notebook["endless"]()
    assert time.monotonic() - start < 4
    assert notebook["mean"](torch.ones(2)) == 1.0


def test_a_call_that_swallows_the_interruption_ends_its_process():
    with remote_namespace(None, NOTEBOOK, call_limit_s=1) as client:
        client.reset()
        stubborn = client.namespace()["stubborn"]
        start = time.monotonic()
        with pytest.raises(test_side.NotGraded, match="ignored the grader's interruption"):
            stubborn()
        assert time.monotonic() - start < 1 + test_side.INTERRUPT_GRACE_S + 2
        with pytest.raises(test_side.NotGraded, match="ignored the grader's interruption"):
            client.namespace()["mean"]
        assert _ends(client.pid), "the process that ignored the interruption must be killed"


def test_calls_share_one_time_budget():
    with remote_namespace(None, NOTEBOOK, call_limit_s=1, total_limit_s=1.5) as client:
        client.reset()
        endless = client.namespace()["endless"]
        with pytest.raises(test_side.CallTimeLimitExceeded, match="ran longer than 1 s"):
            endless()
        with pytest.raises(test_side.CallTimeLimitExceeded, match="used up the 1.5 s allowed for all of them"):
            endless()
        with pytest.raises(test_side.CallTimeLimitExceeded, match="was not run"):
            endless()
        # the grader's own preparation of the next test counts too (the notebook may have made it hang): the test
        # cannot run, which the test process reports for it, and goes on
        with pytest.raises(test_side.NotGraded, match="the preparation of this test was not run: .* used up the 1.5 s"):
            client.reset()


# ---- a notebook process that breaks the rules, written by hand ----
def _forged_exchange(replies, cells=None):
    """A Client talking to a fake notebook process that answers each request with the next of `replies`
    (a message dict and its buffers, or raw bytes); returns the client and the fake's pid (a sleeping process)."""
    grader_end, notebook_end = socket.socketpair()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def fake():
        connection = wire.Connection(notebook_end, max_bytes=None)
        for reply in replies:
            try:
                connection.receive()
            except EOFError:
                return
            if isinstance(reply, bytes):
                notebook_end.sendall(reply)
            else:
                connection.send(*reply)
        time.sleep(1)
    threading.Thread(target=fake, daemon=True).start()
    return test_side.Client(wire.Connection(grader_end), sleeper.pid, call_limit_s=5, cells=cells), sleeper


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo the grader ran the notebook's pickle",))


@pytest.mark.parametrize("reply,reason", [
    (({"op": "return", "value": {"$": "pickle", "b": 0}}, [pickle.dumps(RunsCode())]), "'pickle'"),
    (({"op": "return", "value": {"$": "gref", "id": 1}}, []), "'gref'"),
    (({"op": "return", "value": {"$": "tensor", "dtype": "float32", "shape": [1000], "b": 0}}, [b"\x00" * 8]),
     "does not match its shape"),
    (({"op": "return", "value": {"$": "ndarray", "dtype": "|O", "shape": [1], "b": 0}}, [b"\x00" * 8]), "dtype"),
    (({"op": "return", "value": {"$": "dtype", "v": "_dynamo"}}, []), "unknown dtype"),
    (({"op": "return", "value": {"$": "dict", "v": [[[1], 2]]}}, []), "malformed value"),
    (({"op": "callback", "kind": "call", "target": 1}, []), "unexpected message"),
    (struct.pack("!QI", wire.MAX_DRAINED_BYTES + 1, 10), "over the 32 MB allowed"),
    (struct.pack("!QI", 20, 16) + b"{not json at all", "malformed message header"),
], ids=["pickle", "grader object", "short tensor", "object array", "lazy torch attribute", "unhashable key",
        "callback", "too large", "not json"])
def test_the_grader_builds_nothing_but_plain_data(reply, reason):
    client, sleeper = _forged_exchange([reply])
    try:
        with pytest.raises(test_side.NotGraded, match=reason):
            client.namespace().get("anything")
        sleeper.wait(timeout=5)  # the grader killed the process that broke the protocol
        with pytest.raises(test_side.NotGraded):
            client.namespace().get("anything")
    finally:
        sleeper.kill()


def test_names_are_looked_up_without_torchs_lazy_imports(monkeypatch):
    """torch imports some submodules when they are first named (its module __getattr__: torch._dynamo loads the
    compiler, tens of MB): a dtype or return type named by the notebook's process is looked up without it."""
    asked = []
    monkeypatch.setattr(torch, "__getattr__", lambda name: asked.append(name), raising=False)
    for node in ({"$": "dtype", "v": "_dynamo"}, {"$": "return_type", "name": "_dynamo"}):
        with pytest.raises(wire.ProtocolError):
            wire.decode_plain(node["$"], node, [], None)
    assert wire.decode_plain("dtype", {"v": "float16"}, [], None) is torch.float16
    assert asked == []


def test_nested_values_are_bounded():
    deep = {"$": "tuple", "v": []}
    for _ in range(wire.MAX_DEPTH + 5):
        deep = {"$": "tuple", "v": [deep]}
    client, sleeper = _forged_exchange([({"op": "return", "value": deep}, [])])
    try:
        with pytest.raises(test_side.NotGraded, match="nested"):
            client.namespace().get("anything")
    finally:
        sleeper.kill()


def _ends(pid: int, within_s: float = 5) -> bool:
    """Whether process `pid` has ended (or is a zombie) within `within_s`."""
    from autograder.sandbox.processes import is_zombie

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if is_zombie(pid):  # also when it is gone
            return True
        time.sleep(0.05)
    return False


# ---- what the notebook says of an exception is data the grader checks (issue 23, item 2) ----
CELLS = {3: "def tfidf_l2(rows, idf):\n    x = rows * idf\n    raise ValueError('no')\n"}


@pytest.mark.parametrize("error,raised_as,where", [
    ({"types": ["builtins.ValueError"], "where": {"cell": 3, "line": 3, "function": "tfidf_l2"}},
     "ValueError", "tfidf_l2(), cell 3, line 3"),
    ({"types": ["builtins.ValueError"], "where": {"cell": 3, "line": 99, "function": "tfidf_l2"}}, "ValueError", ""),
    ({"types": ["builtins.ValueError"], "where": {"cell": 7, "line": 1, "function": "tfidf_l2"}}, "ValueError", ""),
    ({"types": ["builtins.KeyError"], "where": {"cell": 3, "line": 2, "function": "SECRET_hidden_input_42"}},
     "KeyError", "cell 3, line 2"),
    ({"types": ["builtins.ValueError"], "where": {"cell": 3, "line": 2, "function": "x = 'SECRET'"}}, "ValueError",
     "cell 3, line 2"),
    ({"types": ["notebook.SECRET_hidden_input", "SECRET"], "where": "tfidf_l2(), SECRET hidden input [1, 2, 3]",
      "message": "SECRET hidden input"}, "an exception", ""),
], ids=["valid", "line out of range", "unknown cell", "name not in the cell", "name not an identifier", "forged text"])
def test_an_exceptions_place_is_kept_only_where_it_fits_the_cells(error, raised_as, where):
    from autograder.sandbox import test_runner

    client, sleeper = _forged_exchange([({"op": "raise", "error": error}, [])], cells=CELLS)
    try:
        with pytest.raises(Exception) as caught:
            client.namespace().get("tfidf_l2")
    finally:
        sleeper.kill()
    raised = caught.value
    assert raised.raised_as == raised_as and raised.raised_in_notebook == where
    assert "SECRET" not in str(raised) and "no" != str(raised)
    test_file = type("QuestionTests", (), {"path": "t.py", "source": "", "question": "q4"})()
    for hidden in (True, False):
        case = type("Case", (), {"hidden": hidden})()
        message = test_runner.failure_message(test_file, case, raised)
        assert "SECRET" not in message and (f"your code raised {raised_as}" in message if hidden or raised_as ==
                                            "an exception" else message.endswith(f"{raised_as}: {raised}")), message
        assert (where in message) if where else "cell" not in message, message


# ---- decoding a reply has a budget, charged to the call (issue 23, item 3) ----
def _plain_reply(value=1):
    return {"op": "return", "value": value}, []


@pytest.mark.parametrize("reply,reason", [
    (({"op": "return", "value": [[]] * 1_200_000}, []), "values, over the"),
    (struct.pack("!QI", 40 * 2**20, 10) + b"\0" * (40 * 2**20 - 4), "over the 32 MB allowed"),
    (({"op": "return", "value": {"$": "tensor", "dtype": "float32", "shape": [2**30, 2**30], "b": 0}}, [b"\0" * 4]),
     "claims"),
    (({"op": "return", "value": {"$": "set", "v": [k * (2**61 - 1) for k in range(5000)]}}, []), "collide"),
    (({"op": "return", "value": {"$": "set", "v": list(range(300_000))}}, []), "items, over the"),
], ids=["many small objects", "too large, drained", "a huge claimed shape", "colliding hashes", "a huge set"])
def test_a_reply_that_would_cost_too_much_fails_its_call_only(reply, reason):
    client, sleeper = _forged_exchange([reply, _plain_reply(7)])
    try:
        start = time.monotonic()
        with pytest.raises(test_side.ReplyOverBudget, match=reason):
            client.namespace().get("anything")
        assert time.monotonic() - start < 10
        assert client.namespace().get("anything") == 7, "the next call is answered"
        assert sleeper.poll() is None, "the notebook's process is not blamed"
    finally:
        sleeper.kill()


def test_a_deeply_nested_reply_fails_its_call_only():
    deep = {"$": "tuple", "v": []}
    for _ in range(wire.MAX_DEPTH + 5):
        deep = {"$": "tuple", "v": [deep]}
    json_deep = "[" * 5000 + "]" * 5000  # deeper than JSON's own parser goes
    replies = [({"op": "return", "value": deep}, []), _plain_reply(1),
               struct.pack("!QI", 4 + len(json_deep) + 40, len(json_deep) + 40) +
               ('{"m": {"op": "return", "value": ' + json_deep + '}, "b": []}').encode()[:len(json_deep) + 40],
               _plain_reply(2)]
    client, sleeper = _forged_exchange(replies)
    try:
        with pytest.raises(test_side.ReplyOverBudget, match="nested"):
            client.namespace().get("anything")
        assert client.namespace().get("anything") == 1
        with pytest.raises(test_side.ReplyOverBudget):
            client.namespace().get("anything")
        assert client.namespace().get("anything") == 2
    finally:
        sleeper.kill()


# ---- time is allotted per question (issue 23, item 4) ----
def test_a_questions_calls_have_their_own_share():
    with remote_namespace(None, NOTEBOOK, call_limit_s=5, total_limit_s=4) as client:
        client.reset()
        client.begin_question("q2_slow", 1.0)
        with pytest.raises(test_side.CallTimeLimitExceeded, match="tests of q2_slow .* 1 s allowed for that question"):
            client.namespace()["endless"]()
        with pytest.raises(test_side.CallTimeLimitExceeded, match="was not run: .* q2_slow"):
            client.namespace()["endless"]()
        client.begin_question("q3_fast", 1.0)
        assert client.namespace()["mean"](torch.ones(2)) == 1.0, "the next question has its own time"


def test_a_questions_own_code_has_its_own_share():
    from autograder.sandbox.test_runner import OwnClock, TestTimeLimitExceeded

    clock = OwnClock()
    clock.start("q5_loop", 0.3)
    with pytest.raises(TestTimeLimitExceeded, match="q5_loop"):
        with clock.running():
            while True:
                pass
    assert clock.stop() >= 0.3
    clock.start("q6_fast", 0.3)
    with clock.running():
        with clock.paused():  # a call into the notebook: not the test's own time
            time.sleep(0.5)
    assert clock.stop() < 0.2


def test_a_memory_error_of_the_notebooks_code_is_its_own_not_the_replys(notebook):
    """A MemoryError the student's code raised is that error (the notebook's, with its place), not a reply over the
    test process's budget."""
    with pytest.raises(MemoryError) as caught:
        notebook["out_of_memory"]()
    assert not isinstance(caught.value, test_side.ReplyOverBudget) and caught.value.raised_as == "MemoryError"
