"""Submissions that try to break or fool the grader, graded by the real pipeline (assignment 1).

Each case edits the reference notebook the way a student could; the grader must stay in control:
bounded time, a results.json with a message, no points gained.
"""
import json
import sys
import zipfile

import nbformat

import pytest

from autograder.assignments import ASSIGNMENTS
from autograder.grade import grade
from test_grading import FULL, _insert_after_imports, _notebook, gradescope_python

A1 = ASSIGNMENTS["a1_tfidf"]


@pytest.fixture(autouse=True)
def short_cell_limit(monkeypatch):
    monkeypatch.setenv("COURSE_CELL_TIMEOUT_S", "15")


@pytest.fixture
def kernel_as_root(monkeypatch):
    """The notebook keeps root, as every process is the same user when grading runs without root: its writes to the
    test files succeed, so what keeps the tests intact is that they are read before it runs and run elsewhere."""
    monkeypatch.setenv("COURSE_KERNEL_USER", "")


def _scores(results):
    return {t["name"]: t["score"] for t in results["tests"] if "score" in t}


def _grade_edited(reference_zip, tmp_path, edit, with_weights=True, **kwargs):
    """Grade the reference notebook after `edit(notebook)`, with the reference weights unless told otherwise."""
    notebook = _notebook(reference_zip, tmp_path, edit)
    if with_weights:
        with zipfile.ZipFile(reference_zip) as zf:
            (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    return grade(notebook, A1, tmp_path / "out", quiet=True, **kwargs)


def _grade_with(reference_zip, tmp_path, source, **kwargs):
    """... with a cell inserted after the imports (so the rest of the notebook still runs after it)."""
    return _grade_edited(reference_zip, tmp_path, _insert_after_imports(source), **kwargs)


def _grade_appended(reference_zip, tmp_path, *sources, **kwargs):
    """... with cells appended at its end (so they replace what the notebook defined)."""
    return _grade_edited(reference_zip, tmp_path, lambda nb: nb.cells.extend(map(nbformat.v4.new_code_cell, sources)),
                         **kwargs)


WRONG_TFIDF = "def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf\n" \
              "    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)\n"


@pytest.mark.parametrize("name,source", [
    ("endless loop", "while True:\n    pass"),
    ("sleep", "import time\ntime.sleep(10_000)"),
])
def test_long_cell_is_stopped_and_named_and_the_rest_is_graded(reference_zip, tmp_path, name, source):
    results = _grade_with(reference_zip, tmp_path, source)
    assert sum(_scores(results).values()) == FULL, f"{name}: the other questions must still be graded"
    assert "CellTimeLimitExceeded" in results["output"] and "cell 5" in results["output"], results.get("output")


def _grade_measured_in_gradescopes_environment(notebook, tmp_path):
    """Grade as `make bench-grading` does: in the Gradescope environment, with the memory of every process measured;
    (results, peak MB)."""
    from autograder.bench import measure

    python = gradescope_python()
    row = measure([sys.executable, "-m", "autograder.grade", str(notebook), "--assignment", A1.name,
                   "--out", str(tmp_path / "out"), "--python", str(python)])
    return json.loads((tmp_path / "out" / "results.json").read_text()), row["peak_mb"]


ALLOCATE_WITHOUT_END = "    held = []\n    while True:\n        held.append(bytearray(50 * 2**20))\n"


@pytest.mark.parametrize("where", ["cell", "call from a test"])
def test_memory_bomb_fails_alone_within_gradescopes_memory(reference_zip, tmp_path, where):
    """The notebook's processes may allocate only so much data (the zip's memory_mb), so that code that allocates
    without end gets a MemoryError, named, while the whole grading tree stays inside Gradescope's default 768 MB:
    were the container's limit reached first, its OOM killer would end the kernel or the grader, and every question
    would be lost. With the earlier 1,536 MB data cap the cell case peaked at 1,923 MB; with 256 MB, at 622 MB."""
    if where == "cell":
        edit = _insert_after_imports("def hog():\n" + ALLOCATE_WITHOUT_END + "hog()")
    else:  # in the kernel's serving copy, while the tests call it
        def edit(notebook):
            notebook.cells.append(nbformat.v4.new_code_cell("def tfidf_l2(multi_hot_rows, idf):\n" + ALLOCATE_WITHOUT_END))
    notebook = _notebook(reference_zip, tmp_path, edit)
    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    results, peak_mb = _grade_measured_in_gradescopes_environment(notebook, tmp_path)
    scores = _scores(results)
    if where == "cell":
        assert sum(scores.values()) == FULL, "the kernel must survive and every question be graded"
        assert "cell 5, 'def hog():': MemoryError" in results["output"], results.get("output")
    else:  # q5's model uses tfidf_l2 too
        q4 = next(t for t in results["tests"] if t["name"] == "q4_tfidf_l2")
        assert scores["q4_tfidf_l2"] == 0 and "MemoryError:  (raised in tfidf_l2()" in q4["output"], q4["output"]
        assert sum(v for k, v in scores.items() if k not in ("q4_tfidf_l2", "q5_model")) == FULL - 5, scores
    assert peak_mb <= 700, f"grading peaked at {peak_mb} MB: too close to Gradescope's 768 MB"


@pytest.mark.parametrize("source", ["import os\nos._exit(0)", "import ctypes\nctypes.string_at(0)"])
def test_dying_kernel_gets_a_results_file_that_says_so(reference_zip, tmp_path, source):
    results = _grade_with(reference_zip, tmp_path, source, timeout_s=120)
    assert sum(_scores(results).values()) == 0
    assert "kernel died" in results["tests"][0]["output"]


def test_removing_skip_tags_does_not_retrain(reference_zip, tmp_path):
    def untag(nb):
        for cell in nb.cells:
            cell.metadata.pop("tags", None)
    notebook = _notebook(reference_zip, tmp_path, untag)
    with zipfile.ZipFile(reference_zip) as zf:
        weights = zf.read("a1_weights.safetensors")
    (tmp_path / "a1_weights.safetensors").write_bytes(weights)
    results = grade(notebook, A1, tmp_path / "out", quiet=True, timeout_s=300)
    assert sum(_scores(results).values()) == FULL
    assert (tmp_path / "a1_weights.safetensors").read_bytes() == weights, "grading overwrote the submitted weights"
    # training takes about 30 s, over this test's 15 s cell limit: had it run, its cell would be reported here
    assert "CellTimeLimitExceeded" not in (results.get("output") or ""), results.get("output")


def _bad_weights(case, reference_weights, path, marker):
    """Write the kind of broken weights file `case` names, made from the reference's tensors."""
    import pickle

    import torch
    from safetensors.torch import save_file

    state = dict(reference_weights)
    if case == "wrong keys":
        state["mlp.9.weight"] = state.pop("mlp.6.weight")
    elif case == "wrong shape":
        state["mlp.6.weight"] = state["mlp.6.weight"].t().contiguous()
    elif case == "NaN":
        state["mlp.3.bias"] = torch.full_like(state["mlp.3.bias"], float("nan"))
    elif case == "pickle":
        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))
        path.write_bytes(pickle.dumps(Payload()))
        return
    elif case == "over the cap":  # a valid file with one more tensor, 51 MB of it: refused before it is read
        state["padding"] = torch.zeros(51 * 2**20 // 4)
    save_file(state, str(path))


@pytest.mark.parametrize("case,message", [
    ("wrong keys", "has the wrong tensors: missing ['mlp.6.weight'], unexpected ['mlp.9.weight']"),
    ("wrong shape", "'mlp.6.weight' has shape (16, 1), expected (1, 16)"),
    ("NaN", "'mlp.3.bias' contains NaN or infinite values"),
    ("pickle", "is not a safetensors file"),
    ("over the cap", "over the 50 MB cap"),
])
def test_bad_weights_lose_only_the_model_question_with_a_message_and_never_execute(reference_zip, tmp_path, case,
                                                                                  message):
    from safetensors.torch import load

    with zipfile.ZipFile(reference_zip) as zf:
        reference_weights = load(zf.read("a1_weights.safetensors"))
    marker = tmp_path / "pwned"
    notebook = _notebook(reference_zip, tmp_path)
    _bad_weights(case, reference_weights, tmp_path / "a1_weights.safetensors", marker)
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    by_question = {t["name"]: t for t in results["tests"] if "score" in t}
    assert by_question["q6_trained_model"]["score"] == 0
    assert message in by_question["q6_trained_model"]["output"], by_question["q6_trained_model"]["output"]
    assert sum(t["score"] for t in by_question.values()) == FULL - 4, _scores(results)
    assert not marker.exists(), "loading the weights ran code"


def test_notebook_of_another_assignment_is_named(reference_zip, tmp_path):
    def other(nb):
        nb.metadata["otter"]["assignment_name"] = "a6_gpt"
    notebook = _notebook(reference_zip, tmp_path, other)
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    assert sum(_scores(results).values()) == 0
    assert "for assignment 'a6_gpt', not 'a1_tfidf'" in results["tests"][0]["output"]


def test_zip_without_notebook(reference_zip, tmp_path):
    path = tmp_path / "a1_tfidf_export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a1_weights.safetensors", b"")
    results = grade(path, A1, tmp_path / "out", quiet=True)
    assert sum(_scores(results).values()) == 0
    assert "no notebook" in results["tests"][0]["output"]


