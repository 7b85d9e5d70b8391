"""Submissions that try to break or fool the grader, graded by the real pipeline (assignment 1).

Each case edits the reference notebook the way a student could; the grader must stay in control:
bounded time, a results.json with a message, no points gained.
"""
import zipfile

import nbformat

import pytest

from autograder.assignments import ASSIGNMENTS
from autograder.grade import grade
from test_grading import FULL, _insert_after_imports, _notebook

A1 = ASSIGNMENTS["a1_tfidf"]


@pytest.fixture(autouse=True)
def short_cell_limit(monkeypatch):
    monkeypatch.setenv("COURSE_CELL_TIMEOUT_S", "15")


def _scores(results):
    return {t["name"]: t["score"] for t in results["tests"] if "score" in t}


def _grade_with(reference_zip, tmp_path, source, with_weights=True, **kwargs):
    notebook = _notebook(reference_zip, tmp_path, _insert_after_imports(source))
    if with_weights:
        with zipfile.ZipFile(reference_zip) as zf:
            (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    return grade(notebook, A1, tmp_path / "out", quiet=True, **kwargs)


@pytest.mark.parametrize("name,source", [
    ("endless loop", "while True:\n    pass"),
    ("sleep", "import time\ntime.sleep(10_000)"),
])
def test_long_cell_is_stopped_and_named_and_the_rest_is_graded(reference_zip, tmp_path, name, source):
    results = _grade_with(reference_zip, tmp_path, source)
    assert sum(_scores(results).values()) == FULL, f"{name}: the other questions must still be graded"
    assert "CellTimeLimitExceeded" in results["output"] and "cell 5" in results["output"], results.get("output")


def test_memory_bomb_fails_its_cell_not_the_kernel(reference_zip, tmp_path):
    bomb = "def hog():\n    held = []\n    while True:\n        held.append(bytearray(50 * 2**20))\nhog()"
    results = _grade_with(reference_zip, tmp_path, bomb)
    assert sum(_scores(results).values()) == FULL, "the kernel must survive and every question be graded"
    assert "MemoryError" in results["output"]


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


def test_pickle_weights_never_execute(reference_zip, tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    notebook = _notebook(reference_zip, tmp_path)
    (tmp_path / "a1_weights.safetensors").write_bytes(pickle.dumps(Payload()))
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    assert _scores(results)["q6_trained_model"] == 0
    assert not marker.exists()


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


def test_tampering_with_tests_libraries_and_grader_gains_nothing(reference_zip, tmp_path):
    """A wrong tfidf_l2 (forgets the idf) plus monkeypatched torch/numpy, rewritten test files and a
    replaced otter Checker: the question still scores zero and no other score is inflated."""
    wrong = "def tfidf_l2(multi_hot_rows, idf):\n    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)"
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(wrong + "\n" + TAMPERING)))
    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
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
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(LYING_RESULTS)))
    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    scores = _scores(grade(notebook, A1, tmp_path / "out", quiet=True))
    assert scores["q1_vocabulary"] == 0 and scores["q4_tfidf_l2"] == 0, scores
    assert scores["q6_trained_model"] == 4, "the other questions are graded as usual"


THREAD_UNDOING_REPAIRS = '''
import glob, threading, time, torch

def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf
    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)

def undo_the_graders_repairs():
    while True:
        try:
            torch.allclose = lambda *a, **k: True
            for path in glob.glob("tests/*.py"):
                name = path.split("/")[-1][:-3]
                open(path, "w").write("from otter.test_files import test_case\\nname = %r\\npoints = 9\\n"
                                      "@test_case(points=9)\\ndef test_ok():\\n    pass\\n" % name)
        except Exception:  # the grader may be replacing the folder right now: try again
            pass
        time.sleep(0.001)

threading.Thread(target=undo_the_graders_repairs, daemon=True).start()
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


def test_a_background_thread_cannot_undo_the_repairs(reference_zip, tmp_path):
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(THREAD_UNDOING_REPAIRS)))
    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2 and max(t["max_score"] for t in results["tests"] if "score" in t) <= 4


def test_a_thread_that_refuses_to_stop_fails_the_submission_with_a_reason(reference_zip, tmp_path):
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(nbformat.v4.new_code_cell(STUBBORN_THREAD)))
    with zipfile.ZipFile(reference_zip) as zf:
        (tmp_path / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))
    results = grade(notebook, A1, tmp_path / "out", quiet=True)
    assert sum(_scores(results).values()) == 0
    assert all("BackgroundThreadsRunning" in t["output"] for t in results["tests"] if "score" in t), results["tests"]
