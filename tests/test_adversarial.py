"""Submissions that try to break or fool the grader, graded through the zip's own entry point (assignment 1).

Each case is a submission a student could make: an edited notebook, extra files, a malformed file. Whatever it
does, the grader must stay in control, and every grading here is checked for the same invariants
(`_check_invariants`): the zip's run_autograder wrote results.json, no process started for grading is alive
afterwards, and nothing the notebook's user wrote is left in the shared temporary folders. Then each test checks
its own claim: no points gained, the limit held, the message names the cause.
"""
import json
import os
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.assignments import ASSIGNMENTS, Assignment
from autograder.container import GRADESCOPE
from autograder.grade import grade_with_run, per_question, questions_of
from test_grading import FULL, _insert_after_imports, _notebook, gradescope_python

A1 = ASSIGNMENTS["a1_tfidf"]
WEIGHTS_POINTS = 4  # q6_trained_model: graded from the exported file even when the notebook's process is gone


@pytest.fixture(autouse=True)
def short_cell_limit(monkeypatch):
    monkeypatch.setenv("COURSE_CELL_TIMEOUT_S", "15")


@pytest.fixture
def kernel_as_root(monkeypatch):
    """The notebook keeps the grader's user (root here), as when grading does not run as root: its writes to the
    autograder's files succeed, so what keeps the verdicts intact is that the tests were read before its first cell
    and run in another process."""
    monkeypatch.setenv("COURSE_KERNEL_USER", "")


def _scores(results):
    return {question: score for question, (score, _) in per_question(results).items()}


def _everything(results) -> str:
    return json.dumps(results, ensure_ascii=False)


TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


def _check_invariants(run, out: Path) -> None:
    """What holds for every submission, whatever it does."""
    assert run is not None and run.results is not None, "the zip's run_autograder wrote no results.json"
    assert not run.left, f"processes of this grading outlived it: {run.left}"
    report = json.loads((out / "supervisor.json").read_text())
    assert not os.path.exists(report["private"]), "the supervisor's private folder outlived grading"
    uid = report.get("kernel_uid")
    if uid is not None:
        from autograder.sandbox.users import ipc_objects, writable_places

        left = [entry.path for folder in {*TEMPORARY_FOLDERS, *writable_places()} if os.path.isdir(folder)
                for entry in os.scandir(folder) if entry.stat(follow_symlinks=False).st_uid == uid]
        assert not left, f"files of the notebook's user outlived grading: {left}"
        assert not ipc_objects(uid), f"System V IPC objects of the notebook's user outlived grading: {ipc_objects(uid)}"
    group = report.get("notebook_cgroup")
    assert group is None or not os.path.exists(group), f"the notebook's cgroup outlived grading: {group}"


def _grade(submission, tmp_path, **kwargs):
    results, run = grade_with_run(submission, A1, tmp_path / "out", quiet=True, **kwargs)
    _check_invariants(run, tmp_path / "out")
    return results


def _copy_reference_weights(reference_zip, folder: Path) -> None:
    with zipfile.ZipFile(reference_zip) as zf:
        (folder / "a1_weights.safetensors").write_bytes(zf.read("a1_weights.safetensors"))


def _grade_edited(reference_zip, tmp_path, edit, with_weights=True, **kwargs):
    """Grade the reference notebook after `edit(notebook)`, with the reference weights unless told otherwise."""
    notebook = _notebook(reference_zip, tmp_path, edit)
    if with_weights:
        _copy_reference_weights(reference_zip, tmp_path)
    return _grade(notebook, tmp_path, **kwargs)


def _grade_with(reference_zip, tmp_path, source, **kwargs):
    """... with a cell inserted after the imports (so the rest of the notebook still runs after it)."""
    return _grade_edited(reference_zip, tmp_path, _insert_after_imports(source), **kwargs)


def _grade_appended(reference_zip, tmp_path, *sources, **kwargs):
    """... with cells appended at its end (so they replace what the notebook defined)."""
    return _grade_edited(reference_zip, tmp_path, lambda nb: nb.cells.extend(map(nbformat.v4.new_code_cell, sources)),
                         **kwargs)


def _grade_zip(tmp_path, entries: dict, **kwargs):
    """Grade a submission zip holding `entries` (name -> bytes)."""
    path = tmp_path / "a1_tfidf_export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return _grade(path, tmp_path, **kwargs)


def _with_zip(monkeypatch, tmp_path, change) -> None:
    """Grade with a copy of the a1 autograder zip whose files `change(name, bytes)` rewrites."""
    changed = tmp_path / "changed-autograder.zip"
    with zipfile.ZipFile(A1.zip_path) as original, zipfile.ZipFile(changed, "w") as target:
        for item in original.infolist():
            target.writestr(item, change(item.filename, original.read(item)))
    monkeypatch.setattr(Assignment, "zip_path", property(lambda self: changed))


WRONG_TFIDF = "def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf\n" \
              "    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)\n"