def test_grading_twice_gives_identical_scores(reference_zip, tmp_path):
    first = grade(reference_zip, A1, tmp_path / "one", quiet=True)
    second = grade(reference_zip, A1, tmp_path / "two", quiet=True)
    strip = lambda r: [(t["name"], t.get("score"), t.get("output")) for t in r["tests"]]
    assert strip(first) == strip(second)


def test_a_submitted_course_library_does_not_replace_the_graders(reference_zip, tmp_path):
    """A zip carrying its own course/grading.py (easy 'test set') and untrained weights gains nothing."""
    import torch
    from safetensors.torch import save_file

    notebook = _notebook(reference_zip, tmp_path)
    shapes = {"idf": (10000,), "mlp.0.weight": (16, 10000), "mlp.0.bias": (16,), "mlp.3.weight": (16, 16),
              "mlp.3.bias": (16,), "mlp.6.weight": (1, 16), "mlp.6.bias": (1,)}
    save_file({k: torch.zeros(v) for k, v in shapes.items()}, str(tmp_path / "a1_weights.safetensors"))
    fake = (
        "class SubmissionError(AssertionError):\n    pass\n"
        "def is_grading():\n    return True\n"
        "def load_submitted_weights(path, shapes, max_mb=50):\n"
        "    from safetensors.torch import load_file\n    return load_file(str(path))\n"
        "def imdb_test_ids(vocab_size=10000):\n    return [[1]] * 10, [0] * 10\n"  # zero weights predict 0: 100%
    )
    path = tmp_path / "a1_tfidf_export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(notebook, "a1_tfidf.ipynb")
        zf.write(tmp_path / "a1_weights.safetensors", "a1_weights.safetensors")
        zf.writestr("course/__init__.py", "")
        zf.writestr("course/grading.py", fake)
    results = grade(path, A1, tmp_path / "out", quiet=True)
    assert _scores(results)["q6_trained_model"] <= 1, "the hidden accuracy test must use the autograder's library"


