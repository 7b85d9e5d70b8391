"""The test process: it runs every test, and words every verdict.

It is the zygote itself once the notebook's process is forked off (sandbox.zygote): it keeps root, reads the
autograder's tests before the first student cell runs, and takes commands from the supervisor only:

- `notebook_tests`: every test that takes parameters, each receiving proxies for the notebook's variables of those
  names (sandbox.test_side: plain data only comes back, and this process computes everything a test computes),
  with the notebook's and this process's random generators seeded before each test. Time is allotted per
  question: each question may use its share of the calls' time and of the tests' own time (the total over the
  questions left, so that what a question leaves unused goes to the ones after it), so that a slow or hostile
  answer costs its own question only, and the message names the question that used the time;
- `file_tests`: the tests that take no parameters (the exported weights'), run in the folder of the submitted files
  once the notebook's processes are gone;
- `exit`.

Each verdict is sent as soon as it is known, so that a test that runs past the supervisor's deadline costs only
itself. The messages follow one rule: a public test says what failed in full (students can read its code); a hidden
test says only its own words (the literal text of its assertion message, values left out) or, when the student's
code raised, the exception's type and the notebook line, so that no hidden input or expected value reaches the
results.

The test files are otter's exception-based format (`@test_case(points=..., hidden=...)` functions); they are loaded
with a stand-in for otter's decorator, so that grading does not import otter, and their points and visibility come
from the zip's grading.json, not from the files.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import io
import os
import signal
import socket
import sys
import time
import traceback
import types
from pathlib import Path

from . import test_side
from .wire import Connection

MAX_MESSAGE = 1500  # characters of one public test's failure message
MAX_HIDDEN_MESSAGE = 400
SERVER_HELLO_TIMEOUT_S = 30  # how long the notebook may take to start serving once asked
TEST_MEMORY_MB = 512  # what the test process may allocate beyond what it holds when the notebook's tests start


class TestTimeLimitExceeded(Exception):
    """The tests of one question ran their own code (not counting calls into the notebook) longer than allowed."""


class CaseDecorator:
    """Stands in for otter.test_files.test_case while the test files load."""

    def __init__(self, name=None, points=None, hidden=False, success_message=None, failure_message=None):
        self.name, self.points, self.hidden = name, points, hidden
        self.failure_message = failure_message
        self.test_func = None

    def __call__(self, func):
        self.test_func = func
        if self.name is None:
            self.name = func.__name__
        return self

    @property
    def parameters(self) -> list[str]:
        return list(inspect.signature(self.test_func).parameters)


class QuestionTests:
    def __init__(self, path: Path, question: str, cases: list[CaseDecorator], source: str):
        self.path, self.question, self.cases, self.source = path, question, cases, source
        self.tree = ast.parse(source)


def load_tests(folder: Path, manifest: list[dict]) -> list[QuestionTests]:
    """The tests of every question of `manifest` (grading.json), from `folder`."""
    stand_in = types.ModuleType("otter.test_files")
    stand_in.test_case = CaseDecorator
    saved = {name: sys.modules.get(name) for name in ("otter", "otter.test_files")}
    sys.modules["otter"] = types.ModuleType("otter")
    sys.modules["otter.test_files"] = stand_in
    files = []
    try:
        for question in manifest:
            path = folder / Path(question["file"]).name
            source = path.read_text()
            namespace = {"__name__": f"tests.{path.stem}", "__file__": str(path)}
            exec(compile(source, str(path), "exec"), namespace)
            found = {case.name: case for case in namespace.values() if isinstance(case, CaseDecorator)}
            cases = []
            for expected in question["cases"]:
                if expected["name"] not in found:
                    raise RuntimeError(f"{path.name} has no test case {expected['name']}")
                case = found[expected["name"]]
                case.points, case.hidden = expected["points"], expected["hidden"]
                cases.append(case)
            files.append(QuestionTests(path, question["name"], cases, source))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return files


def serve(supervisor: socket.socket, kernel: socket.socket | None, kernel_pid: int | None, tests_folder: Path,
          manifest: list[dict]) -> None:
    """Load the tests, say so, then do what the supervisor asks until it says exit."""
    connection = Connection(supervisor, max_bytes=None)
    import torch

    torch.set_flush_denormal(True)  # weights of subnormal floats would make the tests' arithmetic slow, not different
    try:
        import course.grading  # noqa: F401 - what the tests import, read now, before the notebook's first cell
        tests, problem = load_tests(tests_folder, manifest), None
    except Exception as error:  # noqa: BLE001 - an autograder whose tests do not load: the supervisor says so
        tests, problem = [], f"the tests do not load: {type(error).__name__}: {error}"
    connection.send({"op": "ready", "pid": os.getpid(), "problem": problem}, [])
    while True:
        try:
            command, _ = connection.receive()
        except (EOFError, OSError):
            return
        op = command.get("op")
        if op == "notebook_tests" and kernel is not None:
            cells = {int(number): str(source) for number, source in (command.get("cells") or {}).items()}
            _notebook_tests(connection, tests, kernel, kernel_pid, float(command["call_limit_s"]),
                            float(command["total_limit_s"]), float(command.get("own_limit_s", 40)), cells)
            kernel.close()
            kernel = None
        elif op == "file_tests":
            os.chdir(command["folder"])
            for test_file in tests:
                for case in test_file.cases:
                    if not case.parameters:
                        _send_verdict(connection, test_file, case, *run_case(test_file, case, {}))
                        _send_leaderboard(connection)
        else:
            return
        _reap()
        connection.send({"op": "done"}, [])


def _notebook_tests(connection, tests: list[QuestionTests], kernel: socket.socket, kernel_pid: int,
                    call_limit_s: float, total_limit_s: float, own_limit_s: float = 40.0,
                    cells: dict[int, str] | None = None) -> None:
    started = time.monotonic()
    try:
        client = test_side.Client.connected(Connection(kernel), SERVER_HELLO_TIMEOUT_S, pid=kernel_pid,
                                            call_limit_s=call_limit_s, total_limit_s=total_limit_s, cells=cells)
    except test_side.NotGraded as error:
        client, unreachable = None, str(error)
    clock = OwnClock()
    if client is not None:
        client.call_clock = clock.paused
    questions = [test_file for test_file in tests if any(case.parameters for case in test_file.cases)]
    own_used = 0.0
    with _memory_limited(TEST_MEMORY_MB):
        for index, test_file in enumerate(questions):
            left = len(questions) - index  # this question and those after it share what is left
            if client is not None:
                client.begin_question(test_file.question, (total_limit_s - client.used_s) / left)
            clock.start(test_file.question, (own_limit_s - own_used) / left)
            try:
                for case in test_file.cases:
                    if case.parameters:
                        _notebook_case(connection, client, test_file, case, unreachable if client is None else "",
                                       clock)
            finally:
                own_used += clock.stop()
    if client is not None:
        client.stop()
        connection.send({"op": "log", "text": f"ran the notebook's tests in {time.monotonic() - started:.1f} s; calls "
                                              f"into the notebook took {client.used_s:.1f} s, the tests' own code "
                                              f"{own_used:.1f} s"}, [])


def _notebook_case(connection, client, test_file: QuestionTests, case: CaseDecorator, unreachable: str,
                   clock: "OwnClock") -> None:
    if client is None:
        _send_verdict(connection, test_file, case, False, f"❌ Not graded: {unreachable}")
        return
    try:
        client.reset()
    except test_side.NotGraded as error:
        _send_verdict(connection, test_file, case, False, f"❌ Not graded: {error}")
        return
    _send_verdict(connection, test_file, case, *run_case(test_file, case, client.namespace(), clock))


class OwnClock:
    """The tests' own time for one question: a wall-clock alarm (SIGALRM) that runs while a test's code runs and
    stops while it calls into the notebook (those calls have their own limits), so that the time a test's own code
    takes is charged to its question."""

    def __init__(self):
        self.question, self.limit_s, self.left_s, self.armed_at = None, 0.0, 0.0, None

    def start(self, question: str, limit_s: float) -> None:
        self.question, self.limit_s, self.left_s = question, limit_s, limit_s
        signal.signal(signal.SIGALRM, self._expired)

    def stop(self) -> float:
        """The question's time used."""
        self._disarm()
        self.question = None
        return self.limit_s - self.left_s

    @contextlib.contextmanager
    def running(self):
        """Around a test's own code (run_case): raises TestTimeLimitExceeded in it once the question's time is spent."""
        if self.question is None:
            yield
            return
        self._arm()
        try:
            yield
        finally:
            self._disarm()

    @contextlib.contextmanager
    def paused(self):
        if self.armed_at is None:
            yield
            return
        self._disarm()
        try:
            yield
        finally:
            self._arm()

    def _arm(self) -> None:
        self.armed_at = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, max(self.left_s, 0.001))

    def _disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self.armed_at is not None:
            self.left_s -= time.monotonic() - self.armed_at
            self.armed_at = None

    def _expired(self, signum, frame):
        if self.armed_at is not None and self.question is not None:
            raise TestTimeLimitExceeded(f"the tests of {self.question} ran their own code longer than the "
                                        f"{self.limit_s:.0f} s allowed for that question")