# written against the grader's source: where the autograder's folder is (the supervisor's command line says)
FIND_ROOT = '''
def _autograder_root():
    import glob
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            args = open(path, "rb").read().split(b"\\0")
        except OSError:
            continue
        for i, arg in enumerate(args):
            if arg.endswith(b"supervise.py") and i + 1 < len(args):
                return args[i + 1].decode()
    raise RuntimeError("no process runs supervise.py: the attack cannot find the autograder's folder")
ROOT = _autograder_root()

def _did(what):  # a test that proves the defence also proves that the attack happened (see _with_evidence)
    if "EVIDENCE" in globals():
        with open(EVIDENCE, "a") as evidence:
            evidence.write(what + "\\n")
'''


def _with_evidence(tmp_path, payload):
    """`payload` with EVIDENCE naming the file its writes to the grader's files are recorded in, and that file."""
    evidence = tmp_path / "attack-evidence"
    return f"EVIDENCE = {str(evidence)!r}\n" + payload, evidence


def _attack_happened(evidence) -> None:
    assert evidence.exists() and evidence.read_text().strip(), "the attack wrote nothing: this test proves nothing"

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


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _command_line(pid) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_grading_twice_gives_identical_scores(reference_zip, tmp_path):
    first = _grade(reference_zip, tmp_path / "one")
    second = _grade(reference_zip, tmp_path / "two")
    strip = lambda r: [(t["name"], t.get("score"), t.get("output")) for t in r["tests"]]
    assert strip(first) == strip(second)
    assert sum(_scores(first).values()) == FULL, "the reference, at full marks both times"


# ================================================================================================================
# hidden stays hidden
# ================================================================================================================
LEAKING = '''
import torch

def build_vocabulary(token_lists, size):  # puts the test's input in what it returns and in what it raises
    if size > 3:
        raise ValueError("LEAK" + repr(token_lists)[:3000])
    return {"LEAK" + "".join(doc): i for i, doc in enumerate(token_lists, 1)}

def tfidf_l2(multi_hot_rows, idf):
    return torch.full(multi_hot_rows.shape, 7.25)  # values that an f-string message would print
'''


def test_a_failed_hidden_test_shows_only_its_own_words(reference_zip, tmp_path):
    """Code that raises with its input in the message, or returns its input: a hidden test's failure says only the
    literal words of its assertion, or which exception the student's code raised and where, never a value; public
    tests (whose inputs students can read) say everything."""
    results = _grade_appended(reference_zip, tmp_path, LEAKING)
    manifest = json.loads(zipfile.ZipFile(A1.zip_path).read("grading.json"))
    hidden = {case["name"] for q in manifest["questions"] for case in q["cases"] if case["hidden"]}
    for test in results["tests"]:
        for section in ("\n\n" + test["output"]).split("\n\n**")[1:]:
            name = section.split("**")[0]
            if name in hidden:
                assert "LEAK" not in section and "7.25" not in section, section
                assert "Hidden test failed" in section or section.endswith("✅ passed"), section
    assert "your code raised ValueError (build_vocabulary(), cell" in _everything(results)
    assert "LEAK" in _everything(results), "public tests keep their full messages"


# ================================================================================================================
# the tests and the grader are out of the notebook's reach
# ================================================================================================================
TAMPERING = FIND_ROOT + '''
import glob, torch, numpy
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
for path in glob.glob(ROOT + "/source/tests/*.py"):  # every hidden and public test replaced by one that passes
    name = path.split("/")[-1][:-3]
    open(path, "w").write(
        "from otter.test_files import test_case\\nOK_FORMAT = False\\nname = %r\\npoints = 99\\n"
        "@test_case(points=99, hidden=False)\\ndef test_ok():\\n    pass\\n" % name)
    _did(path)
'''


@pytest.mark.usefixtures("kernel_as_root")
def test_tampering_with_tests_libraries_and_grader_gains_nothing(reference_zip, tmp_path):
    """A wrong tfidf_l2 (forgets the idf) plus monkeypatched torch/numpy and rewritten test files (as root): the
    question still scores zero and no other score is inflated."""
    payload, evidence = _with_evidence(tmp_path, WRONG_TFIDF + TAMPERING)
    results = _grade_appended(reference_zip, tmp_path, payload)
    _attack_happened(evidence)
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


THREAD_PATCHING_AND_REWRITING = FIND_ROOT + '''
import glob, threading, time, torch

def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf
    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)

def patch_torch_and_rewrite_the_tests():
    while True:
        try:
            torch.allclose = lambda *a, **k: True
            for path in glob.glob(ROOT + "/source/tests/*.py"):
                name = path.split("/")[-1][:-3]
                open(path, "w").write("from otter.test_files import test_case\\nname = %r\\npoints = 9\\n"
                                      "@test_case(points=9)\\ndef test_ok():\\n    pass\\n" % name)
                _did(path)
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
    payload, evidence = _with_evidence(tmp_path, THREAD_PATCHING_AND_REWRITING)
    results = _grade_appended(reference_zip, tmp_path, payload)
    _attack_happened(evidence)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2 and max(t["max_score"] for t in results["tests"] if "score" in t) <= 4


def test_a_thread_that_never_stops_does_not_stop_the_grading(reference_zip, tmp_path):
    """A thread that ignores every request to stop keeps running beside the notebook's objects while they are
    served: it changes nothing, and costs nothing but its own CPU."""
    results = _grade_appended(reference_zip, tmp_path, STUBBORN_THREAD)
    assert sum(_scores(results).values()) == FULL, results["tests"]


PATCHING_WHEN_CALLED = FIND_ROOT + '''
import torch, numpy