TAMPERING = '''
import glob, torch, numpy
from otter.execute import Checker
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
for path in glob.glob("tests/*.py"):  # every hidden and public test replaced by one that passes
    name = path.split("/")[-1][:-3]
    open(path, "w").write(
        "from otter.test_files import test_case\\nOK_FORMAT = False\\nname = %r\\npoints = 99\\n"
        "@test_case(points=99, hidden=False)\\ndef test_ok():\\n    pass\\n" % name)
Checker.check_if_not_already_checked = classmethod(lambda cls, *a, **k: None)
'''


@pytest.mark.usefixtures("kernel_as_root")
def test_tampering_with_tests_libraries_and_grader_gains_nothing(reference_zip, tmp_path):
    """A wrong tfidf_l2 (forgets the idf) plus monkeypatched torch/numpy, rewritten test files and a
    replaced otter Checker: the question still scores zero and no other score is inflated."""
    results = _grade_appended(reference_zip, tmp_path, WRONG_TFIDF + TAMPERING)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2 and max(t["max_score"] for t in results["tests"] if "score" in t) <= 4


LYING_RESULTS = '''
import torch

class AlwaysEqual(dict):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False

def build_vocabulary(token_lists, size):  # wrong: empty, but claims to equal anything
    return AlwaysEqual()

class Agreeable(torch.Tensor):
    """A tensor whose every comparison says yes."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.allclose, torch.Tensor.equal):
            return True
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))

def tfidf_l2(multi_hot_rows, idf):  # wrong: all zeros
    return torch.zeros(multi_hot_rows.shape).as_subclass(Agreeable)
'''


def test_results_whose_comparisons_lie_gain_nothing(reference_zip, tmp_path):
    """A dict subclass whose == is always True and a tensor subclass whose allclose/equal are always True:
    the tests see the plain data inside (an empty dict, zeros) and fail."""
    scores = _scores(_grade_appended(reference_zip, tmp_path, LYING_RESULTS))
    assert scores["q1_vocabulary"] == 0 and scores["q4_tfidf_l2"] == 0, scores
    assert scores["q6_trained_model"] == 4, "the other questions are graded as usual"


THREAD_PATCHING_AND_REWRITING = '''
import glob, threading, time, torch

def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf
    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)

def patch_torch_and_rewrite_the_tests():
    while True:
        try:
            torch.allclose = lambda *a, **k: True
            for path in glob.glob("tests/*.py"):
                name = path.split("/")[-1][:-3]
                open(path, "w").write("from otter.test_files import test_case\\nname = %r\\npoints = 9\\n"
                                      "@test_case(points=9)\\ndef test_ok():\\n    pass\\n" % name)
        except Exception:  # refused, or a file another write holds: keep trying
            pass
        time.sleep(0.001)

threading.Thread(target=patch_torch_and_rewrite_the_tests, daemon=True).start()
'''

STUBBORN_THREAD = '''
import threading, time

def stubborn():
    while True:
        try:
            while True:
                time.sleep(0.001)
        except BaseException:
            pass

threading.Thread(target=stubborn, daemon=True).start()
'''