@contextlib.contextmanager
def _memory_limited(extra_mb: int):
    """RLIMIT_DATA (the soft limit, which the process may raise again) at what it holds plus `extra_mb`: a test that
    would take the test process past it gets a MemoryError (charged to the call whose reply caused it, in
    sandbox.test_side), instead of the supervisor's watch of the whole tree killing the notebook for it."""
    import resource

    try:
        with open("/proc/self/status") as status:
            mapped_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = (mapped_kb // 1024 + extra_mb) * 2**20
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (OSError, ValueError, StopIteration):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _send_verdict(connection, test_file: QuestionTests, case: CaseDecorator, passed: bool, message: str) -> None:
    connection.send({"op": "verdict", "question": test_file.question, "case": case.name, "passed": passed,
                     "message": message}, [])


def _send_leaderboard(connection) -> None:
    """What a test of the exported files posted for the leaderboard (course.grading.post_to_leaderboard); the
    supervisor keeps only the entries grading.json declares."""
    try:
        from course import grading
    except ImportError:
        return
    for name, value in grading.LEADERBOARD.items():
        connection.send({"op": "leaderboard", "name": str(name), "value": float(value)}, [])
    grading.LEADERBOARD.clear()


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _seed(seed: int = 0) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_case(test_file: QuestionTests, case: CaseDecorator, environment, clock: OwnClock | None = None
             ) -> tuple[bool, str]:
    """Run one test case with `environment` (the notebook's variables, as proxies, or nothing), as otter calls it:
    each parameter gets the variable of that name (`env`: the whole environment); (passed, message)."""
    _seed()
    printed, sys.stdout = sys.stdout, io.StringIO()
    try:
        with clock.running() if clock is not None else contextlib.nullcontext():
            kwargs = {name: environment if name == "env" else environment.get(name) for name in case.parameters}
            case.test_func(**kwargs)
    except Exception as error:  # noqa: BLE001 - a failed test
        return False, failure_message(test_file, case, error)
    finally:
        output, sys.stdout = sys.stdout.getvalue(), printed
        if output:
            print(f"[{test_file.question} {case.name}] {output[-2000:]}", end="", file=sys.stderr, flush=True)
    return True, "✅ Test case passed"


# ---------------------------------------------------------------------------------------------------------------
# what a failure says
# ---------------------------------------------------------------------------------------------------------------
def failure_message(test_file: QuestionTests, case: CaseDecorator, error: BaseException) -> str:
    if isinstance(error, test_side.NotGraded):
        return f"❌ Not graded: {_short(str(error), MAX_MESSAGE)}"
    line = _failing_line(test_file, error)
    in_notebook = getattr(error, "raised_in_notebook", None)  # written by the grader (sandbox.test_side._error)
    if isinstance(error, TestTimeLimitExceeded):
        return f"❌ Not graded: {_short(str(error), MAX_MESSAGE)}"
    if case.hidden:
        if isinstance(error, test_side.CallTimeLimitExceeded):
            said = str(error)
        elif in_notebook is not None:
            said = f"your code raised {getattr(error, 'raised_as', type(error).__name__)}" + \
                (f" ({in_notebook})" if in_notebook else "")
        elif isinstance(error, AssertionError) and line is not None:
            said = _assertion_words(test_file, line) or f"an assertion failed (line {line} of the test)"
        else:  # the test's own code failed on what the student's code returned
            said = (f"the test could not use what your code returned ({type(error).__name__} at line {line} of the "
                    "test)" if line else f"the test could not use what your code returned ({type(error).__name__})")
        return "❌ Hidden test failed: " + _short(said, MAX_HIDDEN_MESSAGE)
    where = ""
    if line is not None:
        source_line = test_file.source.splitlines()[line - 1].strip() if line <= len(test_file.source.splitlines()) else ""
        where = f"Error at line {line} in test {test_file.question}:\n  {source_line}\n"
    # an exception of the notebook's code: its text is the grader's (sandbox.test_side._error), its type a builtin's
    said = (f"your code raised an exception" + (f" ({in_notebook})" if in_notebook else "")
            if getattr(error, "raised_as", None) == "an exception" else f"{type(error).__name__}: {error}")
    return "❌ Test case failed\n" + _short(f"{where}{said}", MAX_MESSAGE)


def _failing_line(test_file: QuestionTests, error: BaseException) -> int | None:
    """The line of the test file where the test failed (its innermost frame there)."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == str(test_file.path):
            found = frame.lineno
    return found


def _assertion_words(test_file: QuestionTests, line: int) -> str | None:
    """The literal words of the message of the assertion at `line`: an f-string's text with its values left out."""
    for node in ast.walk(test_file.tree):
        if isinstance(node, ast.Assert) and node.lineno <= line <= (node.end_lineno or node.lineno):
            return _literal(node.msg) if node.msg is not None else None
    return None


def _literal(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "…" for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        return None if left is None or right is None else left + right
    return None


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
