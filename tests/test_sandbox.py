"""The grading runtime's parts, one at a time (autograder/sandbox); tests/test_adversarial_*.py grade whole
submissions through the zip's entry point."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograder.sandbox import users
from autograder.sandbox.limits import Limits, TreeMemory, descendants
from autograder.sandbox.results import Results
from autograder.sandbox.submission import Rejected, collect, read_cells
from autograder.sandbox.test_runner import failure_message, load_tests, run_case


@pytest.fixture
def user():
    chosen = users.choose({})
    if chosen is None:
        pytest.skip("only root can take another user's identity")
    yield chosen
    users.kill_all(chosen)
    chosen.release()


# ---- users ----
def test_each_grading_gets_a_user_id_nothing_else_has(user):
    """No account, no process; and a second grading beside this one gets another."""
    import pwd

    with pytest.raises(KeyError):
        pwd.getpwuid(user.uid)
    second = users.choose({})
    try:
        assert second.uid != user.uid
    finally:
        second.release()


def _run_as(user, source: str, limits: Limits = Limits()) -> subprocess.CompletedProcess:
    """`source` run in a child process confined as the notebook's process is."""
    script = ("import sys, json\nsys.path.insert(0, %r)\nfrom autograder.sandbox.users import KernelUser, confine\n"
              "from autograder.sandbox.limits import Limits\nconfine(KernelUser(%d, %d, 'x'), Limits(**json.loads(%r)))\n"
              % (str(Path(__file__).resolve().parents[1]), user.uid, user.gid, json.dumps(limits.as_config())) + source)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/tmp")


def test_the_notebooks_process_cannot_take_root_back_or_raise_its_limits(user):
    result = _run_as(user, """
import os, resource
assert os.getuid() == os.geteuid() == {uid}
for attempt in (lambda: os.setuid(0), lambda: resource.setrlimit(resource.RLIMIT_NPROC, (10**6, 10**6))):
    try:
        attempt()
    except (PermissionError, ValueError):
        pass
    else:
        raise SystemExit("not refused")
assert "NoNewPrivs:\\t1" in open("/proc/self/status").read()
print("confined")
""".replace("{uid}", str(user.uid)))
    assert result.stdout.strip() == "confined", result.stderr


def test_the_notebooks_user_has_a_bounded_number_of_processes(user):
    result = _run_as(user, """
import os, time
children = []
try:
    for _ in range(500):
        pid = os.fork()
        if pid == 0:
            os.close(1), os.close(2)
            time.sleep(30)
            os._exit(0)
        children.append(pid)
except OSError:
    pass
print(len(children))
""", Limits(kernel_processes=20))
    assert 0 < int(result.stdout.split()[-1]) < 20, result.stderr
    users.kill_all(user)


def test_kill_all_ends_every_process_of_the_user_and_nothing_else(user, tmp_path):
    """Detached, in new sessions, or stopped: all of them; a process of another user survives."""
    from autograder.sandbox.limits import processes_of_user

    daemon = ("import os, signal, time\nif os.fork():\n    os._exit(0)\nos.setsid()\nfor _ in range(3):\n"
              "    if os.fork() == 0:\n        os.kill(os.getpid(), signal.SIGSTOP)\ntime.sleep(60)\n")
    _run_as(user, f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {daemon!r}], "
                  "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while len(processes_of_user(user.uid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(processes_of_user(user.uid)) >= 4
        users.kill_all(user)
        deadline = time.monotonic() + 5
        while processes_of_user(user.uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not processes_of_user(user.uid)
        assert bystander.poll() is None, "a process of another user was killed"
    finally:
        bystander.kill()


def test_remove_files_removes_the_users_files_only(user, tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="course-test-"))
    os.chmod(folder, 0o1777)
    try:
        _run_as(user, f"import os\nopen('{folder}/file', 'w').write('x')\nos.chdir('{folder}')\nos.mkdir('made')\n"
                      "os.chdir('made')\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\n")  # deeper than rmtree goes
        (folder / "roots").write_text("the grader's")
        assert (folder / "made").exists() and (folder / "file").exists()
        users.remove_files(user, folders=[str(folder)])
        assert sorted(os.listdir(folder)) == ["roots"]
    finally:
        subprocess.run(["rm", "-rf", str(folder)])