@pytest.mark.usefixtures("kernel_as_root")
def test_a_background_thread_that_patches_and_rewrites_gains_nothing(reference_zip, tmp_path):
    """The thread runs in the notebook's process: it patches that process's torch and, as root here, rewrites the
    test files, but the tests were read before any student cell ran and run in another process."""
    results = _grade_appended(reference_zip, tmp_path, THREAD_PATCHING_AND_REWRITING)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2 and max(t["max_score"] for t in results["tests"] if "score" in t) <= 4


def test_a_thread_that_never_stops_does_not_stop_the_grading(reference_zip, tmp_path):
    """The tests run in the grader process, against a copy of the kernel forked after the last cell, which has no
    thread but the one that serves: a thread that ignores every request to stop changes nothing."""
    results = _grade_appended(reference_zip, tmp_path, STUBBORN_THREAD)
    assert sum(_scores(results).values()) == FULL, results["tests"]


PATCHING_WHEN_CALLED = '''
import torch, numpy

def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf, and makes every comparison that follows say yes
    torch.allclose = torch.equal = lambda *args, **kwargs: True
    torch.Tensor.allclose = lambda *args, **kwargs: True
    torch.testing.assert_close.__code__ = (lambda *args, **kwargs: None).__code__
    numpy.allclose = lambda *args, **kwargs: True
    with open("tests/q4_tfidf_l2.py", "w") as test_file:  # and rewrites its own test
        test_file.write("from otter.test_files import test_case\\nname = 'q4_tfidf_l2'\\npoints = 2\\n"
                        "@test_case(points=2)\\ndef test_ok():\\n    pass\\n")
    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)
'''


@pytest.mark.usefixtures("kernel_as_root")
def test_patches_made_while_the_tests_call_student_code_change_nothing(reference_zip, tmp_path):
    """What student code patches, when a test calls it, is the notebook's own process: the tests run elsewhere."""
    scores = _scores(_grade_appended(reference_zip, tmp_path, PATCHING_WHEN_CALLED))
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2, scores


DETACHED_PROCESS = '''
import subprocess, sys
REWRITE_TESTS = """  # course-test: detached rewriter
import glob, os, time
if os.fork():
    os._exit(0)  # the grandchild lives on, detached from the kernel
os.setsid()
while True:
    for path in glob.glob("tests/*.py"):
        name = os.path.basename(path)[:-3]
        try:
            with open(path, "w") as test_file:
                test_file.write("from otter.test_files import test_case\\\\nname = %r\\\\npoints = 9\\\\n"
                                "@test_case(points=9)\\\\ndef test_ok():\\\\n    pass\\\\n" % name)
        except OSError:
            pass
    time.sleep(0.001)
"""
subprocess.Popen([sys.executable, "-c", REWRITE_TESTS]).wait()
''' + WRONG_TFIDF


@pytest.mark.usefixtures("kernel_as_root")
def test_a_detached_process_is_stopped_before_the_tests_and_gone_after_grading(reference_zip, tmp_path):
    """A double-forked process that rewrites the test files in a loop: killed before the tests run (the grader
    is a child subreaper, so it stays below it), and nothing is left running once grading ends; the grader's tests
    are the copy it read before the kernel started anyway."""
    import os
    from pathlib import Path

    results = _grade_appended(reference_zip, tmp_path, DETACHED_PROCESS)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert max(t["max_score"] for t in results["tests"] if "score" in t) <= 4

    def command_line(pid):
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # ended meanwhile
            return b""
    rewriters = [pid for pid in os.listdir("/proc") if pid.isdigit() and b"course-test: detached rewriter" in command_line(pid)]
    assert not rewriters, f"the rewriter process outlived grading: {rewriters}"


LOG_SERVER_PAYLOAD = '''
import logging, logging.handlers, pickle, socket, struct
handlers = [h for name in ["otter", *logging.root.manager.loggerDict] for h in getattr(logging.getLogger(name), "handlers", [])]
server = next(h for h in handlers if isinstance(h, logging.handlers.SocketHandler))

class RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("touch %s",))

payload = pickle.dumps(RunsCode())
with socket.create_connection((server.host, server.port)) as connection:
    connection.sendall(struct.pack(">L", len(payload)) + payload)
'''

FORGED_RESULTS_AT_EXIT = '''
import atexit, os, pickle, re

class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch %s",))

def forge_results():  # at kernel shutdown, after otter's last cell wrote the real results
    source = "\\\\n".join(get_ipython().user_ns["In"])
    path = re.findall(r'open\\\\("([^"]+\\\\.pkl)", "wb"\\\\)', source)[-1]
    with open(path, "wb") as results_file:
        pickle.dump(RunsCode(), results_file)

atexit.register(forge_results)
'''


