"""An otter plugin that grades a notebook the way this course trusts: the tests run in a process of the grader's,
the notebook's code in its own unprivileged kernel.

Enabled in every autograder zip by autograder/build.py (otter_config.json -> plugins):
- the notebook must belong to this assignment (otter's `assignment_name` metadata), else grading
  stops with a message saying which assignment it is for;
- every code cell gets a time limit, and all cells together another: a cell that runs too long is interrupted
  with an error that names the cell, and the remaining cells and questions are still graded;
- the kernel gets a memory cap, so a cell that allocates without bound fails with MemoryError
  instead of killing the kernel;
- training is switched off (COURSE_GRADING=1), whatever tags the student removed;
- when grading runs as root (as on Gradescope), the kernel runs the notebook as an unprivileged user
  (`nobody`): it cannot write the autograder's files (the submission, the course library, the grading data, the
  installed packages), read the tests, or reach the grader process (its memory, signals);
- the grader process adopts orphaned processes (so that it can stop what the notebook detaches), reads the
  kernel's results with an unpickler limited to otter's classes, and its log server accepts plain data only, so
  nothing the notebook writes or sends makes the grader process run code;
- **the tests run in the test process** (course.test_process), forked from the kernel in the grader's first cell,
  before the kernel gives up root (so it shares torch's memory, not the notebook's rights). After the last cell
  the kernel forks a copy of itself that serves the notebook's objects (course.grading_guard, course.remote); a
  test gets proxies for them, and everything they return arrives as plain data. Calls into the notebook have a
  time limit each and one for all of them. Then the notebook's processes are stopped, the files it created
  removed, and the tests that take no parameters (the exported-weights tests) run on the submission as
  submitted. Results are made from the grader's own copy of the tests; the kernel's are not used;
- hidden tests' failure messages keep only the exception, and cells that raised are listed.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import secrets
import shutil
import stat
import sys
import tempfile
import types
from pathlib import Path

import nbformat
import otter.execute
import otter.execute.logging
from otter.plugins import AbstractOtterPlugin
from otter.test_files import ExceptionTestFile
from otter.test_files.abstract_test import TestCaseResult

# imported now, before any student code runs: what the grader process imports later could have been rewritten
from course import remote
from course.grading_guard import reap_ended_children, stop_new_processes

GUARD_SOURCE = '''\
import os as _os, resource as _resource
_os.environ["COURSE_GRADING"] = "1"
# one compute thread: Gradescope gives 0.5 vCPU but shows the host's cores, and one torch thread per core
# would only add memory and contention; set before torch is imported so OpenMP reads it
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    _os.environ[_name] = "{threads}"
_os.environ["MPLBACKEND"] = "Agg"  # plots are not graded; the non-interactive backend is the lightest

def _cap_memory(extra_mb):
    with open("/proc/self/status") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmData:"))
    limit = (vm_kb // 1024 + extra_mb) * 2**20
    _resource.setrlimit(_resource.RLIMIT_DATA, (limit, limit))

try:
    import torch as _torch, numpy as _np  # map the libraries before the cap, so the cap is about data
    _torch.zeros(1) + 1
    _torch.set_num_threads({threads})
    _cap_memory({extra_mb})
except (OSError, ValueError, StopIteration):
    pass

try:  # no progress-bar monitor thread: nothing is trained while grading
    import tqdm as _tqdm
    _tqdm.tqdm.monitor_interval = 0
except ImportError:
    pass

from course.grading_guard import KernelGuard as _KernelGuard
{state} = _KernelGuard(grader_pid={grader_pid}, cell_limit_s={cell_timeout_s:g}, notebook_limit_s={notebook_timeout_s:g},
                        run_as={run_as!r}, tests={tests!r})
del _KernelGuard
'''


# time limits (config key: default seconds); the environment variable COURSE_<KEY> overrides the zip's value
# (the repository's tests use that)
# per cell; all cells; per call from a test into student code; all those calls together. A submission that uses
# every second of both budgets takes 420 s of student time; the rest of Gradescope's 10 minutes (GRADESCOPE_TIMEOUT_S)
# is for starting the kernel and the exported-weights tests at 0.5 vCPU (about 2x the CPU seconds bench-grading
# measures, under 40 s): past it Gradescope ends grading with no results at all
TIME_LIMITS = {"cell_timeout_s": 120, "notebook_timeout_s": 300, "call_timeout_s": 60, "tests_timeout_s": 120}
GRADESCOPE_TIMEOUT_S = 600
# data the grading kernel may allocate beyond its libraries: the references need far less, and with a cell that
# allocates without end the whole grading tree peaks at about 620 MB, inside Gradescope's default 768 MB (at
# 1,536 MB it reached 1.9 GB, where the container's OOM killer, not a MemoryError, would have ended grading)
KERNEL_MEMORY_MB = 256


TRUSTED_TESTS = os.path.join("..", "source", "tests")  # the autograder's tests, beside the submission folder
# seconds the test process may take to answer, beyond the tests' own time limits (start-up, the tests' own code)
TESTS_SLACK_S = 120

# the user that runs the notebook when grading runs as root; COURSE_KERNEL_USER overrides it ("" keeps root)
KERNEL_USER = "nobody"
# set to 1 to let the grader make the interpreter's directories traversable (o+x) for that user when they are not;
# always allowed in Gradescope's disposable container (/autograder), never elsewhere unless asked
GRANT_ACCESS_ENV = "COURSE_GRANT_KERNEL_ACCESS"


class CourseGradingPlugin(AbstractOtterPlugin):
    """Config keys: assignment (name), the TIME_LIMITS, memory_mb (kernel data budget), threads (torch threads),
    kernel_user (see KERNEL_USER)."""

    TRUSTED = ("course", "grading_data")  # support folders the autograder ships in source/files

    def before_grading(self, ag_config):
        """Replace any `course/` or `grading_data/` a submission brought with the autograder's own copies.

        otter copies support files into the submission folder only when absent, so without this a
        zip holding its own `course/grading.py` would grade itself. The working directory is the
        submission folder; the autograder's files are in ../source/files.
        """
        import shutil
        from pathlib import Path

        for name in self.TRUSTED:
            trusted = Path("..") / "source" / "files" / name
            if trusted.is_dir():
                shutil.rmtree(name, ignore_errors=True)
                if Path(name).exists():  # a file, not a folder
                    Path(name).unlink()
                shutil.copytree(trusted, name)
        self._shadowing = _remove_module_shadows(keep=self.TRUSTED + ("tests",))
        if self._shadowing:
            _grader_note(f"removed from the submission before the kernel starts: {', '.join(self._shadowing)}")
        self._run_as = None  # (uid, gid, home) of the kernel's user, once before_execution has prepared one
        self._listener = None  # where the kernel's copy connects to serve the notebook (see before_execution)
        # one compute thread here too, for the tests this process runs (see _grade); the kernel inherits it
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = str(int(self.plugin_config.get("threads", 1)))
        # the tests as the autograder ships them, read before any student code runs (see _grade)
        self._trusted_tests = {}
        for path in sorted(Path(TRUSTED_TESTS).glob("*.py")):
            test_file = ExceptionTestFile.from_file(str(path))
            self._trusted_tests[test_file.name] = test_file

    def before_execution(self, submission):
        if not isinstance(submission, nbformat.NotebookNode):
            return submission
        expected = self.plugin_config.get("assignment")
        found = submission.metadata.get("otter", {}).get("assignment_name")
        if expected and found and found != expected:
            raise ValueError(f"This notebook is for assignment '{found}', not '{expected}': submit the {expected} notebook.")
        _become_subreaper()
        _load_results_safely()
        _receive_plain_logs()
        user = os.environ.get("COURSE_KERNEL_USER", self.plugin_config.get("kernel_user", KERNEL_USER))
        self._run_as = _prepare_unprivileged_kernel(user) if user else None
        self._limits = limits = {key: float(os.environ.get(f"COURSE_{key.upper()}", self.plugin_config.get(key, default)))
                                 for key, default in TIME_LIMITS.items()}
        self._listener = remote.Listener()
        state = f"{STATE_PREFIX}{secrets.token_hex(8)}__"
        cells = [nbformat.v4.new_code_cell(GUARD_SOURCE.format(
            state=state, grader_pid=os.getpid(), extra_mb=int(self.plugin_config.get("memory_mb", KERNEL_MEMORY_MB)),
            threads=int(self.plugin_config.get("threads", 1)), run_as=self._run_as,
            tests=(self._listener.address, self._listener.token, os.path.abspath(TRUSTED_TESTS)), **limits))]
        for number, cell in enumerate(submission.cells, 1):
            if cell.cell_type == "code":
                first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")[:40]
                # one line, so the student's line numbers in tracebacks move by one only
                cell.source = f"{state}.start_cell({number}, {first!r})\n" + cell.source
            cells.append(cell)
        cells.append(nbformat.v4.new_code_cell(f"{state}.serve_tests(globals())"))
        submission.cells = cells
        return submission

    def after_grading(self, results):
        """Have the tests run (see `_grade`); hide hidden tests' code in their failure messages; report cells that
        raised while grading; end the processes the notebook left."""
        if self._listener is not None and getattr(results, "_catastrophic_error", None) is None and self._trusted_tests:
            self._grade(results)
        if self._listener is not None:
            self._listener.close()
        stop_new_processes(os.getpid(), known=set())  # the kernel has ended: anything below the grader is the notebook's
        reap_ended_children()
        if self._run_as is not None:
            shutil.rmtree(self._run_as[2], ignore_errors=True)  # the kernel's home
        for test_file in getattr(results, "results", {}).values():
            for result in getattr(test_file, "test_case_results", []):
                if result.test_case.hidden and not result.passed:
                    # otter quotes the failing line of the test; keep only the exception, which says what failed
                    last = result.message.strip().splitlines()[-1] if result.message.strip() else ""
                    result.message = "❌ Hidden test failed\n" + last
        notebook = getattr(results, "notebook", None)
        if notebook is None:
            return
        problems = []
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            where = CELL_START.match(cell.source.split("\n", 1)[0])
            name = f"cell {where.group(1)}" if where else "the grader's last cell" if SERVE_CELL.match(cell.source) else None
            if name is None:
                continue
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    hint = PERMISSION_HINT if output.get("ename") == "PermissionError" else ""
                    problems.append(f"- {name}: {output.get('ename')}: {str(output.get('evalue'))[:300]}{hint}")
        output = []
        if getattr(self, "_shadowing", None):
            output.append(f"Removed from your submission before grading (they could replace Python modules): "
                          f"{', '.join(self._shadowing)}.")
        if problems:
            output.append("Cells that raised an error while your notebook was graded:\n" + "\n".join(problems[:20]))
        if output:
            results.set_output("\n".join(output))

    def _grade(self, results) -> None:
        """Have the test process (course.test_process) run every test, and make the results from the grader's own
        copy of the tests (their questions, points and visibility); nothing the kernel reported is used.

        First the tests that take parameters: they get the notebook's variables of those names (as otter passes
        them) as proxies served by the kernel's copy. Then the notebook's processes are stopped and the files it
        created removed, and the tests with no parameters check the submitted files (the exported weights).
        """
        verdicts, problems, tests_pid, connection = {}, [], None, None
        try:
            connection, tests_pid = self._listener.accept(timeout_s=15)
            limits = {"call_limit_s": self._limits["call_timeout_s"], "total_limit_s": self._limits["tests_timeout_s"]}
            self._collect(verdicts, connection, {"op": "notebook_tests", **limits},
                          limits["call_limit_s"] + limits["total_limit_s"] + TESTS_SLACK_S)
        except TestProcessFailed as error:  # it answered, and can still check the submitted files
            problems.append(str(error))
        except (remote.NotGraded, remote.ProtocolError, OSError, EOFError) as error:
            problems.append(f"{type(error).__name__}: {error}")
            connection = None
        stop_new_processes(os.getpid(), known={tests_pid})  # the kernel's copy, and anything the notebook left
        reap_ended_children()
        if self._run_as is not None:
            _remove_files_of(self._run_as[0])  # what the notebook created while it ran; the submitted files are root's
        if connection is not None:
            try:
                self._collect(verdicts, connection, {"op": "file_tests"}, TESTS_SLACK_S + 180)
                connection.send({"op": "exit"}, [])
                reap_ended_children([tests_pid], wait_s=5)
            except TestProcessFailed as error:
                problems.append(str(error))
            except (remote.ProtocolError, OSError, EOFError) as error:
                problems.append(f"{type(error).__name__}: {error}")
        problem = "; ".join(dict.fromkeys(problems))
        if problem:
            _grader_note(f"the test process failed: {problem}")
        missing = f"❌ Not graded: the grader's test process failed ({problem}); please tell the course staff"
        rebuilt = {}
        for name, trusted in self._trusted_tests.items():
            cases = []
            for case in trusted.test_cases:
                passed, message = verdicts.get((name, case.name), (False, missing))
                cases.append(TestCaseResult(test_case=case, message=message, passed=passed))
            trusted.test_case_results = cases
            rebuilt[name] = trusted
        results.results = rebuilt

    @staticmethod
    def _collect(verdicts: dict, connection, command: dict, timeout_s: float) -> None:
        """Send the test process a command and add the verdicts it answers with."""
        import time

        connection.send(command, [])
        answer, _ = connection.receive(deadline=time.monotonic() + timeout_s)
        if answer.get("op") == "failed":
            raise TestProcessFailed(str(answer.get("error")))
        if answer.get("printed"):  # what the tests printed, for the grading log
            print(str(answer["printed"]), end="", file=sys.stderr, flush=True)
        for verdict in answer.get("verdicts", []):
            if "note" in verdict:
                _grader_note(str(verdict["note"]))
                reap_ended_children([verdict["server_pid"]], wait_s=5)  # the kernel's copy ends when told to stop
                continue
            verdicts[str(verdict["file"]), str(verdict["case"])] = bool(verdict["passed"]), str(verdict["message"])


class TestProcessFailed(Exception):
    """The test process answered that it could not do what it was asked (its tests do not load, or a bug)."""


PERMISSION_HINT = " (while it is graded, a notebook may create files but not change the submitted ones or the grader's)"
STATE_PREFIX = "__course_guard_"
CELL_START = re.compile(rf"{STATE_PREFIX}[0-9a-f]+__\.start_cell\((\d+, .*)\)")
SERVE_CELL = re.compile(rf"{STATE_PREFIX}[0-9a-f]+__\.serve_tests\(")


def _become_subreaper():
    """Make this process (the grader) adopt orphans: a process the notebook detaches still ends up below it,
    where the guard finds and stops it."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):  # not Linux
        pass