def _folder_with_a_file(mode):
    folder = tempfile.mkdtemp(prefix="course-test-")  # under /tmp: pytest's own folders are private to root
    (Path(folder) / "file.txt").write_text("data")
    os.chmod(folder, mode)
    return folder


def test_the_grader_finds_what_the_notebooks_user_cannot_read_and_opens_the_way_only_when_allowed(user):
    closed, opened = _folder_with_a_file(0o700), _folder_with_a_file(0o755)
    try:
        paths = [f"{closed}/file.txt", f"{opened}/file.txt", opened]
        assert users.unreadable(user, paths) == [f"{closed}/file.txt"]
        assert users.open_the_way(user, paths, allowed=False) == [f"{closed}/file.txt"]
        assert os.stat(closed).st_mode & 0o777 == 0o700, "a folder was opened without permission"
        assert users.open_the_way(user, paths, allowed=True) == []
        assert os.stat(closed).st_mode & 0o777 == 0o701, "traverse only: the listing stays private"
    finally:
        subprocess.run(["rm", "-rf", closed, opened])


# ---- the submission ----
def _submission(tmp_path, files: dict) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir()
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def _collect(tmp_path, folder, limits=Limits()):
    target = tmp_path / "graded"
    target.mkdir()
    return collect(folder, target, "a1_tfidf.ipynb", ["a1_weights.safetensors"], limits), target


def test_only_the_notebook_and_declared_files_are_copied_and_the_rest_is_named(tmp_path):
    folder = _submission(tmp_path, {"a1_tfidf.ipynb": "{}", "a1_weights.safetensors": "w", "tqdm.py": "x",
                                    "pkg/__init__.py": "", "notes.txt": "n"})
    os.symlink("/etc/passwd", folder / "link.txt")
    submission, target = _collect(tmp_path, folder)
    assert sorted(os.listdir(target)) == ["a1_tfidf.ipynb", "a1_weights.safetensors"]
    assert submission.files == ["a1_weights.safetensors"]
    assert submission.notes == ["Not graded (only a1_tfidf.ipynb and a1_weights.safetensors are): link.txt, notes.txt, "
                                "pkg/, tqdm.py."]


def test_a_declared_file_that_is_a_link_is_not_followed(tmp_path):
    folder = _submission(tmp_path, {"a1_tfidf.ipynb": "{}"})
    os.symlink("/etc/shadow", folder / "a1_weights.safetensors")
    submission, target = _collect(tmp_path, folder)
    assert submission.files == [] and not (target / "a1_weights.safetensors").exists()
    assert "a1_weights.safetensors" in submission.notes[0]


@pytest.mark.parametrize("files,expected,note", [
    ({"a1_tfidf (1).ipynb": "{}"}, "a1_tfidf.ipynb", "Graded 'a1_tfidf (1).ipynb' as the notebook"),
    ({"export/a1_tfidf.ipynb": "{}", "export/a1_weights.safetensors": "w"}, "a1_tfidf.ipynb", "inside the folder 'export'"),
])
def test_a_renamed_or_nested_notebook_is_found_and_said(tmp_path, files, expected, note):
    submission, target = _collect(tmp_path, _submission(tmp_path, files))
    assert (target / expected).exists() and any(note in n for n in submission.notes), submission.notes


@pytest.mark.parametrize("files,message", [
    ({"notes.txt": "x"}, "contains no notebook"),
    ({"a.ipynb": "{}", "b.ipynb": "{}"}, "several notebooks"),
])
def test_a_submission_without_its_notebook_is_rejected_with_a_message(tmp_path, files, message):
    with pytest.raises(Rejected, match=message):
        _collect(tmp_path, _submission(tmp_path, files))


def test_oversized_files_are_named_not_copied(tmp_path):
    folder = _submission(tmp_path, {"a1_tfidf.ipynb": "x" * 3000, "a1_weights.safetensors": "w" * 3000})
    submission, target = _collect(tmp_path, folder, Limits(notebook_mb=0.001, student_file_mb=0.001))
    assert "over the 0.001 MB the grader reads" in submission.unreadable
    assert submission.files == [] and "over the 0.001 MB the grader accepts" in submission.notes[0]


