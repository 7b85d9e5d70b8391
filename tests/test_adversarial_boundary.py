"""Submissions that try to break or fool the grader, graded through the zip's own entry point (assignment 1):
the grader trusts nothing the notebook says or does: hidden stays hidden, the tests compute, the notebook cannot reach the grader.

Each case is a submission a student could make: an edited notebook, extra files, a malformed file. Whatever it
does, the grader must stay in control, and every grading here is checked for the same invariants
(`_check_invariants`): the zip's run_autograder wrote results.json, no process started for grading is alive
afterwards, and nothing the notebook's user wrote is left in the shared temporary folders. Then each test checks
its own claim: no points gained, the limit held, the message names the cause.
"""
import json
import os
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.grade import questions_of
from test_grading import FULL, _insert_after_imports, _notebook
from adversarial import (  # noqa: F401 - short_cell_limit and kernel_as_root are fixtures
    A1, FIND_ROOT, WRONG_TFIDF, _attack_happened, _command_line, _copy_reference_weights, _everything, _grade,
    _grade_appended, _grade_edited, _pids, _scores, _with_evidence, _with_zip, kernel_as_root, short_cell_limit
)


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