# what a results file written by otter's last cell may name, besides classes defined in otter: plain containers
_RESULT_GLOBALS = {("copyreg", "_reconstructor"), ("builtins", "object"), ("builtins", "set"), ("builtins", "frozenset"),
                   ("collections", "OrderedDict"), ("collections", "defaultdict")}


def _load_results_safely():
    """otter reads the kernel's results with pickle.load, which runs whatever code the file names. Student code can
    write that file, so the grader reads it with an unpickler that only builds otter's result classes."""
    import types

    import otter.execute

    class ResultsUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in _RESULT_GLOBALS:
                return super().find_class(module, name)
            if module.split(".")[0] == "otter" and "." not in name:  # a dotted name could reach otter's imports (os...)
                found = super().find_class(module, name)
                if isinstance(found, type) and found.__module__.split(".")[0] == "otter":
                    return found
            raise pickle.UnpicklingError(f"the results file names {module}.{name}, which otter's results never hold")

    otter.execute.pickle = types.SimpleNamespace(load=lambda file: ResultsUnpickler(file).load())


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"a log record may hold plain data only, not {module}.{name}")


def _receive_plain_logs():
    """otter's log server (in this process, on a localhost port) unpickles whatever is sent to it; the kernel's
    log records are plain dictionaries, so the server now accepts nothing else: code in the notebook that
    connects to the port cannot make the grader run anything."""
    import otter.execute.logging

    otter.execute.logging.LogRecordStreamHandler.unpickle = lambda self, data: _PlainDataUnpickler(io.BytesIO(data)).load()