@pytest.mark.parametrize("attack", [LOG_SERVER_PAYLOAD, FORGED_RESULTS_AT_EXIT], ids=["log server", "results at exit"])
def test_the_grader_process_runs_no_code_the_notebook_sends_it(reference_zip, tmp_path, attack):
    """otter's grader process unpickles what the kernel sends to its log server and the results file the kernel
    writes; both can come from student code. A pickle that would run a command must run nothing."""
    marker = tmp_path / "grader-ran-student-code"
    results = _grade_appended(reference_zip, tmp_path, attack % marker)
    assert not marker.exists(), "the grader process ran code sent by the notebook"
    assert sum(_scores(results).values()) == FULL, "the submission itself is still graded"


ENDLESS_WHEN_TESTED = '''
import time
FINAL_TESTS = False

def tfidf_l2(multi_hot_rows, idf):  # correct while the notebook runs, endless once the tests call it
    while FINAL_TESTS:
        time.sleep(0.01)
    return (multi_hot_rows * idf) / (multi_hot_rows * idf).norm(dim=1, keepdim=True).clamp(min=1e-12)

FINAL_TESTS = True
'''


def test_a_call_from_the_tests_that_never_returns_is_stopped_and_the_rest_is_graded(reference_zip, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CALL_TIMEOUT_S", "3")
    results = _grade_appended(reference_zip, tmp_path, ENDLESS_WHEN_TESTED)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0 and scores["q1_vocabulary"] == 3 and scores["q7_word_order"] == 1, scores
    assert "tfidf_l2(), called by a test, ran longer than 3 s" in json.dumps(results["tests"])


EVERYTHING_ENDLESS_WHEN_TESTED = '''
import time, types

def _endless(*args, **kwargs):
    time.sleep(10_000)

for _name, _value in list(globals().items()):  # every function and class the notebook defined
    if not _name.startswith("_") and isinstance(_value, (types.FunctionType, type)) and _value.__module__ == "__main__":
        globals()[_name] = _endless
'''


def test_calls_that_use_up_the_tests_time_fail_the_rest_and_the_weights_are_still_graded(reference_zip, tmp_path,
                                                                                          monkeypatch):
    """Every test's call runs until it is stopped, until the time for all of them is used up: the tests after that
    fail at once with that reason, and the exported weights are graded all the same. (The reset between tests
    counted as such a call; used up, it ended the test process, and every question scored 0 with "the grader's
    test process failed".)"""
    monkeypatch.setenv("COURSE_CALL_TIMEOUT_S", "2")
    monkeypatch.setenv("COURSE_TESTS_TIMEOUT_S", "5")
    results = _grade_appended(reference_zip, tmp_path, EVERYTHING_ENDLESS_WHEN_TESTED)
    scores = _scores(results)
    assert scores["q6_trained_model"] == 4 and sum(scores.values()) == 4, scores
    messages = json.dumps(results["tests"])
    assert "ran longer than 2 s" in messages and "used up the 5 s allowed for all of them" in messages, messages[:3000]
    assert "test process failed" not in messages, messages[:3000]


def test_cells_that_together_run_too_long_are_stopped_and_named(reference_zip, tmp_path, monkeypatch):
    """Each cell under its own limit, but together over the notebook's: the cell that crosses it is stopped,
    later cells are skipped with a message, and the questions are still graded."""
    monkeypatch.setenv("COURSE_NOTEBOOK_TIMEOUT_S", "20")

    sleep = "import time\ntime.sleep(12)"
    results = _grade_appended(reference_zip, tmp_path, sleep, sleep, "print('never runs')")
    assert sum(_scores(results).values()) == FULL, results.get("output")
    cells = len(nbformat.read(tmp_path / f"{A1.name}.ipynb", as_version=4).cells)
    assert f"cell {cells - 1} (import time) was stopped by the grader when the notebook's cells reached the 20 s" in results["output"]
    assert f"cell {cells} (print('never runs')) was not run" in results["output"], results["output"]


GUARD_AWARE = '''
for name, value in list(globals().items()):
    if name.startswith("__course_guard_"):  # written against course.grading_guard's source: no serving copy
        value.serve_tests = lambda *args, **kwargs: None
import torch
torch.allclose = lambda *args, **kwargs: True
''' + WRONG_TFIDF


def test_a_notebook_written_against_the_guard_cannot_switch_it_off(reference_zip, tmp_path):
    """Switching the kernel's side off leaves the tests without the notebook's code: they fail, with the reason;
    the exported weights are still graded. (This was the known limit while the tests ran inside the kernel.)"""
    results = _grade_appended(reference_zip, tmp_path, GUARD_AWARE)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0 and scores["q1_vocabulary"] == 0, scores
    assert scores["q6_trained_model"] == 4, scores
    assert "never started serving the tests" in json.dumps(results["tests"])


FORGED_SERVER = '''
# written against course.remote's source: answer the grader's requests with a server of its own (forked, as the
# real one is), which says yes to everything, and sends a pickle that would run a command
import json, os, pickle, socket, struct, time

class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch %s",))

def forged_server(namespace):
    if os.fork():
        time.sleep(1)  # let the copy leave the kernel's process group
        return
    os.setsid()
    sock = guard._tests_socket  # the socket pair the kernel shares with the test process

    def send(message, buffers=()):
        header = json.dumps({"m": message, "b": [len(b) for b in buffers]}).encode()
        sock.sendall(struct.pack("!QI", 4 + len(header) + sum(map(len, buffers)), len(header)) + header + b"".join(buffers))

    send({"op": "hello", "pid": os.getpid()})
    replies = 0
    while True:
        head = sock.recv(12, socket.MSG_WAITALL)
        if len(head) < 12:
            break
        total, _ = struct.unpack("!QI", head)
        sock.recv(total - 4, socket.MSG_WAITALL)
        replies += 1
        if replies < %d:
            send({"op": "return", "value": True, "sync": []})  # "passed", whatever was asked
        else:
            send({"op": "return", "value": {"$": "pickle", "b": 0}, "sync": []}, [pickle.dumps(RunsCode())])
    os._exit(0)

guard = next(value for name, value in globals().items() if name.startswith("__course_guard_"))
guard.serve_tests = forged_server
''' + WRONG_TFIDF


@pytest.mark.parametrize("replies_before_the_pickle", [3, 10_000], ids=["pickle", "yes to everything"])
def test_a_forged_server_gains_nothing_and_runs_no_code_in_the_grader(reference_zip, tmp_path, replies_before_the_pickle):
    """The notebook answers the tests itself. Answers are data the test process checks against its own expectations
    (a `True` where a tensor is due fails the test), and what is not plain data (a pickle) is refused: the notebook's
    process is stopped, the tests that need it fail with the reason, and nothing runs where the tests run."""
    marker = tmp_path / "grader-ran-student-code"
    results = _grade_appended(reference_zip, tmp_path, FORGED_SERVER % (marker, replies_before_the_pickle))
    scores = _scores(results)
    assert not marker.exists(), "the grader process ran code sent by the notebook"
    assert scores["q4_tfidf_l2"] == 0 and scores["q2_multi_hot"] == 0 and scores["q3_idf"] == 0, scores
    assert scores["q6_trained_model"] == 4, "the exported weights are graded as submitted"
    if replies_before_the_pickle == 3:
        assert "does not accept" in json.dumps(results["tests"]), results["tests"]


HIDDEN_TESTS_READ = '''
import glob
readable = []
for path in glob.glob("tests/*.py") + glob.glob("../source/tests/*.py"):
    try:
        readable.append(open(path).read())
    except OSError:
        pass
if readable or glob.glob("tests/*.py"):  # the tests' names or code are out of the notebook's reach
''' + WRONG_TFIDF.replace("\n", "\n    ").replace("def tfidf_l2", "    def tfidf_l2", 1)


def test_the_notebook_cannot_read_the_tests(reference_zip, tmp_path):
    """When grading runs as root, the tests (in the submission folder and in the autograder's source) are closed to
    the notebook's user: the hidden tests' code and expected values cannot be read. This notebook breaks tfidf_l2
    only if it could list or read them."""
    import os

    if os.geteuid() != 0:
        pytest.skip("the kernel drops privileges only when grading runs as root")
    scores = _scores(_grade_appended(reference_zip, tmp_path, HIDDEN_TESTS_READ))
    assert scores["q4_tfidf_l2"] == 2, scores


SOURCE_TESTS_REWRITE = '''
import glob
for path in glob.glob("../source/tests/*.py") + glob.glob("tests/*.py"):  # the autograder's own copy too
    name = path.split("/")[-1][:-3]
    try:  # refused when the notebook runs unprivileged; the wrong function below is defined either way
        open(path, "w").write(
            "from otter.test_files import test_case\\nOK_FORMAT = False\\nname = %r\\npoints = 2\\n"
            "@test_case(points=2, hidden=False)\\ndef test_ok():\\n    pass\\n" % name)
    except OSError:
        pass
''' + WRONG_TFIDF


def test_rewriting_the_autograders_own_tests_gains_nothing(reference_zip, tmp_path):
    """The grader reads its tests from ../source/tests before the kernel starts; rewriting either copy gains nothing."""
    scores = _scores(_grade_appended(reference_zip, tmp_path, SOURCE_TESTS_REWRITE))
    assert scores["q4_tfidf_l2"] == 0, scores


TESTS_TURNED_INTO_PASSES = '''
import glob, os
for path in glob.glob("../source/tests/*.py") + glob.glob("tests/*.py"):
    try:  # keeps every test case's name and points, and makes its body do nothing
        os.chmod(path, 0o644)
        with open(path, "a") as test_file:
            test_file.write("\\nfor _case in list(globals().values()):\\n"
                            "    if type(_case).__name__ == 'test_case':\\n        _case.test_func = lambda: None\\n"
                            "del _case\\n")
    except OSError:  # refused when the notebook runs unprivileged
        pass
'''


@pytest.mark.usefixtures("kernel_as_root")
def test_rewriting_the_tests_in_the_first_cell_as_the_same_user_gains_nothing(reference_zip, tmp_path, monkeypatch):
    """When the notebook's user may write the test files (grading without root), its first cell is still too late:
    the kernel runs no student cell before the test process has read the tests. The autograder here has a first
    test file that takes 4 s to load, so that a kernel that did not wait would always lose the race (before the
    wait, this submission scored 18/18)."""
    from autograder.assignments import Assignment

    slow_zip = tmp_path / "slow-autograder.zip"
    with zipfile.ZipFile(A1.zip_path) as original, zipfile.ZipFile(slow_zip, "w") as slow:
        for item in original.infolist():
            content = original.read(item)
            if item.filename == "tests/q1_vocabulary.py":
                content = b"import time\ntime.sleep(4)\n" + content
            slow.writestr(item, content)
    monkeypatch.setattr(Assignment, "zip_path", property(lambda self: slow_zip))

    def edit(notebook):
        _insert_after_imports(TESTS_TURNED_INTO_PASSES)(notebook)
        notebook.cells.append(nbformat.v4.new_code_cell(WRONG_TFIDF))

    scores = _scores(_grade_edited(reference_zip, tmp_path, edit))
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2, scores


GRADER_CODE_REWRITE = '''
# code the grader process imports after the notebook has run: make every test pass there
import glob
for path in glob.glob("../source/course/*.py"):
    try:
        with open(path, "a") as module:
            module.write("\\nimport gc as _gc\\nfor _r in _gc.get_objects():\\n"
                         "    if type(_r).__name__ == 'TestCaseResult':\\n        _r.passed = True\\n")
    except OSError:
        pass
''' + WRONG_TFIDF


def test_rewriting_the_graders_own_code_gains_nothing(reference_zip, tmp_path):
    scores = _scores(_grade_appended(reference_zip, tmp_path, GRADER_CODE_REWRITE))
    assert scores["q4_tfidf_l2"] == 0, scores


GRADING_DATA_REWRITE = '''
# the accuracy test reads the test split from grading_data/: make every label positive, like the submitted model
import glob
import numpy as np
for path in glob.glob("grading_data/*.npz") + glob.glob("../source/files/grading_data/*.npz"):
    with np.load(path) as stored:
        arrays = dict(stored)
    arrays["labels"] = np.ones_like(arrays["labels"])
    try:
        with open(path, "wb") as rewritten:
            np.savez_compressed(rewritten, **arrays)
    except OSError:
        pass
'''


def test_rewriting_the_grading_data_gains_nothing(reference_zip, tmp_path):
    """A model that says "positive" to every review scores 50%; on a test split rewritten to all-positive, 100%."""
    from safetensors.torch import load_file, save_file

    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "reference.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    constant = {name: tensor.zero_() for name, tensor in load_file(tmp_path / "reference.safetensors").items()}
    constant["mlp.6.bias"].fill_(1.0)
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(GRADING_DATA_REWRITE)))
    save_file(constant, tmp_path / "a1_weights.safetensors")
    scores = _scores(grade(notebook, A1, tmp_path / "out", quiet=True))
    assert scores["q6_trained_model"] <= 1, scores  # the file loads (1 point); the accuracy test must fail


