"""Submissions that try to break or fool the grader, graded through the zip's own entry point (assignment 1):
the grader keeps its limits: what a submission holds, how long and how much it may run, what it leaves behind.

Each case is a submission a student could make: an edited notebook, extra files, a malformed file. Whatever it
does, the grader must stay in control, and every grading here is checked for the same invariants
(`_check_invariants`): the zip's run_autograder wrote results.json, no process started for grading is alive
afterwards, and nothing the notebook's user wrote is left in the shared temporary folders. Then each test checks
its own claim: no points gained, the limit held, the message names the cause.
"""
import json
import os
import sys

import nbformat
import pytest

from autograder.container import GRADESCOPE
from autograder.grade import questions_of
from test_grading import FULL, _insert_after_imports, _notebook, gradescope_python
from adversarial import (  # noqa: F401 - short_cell_limit and kernel_as_root are fixtures
    A1, TEMPORARY_FOLDERS, WEIGHTS_POINTS, _command_line, _copy_reference_weights, _everything,
    _grade, _grade_appended, _grade_edited, _grade_with, _grade_zip, _pids, _scores, _with_zip, short_cell_limit
)


# ================================================================================================================
# the submission is data
# ================================================================================================================
MARKER_PAYLOAD = "open({marker!r}, 'w').write('ran')\n"


def test_nothing_in_a_submission_but_its_notebook_and_weights_is_read(reference_zip, tmp_path):
    """A stub submitted with files otter or Python would read or run: otter's log (a pickle), an otter config, a
    namespace package named like a module torch imports if present, sitecustomize, .pth files, shadows of installed
    modules. Only the notebook and the weights are graded; the rest is named and never read, so the untouched stub
    still scores 0. (Before, otter unpickled .OTTER_LOG as root in the grader, and the kernel's first cell imported
    envwrap/ as root through tqdm: each, written to switch the verdicts on, gave the untouched stub 18/18.)"""
    import pickle

    marker = tmp_path / "submitted-code-ran"
    payload = MARKER_PAYLOAD.format(marker=str(marker))

    class RunsCode:
        def __reduce__(self):
            return (exec, (payload,))

    stub = A1.release.read_bytes()
    entries = {"a1_tfidf.ipynb": stub, ".OTTER_LOG": pickle.dumps(RunsCode()), "a1_tfidf.otter": b'{"notebook": 1}',
               "triton/language.py": payload, "triton/__main__.py": payload, "sitecustomize.py": payload,
               # a namespace package (no __init__.py) that tqdm imports when present: `from envwrap import envwrap`
               "envwrap/envwrap.py": payload + "def envwrap(*a, **k):\n    return lambda f: f\nimport sys\n"
                                               "sys.modules[__name__] = envwrap\n",
               "usercustomize.py": payload, "evil.pth": f"import os; {payload}".encode(), "tqdm.py": payload,
               "zmq/__init__.py": payload, "course/grading.py": payload, "__pycache__/x.pyc": b"\0" * 16}
    results = _grade_zip(tmp_path, entries)
    assert not marker.exists(), "a file of the submission ran"
    assert sum(_scores(results).values()) == 0, _scores(results)
    for name in ("triton/", "envwrap/", "sitecustomize.py", ".OTTER_LOG", "tqdm.py", "zmq/", "course/"):
        assert name in results["output"], results["output"]


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
    results = _grade_zip(tmp_path, {"a1_tfidf.ipynb": notebook.read_bytes(), "course/__init__.py": "",
                                    "course/grading.py": fake,
                                    "a1_weights.safetensors": (tmp_path / "a1_weights.safetensors").read_bytes()})
    assert _scores(results)["q6_trained_model"] <= 1, "the hidden accuracy test must use the autograder's library"


def test_a_very_deep_folder_tree_in_a_submission_is_left_alone(reference_zip, tmp_path):
    """1,500 nested folders (deeper than Python's recursion limit, which a recursive walk or shutil.rmtree hits):
    the submission is still graded, and the folder named."""
    notebook = _notebook(reference_zip, tmp_path)
    _copy_reference_weights(reference_zip, tmp_path)
    results = _grade_zip(tmp_path, {"a1_tfidf.ipynb": notebook.read_bytes(), "d/" * 1500 + "end.txt": "deep",
                                    "a1_weights.safetensors": (tmp_path / "a1_weights.safetensors").read_bytes()})
    assert sum(_scores(results).values()) == FULL
    assert "d/" in results["output"], results["output"]