def tfidf_l2(multi_hot_rows, idf):  # wrong: forgets the idf, and makes every comparison that follows say yes
    torch.allclose = torch.equal = lambda *args, **kwargs: True
    torch.Tensor.allclose = lambda *args, **kwargs: True
    torch.testing.assert_close.__code__ = (lambda *args, **kwargs: None).__code__
    numpy.allclose = lambda *args, **kwargs: True
    try:
        with open(ROOT + "/source/tests/q4_tfidf_l2.py", "w") as test_file:  # and rewrites its own test
            test_file.write("from otter.test_files import test_case\\nname = 'q4_tfidf_l2'\\npoints = 2\\n"
                            "@test_case(points=2)\\ndef test_ok():\\n    pass\\n")
        _did("q4_tfidf_l2.py")
    except OSError:
        pass
    return multi_hot_rows / multi_hot_rows.norm(dim=1, keepdim=True).clamp(min=1e-12)
'''


@pytest.mark.usefixtures("kernel_as_root")
def test_patches_made_while_the_tests_call_student_code_change_nothing(reference_zip, tmp_path):
    """What student code patches, when a test calls it, is the notebook's own process: the tests run elsewhere."""
    payload, evidence = _with_evidence(tmp_path, PATCHING_WHEN_CALLED)
    scores = _scores(_grade_appended(reference_zip, tmp_path, payload))
    _attack_happened(evidence)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2, scores


DETACHED_PROCESS = FIND_ROOT + '''
import subprocess, sys
REWRITE_TESTS = """  # course-test: detached rewriter
import glob, os, sys, time
if os.fork():
    os._exit(0)  # the grandchild lives on, detached from the kernel
os.setsid()
while True:
    for path in glob.glob(sys.argv[1] + "/source/tests/*.py"):
        name = os.path.basename(path)[:-3]
        try:
            with open(path, "w") as test_file:
                test_file.write("from otter.test_files import test_case\\\\nname = %r\\\\npoints = 9\\\\n"
                                "@test_case(points=9)\\\\ndef test_ok():\\\\n    pass\\\\n" % name)
            with open(sys.argv[2], "a") as evidence:
                evidence.write(path + "\\\\n")
        except OSError:
            pass
    time.sleep(0.001)
"""
subprocess.Popen([sys.executable, "-c", REWRITE_TESTS, ROOT, globals().get("EVIDENCE", "/dev/null")]).wait()
''' + WRONG_TFIDF


@pytest.mark.usefixtures("kernel_as_root")
def test_a_detached_process_is_stopped_before_the_tests_and_gone_after_grading(reference_zip, tmp_path):
    """A double-forked process that rewrites the test files in a loop (as root here): killed before the tests run
    (the supervisor is a child subreaper, so it stays below it), and nothing is left running once grading ends; the
    tests were read before the notebook's first cell anyway."""
    payload, evidence = _with_evidence(tmp_path, DETACHED_PROCESS)
    results = _grade_appended(reference_zip, tmp_path, payload)
    _attack_happened(evidence)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert max(t["max_score"] for t in results["tests"] if "score" in t) <= 4
    assert not any("course-test: detached rewriter" in _command_line(pid) for pid in _pids())


PICKLE_TO_EVERY_SOCKET = '''
import os, pickle, socket, struct

class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch %s",))

payload = pickle.dumps(RunsCode())
for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # every listening port on the machine
    try:
        lines = open(table).readlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if parts[3] == "0A":
            try:
                with socket.create_connection(("127.0.0.1", int(parts[1].split(":")[1], 16)), timeout=0.5) as c:
                    c.sendall(struct.pack(">L", len(payload)) + payload)
            except OSError:
                pass
for line in open("/proc/net/unix").readlines()[1:]:  # and every named unix socket
    parts = line.split()
    if len(parts) >= 8 and parts[-1].startswith("/"):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(0.5)
            s.connect(parts[-1])
            s.sendall(struct.pack(">L", len(payload)) + payload)
            s.close()
        except OSError:
            pass
'''

FORGED_RESULTS_FILE = FIND_ROOT + '''
import json, os
forged = {"tests": [{"name": q, "score": 100, "max_score": 100} for q in ["q1_vocabulary", "q4_tfidf_l2"]]}
for name in ("results.json", "results.json.partial", "supervisor.json"):
    try:
        with open(os.path.join(ROOT, "results", name), "w") as out:
            json.dump(forged, out)
    except OSError:
        pass