MODULE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".so", ".pth")


def _remove_module_shadows(keep: tuple[str, ...]) -> list[str]:
    """Remove from the working folder (the submission) what Python could import instead of an installed module.

    The kernel runs in this folder, with it first on sys.path, and it runs as root until the grader's first cell
    has given root up: a submitted `tqdm.py`, `zmq.py` or `numpy/__init__.py` would run as root when ipykernel,
    otter or that cell imports the module. Returns the names removed (folders in `keep` are the autograder's)."""
    removed = []
    for name in sorted(os.listdir(".")):
        path = Path(name)
        if name in keep or name == "__init__.py":  # otter's own (empty) file; nothing imports a module of that name
            continue
        is_package = path.is_dir() and not path.is_symlink() and any((path / f"__init__{suffix}").exists()
                                                                     for suffix in MODULE_SUFFIXES)
        if is_package or name.endswith(MODULE_SUFFIXES) or name == "__pycache__":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(name + ("/" if is_package or name == "__pycache__" else ""))
    return removed


def _remove_files_of(uid: int) -> None:
    """Remove from the working folder what user `uid` (the kernel's) created, so that the grader's own tests see
    the submission as it was submitted."""
    for folder, subfolders, files in os.walk(".", topdown=False):  # contents first; links are not followed
        for name in files + subfolders:
            path = os.path.join(folder, name)
            try:
                if os.lstat(path).st_uid == uid:
                    shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
            except OSError:
                pass