def _many_cells(nb):
    nb.cells.extend(nbformat.v4.new_code_cell("") for _ in range(30_000))


def _huge_cell(nb):
    nb.cells.append(nbformat.v4.new_code_cell("DATA = " + repr("x" * (2 * 2**20))))


def _huge_outputs(nb):
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * (40 * 2**20))]


@pytest.mark.parametrize("edit,message", [
    (_many_cells, "cells, more than the 2,000 the grader reads"),
    (_huge_cell, "KB of code, more than the 256 KB the grader runs in one cell"),
    (_huge_outputs, "over the 32 MB the grader reads: clear its outputs"),
], ids=["30,000 cells", "a 2 MB cell", "40 MB of outputs"])
def test_a_notebook_over_the_limits_gets_a_message_and_its_weights_are_graded(reference_zip, tmp_path, edit, message):
    results = _grade_edited(reference_zip, tmp_path, edit)
    assert _scores(results)["q6_trained_model"] == WEIGHTS_POINTS and sum(_scores(results).values()) == WEIGHTS_POINTS
    assert message in results["output"], results["output"]


@pytest.mark.parametrize("content,message", [
    (b"this is not a notebook", "is not valid JSON"),
    (b"", "is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
    (b'{"cells": "many", "nbformat": 4}', "has no list of cells"),
    (b"\xff\xfe\x00{", "is not valid JSON"),
    (json.dumps({"nbformat": 4, "metadata": {}, "cells": [{"cell_type": "code", "source": 7}]}).encode(), "malformed"),
], ids=["text", "empty", "deeply nested", "cells not a list", "not UTF-8", "source not text"])
def test_malformed_notebooks_get_a_message(reference_zip, tmp_path, content, message):
    path = tmp_path / f"{A1.name}.ipynb"
    path.write_bytes(content)
    results = _grade(path, tmp_path)
    assert results["tests"] and all(t["score"] == 0 for t in results["tests"])
    assert message in results["output"], results["output"]


def test_notebook_of_another_assignment_is_named(reference_zip, tmp_path):
    def other(nb):
        nb.metadata["otter"]["assignment_name"] = "a6_gpt"
    results = _grade(_notebook(reference_zip, tmp_path, other), tmp_path)
    assert sum(_scores(results).values()) == 0
    assert "for assignment 'a6_gpt', not 'a1_tfidf'" in results["tests"][0]["output"]


def test_zip_without_notebook(reference_zip, tmp_path):
    results = _grade_zip(tmp_path, {"a1_weights.safetensors": b""})
    assert sum(_scores(results).values()) == 0
    assert "no notebook" in results["tests"][0]["output"]


# ================================================================================================================
# limits, held from outside the notebook's processes
# ================================================================================================================
@pytest.mark.parametrize("name,source", [
    ("endless loop", "while True:\n    pass"),
    ("sleep", "import time\ntime.sleep(10_000)"),
])
def test_long_cell_is_stopped_and_named_and_the_rest_is_graded(reference_zip, tmp_path, name, source):
    results = _grade_with(reference_zip, tmp_path, source)
    assert sum(_scores(results).values()) == FULL, f"{name}: the other questions must still be graded"
    assert "CellTimeLimitExceeded" in results["output"] and "cell 5" in results["output"], results.get("output")


@pytest.mark.parametrize("name,source", [
    ("stops itself", "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)"),
    ("ignores interruptions and timers", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                         "signal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.setitimer(signal.ITIMER_REAL, 0)\n"
                                         "while True:\n    pass"),
    ("swallows every interruption", "while True:\n    try:\n        while True:\n            pass\n"
                                    "    except BaseException:\n        pass"),
])
def test_a_cell_that_cannot_be_interrupted_ends_its_process_and_the_weights_are_graded(reference_zip, tmp_path, name,
                                                                                      source):
    """The cell limit is the supervisor's, not the notebook's: a process that stops itself, ignores SIGINT or
    switches its own timers off is killed once the cell's time and the grace after the interruption have passed
    (before, such a kernel hung grading until Gradescope ended it with no results)."""
    import time

    started = time.monotonic()
    results = _grade_with(reference_zip, tmp_path, source)
    assert time.monotonic() - started < 15 + 5 + 60, "the supervisor must not wait past the cell's limit and grace"
    scores = _scores(results)
    assert scores["q6_trained_model"] == WEIGHTS_POINTS and sum(scores.values()) == WEIGHTS_POINTS, scores
    assert "did not stop when interrupted" in _everything(results), results["output"]


def test_cells_that_together_run_too_long_are_stopped_and_named(reference_zip, tmp_path, monkeypatch):
    """Each cell under its own limit, but together over the notebook's: the cell that crosses it is stopped,
    later cells are skipped with a message, and the questions are still graded."""
    monkeypatch.setenv("COURSE_NOTEBOOK_TIMEOUT_S", "20")
    sleep = "import time\ntime.sleep(12)"
    results = _grade_appended(reference_zip, tmp_path, sleep, sleep, "print('never runs')")
    assert sum(_scores(results).values()) == FULL, results.get("output")
    cells = len(nbformat.read(tmp_path / f"{A1.name}.ipynb", as_version=4).cells)
    assert (f"cell {cells - 1} (import time): CellTimeLimitExceeded: was stopped by the grader when the notebook's "
            "cells reached the 20 s") in results["output"], results["output"]
    assert f"cell {cells} (print('never runs')) was not run" in results["output"], results["output"]


def test_slow_tests_of_the_exported_files_and_cells_that_use_their_budget_end_before_the_deadline(
        reference_zip, tmp_path, monkeypatch):
    """The budgets are the zip's (scaled down here: cells 20 s, the tests 10 + 10 s, file tests 8 s, results by 75 s):
    cells that use all of theirs and a weights test that would never end (as weights that are slow to evaluate do)
    leave results.json complete before the deadline, with each test's reason."""
    import time

    for name, seconds in (("NOTEBOOK_TIMEOUT_S", 20), ("TESTS_TIMEOUT_S", 10), ("TESTS_OWN_S", 10),
                          ("FILE_TESTS_TIMEOUT_S", 8), ("DEADLINE_S", 75)):
        monkeypatch.setenv(f"COURSE_{name}", str(seconds))
    _with_zip(monkeypatch, tmp_path, lambda name, content: content.replace(
        b"    ids, labels = imdb_test_ids(", b"    import time; time.sleep(10_000)\n    ids, labels = imdb_test_ids(")
        if name == "tests/q6_trained_model.py" else content)
    sleep = "import time\ntime.sleep(14)"
    started = time.monotonic()
    results = _grade_appended(reference_zip, tmp_path, sleep, sleep, container=GRADESCOPE)  # a time limit: at 0.5 CPU
    assert time.monotonic() - started < 75 + 10
    by_question = questions_of(results)
    assert by_question["q6_trained_model"]["score"] == 1, by_question["q6_trained_model"]  # the file loads: 1 point
    assert "ran longer than the 8 s" in by_question["q6_trained_model"]["output"]
    assert sum(_scores(results).values()) == FULL - 3


def _grade_measured_in_gradescopes_environment(notebook, tmp_path):
    """Grade as `make bench-grading` does: in the Gradescope environment, in the emulated container's 768 MB (at this
    machine's speed), with the memory of every process measured; (results, peak MB, run.json)."""
    from autograder.bench import measure

    python = gradescope_python()
    row = measure([sys.executable, "-m", "autograder.grade", str(notebook), "--assignment", A1.name,
                   "--out", str(tmp_path / "out"), "--python", str(python), "--container", "memory"])
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["results_by_zip"] and not run["left"], run
    print(f"PSS peak {row['peak_mb']} MB; container: {run['container']}")
    return json.loads((tmp_path / "out" / "results.json").read_text()), row["peak_mb"], run


ALLOCATE_WITHOUT_END = "    held = []\n    while True:\n        held.append(bytearray(50 * 2**20))\n"
MEMORY_OUTSIDE_THE_DATA_LIMIT = {
    "child processes": "import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n"
                       "        held = bytearray(150 * 2**20)\n        for i in range(0, len(held), 4096):\n"
                       "            held[i] = 1\n        time.sleep(1000)\n        os._exit(0)\ntime.sleep(30)",
    "a shared mapping": "import mmap, time\nm = mmap.mmap(-1, 2 * 2**30, flags=mmap.MAP_SHARED)\n"
                        "for i in range(0, len(m), 4096):\n    m[i] = 1\ntime.sleep(30)",
    "files in /dev/shm": "import time\nfor n in range(12):\n    with open(f'/dev/shm/course-attack-{n}', 'wb') as f:\n"
                         "        for _ in range(200):\n            f.write(b'x' * 2**20)\ntime.sleep(30)",
    "memory files": "import os, time\nfds = []\nfor _ in range(16):\n    fd = os.memfd_create('fill')\n"
                    "    for _ in range(200):\n        os.write(fd, b'x' * 2**20)\n    fds.append(fd)\ntime.sleep(30)",
}


@pytest.mark.parametrize("where", ["cell", "call from a test", *MEMORY_OUTSIDE_THE_DATA_LIMIT])
def test_memory_of_the_whole_tree_stays_within_gradescopes_container(reference_zip, tmp_path, where):
    """Gradescope's container has 768 MB, and its OOM killer would end grading with nothing written. Allocating
    without end in one process meets its data limit (a MemoryError, named; the rest is graded); memory the data limit
    does not count (child processes, shared mappings, memory-backed files, memfd) is seen by the supervisor's watch
    of the whole tree, which kills the notebook's processes, and, where a memory cgroup can be made, by the kernel,
    which holds the notebook's processes to a hard limit of their own; either way the container stays within 700 MB
    (the kernel's high-water mark of the emulated container, exact; sampled from outside where there is no cgroup)
    and the exported weights are graded. (Before the watch, such notebooks took the tree to 1.3-1.9 GB; sampled, a
    burst once measured 710 MB under load.)"""
    if where == "cell":
        edit = _insert_after_imports("def hog():\n" + ALLOCATE_WITHOUT_END + "hog()")
    elif where == "call from a test":
        def edit(notebook):
            notebook.cells.append(nbformat.v4.new_code_cell("def tfidf_l2(multi_hot_rows, idf):\n" + ALLOCATE_WITHOUT_END))
    else:
        edit = _insert_after_imports(MEMORY_OUTSIDE_THE_DATA_LIMIT[where])
    notebook = _notebook(reference_zip, tmp_path, edit)
    _copy_reference_weights(reference_zip, tmp_path)
    results, peak_mb, run = _grade_measured_in_gradescopes_environment(notebook, tmp_path)
    scores = _scores(results)
    if where == "cell":
        assert sum(scores.values()) == FULL, "the kernel must survive and every question be graded"
        assert "cell 5 (def hog():): MemoryError" in results["output"], results.get("output")
    elif where == "call from a test":  # q5's model uses tfidf_l2 too
        q4 = questions_of(results)["q4_tfidf_l2"]
        assert scores["q4_tfidf_l2"] == 0 and "MemoryError: raised in tfidf_l2(), cell" in q4["output"], q4["output"]
        assert sum(v for k, v in scores.items() if k not in ("q4_tfidf_l2", "q5_model")) == FULL - 5, scores
    else:
        assert scores["q6_trained_model"] == WEIGHTS_POINTS, scores
        assert "used more memory than the grader allows while cell 5" in results["output"], results["output"]
    if run["container"].get("peak_mb") is not None:  # the kernel's own high-water mark of everything charged: exact
        assert run["container"]["peak_mb"] <= 700, f"the container peaked at {run['container']}: too close to 768 MB"
    else:  # no cgroup here: sampled from outside (PSS every 50 ms)
        assert peak_mb <= 700, f"grading peaked at {peak_mb} MB: too close to Gradescope's 768 MB"


def test_a_fork_bomb_is_contained(reference_zip, tmp_path):
    """The notebook's user may have 64 processes and threads: the bomb's forks fail, its cell is stopped at its limit,
    every process it made is killed, and the questions are graded."""
    results = _grade_with(reference_zip, tmp_path, "import os, time\nwhile True:\n    try:\n        os.fork()\n"
                                                   "    except OSError:\n        time.sleep(0.05)")
    assert sum(_scores(results).values()) == FULL, results["output"]


def test_what_a_cell_prints_is_not_kept_in_the_notebooks_memory(reference_zip, tmp_path):
    """400 MB printed, twice the notebook's memory: none of it stays in the notebook's process (IPython 9 kept a copy
    of every write, which ended in a MemoryError in this cell and in the tests' calls after it)."""
    results = _grade_with(reference_zip, tmp_path, "for _ in range(400):\n    print('x' * 1_000_000)")
    assert sum(_scores(results).values()) == FULL, results["output"]


def test_a_flood_of_output_costs_nothing(reference_zip, tmp_path):
    """A cell that prints without end: what it prints is read and dropped beyond a few hundred KB, the cell is
    stopped by its limit (or fails alone), and the grading log stays small."""
    results = _grade_with(reference_zip, tmp_path, "import sys\nwhile True:\n    sys.stdout.write('x' * 1_000_000 + '\\n')")
    assert sum(_scores(results).values()) == FULL, results["output"]
    assert (tmp_path / "out" / "grading.log").stat().st_size < 2 * 2**20


# ================================================================================================================
# results in every case; nothing outlives grading
# ================================================================================================================
@pytest.mark.parametrize("source", ["import os\nos._exit(0)", "import ctypes\nctypes.string_at(0)"])
def test_dying_kernel_gets_a_results_file_that_says_so_and_the_weights_are_graded(reference_zip, tmp_path, source):
    results = _grade_with(reference_zip, tmp_path, source)
    assert sum(_scores(results).values()) == WEIGHTS_POINTS, _scores(results)
    assert "your notebook's process ended while cell 5" in _everything(results), results["tests"]


def test_the_grader_failing_still_writes_results(reference_zip, tmp_path, monkeypatch):
    """A bug of the grader's own (here: a test file of the zip that does not load) ends in a results.json that says
    so, written by the zip."""
    _with_zip(monkeypatch, tmp_path, lambda name, content: b"this is not python (\n" + content
              if name == "tests/q3_idf.py" else content)
    results = _grade_edited(reference_zip, tmp_path, None)
    assert sum(_scores(results).values()) == 0
    assert "The grader failed" in results["output"] and "tell the course staff" in results["output"], results["output"]


LEFTOVERS = '''
import os, subprocess, sys, time
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    with open(os.path.join(folder, "course-attack-leftover"), "w") as f:
        f.write("still here?")
    os.makedirs(os.path.join(folder, "course-attack-folder", "inner"), exist_ok=True)
DAEMON = """  # course-test: detached daemon
import os, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
while True:
    time.sleep(1)
"""
subprocess.Popen([sys.executable, "-c", DAEMON]).wait()
'''


def test_no_process_or_file_of_the_notebook_outlives_grading(reference_zip, tmp_path):
    """A daemon that double-forks into a session of its own, and files and folders in every shared temporary folder:
    after grading none is left (checked for every grading here, by _check_invariants; this submission makes sure
    there is something to find)."""
    results = _grade_with(reference_zip, tmp_path, LEFTOVERS)
    assert sum(_scores(results).values()) == FULL
    assert not any("course-test: detached daemon" in _command_line(pid) for pid in _pids())
    for folder in TEMPORARY_FOLDERS:
        assert not os.path.exists(os.path.join(folder, "course-attack-leftover")), folder


LEFTOVERS_OF_OTHER_KINDS = '''
import ctypes, os, stat
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_CREAT = 0o1000
shm = libc.shmget(0, 16 * 2**20, IPC_CREAT | 0o600)
address = libc.shmat(shm, None, 0)
ctypes.memset(address, 1, 16 * 2**20)
libc.shmdt(ctypes.c_void_p(address))
libc.semget(0, 1, IPC_CREAT | 0o600), libc.msgget(0, IPC_CREAT | 0o600)
librt = ctypes.CDLL("librt.so.1", use_errno=True)
queue = librt.mq_open(b"/course-attack-queue", os.O_CREAT | os.O_RDWR, 0o600, None)
for folder in ("/run/lock", "/var/lock", "/var/tmp", "/dev/shm", "/tmp"):
    try:
        if os.stat(folder).st_mode & stat.S_IWOTH:
            open(os.path.join(folder, "course-attack-leftover-2"), "w").write("x")
    except OSError:
        pass
'''


def test_no_ipc_object_or_file_in_any_writable_place_outlives_grading(reference_zip, tmp_path):
    """System V shared memory, a semaphore set and a message queue, a POSIX message queue (refused: mq_open fails),
    files in /run/lock and the other world-writable folders: after grading none is left (_check_invariants looks at
    every world-writable folder and at /proc/sysvipc); the reference keeps full marks."""
    results = _grade_with(reference_zip, tmp_path, LEFTOVERS_OF_OTHER_KINDS)
    assert sum(_scores(results).values()) == FULL, results["output"]
    assert not os.path.exists("/dev/mqueue/course-attack-queue")


def test_grading_twice_gives_identical_scores(reference_zip, tmp_path):
    first = _grade(reference_zip, tmp_path / "one")
    second = _grade(reference_zip, tmp_path / "two")
    strip = lambda r: [(t["name"], t.get("score"), t.get("output")) for t in r["tests"]]
    assert strip(first) == strip(second)
    assert sum(_scores(first).values()) == FULL, "the reference, at full marks both times"


