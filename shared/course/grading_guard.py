"""The grading kernel's side of grading (used by course.otter_plugin).

otter runs a submitted notebook in a Jupyter kernel. `KernelGuard`, created in a cell the grader puts before the
first student cell:
- limits the time of each cell and of all cells together, so that a cell that never ends fails on its own and the
  tests still run within Gradescope's ten minutes, and hands back the memory a failed cell held;
- when grading runs as root (as on Gradescope), gives up root for an unprivileged user (`run_as`), so that student
  code cannot write the grader's files, read the hidden tests or reach the grader process;
- turns otter's own test runs inside the kernel into no-ops: the tests do not run here.

Before giving up root, it starts the process that runs the tests (course.test_process, forked now so that it
shares torch's memory with the kernel). After the last student cell, `serve_tests` stops the processes the
notebook started and forks the kernel: the copy keeps the notebook's objects and serves them to the tests
(course.remote); the kernel itself goes on, and otter ends it as usual. Nothing in the kernel decides a verdict,
so nothing here needs to be protected from student code: what the notebook patches or replaces changes only the
answers it gives.
"""
from __future__ import annotations

import ctypes
import os
import sys


class CellTimeLimitExceeded(Exception):
    """A cell ran longer than the grader allows."""


def _libc_malloc_trim():
    """glibc's malloc_trim, which returns freed heap pages to the system (glibc keeps them otherwise)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda pad: None


def _descendants(root: int) -> set[int]:
    """Process ids below `root` (children, their children, ...), read from /proc."""
    found, frontier = set(), [root]
    if _PROC_LISTS_CHILDREN:
        while frontier:
            pid = frontier.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:  # the process ended meanwhile
                continue
            for task in tasks:
                try:
                    with open(f"/proc/{pid}/task/{task}/children") as children:
                        for child in children.read().split():
                            if int(child) not in found:
                                found.add(int(child))
                                frontier.append(int(child))
                except OSError:  # the thread ended meanwhile
                    pass
    else:  # this kernel has no /proc/PID/task/TID/children: scan every process
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        found, changed = set(), True
        while changed:
            new = {pid for pid, parent in parents.items() if (parent == root or parent in found) and pid not in found}
            changed = bool(new)
            found |= new
    return found


_PROC_LISTS_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def stop_new_processes(root: int, known: set[int], wait_s: float = 2.0) -> tuple[set[int], list[int]]:
    """Kill the processes below `root` that are not in `known`; returns those it killed and those still alive
    after `wait_s`.

    Each is first stopped (SIGSTOP), so that none can start more while the others are killed. The grader
    process makes itself a child subreaper, so processes that detach from the kernel stay below it.
    """
    import signal
    import time

    deadline = time.monotonic() + wait_s
    me, killed = os.getpid(), set()
    while True:
        new = [pid for pid in _descendants(root) if pid not in known and pid != me and not _is_zombie(pid)]
        if not new or time.monotonic() > deadline:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in new:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        killed.update(new)
        time.sleep(0.01)
    reap_ended_children(killed)
    return killed, new


def reap_ended_children(pids=None, wait_s: float = 1.0) -> None:
    """Collect the exit status of this process's children among `pids` (default: all that have ended), waiting up
    to `wait_s` for those just killed. A child the grader adopted is counted in its CPU time only once collected,
    and other children are left to their owners."""
    import time

    deadline = time.monotonic() + wait_s
    pending = set(pids) if pids is not None else {pid for pid in _descendants(os.getpid()) if _is_zombie(pid)}
    while pending:
        for pid in list(pending):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    pending.discard(pid)
            except ChildProcessError:  # not this process's child, or already collected
                pending.discard(pid)
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.01)


class KernelGuard:
    """Cell time limits, the switch to an unprivileged user, and the processes that run the tests and serve the
    notebook to them."""

    def __init__(self, grader_pid: int | None = None, cell_limit_s: float = 120, notebook_limit_s: float = 300,
                 run_as: tuple[int, int, str] | None = None, tests: tuple[str, str, str] | None = None):
        """`tests` (the grader's address, its token, the folder of the tests): start the process that runs the tests
        now, before any student cell (course.test_process). `run_as` (uid, gid, home): then give up root for that
        user (see course.otter_plugin)."""
        import socket

        self.cell_limit_s, self.notebook_limit_s = cell_limit_s, notebook_limit_s
        self._cells_used_s, self._cell_started = 0.0, None
        self._release_free_memory = _libc_malloc_trim()
        self.grader_pid = grader_pid or os.getppid()
        self._tests_socket = None
        if tests is not None:
            from course import test_process

            self._tests_socket, tests_end = socket.socketpair()
            self.tests_pid = test_process.start(tests_end, self._tests_socket, *tests)
            tests_end.close()
        self._processes = _descendants(self.grader_pid)  # the kernel, the tests' process, what otter started
        _no_tests_in_the_kernel()
        if run_as is not None:
            _become_user(*run_as)

    # ---- the student's cells ----
    def start_cell(self, number: int | None = None, label: str = "") -> None:
        """Called first in each student cell (None: after the last one): frees what the last cell left, and sets
        the cell's time limit, the smaller of the per-cell limit and what is left of the notebook's."""
        import signal
        import time

        if getattr(sys, "last_traceback", None) is not None:
            # drop the last traceback IPython keeps, so memory held by a failed cell's frames can be freed
            sys.last_type = sys.last_value = sys.last_traceback = None
            try:  # IPython keeps the failed cell's exception (and so its frames) in two more places
                shell = get_ipython()  # noqa: F821 (defined inside IPython)
                shell.InteractiveTB.tb = None
                shell.last_execution_result.error_in_exec = None
            except (NameError, AttributeError):
                pass
            import gc
            gc.collect()
        self._release_free_memory(0)
        now = time.monotonic()
        if self._cell_started is not None:
            self._cells_used_s += now - self._cell_started
        self._cell_started = now if number is not None else None
        signal.setitimer(signal.ITIMER_REAL, 0)
        if number is None:
            return
        left = self.notebook_limit_s - self._cells_used_s
        if left <= 0:
            raise CellTimeLimitExceeded(f"cell {number} ({label}) was not run: the notebook's cells used up the "
                                        f"{self.notebook_limit_s:g} s the grader allows for all of them")
        seconds = min(self.cell_limit_s, left)
        reason = (f"ran longer than {seconds:g} s and was stopped by the grader" if seconds == self.cell_limit_s else
                  f"was stopped by the grader when the notebook's cells reached the {self.notebook_limit_s:g} s "
                  f"allowed for all of them")

        def stop(signum, frame):
            raise CellTimeLimitExceeded(f"cell {number} ({label}) {reason}")
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, seconds)

    # ---- the tests ----
    def serve_tests(self, namespace: dict) -> None:
        """After the last student cell: stop the notebook's processes, then fork a copy of this kernel that serves
        `namespace` (the notebook's globals) to the tests' process (course.remote.serve). Returns at once in the
        kernel; the copy never returns."""
        import atexit

        self.start_cell(None)
        stop_new_processes(self.grader_pid, self._processes)
        sys.stdout.flush()
        sys.stderr.flush()
        detached_read, detached_write = os.pipe()
        if os.fork() != 0:
            import select

            os.close(detached_write)  # wait (30 s at most) until the copy has left the kernel's process group, which
            select.select([detached_read], [], [], 30)  # is killed when otter shuts the kernel down
            os.close(detached_read)
            # and then the kernel ends at once: tearing down the interpreter would write to every page it still
            # shares with the copy, and each page written is then held twice
            atexit.register(os._exit, 0)
            return
        try:
            os.close(detached_read)
            os.setsid()
            os.close(detached_write)
            quiet = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # the kernel's output streams belong to threads the copy does not have
                os.dup2(quiet, fd)
            sys.stdout = sys.stderr = open(os.devnull, "w")
            from course.remote import serve

            serve(namespace, self._tests_socket)
        finally:
            os._exit(0)


def _no_tests_in_the_kernel() -> None:
    """otter's check cells and its final run of every test would run the tests here: they do nothing (the grader
    process runs the tests, and the notebook's user cannot read the test files)."""
    try:
        from otter import Notebook
        from otter.execute import Checker
    except ImportError:
        return
    Notebook.check = lambda self, question, global_env=None: None
    Checker.check_if_not_already_checked = classmethod(lambda cls, test_path, global_env=None: None)


def _become_user(uid: int, gid: int, home: str) -> None:
    """Give up root for good (real, effective and saved ids): from here on the process has that user's rights."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("the grading kernel could not give up root")
    # a process that changed its ids loses ownership of its /proc entries (its own fds, ...); give it back
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
    os.environ["HOME"] = home  # caches (matplotlib, ...) go there, not to root's home