GRADER_MEMORY = '''
# the grader process (run_otter.py) holds the results it will write: its memory must be out of the notebook's reach
import os
grader = os.getppid()
try:
    with open(f"/proc/{grader}/mem", "r+b"):
        pass
    reachable = True
except OSError:
    reachable = False
try:
    os.kill(grader, 0)  # permission to send signals (SIGSTOP would hang the grader until Gradescope's limit)
    signalled = True
except OSError:
    signalled = False
if reachable or signalled:
''' + WRONG_TFIDF.replace("\n", "\n    ").replace("def tfidf_l2", "    def tfidf_l2", 1)


def test_the_notebook_cannot_reach_the_grader_process(reference_zip, tmp_path):
    """When grading runs as root (as on Gradescope), the notebook runs as an unprivileged user: it can neither open
    the grader's memory nor signal it. This notebook breaks tfidf_l2 only if it could."""
    import os

    if os.geteuid() != 0:
        pytest.skip("the kernel drops privileges only when grading runs as root")
    overwrite_weights = 'open("a1_weights.safetensors", "wb").write(b"trained during grading")'
    results = _grade_appended(reference_zip, tmp_path, GRADER_MEMORY, overwrite_weights)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 2, scores
    assert scores["q6_trained_model"] == 4, "the submitted weights must be graded as submitted"
    assert "PermissionError" in results["output"] and "may create files but not change the submitted ones" in results["output"]
    assert "runs as 'nobody'" in (tmp_path / "out" / "grading.log").read_text()