def _grader_note(message: str) -> None:
    """A line for whoever runs the grader (the grading log), not for the student."""
    print(f"[course grader] {message}", file=sys.stderr, flush=True)


def _prepare_unprivileged_kernel(user: str) -> tuple[int, int, str] | None:
    """Get ready for the kernel to run the notebook as `user`; returns (uid, gid, home) for the kernel guard, or None
    when the kernel has to keep this process's identity (the reason goes to the grading log).

    Only root can switch users, and Gradescope grades as root. Then the working folder (the submission) becomes
    writable by anyone but sticky, so the notebook can create files but not replace the grader's (course/,
    grading_data/, the submitted files), which stay read-only to it; the tests (here and in ../source) become
    unreadable to it; the results file otter will create is handed to the user; and the user gets a home of its own. The directories the kernel must read (the
    interpreter's, the packages', this folder) are checked as that user first.
    """
    import pwd

    if os.geteuid() != 0:
        _grader_note("grading does not run as root: the notebook runs as the grader's own user")
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        _grader_note(f"no user '{user}' on this machine: the notebook runs as root")
        return None
    uid, gid = entry.pw_uid, entry.pw_gid
    needed = _kernel_reads()
    blocked = _unreadable_as(uid, gid, needed)
    if blocked:
        closed = sorted({parent for path in blocked for parent in _ancestors(path)
                         if not os.stat(parent).st_mode & stat.S_IXOTH})
        if closed and (os.getcwd() == "/autograder/submission" or os.environ.get(GRANT_ACCESS_ENV) == "1"):
            for folder in closed:  # traverse only: the folders' listings stay private
                os.chmod(folder, os.stat(folder).st_mode | stat.S_IXOTH)
            _grader_note(f"made {', '.join(closed)} traversable for '{user}', who runs the notebook")
            blocked = _unreadable_as(uid, gid, needed)
        if blocked:
            _grader_note(f"'{user}' cannot read {blocked[0]} (set {GRANT_ACCESS_ENV}=1 to let the grader open the "
                         "folders on its way): the notebook runs as root")
            return None
    _open_workspace()
    for tests in ("tests", os.path.join("..", "source", "tests")):  # the tests run here: the notebook cannot read them
        if os.path.isdir(tests) and not os.path.islink(tests):
            os.chmod(tests, 0o700)
    home = tempfile.mkdtemp(prefix="course-kernel-home-")
    os.chown(home, uid, gid)
    real_mkstemp = tempfile.mkstemp

    def results_file(*args, **kwargs):  # otter's results file, which the kernel's last cell writes
        handle, path = real_mkstemp(*args, **kwargs)
        os.fchown(handle, uid, gid)
        return handle, path
    otter.execute.tempfile = types.SimpleNamespace(mkstemp=results_file)
    _grader_note(f"the notebook runs as '{user}' (uid {uid}), without root")
    return uid, gid, home