def _notebook_file(tmp_path, cells, assignment="a1_tfidf") -> Path:
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"otter": {"assignment_name": assignment}})
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_the_graded_cells_are_the_code_cells_not_marked_ignored(tmp_path):
    training = nbformat.v4.new_code_cell("train()")
    training.metadata["tags"] = ["otter_ignore"]
    path = _notebook_file(tmp_path, [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("x = 1\ny = 2"),
                                     training, nbformat.v4.new_code_cell("\n\n  z = 3")])
    cells = read_cells(path, "a1_tfidf", Limits(), None)
    assert [(c.number, c.label, c.source) for c in cells] == [(2, "x = 1", "x = 1\ny = 2"), (4, "z = 3", "\n\n  z = 3")]


@pytest.mark.parametrize("cells,limits,message", [
    ([nbformat.v4.new_code_cell("") for _ in range(30)], Limits(notebook_cells=20), "30 cells, more than the 20"),
    ([nbformat.v4.new_code_cell("x" * 3000)], Limits(cell_kb=2), "more than the 2 KB the grader runs in one cell"),
    ([nbformat.v4.new_code_cell("x" * 1500) for _ in range(3)], Limits(code_kb=4, cell_kb=2), "more than 4 KB of code"),
])
def test_notebooks_over_the_limits_are_rejected_with_a_message(tmp_path, cells, limits, message):
    with pytest.raises(Rejected, match=message):
        read_cells(_notebook_file(tmp_path, cells), "a1_tfidf", limits, None)


def test_the_notebook_is_parsed_by_the_notebooks_user_from_a_file_only_the_grader_can_open(user, tmp_path):
    path = _notebook_file(tmp_path, [nbformat.v4.new_code_cell("x = 1") for _ in range(3)])
    os.chmod(path, 0o600)  # the grader's: the parsing process reads it through the descriptor it is given
    assert [c.source for c in read_cells(path, "a1_tfidf", Limits(), user)] == ["x = 1"] * 3
    with pytest.raises(Rejected, match="for assignment 'a1_tfidf', not 'a6_gpt'"):
        read_cells(path, "a6_gpt", Limits(), user)


# ---- the tests and their messages ----
TEST_FILE = """
from otter.test_files import test_case
OK_FORMAT = False
name = "q1"
points = 5

@test_case(points=1)
def test_public(answer):
    assert answer == 42, f"the answer must be 42, got {answer}"

@test_case(points=1, hidden=True)
def test_hidden(answer):
    assert answer == 41, f"the answer must match the hidden {41}, got {answer}"

@test_case(points=1, hidden=True)
def test_hidden_raises(answer):
    answer.upper()

@test_case(points=1, hidden=True)
def test_hidden_no_message(model):
    assert model is not None

@test_case(points=1)
def test_quotes(model):
    model()
"""


@pytest.fixture
def q1(tmp_path):
    (tmp_path / "q1.py").write_text(TEST_FILE)
    manifest = [{"name": "q1", "file": "tests/q1.py", "cases": [
        {"name": name, "points": 1, "hidden": "hidden" in name, "needs_notebook": True}
        for name in ("test_public", "test_hidden", "test_hidden_raises", "test_hidden_no_message", "test_quotes")]}]
    [tests] = load_tests(tmp_path, manifest)
    return tests, {case.name: case for case in tests.cases}


def test_the_test_files_load_without_otter_and_keep_the_zips_points(q1):
    tests, cases = q1
    assert list(cases) == ["test_public", "test_hidden", "test_hidden_raises", "test_hidden_no_message", "test_quotes"]
    assert cases["test_hidden"].hidden and not cases["test_public"].hidden
    assert sys.modules.get("otter.test_files") is None or hasattr(sys.modules["otter.test_files"], "ExceptionTestFile"), \
        "the stand-in for otter's decorator must not stay behind"


def test_a_public_test_says_everything_a_hidden_test_its_own_words(q1):
    tests, cases = q1
    assert run_case(tests, cases["test_public"], {"answer": 42}) == (True, "✅ Test case passed")
    passed, public = run_case(tests, cases["test_public"], {"answer": 7})
    assert not passed and "AssertionError: the answer must be 42, got 7" in public and "line 9" in public, public
    passed, hidden = run_case(tests, cases["test_hidden"], {"answer": 7})
    assert hidden == "❌ Hidden test failed: the answer must match the hidden …, got …", hidden
    _, raised = run_case(tests, cases["test_hidden_raises"], {"answer": 7})
    assert raised == ("❌ Hidden test failed: the test could not use what your code returned (AttributeError at line "
                      "17 of the test)"), raised
    _, silent = run_case(tests, cases["test_hidden_no_message"], {"model": None})
    assert silent == "❌ Hidden test failed: an assertion failed (line 21 of the test)", silent
    _, quoted = run_case(tests, cases["test_quotes"], {"model": None})
    assert quoted.endswith("TypeError: 'NoneType' object is not callable"), quoted