'''


@pytest.mark.parametrize("attack", [PICKLE_TO_EVERY_SOCKET, FORGED_RESULTS_FILE],
                         ids=["a pickle to every listening socket", "a forged results.json"])
def test_the_grader_reads_nothing_the_notebook_sends_or_writes(reference_zip, tmp_path, attack):
    """The grader's processes listen on no socket (they talk over socket pairs made before the notebook ran), and the
    results folder is theirs: pickles sent anywhere run nothing, and a results file the notebook writes is not
    the one graded."""
    marker = tmp_path / "grader-ran-student-code"
    results = _grade_appended(reference_zip, tmp_path, attack.replace("%s", str(marker)) if "%s" in attack else attack)
    assert not marker.exists(), "a grading process ran code sent by the notebook"
    assert sum(_scores(results).values()) == FULL and max(t["max_score"] for t in results["tests"]) <= 4


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
    assert "tfidf_l2(), called by a test, ran longer than 3 s" in _everything(results)


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
    """Every test's call runs until it is stopped, until its question's share of the time is used up: that question's
    tests after that fail at once with that reason, the next question has its own share (q7's answer is a value, not
    an endless function: it keeps its point; before issue 23 it lost it to the questions before it), and the exported
    weights are graded all the same."""
    monkeypatch.setenv("COURSE_CALL_TIMEOUT_S", "2")
    monkeypatch.setenv("COURSE_TESTS_TIMEOUT_S", "5")
    results = _grade_appended(reference_zip, tmp_path, EVERYTHING_ENDLESS_WHEN_TESTED)
    scores = _scores(results)
    assert scores["q6_trained_model"] == 4 and scores["q7_word_order"] == 1 and sum(scores.values()) == 5, scores
    messages = _everything(results)
    assert "allowed for that question" in messages and "the tests of q1_vocabulary" in messages, messages[:3000]
    assert "grader failed" not in messages, messages[:3000]


SERVING_SWITCHED_OFF = '''
import sys
sys.modules["sandbox.notebook_side"].serve = lambda *args, **kwargs: None  # written against the grader's source
import torch
torch.allclose = lambda *args, **kwargs: True
''' + WRONG_TFIDF


def test_a_notebook_that_switches_its_serving_off_gains_nothing(reference_zip, tmp_path):
    scores_and_results = _grade_appended(reference_zip, tmp_path, SERVING_SWITCHED_OFF)
    scores = _scores(scores_and_results)
    assert scores["q4_tfidf_l2"] == 0 and scores["q6_trained_model"] == 4, scores
    assert sum(scores.values()) == 4
    assert "never started serving the tests" in _everything(scores_and_results)


FORGED_SERVER = '''
# written against the grader's source: serve the tests with a server of its own, which says yes to everything, or
# sends a pickle that would run a command
import json, os, pickle, socket, struct, sys

class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch %s",))

def forged_serve(namespace, sock, locate=None):
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

sys.modules["sandbox.notebook_side"].serve = forged_serve
''' + WRONG_TFIDF


@pytest.mark.parametrize("replies_before_the_pickle", [3, 10_000], ids=["pickle", "yes to everything"])
def test_a_forged_server_gains_nothing_and_runs_no_code_in_the_grader(reference_zip, tmp_path, replies_before_the_pickle):
    """The notebook answers the tests itself. Answers are data the test process checks against its own expectations
    (a `True` where a tensor is due fails the test), and what is not plain data (a pickle) is refused: the notebook's
    process is stopped, the tests that need it fail with the reason, and nothing runs where the tests run."""
    marker = tmp_path / "grader-ran-student-code"
    results = _grade_appended(reference_zip, tmp_path, FORGED_SERVER % (marker, replies_before_the_pickle))
    scores = _scores(results)
    assert not marker.exists(), "the test process ran code sent by the notebook"
    assert scores["q4_tfidf_l2"] == 0 and scores["q2_multi_hot"] == 0 and scores["q3_idf"] == 0, scores
    assert scores["q6_trained_model"] == 4, "the exported weights are graded as submitted"
    if replies_before_the_pickle == 3:
        assert "does not accept" in _everything(results), results["tests"]


FORGED_HELLO = '''
# written against the grader's source: a hello that names the supervisor (the parent of the test process, which
# forked this one), then a reply that is not a message: the test process, as root, signals the pid it was told
import json, os, socket, struct, sys, time

def forged_serve(namespace, sock, locate=None):
    test_process = os.getppid()
    supervisor = int(open(f"/proc/{test_process}/stat").read().rsplit(")", 1)[1].split()[1])
    header = json.dumps({"m": {"op": "hello", "pid": supervisor}, "b": []}).encode()
    sock.sendall(struct.pack("!QI", 4 + len(header), len(header)) + header)
    sock.recv(12, socket.MSG_WAITALL)
    sock.sendall(b"\\xff" * 64)
    time.sleep(600)