def _kernel_reads() -> list[str]:
    """Paths the kernel reads after it has given up root: the standard library, the packages the tests import,
    and the working folder."""
    import importlib.util

    paths = [os.path.dirname(os.__file__), os.getcwd()]
    for package in ("torch", "numpy", "otter", "matplotlib", "safetensors"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            paths.append(spec.origin)
    return paths


def _ancestors(path: str) -> list[str]:
    """`path`'s folders from / down, `path` included when it is a folder."""
    parts = Path(path).resolve().parts
    return [str(Path(*parts[:i])) for i in range(1, len(parts) + 1) if Path(*parts[:i]).is_dir()]


def _unreadable_as(uid: int, gid: int, paths: list[str]) -> list[str]:
    """Those of `paths` that user `uid` cannot read (tried in a child process that takes that identity)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become the user, try each path, report the failures, end
        blocked = []
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            for path in paths:
                try:
                    os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
                except OSError:
                    blocked.append(path)
            os.write(write_end, "\n".join(blocked).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        blocked = report.read().decode().split("\n")
    os.waitpid(pid, 0)
    return [path for path in blocked if path]


def _open_workspace() -> None:
    """The working folder: anyone may create files (sticky, like /tmp), nobody but root may replace or change the
    files already there (the submission, tests/, course/, grading_data/), which everyone may read."""
    for folder, subfolders, files in os.walk("."):
        for name in subfolders + files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):  # a link's target is not the submission's to open
                os.chmod(path, 0o755 if os.path.isdir(path) else (os.stat(path).st_mode & 0o755) | 0o444)
    os.chmod(".", 0o1777)