def test_what_the_notebooks_code_raised_is_reduced_to_its_type_and_place_in_hidden_tests(q1):
    tests, cases = q1
    error = ValueError("the hidden input was [3, 1, 4, 1, 5]")
    error.raised_in_notebook = "tfidf_l2(), cell 12, line 3"
    assert failure_message(tests, cases["test_hidden"], error) == (
        "❌ Hidden test failed: your code raised ValueError (tfidf_l2(), cell 12, line 3)")
    assert "[3, 1, 4, 1, 5]" in failure_message(tests, cases["test_public"], error)
    long_words = AssertionError("x" * 5000)
    assert len(failure_message(tests, cases["test_public"], long_words)) < 1600


# ---- results.json ----
def test_results_are_complete_whenever_written(tmp_path):
    config = {"questions": [{"name": "q1", "cases": [{"name": "a", "points": 1, "hidden": False, "needs_notebook": True},
                                                    {"name": "b", "points": 2, "hidden": True, "needs_notebook": False}]}]}
    results = Results(config)
    path = tmp_path / "results.json"
    results.write(path)
    first = json.loads(path.read_text())
    entries = lambda r: [(t["name"], t["score"], t["max_score"], t["visibility"]) for t in r["tests"]]
    assert entries(first) == [("Submission check", 0, 0, "visible"), ("q1: public checks", 0, 1, "visible"),
                              ("q1: hidden tests", 0, 2, "after_published")]
    assert "grading was stopped before this test ran" in first["tests"][1]["output"]
    assert "Grading has not finished" in first["tests"][0]["output"]
    results.verdict("q1", "a", True, "✅ Test case passed")
    results.verdict("q9", "forged", True, "not a question of the zip")
    results.fail_missing("❌ Not graded: the notebook is gone", needs_notebook=True)
    results.fail_missing("❌ Not graded: no weights", needs_notebook=False)
    results.write(path)
    final = json.loads(path.read_text())
    assert [(t["name"], t["score"]) for t in final["tests"]] == [("Submission check", 0), ("q1: public checks", 1),
                                                                 ("q1: hidden tests", 0)]
    assert "no weights" in final["tests"][2]["output"] and not (tmp_path / "results.json.partial").exists()
    assert [t["status"] for t in final["tests"]] == ["passed", "passed", "failed"]


def test_results_show_public_checks_at_once_and_hidden_tests_when_the_course_says():
    """Gradescope hides the total while any entry is hidden, so what students need at once (the submission check and
    the public checks) is visible; hidden tests follow the course's setting; outputs are Markdown whose code fences a
    message cannot close."""
    case = lambda name, hidden: {"name": name, "points": 1, "hidden": hidden, "needs_notebook": True}
    for visibility in ("after_published", "after_due_date"):
        results = Results({"hidden_visibility": visibility, "questions": [
            {"name": "q1", "cases": [case("pub", False), case("hid", True)]}, {"name": "q2", "cases": [case("h", True)]}]})
        results.verdict("q1", "pub", False, "❌ Test case failed\n```\n# not closed by this")
        out = results.as_gradescope()
        assert {t["name"]: t["visibility"] for t in out["tests"]} == {
            "Submission check": "visible", "q1: public checks": "visible", "q1: hidden tests": visibility,
            "q2: hidden tests": visibility}
        assert out["test_output_format"] == "md" and all(t["output_format"] == "md" for t in out["tests"])
        public = out["tests"][1]["output"]
        assert "\n````\n❌ Test case failed\n```\n# not closed by this\n````" in public, public
        assert "q1 / pub" in out["tests"][0]["output"] and "0 of 1 passed" in out["tests"][0]["output"]
    assert Results({"hidden_visibility": "whenever", "questions": []}).hidden_visibility == "after_published"