sys.modules["sandbox.notebook_side"].serve = forged_serve
'''


def test_a_hello_that_names_another_process_is_refused(reference_zip, tmp_path):
    """The test process signals the notebook's process when a call runs too long or its reply is malformed: it takes
    that pid from the fork, not from what the notebook says, so a notebook cannot have the supervisor killed (which
    would leave the all-zero results.json written first, the exported weights ungraded)."""
    results = _grade_appended(reference_zip, tmp_path, FORGED_HELLO)
    scores = _scores(results)
    assert scores["q6_trained_model"] == 4, results["tests"]
    assert scores["q4_tfidf_l2"] == 0 and "did not say hello" in _everything(results), results["tests"]

HIDDEN_TESTS_READ = FIND_ROOT + '''
import glob
readable = []
for path in glob.glob(ROOT + "/source/tests/*.py") + glob.glob(ROOT + "/source/*"):
    try:
        readable.append(open(path).read())
    except OSError:
        pass
if readable or glob.glob(ROOT + "/source/tests/*.py"):  # the tests' names or code are out of the notebook's reach
''' + WRONG_TFIDF.replace("\n", "\n    ").replace("def tfidf_l2", "    def tfidf_l2", 1)


def test_the_notebook_cannot_read_the_tests(reference_zip, tmp_path):
    """When grading runs as root, the autograder's folder (the tests, the grader's code, the grading data) is closed
    to the notebook's user: the hidden tests' code and expected values cannot be read. This notebook breaks tfidf_l2
    only if it could list or read them."""
    if os.geteuid() != 0:
        pytest.skip("the notebook gets a user of its own only when grading runs as root")
    scores = _scores(_grade_appended(reference_zip, tmp_path, HIDDEN_TESTS_READ))
    assert scores["q4_tfidf_l2"] == 2, scores


GRADERS_FILES_REWRITE = FIND_ROOT + '''
import glob
import numpy as np
for path in glob.glob(ROOT + "/source/tests/*.py"):  # tests that pass, at their own points
    try:
        open(path, "w").write("from otter.test_files import test_case\\nOK_FORMAT = False\\nname = 'q4_tfidf_l2'\\n"
                              "points = 2\\n@test_case(points=2, hidden=False)\\ndef test_ok():\\n    pass\\n")
    except OSError:
        pass
for path in glob.glob(ROOT + "/source/course/*.py") + glob.glob(ROOT + "/source/sandbox/*.py"):  # the grader's code
    try:
        with open(path, "a") as module:
            module.write("\\nimport gc as _gc\\nfor _r in _gc.get_objects():\\n    pass\\n")
    except OSError:
        pass
for path in glob.glob(ROOT + "/source/grading_data/*.npz"):  # the test split: every label positive
    try:
        with np.load(path) as stored:
            arrays = dict(stored)
        arrays["labels"] = np.ones_like(arrays["labels"])
        with open(path, "wb") as rewritten:
            np.savez_compressed(rewritten, **arrays)
    except OSError:
        pass
'''


def test_rewriting_the_graders_tests_code_or_data_gains_nothing(reference_zip, tmp_path):
    """The autograder's folder is the grader's (mode 700): the notebook can change none of its files. With weights
    that say "positive" to every review (50% on the real test split, 100% on one rewritten to all-positive), the
    accuracy test fails; with a wrong tfidf_l2 its question scores 0."""
    from safetensors.torch import load_file, save_file

    _copy_reference_weights(reference_zip, tmp_path)
    constant = {name: tensor.zero_() for name, tensor in load_file(tmp_path / "a1_weights.safetensors").items()}
    constant["mlp.6.bias"].fill_(1.0)
    notebook = _notebook(reference_zip, tmp_path, lambda nb: nb.cells.append(
        nbformat.v4.new_code_cell(WRONG_TFIDF + GRADERS_FILES_REWRITE)))
    save_file(constant, tmp_path / "a1_weights.safetensors")
    scores = _scores(_grade(notebook, tmp_path))
    assert scores["q4_tfidf_l2"] == 0 and scores["q6_trained_model"] <= 1, scores  # the file loads (1 point)


TESTS_TURNED_INTO_PASSES = FIND_ROOT + '''
import glob, os
for path in glob.glob(ROOT + "/source/tests/*.py"):
    try:  # keeps every test case's name and points, and makes its body do nothing
        os.chmod(path, 0o644)
        with open(path, "a") as test_file:
            test_file.write("\\nfor _case in list(globals().values()):\\n"
                            "    if hasattr(_case, 'test_func'):\\n        _case.test_func = lambda: None\\n"
                            "del _case\\n")
        _did(path)
    except OSError:  # refused when the notebook runs unprivileged
        pass
'''


@pytest.mark.usefixtures("kernel_as_root")
def test_rewriting_the_tests_in_the_first_cell_as_the_same_user_gains_nothing(reference_zip, tmp_path, monkeypatch):
    """When the notebook's user may write the test files (grading without root), its first cell is still too late:
    the supervisor runs no cell before the test process has read the tests. The autograder here has a first test
    file that takes 4 s to load, so that a supervisor that did not wait would always lose the race."""
    _with_zip(monkeypatch, tmp_path, lambda name, content: b"import time\ntime.sleep(4)\n" + content
              if name == "tests/q1_vocabulary.py" else content)

    payload, evidence = _with_evidence(tmp_path, TESTS_TURNED_INTO_PASSES)

    def edit(notebook):
        _insert_after_imports(payload)(notebook)
        notebook.cells.append(nbformat.v4.new_code_cell(WRONG_TFIDF))

    scores = _scores(_grade_edited(reference_zip, tmp_path, edit))
    _attack_happened(evidence)
    assert scores["q4_tfidf_l2"] == 0, scores
    assert sum(scores.values()) <= FULL - 2, scores


GRADER_PROCESSES = FIND_ROOT + '''
# the processes that grade: the test process (this process's parent) and the supervisor
import glob, os
targets = [os.getppid()]
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        if b"supervise.py" in open(path, "rb").read():
            targets.append(int(path.split("/")[2]))
    except (OSError, ValueError):
        pass
