"""A master's tests run as the grader runs them: the notebook's namespace in another process, the tests here,
reached through sandbox.notebook_side and sandbox.test_side (the same Server and Client as grading, without the supervisor).

One helper process (started once, with torch imported) forks a child per namespace; the child executes the
master's graded cells (and a mistake's override), connects back and serves, as the forked kernel does after
the last cell.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from autograder.masters import load, reads_submitted_files, run_test
from autograder.sandbox.test_side import Client, NotGraded
from autograder.sandbox.wire import Connection

ROOT = Path(__file__).resolve().parents[1]

_HELPER = r"""
import json, os, socket, sys
sys.path[:0] = [{root!r}, {shared!r}]
import torch  # imported once, before the forks
from autograder.masters import namespace
from autograder.sandbox.notebook_side import serve
from autograder.sandbox.wire import Connection

for line in sys.stdin:
    request = json.loads(line)
    if os.fork() == 0:
        try:
            os.setsid()
            if request["name"]:
                notebook = namespace(request["name"], request["overrides"])
            else:  # a namespace of its own (sandbox.remote's tests)
                notebook = {{"__name__": "__main__"}}
                exec(request["overrides"], notebook)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(request["address"])
            Connection(sock).send({{"op": "hello", "token": request["token"], "pid": os.getpid()}}, [])
            serve(notebook, sock)
        finally:
            os._exit(0)
    while True:  # reap the children that have finished
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
"""

_helper = None
_lock = threading.Lock()


class Listener:
    """A socket the helper's child connects to, presenting a token."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="course-remote-test-")
        self.address = os.path.join(self.folder, "notebook.sock")
        self.token = secrets.token_hex(16)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.address)
        self.sock.listen(1)

    def accept(self, timeout_s: float) -> Connection:
        self.sock.settimeout(timeout_s)
        try:
            sock, _ = self.sock.accept()
        except socket.timeout:
            raise NotGraded("the notebook's process never connected") from None
        connection = Connection(sock, max_bytes=4096)
        hello, _ = connection.receive(deadline=time.monotonic() + timeout_s)
        if hello.get("token") != self.token:
            raise NotGraded("a connection without the token")
        return connection

    def close(self) -> None:
        self.sock.close()
        for remove, path in ((os.remove, self.address), (os.rmdir, self.folder)):
            try:
                remove(path)
            except OSError:
                pass


def _helper_process() -> subprocess.Popen:
    global _helper
    with _lock:
        if _helper is None or _helper.poll() is not None:
            source = _HELPER.format(root=str(ROOT), shared=str(ROOT / "shared"))
            _helper = subprocess.Popen([sys.executable, "-c", source], stdin=subprocess.PIPE, text=True)
        return _helper


@contextmanager
def remote_namespace(name: str | None, overrides: str = "", call_limit_s: float = 60.0, total_limit_s: float | None = None):
    """A Client for the reference solution of `name` (plus `overrides`) served from another process; with no name,
    for the namespace `overrides` alone defines."""
    listener = Listener()
    helper = _helper_process()
    helper.stdin.write(json.dumps({"name": name, "overrides": overrides, "address": listener.address,
                                   "token": listener.token}) + "\n")
    helper.stdin.flush()
    try:
        connection = listener.accept(timeout_s=60)
        client = Client.connected(connection, 30, call_limit_s=call_limit_s,
                                  total_limit_s=10 * call_limit_s if total_limit_s is None else total_limit_s)
    finally:
        listener.close()
    try:
        yield client
    finally:
        client.stop()


def remote_failures(name: str, question: str, overrides: str = "") -> dict[str, str]:
    """{test name: error} for the tests of `question` that fail when the namespace is served from another process."""
    failed = {}
    with remote_namespace(name, overrides) as client:
        for test in load(name).tests[question]:
            if reads_submitted_files(test):
                continue
            client.reset()
            try:
                run_test(test, client.namespace())
            except Exception as error:  # noqa: BLE001 - any exception is a failed test, as in otter
                failed[test.name] = f"{type(error).__name__}: {error}"
    return failed