def test_leaderboard_only_when_enabled_and_only_declared_finite_values():
    config = {"questions": [], "leaderboard": True, "leaderboard_entries": [{"name": "Test accuracy", "order": "desc"}]}
    results = Results(config)
    assert "leaderboard" not in results.as_gradescope()
    results.post("Test accuracy", 0.875)
    results.post("Forged", 1.0)
    assert results.as_gradescope()["leaderboard"] == [{"name": "Test accuracy", "value": 0.875, "order": "desc"}]
    results.post("Test accuracy", float("nan"))
    assert results.as_gradescope()["leaderboard"][0]["value"] == 0.875
    off = Results({**config, "leaderboard": False})
    off.post("Test accuracy", 0.9)
    assert "leaderboard" not in off.as_gradescope()



# ---- the memory watch ----
@pytest.mark.parametrize("source", [
    "held = bytearray(300 * 2**20)\nfor i in range(0, len(held), 4096):\n    held[i] = 1",
    "import mmap\nm = mmap.mmap(-1, 300 * 2**20, flags=mmap.MAP_SHARED)\nfor i in range(0, len(m), 4096):\n    m[i] = 1",
    "import os\nfd = os.memfd_create('x')\nfor _ in range(300):\n    os.write(fd, b'x' * 2**20)",
], ids=["private", "shared mapping", "memory file"])
def test_the_watch_sees_a_childs_memory_however_it_is_held(source):
    """What a child of the watched root holds counts. The root is a shell that waits for the child: the tree is a few
    MB without it (this test process, the watch's root before, can be 1 GB and its share of pages moves by 100s of MB)."""
    program = source + "\nprint('ready', flush=True)\nimport time\ntime.sleep(60)"
    shell = subprocess.Popen(["sh", "-c", '"$0" -c "$1"; true', sys.executable, program], stdout=subprocess.PIPE, text=True)
    try:
        assert shell.stdout.readline().strip() == "ready"
        assert descendants(shell.pid), "the memory is held by a child of the root"
        assert TreeMemory(shell.pid, limit_mb=10_000).sample() > 300 * 2**20
        assert TreeMemory(shell.pid, limit_mb=200).over()
    finally:
        for pid in descendants(shell.pid):
            os.kill(pid, 9)
        shell.kill()
        shell.wait()


