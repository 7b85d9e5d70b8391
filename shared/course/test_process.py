"""The process that runs the tests while a notebook is graded (used by course.grading_guard and course.otter_plugin).

It is forked from the grading kernel in the grader's first cell, after torch is imported and before the kernel
gives up root and runs any student cell: it shares the kernel's memory pages until either side writes them (torch
alone is about 180 MB a process), but nothing the notebook does reaches it, since the kernel runs the notebook as
another user. It keeps root (when grading runs as root), reads the autograder's tests (the kernel waits until it
has), connects to the grader and waits. After the last cell the kernel forks a copy of itself that serves the
notebook's objects on a socket pair made with this process (course.remote), and the grader asks:

- `notebook_tests`: run every test that takes parameters, with the notebook's variables as proxies (course.remote
  enforces the time limits, and the notebook's random generators are seeded before each test), then stop the
  serving copy;
- `file_tests`: run the tests that take no parameters (the exported weights'), once the grader has stopped the
  notebook's processes and removed the files it created;
- `exit`.

The answers are plain JSON: for each test, whether it passed and the message, as otter words them.
"""
from __future__ import annotations

import io
import os
import socket
import sys

from course import remote

SERVER_HELLO_TIMEOUT_S = 15  # how long the serving copy may take to say hello once the grader asks for the tests
TESTS_LOADED_TIMEOUT_S = 30  # how long the kernel waits for the test process to read the tests


def start(server_end: socket.socket, kernel_end: socket.socket, grader_address: str, token: str, tests_dir: str) -> int:
    """Fork the test process, which keeps `server_end` of the socket pair the kernel's serving copy will use; returns
    its pid in the caller (the kernel) once the tests are read, never returns in the child."""
    import select

    loaded_read, loaded_write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(loaded_write)
        # wait until the tests are in the test process's memory: a student cell that rewrites the files afterwards
        # changes nothing even when every process is the same user (grading without root)
        select.select([loaded_read], [], [], TESTS_LOADED_TIMEOUT_S)
        os.close(loaded_read)
        return pid
    try:
        os.close(loaded_read)
        kernel_end.close()  # held here, it would keep the pair open after the serving copy has died
        os.setsid()  # out of the kernel's process group, which is killed when the kernel is shut down
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the kernel's output streams belong to threads this process does not have
            os.dup2(quiet, fd)
        # what the tests print (an accuracy) goes to the grader with the verdicts, and from there to the grading log
        sys.stdout = sys.stderr = io.StringIO()
        # imports from here on come from the installed packages and the autograder's course library, never from
        # the working folder, where the notebook may create files
        sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
        tests, broken = _load_tests(tests_dir)
        os.close(loaded_write)  # the kernel goes on
        _serve_the_grader(server_end, grader_address, token, tests, broken)
    finally:
        os._exit(0)


def _load_tests(tests_dir: str):
    """The autograder's test files, and None; or no tests and why they do not load (the grader reports it)."""
    from pathlib import Path

    from otter.test_files import ExceptionTestFile

    try:
        return [ExceptionTestFile.from_file(str(path)) for path in sorted(Path(tests_dir).glob("*.py"))], None
    except Exception as error:  # noqa: BLE001 - an autograder whose tests do not load: the grader says so
        return [], f"the tests do not load: {type(error).__name__}: {error}"


def _serve_the_grader(server_end: socket.socket, grader_address: str, token: str, tests, broken) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(grader_address)
    grader = remote.Connection(sock, max_bytes=None)
    grader.send({"op": "hello", "token": token, "pid": os.getpid()}, [])
    while True:
        try:
            command, _ = grader.receive()
        except EOFError:
            return
        op = command.get("op")
        if op not in ("notebook_tests", "file_tests"):
            return
        if broken is not None:
            grader.send({"op": "failed", "error": broken}, [])
            continue
        try:
            if op == "notebook_tests":
                verdicts = _notebook_tests(tests, server_end, float(command["call_limit_s"]),
                                           float(command["total_limit_s"]))
            else:
                verdicts = [_verdict(test_file, case, {}) for test_file in tests for case in test_file.test_cases
                            if not case.body._get_func_params()]
        except Exception as error:  # noqa: BLE001 - a bug here: said to the grader, which goes on with the next step
            import traceback

            where = traceback.extract_tb(error.__traceback__)[-1]
            grader.send({"op": "failed", "error": f"{op}: {type(error).__name__}: {error} "
                                                  f"({os.path.basename(where.filename)}, line {where.lineno})"}, [])
            continue
        printed, sys.stdout = sys.stdout.getvalue(), io.StringIO()
        sys.stderr = sys.stdout
        grader.send({"op": "verdicts", "verdicts": verdicts, "printed": printed[-20_000:]}, [])


def _notebook_tests(tests, server_end: socket.socket, call_limit_s: float, total_limit_s: float) -> list[dict]:
    import time

    started = time.monotonic()
    try:
        client = remote.Client.connected(remote.Connection(server_end), SERVER_HELLO_TIMEOUT_S, call_limit_s=call_limit_s,
                                         total_limit_s=total_limit_s)
    except remote.NotGraded as error:
        client, unreachable = None, f"{error} (see the list of cells that raised, if any)"
    verdicts = []
    for test_file in tests:
        for case in test_file.test_cases:
            if not case.body._get_func_params():
                continue
            if client is None:
                verdicts.append(_verdict(test_file, case, None, f"❌ Not graded: {unreachable}"))
                continue
            try:
                client.reset()
            except remote.NotGraded as error:
                verdicts.append(_verdict(test_file, case, None, f"❌ Not graded: {error}"))
                continue
            verdicts.append(_verdict(test_file, case, client.namespace()))
    if client is not None:
        client.stop()
        verdicts.append({"note": f"ran the notebook's tests in {time.monotonic() - started:.1f} s; calls into the "
                                 f"notebook took {client.used_s:.1f} s", "server_pid": client.pid})
    return verdicts


def _verdict(test_file, case, environment, message: str | None = None) -> dict:
    """Run one test case (unless `message` already says why it cannot run); what otter would report of it."""
    if message is None:
        passed, message = run_test(test_file, case, environment)
    else:
        passed = False
    return {"file": test_file.name, "case": case.name, "passed": passed, "message": message}


def run_test(test_file, case, environment) -> tuple[bool, str]:
    """Run one test case with `environment` (the notebook's variables, or nothing); (passed, message) as otter
    words them."""
    try:
        case.body.call_func(environment)
    except remote.NotGraded as error:
        return False, f"❌ Not graded: {error}"
    except Exception as error:  # noqa: BLE001 - a failed test, reported like otter reports it
        try:
            detail = test_file._generate_error_message(error)
            stripped, text = str(error).strip("'"), str(error)
            if stripped != text and not isinstance(error, KeyError) and detail.endswith(stripped):
                # otter strips quotes from every message, for KeyError's sake ("NoneType' object is not callable")
                detail = detail[:len(detail) - len(stripped)] + text
        except (AttributeError, IndexError):  # raised before the test's own code ran
            detail = f"{type(error).__name__}: {error}"
        return False, "❌ Test case failed\n" + detail
    return True, "✅ Test case passed"