FORGED_RESULTS = '''
# written against the grader's source: switch the kernel's side off, then make every test the kernel runs pass at
# 100 points
for name, value in list(globals().items()):
    if name.startswith("__course_guard_"):
        value.serve_tests = lambda *args, **kwargs: None
from dataclasses import replace
from otter.test_files.abstract_test import TestCaseResult
from otter.test_files.exception_test import ExceptionTestFile

def everything_passes(self, global_environment):
    self.test_case_results = [TestCaseResult(test_case=replace(case, points=100), message="passed", passed=True)
                              for case in self.test_cases]
ExceptionTestFile.run = everything_passes
from otter.execute import Checker
Checker._test_files.clear()  # forget the genuine results of the checks the notebook ran, so every test runs again
'''


def test_results_the_kernel_forges_are_not_used(reference_zip, tmp_path):
    """Nothing the kernel reports is used: questions, points and visibility come from the grader's copy of the
    tests, and every test runs in the grader process (the weights' tests on the submitted file)."""
    from safetensors.torch import load_file, save_file

    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "reference.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    constant = {name: tensor.zero_() for name, tensor in load_file(tmp_path / "reference.safetensors").items()}
    constant["mlp.6.bias"].fill_(1.0)  # "positive" for every review: 50% accuracy
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(FORGED_RESULTS)))
    save_file(constant, tmp_path / "a1_weights.safetensors")
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    scores = _scores(results)
    assert scores["q6_trained_model"] == 1, scores  # the file loads (1 point); its accuracy is 50%, below 86%
    assert {t["name"]: t["max_score"] for t in results["tests"] if "score" in t} == {
        "q1_vocabulary": 3, "q2_multi_hot": 2, "q3_idf": 3, "q4_tfidf_l2": 2, "q5_model": 3, "q6_trained_model": 4,
        "q7_word_order": 1}, "points must come from the autograder's tests, not from the kernel"