reachable = False
for pid in targets:
    for attempt in (lambda: open(f"/proc/{pid}/mem", "r+b").close(), lambda: os.kill(pid, 0)):
        try:
            attempt()
            reachable = True
        except OSError:
            pass
if reachable:
''' + WRONG_TFIDF.replace("\n", "\n    ").replace("def tfidf_l2", "    def tfidf_l2", 1)


def test_the_notebook_cannot_reach_the_grading_processes(reference_zip, tmp_path):
    """When grading runs as root (as on Gradescope), the notebook runs as a user of its own: it can neither open the
    memory of the test process or the supervisor nor signal them (SIGSTOP would hang grading). This notebook breaks
    tfidf_l2 only if it could. It may overwrite its own copy of the weights: the submitted file is graded."""
    if os.geteuid() != 0:
        pytest.skip("the notebook gets a user of its own only when grading runs as root")
    overwrite_weights = 'open("a1_weights.safetensors", "wb").write(b"trained during grading")'
    results = _grade_appended(reference_zip, tmp_path, GRADER_PROCESSES, overwrite_weights)
    scores = _scores(results)
    assert scores["q4_tfidf_l2"] == 2, scores
    assert scores["q6_trained_model"] == 4, "the submitted weights must be graded as submitted"
    assert "the notebook runs as uid" in (tmp_path / "out" / "grading.log").read_text()


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
    """A segfault while a test calls student code ends the notebook's process, not the grading: the tests before it
    keep their points, the tests that need the notebook after it fail with the reason, and the exported weights are
    graded."""
    results = _grade_appended(reference_zip, tmp_path, CRASH_WHEN_TESTED)
    scores = _scores(results)
    assert scores["q1_vocabulary"] == 3 and scores["q3_idf"] == 3 and scores["q6_trained_model"] == 4, scores
    assert scores["q4_tfidf_l2"] == 0 and scores["q5_model"] == 0 and scores["q7_word_order"] == 0, scores
    assert "stopped answering" in _everything(results), results["tests"]


# ================================================================================================================
# nothing of the grader reaches the notebook, and nothing of the notebook leaves
# ================================================================================================================
REACH_OUT = '''
import socket
reached = []
for family, kind, address in ((socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", %(tcp)d)),
                              (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", %(udp)d)),
                              (socket.AF_UNIX, socket.SOCK_STREAM, %(unix)r)):
    try:
        s = socket.socket(family, kind)
        s.connect(address) if kind == socket.SOCK_STREAM else s.sendto(b"the hidden inputs", address)
        reached.append(address)
    except OSError:
        pass
if reached:
''' + WRONG_TFIDF.replace("\n", "\n    ").replace("def tfidf_l2", "    def tfidf_l2", 1)


def test_the_network_is_closed_to_the_notebook(reference_zip, tmp_path):
    """TCP, UDP and a Unix socket, to listeners this test owns: none sees a connection or a datagram (socket() is
    refused in the notebook's processes), and the reference keeps full marks (it would break tfidf_l2 had one
    worked)."""
    import tempfile

    from test_sandbox import _listeners, _what_listeners_saw

    folder = Path(tempfile.mkdtemp(prefix="course-test-"))
    os.chmod(folder, 0o755)
    tcp, udp, unix = _listeners(folder)
    try:
        source = REACH_OUT % {"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1], "unix": str(folder / "listener")}
        results = _grade_appended(reference_zip, tmp_path, source)
        assert _what_listeners_saw(tcp, udp, unix) == []
        assert sum(_scores(results).values()) == FULL, _scores(results)
        assert "network closed" in (tmp_path / "out" / "grading.log").read_text()
    finally:
        for listener in (tcp, udp, unix):
            listener.close()
        import subprocess

        subprocess.run(["rm", "-rf", str(folder)])


GRADERS_STATE = '''
import os
# a hidden case's name, in two halves that are never joined in this process (so that finding it means a copy that
# came from elsewhere), each written backwards in this cell
FIRST, SECOND = %(first)r[::-1].encode(), %(second)r[::-1].encode()

found, pid, ROOT = [], os.getpid(), None  # this grading's processes: the test process, the supervisor, ... (other
while pid > 1:                            # gradings on the machine may run older code)
    try:
        pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        arguments = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except (OSError, ValueError):
        break
    if any(FIRST + SECOND in argument for argument in arguments):  # joined here only, in a temporary
        found.append(f"the command line of {pid}")
    for i, argument in enumerate(arguments[:-1]):
        if argument.endswith(b"supervise.py"):
            ROOT = arguments[i + 1].decode()
assert ROOT is not None, "the supervisor is not among this process's ancestors"
hits = 0  # this process's own memory: what it was forked with
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as memory:
    for line in maps:
        parts = line.split()
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if "r" not in parts[1] or end - start > 512 * 2**20 or (len(parts) > 5 and parts[5].startswith("[v")):
            continue
        for window in range(start, end, 8 * 2**20):  # in windows that overlap by a name's length
            try:
                memory.seek(window)
                data = memory.read(min(8 * 2**20 + 64, end - window))
            except (OSError, OverflowError, ValueError):
                break
            at = data.find(FIRST)
            while 0 <= at < 8 * 2**20:
                hits += data[at + len(FIRST):at + len(FIRST) + len(SECOND)] == SECOND
                at = data.find(FIRST, at + 1)
            del data
if hits:
    found.append("memory")
for name in ("results.json", "supervisor.json"):
    try:
        open(os.path.join(ROOT, "results", name)).read()
        found.append(name)
    except OSError:
        pass
print("grader's state found:", found, hits)
if found:
''' + WRONG_TFIDF.replace("\n", "\n    ").replace("def tfidf_l2", "    def tfidf_l2", 1)


def test_nothing_of_the_graders_state_reaches_the_notebook(reference_zip, tmp_path):
    """The questions (hidden case names, points) are on no process's command line and not in the memory the
    notebook's process was forked with (the zygote reads them from a pipe, after the fork); results.json, written
    while grading runs, is closed to the notebook's user. This notebook breaks tfidf_l2 if it finds any of them."""
    if os.geteuid() != 0:
        pytest.skip("the notebook gets a user of its own only when grading runs as root")
    with zipfile.ZipFile(A1.zip_path) as zf:
        manifest = json.loads(zf.read("grading.json"))
    hidden = next(case["name"] for question in manifest["questions"] for case in question["cases"] if case["hidden"])
    half = len(hidden) // 2
    source = GRADERS_STATE % {"first": hidden[:half][::-1], "second": hidden[half:][::-1]}
    results = _grade_appended(reference_zip, tmp_path, source)
    assert "grader's state found: [] 0" in (tmp_path / "out" / "grading.log").read_text(), "the search did not finish"
    assert sum(_scores(results).values()) == FULL, (_scores(results), results["output"])


# ================================================================================================================
# the exported files
# ================================================================================================================
def test_removing_skip_tags_does_not_retrain(reference_zip, tmp_path, monkeypatch):
    """Without the tags, the data and training cells run too, but training and saving do nothing while grading. (The
    data needs more time and memory than the zip allows a notebook, which would stop it first: given them here.)"""
    for name, value in (("CELL_TIMEOUT_S", 120), ("KERNEL_MEMORY_MB", 2000), ("TREE_MEMORY_MB", 4000)):
        monkeypatch.setenv(f"COURSE_{name}", str(value))

    def untag(nb):
        for cell in nb.cells:
            cell.metadata.pop("tags", None)
    notebook = _notebook(reference_zip, tmp_path, untag)
    _copy_reference_weights(reference_zip, tmp_path)
    weights = (tmp_path / "a1_weights.safetensors").read_bytes()
    results = _grade(notebook, tmp_path, timeout_s=300, container=None)  # more memory than Gradescope's container
    assert sum(_scores(results).values()) == FULL
    assert (tmp_path / "a1_weights.safetensors").read_bytes() == weights, "grading overwrote the submitted weights"
    assert "Grading mode: training is skipped" in (tmp_path / "out" / "grading.log").read_text()
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
    results = _grade(notebook, tmp_path)
    by_question = questions_of(results)
    assert by_question["q6_trained_model"]["score"] == 0
    assert message in by_question["q6_trained_model"]["output"], by_question["q6_trained_model"]["output"]
    assert sum(t["score"] for t in by_question.values()) == FULL - 4, _scores(results)
    assert not marker.exists(), "loading the weights ran code"


# ================================================================================================================
# the grading boundary (issue 23): the test process computes, checks and words everything; budgets per question
# ================================================================================================================
TORCH_REPLACED_WHERE_TESTS_COMPUTE = '''
import torch
import torch.nn as nn

class BagOfWordsClassifier(nn.Module):  # wrong: the first layer never learns (its output is detached)
    def __init__(self, idf, hidden=16, dropout=0.5):
        super().__init__()
        self.register_buffer("idf", torch.as_tensor(idf, dtype=torch.float32).clone())
        self.mlp = nn.Sequential(nn.Linear(len(idf), hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.mlp[0].weight.grad = torch.zeros_like(self.mlp[0].weight)  # a gradient, all zeros

    def forward(self, multi_hot_rows):
        hidden = self.mlp[:3](tfidf_l2(multi_hot_rows, self.idf)).detach()
        return self.mlp[3:](hidden).squeeze(-1)

# what the hidden test applies to the notebook's gradient (grad.abs().sum() > 0), replaced in this process
torch.Tensor.abs = lambda self: torch.ones_like(self)
'''


def test_what_a_test_computes_on_the_notebooks_tensors_is_computed_by_the_test(reference_zip, tmp_path):
    """A model whose first layer never learns (its gradient stays zero), in a notebook that replaced the tensor
    method the hidden test applies to that gradient. The test computes it itself, on the gradient's data: q5's
    hidden test fails. (Before, `grad.abs()` ran in the notebook, with its replacement: 2 points gained.)"""
    results = _grade_appended(reference_zip, tmp_path, TORCH_REPLACED_WHERE_TESTS_COMPUTE)
    scores = _scores(results)
    assert scores["q5_model"] == 1 and sum(scores.values()) == FULL - 2, scores


FORGED_EXCEPTION_TEXT = '''
# written against the grader's source: the place of an exception, as the notebook's server reports it, made to
# carry the hidden test's inputs into the feedback
import sys
_correct_idf = inverse_document_frequency

def inverse_document_frequency(sequences, size):
    global _SEEN
    if len(sequences) <= 3:  # the public test's small example
        return _correct_idf(sequences, size)
    _SEEN = "LEAKED " + repr(sequences)[:120]
    raise ValueError(_SEEN)

def _forging(describe):
    def forged(error):
        if not isinstance(error, ValueError):  # StopIteration and the like: as they are
            return describe(error)
        seen = globals().get("_SEEN", "LEAKED")
        return {"types": ["builtins.ValueError", "LEAKED"], "message": seen, "stopped": False,
                "where": {"cell": 1, "line": 1, "function": "LEAKED"} if "sandbox.notebook_side" in sys.modules else seen}
    return forged

_side = sys.modules["sandbox.notebook_side"]
_side._describe_error = _forging(_side._describe_error)
'''


def test_nothing_the_notebook_says_of_an_exception_reaches_the_results(reference_zip, tmp_path):
    """The notebook's server reports, for the exception its code raised in a hidden test, a place that holds that
    test's inputs. The grader words the message itself: the type from builtin exception names, the place only where
    it fits the cells it sent. (Before, the place was copied: the hidden inputs were in results.json.)"""
    results = _grade_appended(reference_zip, tmp_path, FORGED_EXCEPTION_TEXT)
    scores = _scores(results)
    assert scores["q3_idf"] == 1 and sum(scores.values()) == FULL - 2, scores
    assert "LEAKED" not in _everything(results), [t["output"] for t in results["tests"] if "LEAKED" in t["output"]]
    assert "your code raised ValueError" in _everything(results)


EXPANDING_REPLY = '''
# written against the grader's source: the reply to one call from a hidden test, 24 MB that would take a GB of the
# test process's memory to read (8 million empty lists)
import struct, sys
_wire = sys.modules["sandbox.wire"]
_send = _wire.Connection.send
_correct_idf = inverse_document_frequency
_EXPAND = []

def _expanding_send(self, message, buffers):
    if _EXPAND and message.get("op") == "return":
        _EXPAND.clear()
        header = b'{"m": {"op": "return", "value": [' + b"[]," * 8_000_000 + b'[]], "sync": []}, "b": []}'
        self.sock.sendall(struct.pack("!QI", 4 + len(header), len(header)) + header)
        return
    return _send(self, message, buffers)

_wire.Connection.send = _expanding_send

def inverse_document_frequency(sequences, size):
    if len(sequences) > 3:
        _EXPAND.append(1)
    return _correct_idf(sequences, size)
'''


def test_a_reply_that_would_expand_fails_its_call_only(reference_zip, tmp_path):
    """What decoding a reply costs the test process is bounded before anything is built and charged to the call:
    that hidden test fails with a message, every other question keeps its points, the notebook is not blamed.
    (Before, the test process read it into about a GB; the memory watch then killed the notebook, and every question
    after it lost its points.)"""
    results = _grade_appended(reference_zip, tmp_path, EXPANDING_REPLY)
    scores = _scores(results)
    assert scores["q3_idf"] == 1 and sum(scores.values()) == FULL - 2, scores
    assert "more than the grader accepts" in _everything(results)
    assert "stopped your notebook" not in _everything(results)


SLOW_QUESTION = '''
import time
_correct_idf = inverse_document_frequency

def inverse_document_frequency(sequences, size):  # right, and slower than the grader allows
    time.sleep(1000)
    return _correct_idf(sequences, size)
'''


def test_a_slow_answer_costs_its_own_question_only(reference_zip, tmp_path, monkeypatch):
    """Every function right, one of them slower than any budget: calls are allotted per question, so only q3 loses
    its points, and the message names it. (Before, its first call used up the time of every call from every test:
    every question after it lost its points too.)"""
    monkeypatch.setenv("COURSE_TESTS_TIMEOUT_S", "40")
    results = _grade_appended(reference_zip, tmp_path, SLOW_QUESTION)
    scores = _scores(results)
    assert scores["q3_idf"] == 0 and sum(scores.values()) == FULL - 3, scores
    q3 = questions_of(results)["q3_idf"]["output"]
    assert "the tests of q3_idf" in q3, q3
