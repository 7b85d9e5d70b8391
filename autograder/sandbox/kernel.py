"""The notebook's process: it runs the student's cells, then serves the notebook's objects to the tests.

Forked from the zygote (sandbox.zygote) with torch already imported, it gives up root and sets its limits
and closes its network (sandbox.users.confine) before anything of the submission runs; its standard input, the
zygote's settings pipe, is /dev/null from its first line; then it is a small IPython shell driven by the
supervisor: `run` one cell, `serve` the notebook's globals to the test process (sandbox.notebook_side). Nothing
here is trusted: the notebook can change any of it, and then it changes only its own answers. Its time and memory are
watched from outside (the supervisor), its answers checked elsewhere (the test process).
"""
from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import sys
import time
import types

from . import notebook_side, wire
from .limits import Limits
from .users import KernelUser, confine


def main(supervisor: socket.socket, tests: socket.socket, output_fd: int, folders: dict, user: KernelUser | None,
         limits: Limits) -> None:
    """Never returns. `folders`: work (the working folder), home, lib (the course library)."""
    try:
        os.setsid()
        for fd in (0, 1, 2):
            os.dup2(output_fd if fd else os.open(os.devnull, os.O_RDONLY), fd)
        _close_all_but({0, 1, 2, supervisor.fileno(), tests.fileno()})  # nothing the grader holds open stays open
        enforced = confine(user, limits)  # root given up, no network: from here on the submission may run
        os.chdir(folders["work"])
        _environment(folders, user)
        # the course library's copy, the standard library and the installed packages; not the autograder's folder
        prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix)
        sys.path[:] = [folders["lib"], *(p for p in sys.path if os.path.isabs(p) and p.startswith(prefixes))]
        _replace_otter()
        connection = wire.Connection(supervisor, max_bytes=None)
        shell = _shell()
        _cap_data(limits.kernel_memory_mb)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # see run_cell
        connection.send({"op": "ready", "pid": os.getpid(), "enforced": enforced}, [])
        _serve_supervisor(connection, shell, tests)
    finally:
        os._exit(0)


def _close_all_but(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _environment(folders: dict, user: KernelUser | None) -> None:
    """A home of its own (caches: matplotlib, IPython, torch), the grading switch, nothing of the grader's."""
    home = folders["home"]
    name = user.name.replace(" ", "-") if user is not None else os.environ.get("USER", "student")
    for key in list(os.environ):
        if key.startswith(("COURSE_", "JUPYTER", "IPYTHON")) and key != "COURSE_DATA_DIR":  # the data mirror stays
            del os.environ[key]
    os.environ.update(HOME=home, USER=name, LOGNAME=name, TMPDIR=os.path.join(folders["work"], ".tmp"),
                      IPYTHONDIR=os.path.join(home, ".ipython"), MPLCONFIGDIR=os.path.join(home, ".matplotlib"),
                      COURSE_CACHE_DIR=os.path.join(home, ".cache"), COURSE_GRADING="1", MPLBACKEND="Agg",
                      PYTHONDONTWRITEBYTECODE="1")
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)


def _replace_otter() -> None:
    """The notebook's `otter.Notebook(...)` and `grader.check(...)` do nothing here: the tests run elsewhere."""
    class Notebook:
        _grading_mode = True

        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    otter = types.ModuleType("otter")
    otter.Notebook = Notebook
    otter.__path__ = []  # a package, so that `import otter.check` fails plainly
    sys.modules["otter"] = otter


def _shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class GradingShell(InteractiveShell):
        def enable_gui(self, gui=None):  # %matplotlib inline and the like: no display here
            pass

        def _tee(self, channel):
            # IPython 9 keeps a copy of everything a cell prints (history_manager.outputs, for %notebook): a notebook
            # that prints a lot filled its 192 MB with it (a MemoryError in the cell, and in every later call)
            return contextlib.nullcontext()

    config = Config()
    config.HistoryManager.enabled = False  # no history database, no thread that saves it
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.xmode = "Plain"
    shell = GradingShell.instance(config=config)
    shell.user_ns["__name__"] = "__main__"
    return shell


def _cap_data(extra_mb: int) -> None:
    """RLIMIT_DATA: what is mapped now (the libraries) plus `extra_mb`, so that a cell that allocates without end
    gets a MemoryError, and the supervisor's watch of the whole tree is the second line."""
    with open("/proc/self/status") as status:
        mapped_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
    limit = (mapped_kb // 1024 + extra_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


_INPUT_NAME = re.compile(r"<ipython-input-(\d+)-")


def _serve_supervisor(connection: wire.Connection, shell, tests: socket.socket) -> None:
    cells_of_runs: dict[int, int] = {}  # IPython's execution count -> the notebook's cell number

    def locate(filename: str, line: int) -> str | None:
        found = _INPUT_NAME.match(filename)
        if found and int(found.group(1)) in cells_of_runs:
            return f"cell {cells_of_runs[int(found.group(1))]}, line {line}"
        return None

    while True:
        try:
            message, _ = connection.receive()
        except (EOFError, OSError):
            return
        op = message.get("op")
        if op == "run":
            number = int(message["cell"])
            cells_of_runs[shell.execution_count] = number
            error, seconds = run_cell(shell, str(message["source"]))
            connection.send({"op": "done", "cell": number, "error": error, "seconds": seconds}, [])
        elif op == "serve":
            _discard_pending_interrupt()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            connection.send({"op": "serving"}, [])
            notebook_side.serve(shell.user_ns, tests, locate=locate)
            return
        else:
            return


def run_cell(shell, source: str) -> tuple[dict | None, float]:
    """Run one cell; what it raised, if anything. SIGINT (the supervisor's interruption, when the cell runs too
    long) is let through only while the cell runs: one that arrives late is dropped, not raised in the next cell."""
    _discard_pending_interrupt()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        result = shell.run_cell(source, store_history=True)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    seconds = time.monotonic() - started
    error = result.error_before_exec or result.error_in_exec
    sys.stdout.flush()
    sys.stderr.flush()
    if error is None:
        return None, seconds
    sys.last_type = sys.last_value = sys.last_traceback = None  # so that a failed cell's memory can be freed
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        text = ""
    return {"type": type(error).__name__[:100], "message": text[:300]}, seconds


def _discard_pending_interrupt() -> None:
    while signal.SIGINT in signal.sigpending():
        signal.sigtimedwait({signal.SIGINT}, 0)