def test_modules_in_a_submission_do_not_replace_installed_ones(reference_zip, tmp_path):
    """The kernel starts in the submission folder, first on its sys.path, and runs as root until the grader's first
    cell gives root up: a submitted `tqdm.py` (imported by that cell) or `zmq/` (imported by ipykernel) would have
    run as root. They are removed before the kernel starts, and the student is told."""
    marker = tmp_path / "submitted-module-ran"
    payload = f"open({str(marker)!r}, 'w').write('ran')\nclass tqdm:\n    monitor_interval = 10\n"
    notebook = _notebook(reference_zip, tmp_path)
    path = tmp_path / "a1_tfidf_export.zip"
    with zipfile.ZipFile(reference_zip) as reference, zipfile.ZipFile(path, "w") as zf:
        zf.write(notebook, "a1_tfidf.ipynb")
        zf.writestr("a1_weights.safetensors", reference.read("a1_weights.safetensors"))
        zf.writestr("tqdm.py", payload)
        zf.writestr("zmq/__init__.py", payload)
    results = grade(path, A1, tmp_path / "out", quiet=True)
    assert not marker.exists(), "a submitted module ran while the notebook was graded"
    assert sum(_scores(results).values()) == FULL
    assert "tqdm.py" in results["output"] and "zmq/" in results["output"], results["output"]


CRASH_WHEN_TESTED = '''
import ctypes
FINAL_TESTS = False

def tfidf_l2(multi_hot_rows, idf):  # correct while the notebook runs; crashes its process once a test calls it
    if FINAL_TESTS:
        ctypes.string_at(0)
    return (multi_hot_rows * idf) / (multi_hot_rows * idf).norm(dim=1, keepdim=True).clamp(min=1e-12)

FINAL_TESTS = True
'''


def test_a_call_that_crashes_its_process_fails_the_tests_after_it_and_the_weights_are_still_graded(reference_zip, tmp_path):
    """A segfault while a test calls student code ends the serving copy of the kernel, not the grading: the tests
    before it keep their points, the tests that need the notebook after it fail with the reason, and the exported
    weights are graded."""
    results = _grade_appended(reference_zip, tmp_path, CRASH_WHEN_TESTED)
    scores = _scores(results)
    assert scores["q1_vocabulary"] == 3 and scores["q3_idf"] == 3 and scores["q6_trained_model"] == 4, scores
    assert scores["q4_tfidf_l2"] == 0 and scores["q5_model"] == 0 and scores["q7_word_order"] == 0, scores
    assert "stopped answering" in json.dumps(results["tests"]), results["tests"]