def test_the_watch_counts_the_notebooks_files_in_memory_file_systems_not_anyone_elses(user):
    """Another grading on the same machine writing to /dev/shm must not count against this notebook."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    watch = TreeMemory(os.getpid(), limit_mb=10**6, watched_uid=user.uid, slow_every_s=0)
    theirs = Path("/dev/shm") / f"course-test-theirs-{os.getpid()}"
    before = watch.sample()
    try:
        with open(theirs, "wb") as f:
            f.write(b"x" * (150 * 2**20))
        assert watch.sample() - before < 20 * 2**20, "a file of another user counted"
        _run_as(user, "with open('/dev/shm/course-test-mine', 'wb') as f:\n    f.write(b'x' * (150 * 2**20))\n")
        assert watch.sample() - before >= 140 * 2**20, "the notebook's own file in /dev/shm was not counted"
    finally:
        theirs.unlink(missing_ok=True)
        users.remove_files(user, folders=["/dev/shm"])


# ---- the network ----
def _listeners(folder: Path):
    """A TCP and a UDP listener on 127.0.0.1 and a Unix socket in `folder`, owned by the test."""
    import socket

    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(folder / "listener"))
    os.chmod(folder / "listener", 0o777)
    unix.listen(5)
    for listener in (tcp, udp, unix):
        listener.settimeout(0.5)
    return tcp, udp, unix


def _what_listeners_saw(tcp, udp, unix) -> list[str]:
    import socket

    seen = []
    for name, listener in (("tcp", tcp), ("unix", unix)):
        try:
            listener.accept()
            seen.append(name)
        except socket.timeout:
            pass
    try:
        udp.recvfrom(100)
        seen.append("udp")
    except socket.timeout:
        pass
    return seen


REACH_OUT = """
import socket
tries = []
for family, kind, address in ((socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", {tcp})),
                              (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", {udp})),
                              (socket.AF_UNIX, socket.SOCK_STREAM, {unix!r}),
                              (socket.AF_INET6, socket.SOCK_STREAM, ("::1", {tcp})),
                              (socket.AF_NETLINK, socket.SOCK_RAW, None)):
    try:
        s = socket.socket(family, kind)
        if address is not None:
            s.connect(address) if kind == socket.SOCK_STREAM else s.sendto(b"out", address)
        tries.append("reached")
    except OSError as error:
        tries.append(error.errno)
a, b = socket.socketpair()
a.send(b"x")
print(tries, b.recv(1) == b"x")
"""


@pytest.mark.parametrize("confined", [True, False], ids=["confined", "not confined (the listeners work)"])
def test_the_notebooks_processes_have_no_network_but_keep_their_socketpairs(user, confined):
    """TCP, UDP and a Unix socket to listeners the test owns: from a process confined as the notebook's (and from its
    child), socket() is refused and the listeners see nothing; a socketpair still works. Unconfined, the same code
    reaches all three (so the test can see a connection)."""
    import errno

    folder = Path(tempfile.mkdtemp(prefix="course-test-"))
    os.chmod(folder, 0o755)
    tcp, udp, unix = _listeners(folder)
    try:
        code = REACH_OUT.format(tcp=tcp.getsockname()[1], udp=udp.getsockname()[1], unix=str(folder / "listener"))
        through_a_child = f"import subprocess, sys\nprint(subprocess.run([sys.executable, '-c', {code!r}], " \
                          "capture_output=True, text=True).stdout)"
        if confined:
            result = _run_as(user, through_a_child)
        else:
            result = subprocess.run([sys.executable, "-c", through_a_child], capture_output=True, text=True, timeout=60)
        seen = _what_listeners_saw(tcp, udp, unix)
        if confined:
            assert f"[{errno.EACCES}, {errno.EACCES}, {errno.EACCES}, {errno.EACCES}, {errno.EACCES}] True" in \
                result.stdout, (result.stdout, result.stderr)
            assert seen == [], f"a listener was reached: {seen}"
        else:
            assert sorted(seen) == ["tcp", "udp", "unix"], (seen, result.stdout, result.stderr)
    finally:
        for listener in (tcp, udp, unix):
            listener.close()
        subprocess.run(["rm", "-rf", str(folder)])


def test_the_network_filter_checks_the_architecture():
    """The filter knows its architecture's numbers, and kills a program of another architecture (whose numbers
    differ: a 32-bit socketcall would pass a filter that only knows socket())."""
    import struct

    from autograder.sandbox import network

    for machine, (arch, refused, io_uring) in network.ARCHITECTURES.items():
        program = network.filter_program(machine)
        instructions = [struct.unpack("HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
        assert instructions[0] == (0x20, 0, 0, 4), "the architecture is loaded first"
        code, jump_true, jump_false, k = instructions[1]
        assert k == arch and instructions[2 + jump_false][3] == 0x80000000, "another architecture is killed"
        compared = {ins[3] for ins in instructions if ins[0] == 0x15}
        assert set(refused) | set(io_uring) <= compared
        assert instructions[-4][3] == 0x7FFF0000, "everything else is allowed"
    with pytest.raises(network.Unsupported):
        network.filter_program("riscv64")


# ---- the OOM killer's order ----
def test_the_notebooks_processes_are_the_oom_killers_first_choice_and_stay_so(user):
    """oom_score_adj 1000, set before the user is taken, inherited by its children. Where the kernel lets the user
    lower it again (no CAP_SYS_RESOURCE, as in Docker), the watch sets it back."""
    script = ("import sys, json\nsys.path.insert(0, %r)\nfrom autograder.sandbox.users import KernelUser, confine\n"
              "from autograder.sandbox.limits import Limits\nconfine(KernelUser(%d, %d, 'x'), Limits())\n"
              % (str(Path(__file__).resolve().parents[1]), user.uid, user.gid)) + """
import os, subprocess, sys, time
child = subprocess.run([sys.executable, "-c", "print(open('/proc/self/oom_score_adj').read().strip())"],
                       capture_output=True, text=True).stdout.strip()
print(open("/proc/self/oom_score_adj").read().strip(), child)
lowered = subprocess.Popen([sys.executable, "-c", "open('/proc/self/oom_score_adj', 'w').write('0')\\n"
                            "import time\\nprint('lowered', flush=True)\\ntime.sleep(30)"], stdout=subprocess.PIPE, text=True)
lowered.stdout.readline()
print(lowered.pid, flush=True)
time.sleep(30)
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd="/tmp")
    try:
        assert process.stdout.readline().split() == ["1000", "1000"]
        lowered = int(process.stdout.readline())
        adj = Path(f"/proc/{lowered}/oom_score_adj")
        watch = TreeMemory(os.getpid(), limit_mb=10**6, watched_uid=user.uid, slow_every_s=0)
        watch.oom_score_adj = 1000
        watch.sample()
        assert adj.read_text().strip() == "1000", "the watch did not set it back"
    finally:
        users.kill_all(user)
        process.kill()
        process.wait()


# ---- memory held by the kernel ----
def _writable_memory_cgroup():
    from autograder.sandbox import cgroups

    own = cgroups.own("memory")
    if own is None or not own.writable():
        pytest.skip("no writable memory cgroup here")
    return own


def test_a_memory_cgroup_of_its_own_stops_an_allocation_burst_in_the_kernel():
    """Eight children allocating 60 MB each at once in a cgroup limited to 200 MB: the kernel stops them (OOM kills
    in that cgroup only), the cgroup's high-water mark stays at its limit, and it is removed afterwards."""
    from autograder.sandbox import cgroups

    group = _writable_memory_cgroup().child(f"course-test-{os.getpid()}")
    try:
        group.set_memory_limit(200 * 2**20)
        burst = ("import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n        held = bytearray(60 * 2**20)\n"
                 "        for i in range(0, len(held), 4096):\n            held[i] = 1\n        time.sleep(5)\n"
                 "        os._exit(0)\nstatuses = [os.wait()[1] for _ in range(8)]\n"
                 "print(sum(os.WIFSIGNALED(s) and os.WTERMSIG(s) == 9 for s in statuses))\n")
        process = subprocess.Popen(["sh", "-c", 'echo $$ > "$0"; exec "$1" -c "$2"', str(group.path / "cgroup.procs"),
                                    sys.executable, burst], stdout=subprocess.PIPE, text=True)
        killed = int(process.communicate(timeout=60)[0])
        assert killed >= 1 and group.oom_kills() >= 1
        assert group.peak() <= 200 * 2**20
    finally:
        for pid in group.processes():
            os.kill(pid, 9)
        assert group.remove()
    assert not group.path.exists()
    assert cgroups.own("memory").usage() > 0, "the own cgroup's usage is readable"


# ---- leftovers ----
LEAVE_IPC_AND_FILES = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT = 0o1000
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget(0, 32 * 2**20, IPC_CREAT | 0o600)
address = ctypes.c_void_p(libc.shmat(shm, None, 0))
ctypes.memset(address, 1, 32 * 2**20)
libc.shmdt(address)
assert shm >= 0 and libc.semget(0, 1, IPC_CREAT | 0o600) >= 0 and libc.msgget(0, IPC_CREAT | 0o600) >= 0
for folder in {folders!r}:
    open(os.path.join(folder, "course-test-leftover"), "w").write("x")
print("left", flush=True)
"""


def test_every_object_of_the_notebooks_user_is_removed_and_its_shared_memory_counted(user):
    """System V shared memory (32 MB no process maps: counted by the watch), a semaphore set, a message queue, and
    a file in every world-writable folder: after remove_all, nothing of the user's is left."""
    places = users.writable_places()
    assert {"/tmp", "/var/tmp", "/dev/shm"} <= set(places), places
    folders = [place for place in places if os.stat(place).st_mode & 0o002 and place != "/dev/mqueue"]
    watch = TreeMemory(os.getpid(), limit_mb=10**6, watched_uid=user.uid, slow_every_s=0)
    before = watch.sample()
    try:
        result = _run_as(user, LEAVE_IPC_AND_FILES.format(folders=folders))
        assert result.stdout.strip() == "left", result.stderr
        assert set(users.ipc_objects(user.uid)) == {"shm", "sem", "msg"}
        assert watch.sample() - before >= 30 * 2**20, "the segment no process maps was not counted"
        users.remove_all(user)
        assert users.ipc_objects(user.uid) == {}
        left = [entry.path for folder in places for entry in os.scandir(folder)
                if entry.stat(follow_symlinks=False).st_uid == user.uid]
        assert left == []
    finally:
        users.remove_all(user)
